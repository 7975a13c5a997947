package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/store"
)

const auditUsage = `usage:
  mandate audit verify [--file EXPORT] [--pubkey FILE ...]
                                     prove the log complete and unedited
  mandate audit query [--user U] [--agent A] [--tool [UPSTREAM/]NAME] [--upstream U]
                      [--decision D] [--mandate ID] [--kind K] [--since T] [--until T]
                      [--limit N] [--json]
                                     list records, newest first
  mandate audit explain RECORD_ID    the full story of one record
  mandate audit export               every record and checkpoint, as JSON lines
  mandate audit prune --before T --out FILE
                                     move records older than T to FILE, signed
  mandate audit pubkey               the public key that verifies checkpoints

Each also takes --config FILE and --data-dir DIR, as serve does.

Every decision, outcome and administrative change is a record in a hash
chain: each record names the hash of the one before it. The gateway signs
the chain's head (a checkpoint) with an Ed25519 key kept in DATA_DIR/audit,
every audit.checkpoint_interval (default 30s) while it writes and when it stops. verify recomputes every
hash and checks every signature, and names the first record that was
edited, deleted, reordered or inserted; it exits 1 if there is one.

--pubkey (repeatable) names PEM public keys to trust instead of the local
one, as "mandate audit pubkey" prints them: one per replica that writes to a
shared PostgreSQL store, or the key of the machine an export came from.

T is an RFC 3339 time or a duration before now ("24h"). K is decision,
outcome or admin. --user takes a username or a user id.
`

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], stdout, stderr)
	case "query":
		return auditQuery(ctx, args[1:], stdout, stderr)
	case "explain":
		return auditExplain(ctx, args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	case "prune":
		return auditPrune(ctx, args[1:], stdout, stderr)
	case "pubkey":
		return auditPubkey(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mandate audit: unknown command %q\n\n%s", args[0], auditUsage)
	return errUsage
}

// auditCommand parses an audit subcommand's flags and loads the
// configuration, so the command can find both the store and the data
// directory's keys.
func auditCommand(c adminCommand, args []string, stderr io.Writer) (*config.Config, []string, error) {
	f, pos, err := c.parse(args, stderr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := f.load()
	if err != nil {
		return nil, nil, err
	}
	return cfg, pos, nil
}

// trustedKeys returns the keys named by --pubkey, or else the public half of
// the local signing key, which is never created here: a verifier without a
// key must say so, not invent one.
func trustedKeys(cfg *config.Config, files []string) ([]ed25519.PublicKey, error) {
	if len(files) > 0 {
		var keys []ed25519.PublicKey
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			k, err := audit.ParsePublicKeys(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			keys = append(keys, k...)
		}
		return keys, nil
	}
	path := filepath.Join(audit.KeysDir(cfg.DataDir), audit.SigningKeyFile)
	s, err := audit.LoadSigner(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no audit signing key at %s: pass --pubkey with the key that signed the log", path)
	}
	if err != nil {
		return nil, err
	}
	return []ed25519.PublicKey{s.Public()}, nil
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var file string
	var pubkeys stringList
	cfg, _, err := auditCommand(adminCommand{name: "audit verify", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "verify this export instead of the store")
		fs.Var(&pubkeys, "pubkey", "trust this PEM public key file instead of the local key (repeatable)")
	}}, args, stderr)
	if err != nil {
		return err
	}
	keys, err := trustedKeys(cfg, pubkeys)
	if err != nil {
		return err
	}
	var rep *audit.Report
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		rep, err = audit.VerifyFile(f, keys)
		if err != nil && !errors.Is(err, audit.ErrTampered) {
			return err
		}
	} else {
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		rep, err = audit.Verify(ctx, st, keys)
		if err != nil && !errors.Is(err, audit.ErrTampered) {
			return err
		}
	}
	for _, c := range rep.Chains {
		fmt.Fprintln(stdout, chainLine(c))
	}
	if err := rep.Err(); err != nil {
		for _, p := range rep.Problems[1:] {
			fmt.Fprintln(stdout, "also:", cell(p.Error()))
		}
		return fmt.Errorf("%w: %s", audit.ErrTampered, cell(err.Error()))
	}
	if len(rep.Chains) == 0 {
		fmt.Fprintln(stdout, "no audit records")
		return nil
	}
	fmt.Fprintln(stdout, "ok: every record verifies")
	return nil
}

// chainLine says what verification established about one chain.
func chainLine(c audit.ChainSummary) string {
	if c.Records == 0 {
		return fmt.Sprintf("chain %s: no records after the checkpoint at seq %d", cell(c.Chain), c.Anchor)
	}
	s := fmt.Sprintf("chain %s: records %d to %d", cell(c.Chain), c.First, c.Last)
	if c.Anchor > 0 {
		s += fmt.Sprintf(" (earlier ones pruned at a signed checkpoint, seq %d)", c.Anchor)
	}
	s += fmt.Sprintf(", %d checkpoint(s)", c.Checkpoints)
	switch {
	case c.Signed > 0:
		s += fmt.Sprintf(", signed through seq %d at %s", c.Signed, formatTime(c.SignedAt))
	default:
		s += ", none signed yet"
	}
	if n := c.Unsigned(); n > 0 {
		s += fmt.Sprintf("; the last %d not yet signed", n)
	}
	return s
}

func auditQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var q store.AuditQuery
	var user, tool, since, until string
	var asJSON bool
	cmd := adminCommand{name: "audit query", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "only records of this user (username or id)")
		fs.StringVar(&q.Agent, "agent", "", "only records of this agent (client id)")
		fs.StringVar(&tool, "tool", "", "only records about this tool, prompt or resource ([UPSTREAM/]NAME)")
		fs.StringVar(&q.Upstream, "upstream", "", "only records about this upstream")
		fs.StringVar(&q.Decision, "decision", "", "only decisions with this outcome: allow, deny, needs-mandate, needs-approval")
		fs.StringVar(&q.Mandate, "mandate", "", "only records under this mandate")
		fs.StringVar(&q.Kind, "kind", "", "only records of this kind: decision, outcome or admin")
		fs.StringVar(&since, "since", "", "only records at or after this time (RFC 3339, or a duration ago)")
		fs.StringVar(&until, "until", "", "only records before this time (RFC 3339, or a duration ago)")
		fs.IntVar(&q.Limit, "limit", 50, "at most this many records")
		fs.BoolVar(&asJSON, "json", false, "print each record as one JSON line")
	}}
	cfg, _, err := auditCommand(cmd, args, stderr)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"since", since, &q.Since}, {"until", until, &q.Until}} {
		if t.value == "" {
			continue
		}
		if *t.into, err = parseWhen(t.value, now); err != nil {
			fmt.Fprintf(stderr, "audit query: --%s: %v\n", t.flag, err)
			return errUsage
		}
	}
	if up, name, ok := strings.Cut(tool, "/"); ok && q.Upstream == "" {
		q.Upstream, q.Name = up, name
	} else {
		q.Name = tool
	}
	switch audit.Kind(q.Kind) {
	case "", audit.KindDecision, audit.KindOutcome, audit.KindAdmin:
	default:
		fmt.Fprintf(stderr, "audit query: unknown kind %q\n", q.Kind)
		return errUsage
	}
	if q.Limit < 1 {
		fmt.Fprintf(stderr, "audit query: --limit must be positive\n")
		return errUsage
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	q.User = user
	if user != "" {
		// A username names a local user, whose records carry its id.
		if u, err := st.GetUserByUsername(ctx, user); err == nil {
			q.User = u.ID
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("find user %q: %w", user, err)
		}
	}
	if asJSON {
		rows, err := st.QueryAudit(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range rows {
			// A record is printed as stored, once it is known to be the
			// record that was hashed.
			if _, err := audit.FromStore(r); err != nil {
				return err
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", r.Body); err != nil {
				return err
			}
		}
		return nil
	}
	recs, err := audit.Query(ctx, st, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tID\tKIND\tUSER\tAGENT\tCALL\tDECISION\tRESULT")
	for _, r := range recs {
		call := r.Name
		if r.Upstream != "" {
			call = r.Upstream + "/" + r.Name
		}
		kind := string(r.Kind)
		if r.Event != "" {
			kind = r.Event
		}
		result := r.Status
		if r.Kind == audit.KindAdmin {
			result = r.Target
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(r.Time), r.ID, cell(kind), cell(orDash(r.User)),
			cell(orDash(r.Agent)), cell(orDash(truncate(call, 48))), cell(orDash(r.Decision)), cell(orDash(result)))
	}
	return tw.Flush()
}

// parseWhen reads an RFC 3339 time or a positive duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

func auditExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, pos, err := auditCommand(adminCommand{name: "audit explain", args: []string{"RECORD_ID"}}, args, stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// Without a key the story still tells what happened; only the
	// signature check is left out.
	keys, err := trustedKeys(cfg, nil)
	if err != nil {
		keys = nil
	}
	story, err := audit.Tell(ctx, st, keys, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no audit record %q", cell(pos[0]))
	}
	if err != nil {
		return err
	}
	return story.WriteText(stdout)
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := auditCommand(adminCommand{name: "audit export"}, args, stderr)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return audit.Export(ctx, st, stdout)
}

func auditPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var before, out string
	cfg, _, err := auditCommand(adminCommand{name: "audit prune", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&before, "before", "", "move records older than this (RFC 3339, or a duration ago)")
		fs.StringVar(&out, "out", "", "append the moved records to this file (required)")
	}}, args, stderr)
	if err != nil {
		return err
	}
	if before == "" || out == "" {
		fmt.Fprintln(stderr, "audit prune: --before and --out are required")
		return errUsage
	}
	when, err := parseWhen(before, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "audit prune: --before: %v\n", err)
		return errUsage
	}
	if cfg.Store.Driver == "memory" {
		return errors.New("store.driver is memory: there is nothing to prune")
	}
	keys, err := trustedKeys(cfg, nil)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	pruned, err := audit.ExportAndPrune(ctx, st, keys, when, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	for _, p := range pruned {
		fmt.Fprintf(stdout, "chain %s: moved records up to seq %d (%d records) to %s\n", cell(p.Chain), p.Through, p.Records, out)
	}
	if err != nil {
		return err
	}
	if len(pruned) == 0 {
		fmt.Fprintln(stdout, "nothing to prune: no checkpoint before", formatTime(when))
	}
	return nil
}

// auditPubkey prints the public half of the local signing key, creating the
// key pair if this data directory has none yet, so it can be pinned by a
// verifier before the gateway first runs.
func auditPubkey(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := auditCommand(adminCommand{name: "audit pubkey"}, args, stderr)
	if err != nil {
		return err
	}
	dir := audit.KeysDir(cfg.DataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s, err := audit.LoadOrCreateSigner(filepath.Join(dir, audit.SigningKeyFile))
	if err != nil {
		return err
	}
	_, err = stdout.Write(s.PublicPEM())
	return err
}
