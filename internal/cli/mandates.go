package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

const mandatesUsage = `usage:
  mandate mandates list [--user USERNAME] [--agent CLIENT_ID]   list mandates, newest first
  mandate mandates show ID                                      every field of one mandate, as JSON
  mandate mandates grant --user USERNAME --agent CLIENT_ID
        --tool GLOB [--upstream GLOB] [--constraint ARG:KIND=VALUE ...] [--tool GLOB ...]
        [--purpose TEXT] [--expires 24h|7d|RFC3339] [--uses N]  grant a mandate for a user
  mandate mandates revoke ID [--by NAME]                        withdraw a mandate (by: "cli")

Each also takes --config FILE and --data-dir DIR, as serve does.

grant: the user is named by username and must exist in the store; the agent
by its OAuth client id and must be registered. Each --tool grants the tools
matching GLOB. The nth --upstream belongs to the nth --tool, whichever comes
first; give one for every --tool, or none for "*", any upstream. Each
--constraint belongs to the --tool before it. Globs use path.Match syntax.

  --constraint ARG:KIND=VALUE limits the argument ARG (a dotted path such as
  "options.path") of the calls the grant covers. KIND is one of
    oneof    comma-separated JSON values: to:oneof="a@example.com","b@example.com"
    prefix   path:prefix=/srv/reports   (a leading "/" also requires a clean
             absolute path, ending at a segment boundary)
    suffix   to:suffix=@example.com
    glob     path:glob=/srv/reports/*.pdf
    pattern  an RE2 expression the whole value must match
    min, max inclusive numeric bounds: limit:max=100
  Several constraints on the same ARG in one grant combine: every check must
  hold.

--expires is a duration from now (Go syntax such as 90m or 24h, or whole days
such as 7d) or an RFC 3339 time; default 24h. --uses is the number of calls
covered, at least 1; default unlimited until expiry or revocation.

Example:
  mandate mandates grant --user alice --agent claude-desktop \
    --upstream fs --tool read_file --constraint path:prefix=/srv/reports \
    --upstream github --tool 'list_*' \
    --purpose "quarterly report" --expires 7d --uses 50
`

func runMandates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mandatesUsage)
		return errUsage
	}
	switch args[0] {
	case "list":
		return mandatesList(ctx, args[1:], stdout, stderr)
	case "show":
		return mandatesShow(ctx, args[1:], stdout, stderr)
	case "grant":
		return mandatesGrant(ctx, args[1:], stdout, stderr)
	case "revoke":
		return mandatesRevoke(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, mandatesUsage)
		return nil
	}
	fmt.Fprintf(stderr, "mandate mandates: unknown command %q\n\n%s", args[0], mandatesUsage)
	return errUsage
}

func mandatesList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var username, agent string
	st, _, err := adminCommand{name: "mandates list", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&username, "user", "", "only the mandates of this username")
		fs.StringVar(&agent, "agent", "", "only the mandates to this agent (client id)")
	}}.open(ctx, args, stderr, false)
	if err != nil {
		return err
	}
	defer st.Close()
	userID := ""
	if username != "" {
		u, err := findUser(ctx, st, username)
		if err != nil {
			return err
		}
		userID = u.ID
	}
	list, err := consent.New(st, nil, nil).List(ctx, userID, agent)
	if err != nil {
		return err
	}
	now := time.Now()
	names := usernames{st: st, byID: map[string]string{}}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tAGENT\tGRANTS\tPURPOSE\tEXPIRES\tUSES LEFT\tSTATUS")
	for _, m := range list {
		user, err := names.of(ctx, m.User)
		if err != nil {
			return err
		}
		if user == "" {
			user = m.User // The user was deleted; "show" says so.
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, cell(user), cell(m.Agent),
			cell(grantsSummary(m.Grants)), cell(orDash(truncate(m.Purpose, 40))), formatTime(m.ExpiresAt),
			usesLeft(m.UsesLeft), web.MandateStatus(m, now))
	}
	return tw.Flush()
}

func mandatesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	st, pos, err := adminCommand{name: "mandates show", args: []string{"ID"}}.open(ctx, args, stderr, false)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := consent.New(st, nil, nil).Get(ctx, pos[0])
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no mandate %q", pos[0])
	}
	if err != nil {
		return err
	}
	username, err := (&usernames{st: st, byID: map[string]string{}}).of(ctx, m.User)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetIndent("", "  ")
	// Patterns such as "<" or "&" are shown as typed, not as \u003c.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(web.ViewMandate(m, username, time.Now())); err != nil {
		return err
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func mandatesGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		username, agent, purpose, expires string
		grants                            grantFlags
		uses                              = consent.Unlimited
	)
	cmd := adminCommand{name: "mandates grant", flags: func(fs *flag.FlagSet) {
		fs.StringVar(&username, "user", "", "username of the user granting the mandate (required)")
		fs.StringVar(&agent, "agent", "", "client id of the agent it is granted to (required)")
		fs.Var(toolFlag{&grants}, "tool", "tool name glob; one grant each (repeatable, required)")
		fs.Var(upstreamFlag{&grants}, "upstream", `upstream id glob of the nth --tool (default "*" for all)`)
		fs.Var(constraintFlag{&grants}, "constraint", "ARG:KIND=VALUE limiting the --tool before it (repeatable)")
		fs.StringVar(&purpose, "purpose", "", "why the mandate is granted")
		fs.StringVar(&expires, "expires", "24h", "duration from now (24h, 7d) or RFC 3339 time")
		fs.Func("uses", "number of calls covered (default: unlimited)", func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return errors.New("must be a whole number, at least 1")
			}
			uses = n
			return nil
		})
	}}
	f, _, err := cmd.parse(args, stderr)
	if err != nil {
		return err
	}
	now := time.Now()
	var missing []string
	for _, m := range []struct{ flag, value string }{{"--user", username}, {"--agent", agent}} {
		if m.value == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(grants.grants) == 0 {
		missing = append(missing, "--tool")
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "mandate mandates grant: %s required\n", strings.Join(missing, ", "))
		return errUsage
	}
	specGrants, err := grants.result()
	if err != nil {
		fmt.Fprintf(stderr, "mandate mandates grant: %v\n", err)
		return errUsage
	}
	expiresAt, err := parseExpiry(expires, now)
	if err != nil {
		fmt.Fprintf(stderr, "mandate mandates grant: --expires: %v\n", err)
		return errUsage
	}
	st, err := f.openAdminStore(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := findUser(ctx, st, username)
	if err != nil {
		return err
	}
	// A disabled account cannot log in to use a mandate; granting one in
	// its name is far more likely a mistaken username than an intent.
	if u.Disabled {
		return fmt.Errorf("user %q is disabled", username)
	}
	if _, err := st.GetAgent(ctx, agent); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no agent %q", agent)
	} else if err != nil {
		return fmt.Errorf("find agent %q: %w", agent, err)
	}
	m, err := consent.New(st, nil, func() time.Time { return now }).Grant(ctx, consent.Spec{
		User: u.ID, Agent: agent, Grants: specGrants, Purpose: purpose, ExpiresAt: expiresAt, Uses: uses,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "granted mandate %s: user %s, agent %s, expires %s, uses %s\n",
		m.ID, u.Username, m.Agent, formatTime(m.ExpiresAt), usesLeft(m.UsesLeft))
	return st.record(ctx, mandateRecord(audit.EventMandateGranted, m, actorCLI))
}

func mandatesRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	by := "cli"
	st, pos, err := adminCommand{name: "mandates revoke", args: []string{"ID"}, flags: func(fs *flag.FlagSet) {
		fs.StringVar(&by, "by", by, "who revokes it, for the record")
	}}.open(ctx, args, stderr, true)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	m, err := consent.New(st, nil, func() time.Time { return now }).Revoke(ctx, pos[0], by)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no mandate %q", pos[0])
	}
	if err != nil {
		return err
	}
	// Revoking is idempotent and keeps the first revocation; say so rather
	// than claim this one.
	verb := "revoked"
	if m.RevokedBy != by || !m.RevokedAt.Equal(now.UTC().Truncate(store.TimePrecision)) {
		verb = "already revoked"
	}
	fmt.Fprintf(stdout, "mandate %s: %s by %s at %s\n", m.ID, verb, cell(m.RevokedBy), formatTime(m.RevokedAt))
	if verb != "revoked" {
		return nil // nothing changed
	}
	return st.record(ctx, mandateRecord(audit.EventMandateRevoked, m, by))
}

