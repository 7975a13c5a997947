package cli_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
)

// seedAudit writes a small log into the data directory of cfg as the
// gateway would: keys from the data directory, records for a decision, its
// outcome and an administrative event, closed with a checkpoint.
func seedAudit(t *testing.T, db string) (keys *audit.Keys, decision, outcome, admin audit.Record) {
	t.Helper()
	ctx := context.Background()
	st := openDB(t, db)
	if err := st.CreateUser(ctx, store.User{ID: "u-alice", Username: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	keys, err := audit.LoadKeys(audit.KeysDir(filepath.Dir(db)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := audit.NewRedactor(audit.DefaultRules(), keys.DigestKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, keys.Chain, &audit.Options{Signer: keys.Signer, Redactor: r})
	if err != nil {
		t.Fatal(err)
	}
	appendRec := func(rec audit.Record) audit.Record {
		t.Helper()
		got, err := l.Append(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	decision = appendRec(audit.Record{Kind: audit.KindDecision, User: "u-alice", Agent: "claude-desktop",
		Upstream: "github", Method: "tools/call", Name: "create_issue",
		Args:     map[string]any{"title": "crash on start", "token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
		Decision: "allow", Reasons: []string{"permit-issues"}, PolicyVersion: "v1", Mandate: "mnd_1"})
	outcome = appendRec(audit.Record{Kind: audit.KindOutcome, Ref: decision.ID, User: "u-alice", Agent: "claude-desktop",
		Upstream: "github", Name: "create_issue", Status: "ok", ResultBytes: 321, Latency: 15 * time.Millisecond})
	appendRec(audit.Record{Kind: audit.KindDecision, User: "bob", Agent: "cursor", Upstream: "fs", Method: "tools/call",
		Name: "write_file", Decision: "deny"})
	admin = appendRec(audit.Record{Kind: audit.KindAdmin, Event: audit.EventAgentSuspended, Actor: "cli", Target: "cursor"})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	return keys, decision, outcome, admin
}

func TestAuditCommands(t *testing.T) {
	cfg, db := adminConfig(t)
	keys, decision, outcome, admin := seedAudit(t, db)

	r := run(nil, "audit", "verify", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "records 1 to 4") || !strings.Contains(r.stdout, "ok: every record verifies") {
		t.Fatalf("verify: %d %q %q", r.code, r.stdout, r.stderr)
	}

	r = run(nil, "audit", "query", "--config", cfg)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 5 {
		t.Fatalf("query: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Newest first.
	if strings.Index(r.stdout, admin.ID) > strings.Index(r.stdout, decision.ID) {
		t.Errorf("query is not newest first:\n%s", r.stdout)
	}
	tests := []struct {
		name string
		args []string
		n    int // records listed
		want []string
	}{
		{"by username", []string{"--user", "alice"}, 2, []string{decision.ID, outcome.ID}},
		{"by user id", []string{"--user", "u-alice", "--kind", "outcome"}, 1, []string{outcome.ID}},
		{"by upstream/tool", []string{"--tool", "github/create_issue", "--decision", "allow"}, 1, []string{decision.ID}},
		{"by agent and decision", []string{"--agent", "cursor", "--decision", "deny"}, 1, []string{"fs/write_file"}},
		{"admin events", []string{"--kind", "admin"}, 1, []string{admin.ID, "agent.suspended", "cursor"}},
		{"by mandate", []string{"--mandate", "mnd_1"}, 1, []string{decision.ID}},
		{"time range", []string{"--since", "1h", "--until", time.Now().Add(time.Hour).Format(time.RFC3339), "--limit", "1"}, 1, []string{admin.ID}},
		{"nothing", []string{"--user", "carol"}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(nil, append([]string{"audit", "query", "--config", cfg}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("query %v: %d %s", tc.args, r.code, r.stderr)
			}
			if got := strings.Count(r.stdout, "\n") - 1; got != tc.n {
				t.Errorf("query %v listed %d records:\n%s", tc.args, got, r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("query %v lacks %q:\n%s", tc.args, w, r.stdout)
				}
			}
		})
	}

	r = run(nil, "audit", "query", "--json", "--user", "alice", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("query --json: %d %q", r.code, r.stdout)
	}
	var rec audit.Record
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.ID != decision.ID || rec.Args["token"] != audit.Redacted {
		t.Errorf("query --json line = %s (%v)", lines[1], err)
	}
	if strings.Contains(r.stdout, "ghp_") {
		t.Error("a secret reached the query output")
	}

	r = run(nil, "audit", "explain", decision.ID, "--config", cfg)
	for _, want := range []string{"Record " + decision.ID, "github / create_issue", "Outcome " + outcome.ID, "ok, 321 bytes, 15ms",
		"signed", "by the checkpoint at seq 4"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("explain lacks %q: %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
	r = run(nil, "audit", "explain", "aud_nope", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, `no audit record "aud_nope"`) {
		t.Errorf("explain of an unknown record: %d %q", r.code, r.stderr)
	}

	r = run(nil, "audit", "pubkey", "--config", cfg)
	pubs, err := audit.ParsePublicKeys([]byte(r.stdout))
	if r.code != 0 || err != nil || !pubs[0].Equal(keys.Signer.Public()) {
		t.Fatalf("pubkey: %d %q %v", r.code, r.stdout, err)
	}

	r = run(nil, "audit", "export", "--config", cfg)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 5 {
		t.Fatalf("export: %d\n%s", r.code, r.stdout)
	}
	dir := t.TempDir()
	export := filepath.Join(dir, "export.jsonl")
	pubkey := filepath.Join(dir, "key.pem")
	writeFile(t, export, r.stdout)
	writeFile(t, pubkey, string(keys.Signer.PublicPEM()))
	if r := run(nil, "audit", "verify", "--file", export, "--pubkey", pubkey); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Errorf("verify --file --pubkey: %d %q %q", r.code, r.stdout, r.stderr)
	}
	writeFile(t, export, strings.Replace(r.stdout, `"decision":"deny"`, `"decision":"allow"`, 1))
	if r := run(nil, "audit", "verify", "--file", export, "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, "seq 3") ||
		!strings.Contains(r.stderr, "does not match its hash") {
		t.Errorf("verify of an edited export: %d %q %q", r.code, r.stdout, r.stderr)
	}
	other := filepath.Join(dir, "other.pem")
	s, err := audit.LoadOrCreateSigner(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, other, string(s.PublicPEM()))
	if r := run(nil, "audit", "verify", "--pubkey", other, "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, "not trusted") {
		t.Errorf("verify with another key: %d %q", r.code, r.stderr)
	}
}

// TestAuditVerifyNamesTamperedRecord edits the database file and expects the
// command to fail naming the edited record.
func TestAuditVerifyNamesTamperedRecord(t *testing.T) {
	cfg, db := adminConfig(t)
	_, _, outcome, _ := seedAudit(t, db)
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '"status":"ok"', '"status":"error"') AS BLOB) WHERE id = ?`, outcome.ID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	r := run(nil, "audit", "verify", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "seq 2 (record "+outcome.ID+")") || !strings.Contains(r.stderr, "edited") {
		t.Errorf("verify of an edited database: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestAuditPrune(t *testing.T) {
	cfg, db := adminConfig(t)
	seedAudit(t, db)
	// Another checkpoint in the middle, so there is something to prune
	// that is not the chain's last record.
	ctx := context.Background()
	st := openDB(t, db)
	keys, err := audit.LoadKeys(audit.KeysDir(filepath.Dir(db)))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, keys.Chain, &audit.Options{Signer: keys.Signer})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, audit.Record{Kind: audit.KindAdmin, Event: audit.EventPolicyReloaded, Actor: "system"}); err != nil {
		t.Fatal(err)
	}
	l.Close(ctx)
	st.Close()

	out := filepath.Join(t.TempDir(), "old.jsonl")
	r := run(nil, "audit", "prune", "--before", time.Now().Add(time.Hour).Format(time.RFC3339), "--out", out, "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "moved records up to seq 4 (4 records)") {
		t.Fatalf("prune: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := run(nil, "audit", "verify", "--file", out, "--config", cfg); r.code != 0 {
		t.Errorf("verify of the pruned export: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(nil, "audit", "verify", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "records 5 to 5 (earlier ones pruned") {
		t.Errorf("verify after prune: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := run(nil, "audit", "prune", "--out", out, "--config", cfg); r.code != 2 {
		t.Errorf("prune without --before: %d", r.code)
	}
}

func TestAuditUsage(t *testing.T) {
	cfg, _ := adminConfig(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", []string{"audit"}, 2, "mandate audit verify"},
		{"unknown command", []string{"audit", "delete"}, 2, `unknown command "delete"`},
		{"explain without id", []string{"audit", "explain", "--config", cfg}, 2, "usage: mandate audit explain RECORD_ID"},
		{"unknown kind", []string{"audit", "query", "--kind", "login", "--config", cfg}, 2, `unknown kind "login"`},
		{"bad since", []string{"audit", "query", "--since", "yesterday", "--config", cfg}, 2, "neither an RFC 3339 time nor a duration"},
		{"zero limit", []string{"audit", "query", "--limit", "0", "--config", cfg}, 2, "--limit must be positive"},
		{"verify without a key", []string{"audit", "verify", "--config", cfg}, 1, "no audit signing key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
	if r := run(nil, "audit", "help"); r.code != 0 || !strings.Contains(r.stdout, "hash") {
		t.Errorf("help: %d %q", r.code, r.stdout)
	}
	if r := run(nil, "help"); !strings.Contains(r.stdout, "mandate audit verify") {
		t.Errorf("usage does not mention audit:\n%s", r.stdout)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
