package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
)

// TestApprovalsRoundTrip: requests the gateway left pending are listed,
// approved and denied from the command line, on SQLite, and the gateway's
// service then finds exactly the approved call.
func TestApprovalsRoundTrip(t *testing.T) {
	cfg, db := adminConfig(t)
	st := openDB(t, db)
	ctx := context.Background()
	if err := st.CreateUser(ctx, store.User{ID: "u-alice", Username: "alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p := &identity.Principal{Issuer: "test", User: "u-alice", Agent: "claude-desktop", Method: identity.MethodAuthorizationCode}
	svc := consent.NewApprovals(st, nil)
	drop, err := svc.Request(ctx, p, "db", "drop_table", map[string]any{"table": "users", "password": "hunter2"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	send, err := svc.Request(ctx, p, "mail", "send", map[string]any{"to": "\x1b[2Jeve@example.com"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := run(nil, "approvals", "list", "--status", "pending", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("list: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{drop.ID, send.ID, "alice", "claude-desktop", "db/drop_table", `"password":"[redacted]"`, "pending"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "hunter2") || strings.Contains(r.stdout, "\x1b") {
		t.Errorf("list shows a secret or a control character:\n%q", r.stdout)
	}

	r = run(nil, "approvals", "approve", drop.ID, "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "approved by cli") {
		t.Fatalf("approve: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(nil, "approvals", "deny", send.ID, "--by", "ops", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "denied by ops") {
		t.Fatalf("deny: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A decision is final.
	r = run(nil, "approvals", "deny", drop.ID, "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "is approved, not pending") {
		t.Fatalf("second decision: %d %q", r.code, r.stderr)
	}
	r = run(nil, "approvals", "approve", "apr_nope", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, `no approval request "apr_nope"`) {
		t.Fatalf("unknown id: %d %q", r.code, r.stderr)
	}

	r = run(nil, "approvals", "list", "--config", cfg)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "approved") || !strings.Contains(r.stdout, "denied") {
		t.Fatalf("list after deciding: %d\n%s", r.code, r.stdout)
	}
	if r = run(nil, "approvals", "list", "--status", "pending", "--config", cfg); strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("pending after deciding:\n%s", r.stdout)
	}

	st = openDB(t, db)
	svc = consent.NewApprovals(st, nil)
	got, ok, err := svc.Find(ctx, p, "db", "drop_table", drop.ArgsHash, "v1")
	if err != nil || !ok || got.ID != drop.ID || got.DecidedBy != "cli" {
		t.Fatalf("Find after approve = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := svc.Find(ctx, p, "mail", "send", send.ArgsHash, "v1"); ok || err != nil {
		t.Fatalf("Find after deny = %v, %v", ok, err)
	}
	if _, err := svc.Use(ctx, drop.ID); err != nil {
		t.Fatalf("Use: %v", err)
	}
}

func TestApprovalsUsage(t *testing.T) {
	cfg, _ := adminConfig(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", []string{"approvals"}, 2, "mandate approvals list"},
		{"unknown command", []string{"approvals", "grant"}, 2, `unknown command "grant"`},
		{"unknown status", []string{"approvals", "list", "--status", "maybe", "--config", cfg}, 2, `unknown status "maybe"`},
		{"approve without id", []string{"approvals", "approve", "--config", cfg}, 2, "usage: mandate approvals approve ID [flags]"},
		{"deny two ids", []string{"approvals", "deny", "a", "b", "--config", cfg}, 2, "usage: mandate approvals deny ID [flags]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
	if r := run(nil, "approvals", "help"); r.code != 0 || !strings.Contains(r.stdout, "@approval") {
		t.Errorf("help: %d %q", r.code, r.stdout)
	}
	if r := run(nil, "help"); !strings.Contains(r.stdout, "mandate approvals list") {
		t.Errorf("usage does not mention approvals:\n%s", r.stdout)
	}
}