// findUser returns the user called username.
func findUser(ctx context.Context, st store.UserStore, username string) (store.User, error) {
	u, err := st.GetUserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("no user %q", username)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("find user %q: %w", username, err)
	}
	return u, nil
}

// usernames looks up the usernames of user ids, once each.
type usernames struct {
	st   store.UserStore
	byID map[string]string
}

// of returns the username of the user id, or "" when no such user exists
// any more: a mandate outlives the deletion of its user.
func (n *usernames) of(ctx context.Context, id string) (string, error) {
	if name, ok := n.byID[id]; ok {
		return name, nil
	}
	u, err := n.st.GetUser(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", fmt.Errorf("find user %s: %w", id, err)
	default:
		n.byID[id] = u.Username
	}
	return n.byID[id], nil
}

func usesLeft(n int) string {
	if n == consent.Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

// grantsSummary renders grants on one line in the syntax of the grant
// flags: "fs/read_file path:prefix=/srv/reports, github/list_*".
func grantsSummary(grants []consent.Grant) string {
	parts := make([]string, 0, len(grants))
	for _, g := range grants {
		s := g.Upstream + "/" + g.Tool
		for _, c := range g.Constraints {
			s += " " + constraintSummary(c)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func constraintSummary(c consent.Constraint) string {
	var checks []string
	add := func(kind, value string) {
		if value != "" {
			checks = append(checks, c.Arg+":"+kind+"="+value)
		}
	}
	if len(c.OneOf) > 0 {
		b, _ := json.Marshal(c.OneOf)
		add("oneof", strings.TrimSuffix(strings.TrimPrefix(string(b), "["), "]"))
	}
	add("prefix", c.Prefix)
	add("suffix", c.Suffix)
	add("glob", c.Glob)
	add("pattern", c.Pattern)
	for _, b := range []struct {
		kind  string
		bound *float64
	}{{"min", c.Min}, {"max", c.Max}} {
		if b.bound != nil {
			add(b.kind, strconv.FormatFloat(*b.bound, 'g', -1, 64))
		}
	}
	return strings.Join(checks, " ")
}

// cell makes text safe for one table cell: control characters, which would
// break the table or, as escape sequences, drive the operator's terminal,
// are shown as "?". Purposes and patterns come from whoever granted the
// mandate, not necessarily the operator reading the list.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// truncate shortens s to at most n runes, marking the cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// parseExpiry reads --expires: a positive Go duration, a whole number of
// days ("7d"), or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			if n < 1 {
				return time.Time{}, errors.New("must be in the future")
			}
			return now.AddDate(0, 0, n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, errors.New("must be in the future")
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor an RFC 3339 time", s)
	}
	return t, nil
}

// grantFlags collects the --tool, --upstream and --constraint flags of
// "mandates grant". The nth --upstream belongs to the nth --tool, so either
// order reads naturally ("--upstream fs --tool read_file" or "--tool
// read_file --upstream fs"); either every --tool has one or none does, when
// all mean any upstream, so that a forgotten --upstream is refused rather
// than read as "*". A --constraint belongs to the --tool before it: the
// flag package sets flags in command-line order.
type grantFlags struct {
	grants    []consent.Grant
	upstreams []string
}

// result returns the grants, each paired with its upstream.
func (g *grantFlags) result() ([]consent.Grant, error) {
	switch {
	case len(g.grants) == 0:
		return nil, errors.New("--tool required")
	case len(g.upstreams) == 0:
		for i := range g.grants {
			g.grants[i].Upstream = "*"
		}
	case len(g.upstreams) != len(g.grants):
		return nil, fmt.Errorf("%d --tool but %d --upstream: give one --upstream for each --tool, or none for any upstream",
			len(g.grants), len(g.upstreams))
	default:
		for i := range g.grants {
			g.grants[i].Upstream = g.upstreams[i]
		}
	}
	return g.grants, nil
}

type (
	toolFlag       struct{ g *grantFlags }
	upstreamFlag   struct{ g *grantFlags }
	constraintFlag struct{ g *grantFlags }
)

func (toolFlag) String() string       { return "" }
func (upstreamFlag) String() string   { return "" }
func (constraintFlag) String() string { return "" }

func (f toolFlag) Set(v string) error {
	if err := checkGlob(v); err != nil {
		return err
	}
	f.g.grants = append(f.g.grants, consent.Grant{Tool: v})
	return nil
}

func (f upstreamFlag) Set(v string) error {
	if err := checkGlob(v); err != nil {
		return err
	}
	f.g.upstreams = append(f.g.upstreams, v)
	return nil
}

func (f constraintFlag) Set(v string) error {
	if len(f.g.grants) == 0 {
		return errors.New("give the --tool it applies to before --constraint")
	}
	return addConstraint(&f.g.grants[len(f.g.grants)-1], v)
}

func checkGlob(pattern string) error {
	if pattern == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("bad pattern %q", pattern)
	}
	return nil
}

// addConstraint adds the check spec, "ARG:KIND=VALUE", to g: to the
// constraint g already has on ARG, or to a new one. A kind given twice for
// the same argument is refused rather than one silently replacing the
// other. Only the syntax is checked here; consent.Service.Grant checks the
// rest (a minimum above the maximum, say) before storing anything.
func addConstraint(g *consent.Grant, spec string) error {
	arg, rest, ok := strings.Cut(spec, ":")
	kind, value, ok2 := strings.Cut(rest, "=")
	if !ok || !ok2 {
		return fmt.Errorf("%q is not ARG:KIND=VALUE", spec)
	}
	if slices.Contains(strings.Split(arg, "."), "") {
		return fmt.Errorf("argument %q is not a dotted path such as options.path", arg)
	}
	if value == "" {
		return fmt.Errorf("%s:%s has no value", arg, kind)
	}
	i := len(g.Constraints)
	c := consent.Constraint{Arg: arg}
	for j, have := range g.Constraints {
		if have.Arg == arg {
			i, c = j, have
			break
		}
	}
	twice := fmt.Errorf("%s:%s given twice for the same --tool", arg, kind)
	setText := func(field *string) error {
		if *field != "" {
			return twice
		}
		*field = value
		return nil
	}
	setBound := func(field **float64) error {
		if *field != nil {
			return twice
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
			return fmt.Errorf("%s:%s: %q is not a finite number", arg, kind, value)
		}
		*field = &n
		return nil
	}
	var err error
	switch kind {
	case "oneof":
		if c.OneOf != nil {
			return twice
		}
		if c.OneOf, err = parseOneOf(value); err != nil {
			return fmt.Errorf("%s:oneof: %w", arg, err)
		}
	case "prefix":
		err = setText(&c.Prefix)
	case "suffix":
		err = setText(&c.Suffix)
	case "glob":
		if _, perr := path.Match(value, ""); perr != nil {
			return fmt.Errorf("%s:glob: bad pattern %q", arg, value)
		}
		err = setText(&c.Glob)
	case "pattern":
		if _, perr := regexp.Compile(value); perr != nil {
			return fmt.Errorf("%s:pattern: %w", arg, perr)
		}
		err = setText(&c.Pattern)
	case "min":
		err = setBound(&c.Min)
	case "max":
		err = setBound(&c.Max)
	default:
		return fmt.Errorf("unknown constraint kind %q (want oneof, prefix, suffix, glob, pattern, min or max)", kind)
	}
	if err != nil {
		return err
	}
	if i == len(g.Constraints) {
		g.Constraints = append(g.Constraints, c)
	} else {
		g.Constraints[i] = c
	}
	return nil
}

// parseOneOf reads comma-separated JSON scalars: `"a@x.com","b@x.com"` or
// `1,2,3`. Numbers keep their exact text.
func parseOneOf(value string) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader("[" + value + "]"))
	dec.UseNumber()
	var values []any
	if err := dec.Decode(&values); err != nil || dec.More() {
		return nil, fmt.Errorf("%s is not a list of JSON values (quote strings: %q)", value, `"a","b"`)
	}
	if len(values) == 0 {
		return nil, errors.New("no values")
	}
	for _, v := range values {
		switch v.(type) {
		case map[string]any, []any:
			return nil, errors.New("values must be strings, numbers, booleans or null")
		}
	}
	return values, nil
}

// Interface guards.
var (
	_ flag.Value = toolFlag{}
	_ flag.Value = upstreamFlag{}
	_ flag.Value = constraintFlag{}
)
