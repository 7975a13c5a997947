package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
)

// memoryTrail is the audit log of a memory store, as serve opens it.
func memoryTrail(t *testing.T) (*auditTrail, store.Store) {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	cfg := &config.Config{DataDir: t.TempDir(), Store: config.Store{Driver: "memory"}}
	a, err := openAudit(t.Context(), cfg, st, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close(context.Background()) })
	if entries, _ := os.ReadDir(cfg.DataDir); len(entries) > 0 {
		t.Errorf("a memory store's audit log wrote %v to the data directory", entries)
	}
	return a, st
}

// events returns the events recorded so far, oldest first, as
// "event actor target".
func events(t *testing.T, st store.Store) []string {
	t.Helper()
	recs, err := audit.Query(context.Background(), st, store.AuditQuery{Kind: string(audit.KindAdmin), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range slices.Backward(recs) {
		out = append(out, r.Event+" "+r.Actor+" "+r.Target)
	}
	return out
}

// TestAuditTrailRecordsServiceEvents: the consent and approval services'
// events become administrative records, with who caused them.
func TestAuditTrailRecordsServiceEvents(t *testing.T) {
	a, st := memoryTrail(t)
	ctx := context.Background()
	svc := consent.New(st, a.mandateEvents(), nil)
	m, err := svc.Grant(ctx, consent.Spec{User: "alice", Agent: "agent-a", Grants: []consent.Grant{{Upstream: "up", Tool: "echo"}},
		ExpiresAt: time.Now().Add(time.Hour), Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Consume(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Revoke(ctx, m.ID, "admin:u-root"); err != nil {
		t.Fatal(err)
	}
	ap := consent.NewApprovals(st, &consent.ApprovalOptions{Events: a.approvalEvents()})
	p := &identity.Principal{User: "alice", Agent: "agent-a"}
	r, err := ap.Request(ctx, p, "up", "echo", map[string]any{"message": "hi"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Decide(ctx, r.ID, true, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Use(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mandate.granted alice " + m.ID, "mandate.used agent-a " + m.ID, "mandate.revoked admin:u-root " + m.ID,
		"approval.requested agent-a " + r.ID, "approval.approved bob " + r.ID, "approval.used agent-a " + r.ID,
	}
	if got := events(t, st); !slices.Equal(got, want) {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
	recs, err := audit.Query(ctx, st, store.AuditQuery{Mandate: m.ID, Limit: 10})
	if err != nil || len(recs) != 3 || recs[0].User != "alice" || recs[0].Agent != "agent-a" {
		t.Errorf("records of the mandate: %+v, %v", recs, err)
	}
}

// TestAuditTrailRecordsPolicyReloads: a policy set swapped in and one
// refused are both recorded, the refusal with the version that keeps
// serving.
func TestAuditTrailRecordsPolicyReloads(t *testing.T) {
	a, st := memoryTrail(t)
	dir := t.TempDir()
	// Each version of the file appears whole, as an editor's rename
	// makes it: the watcher must not see one half written.
	write := func(text string) {
		t.Helper()
		tmp := filepath.Join(dir, "p.cedar.tmp")
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "p.cedar")); err != nil {
			t.Fatal(err)
		}
	}
	write(`@id("all") permit (principal, action, resource);`)
	files, _, err := readPolicyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, problems := policy.Compile(files)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	e := policy.NewEngine(snap)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go watchPolicies(ctx, dir, e, 10*time.Millisecond, slog.New(slog.DiscardHandler), a.policyReporter("live"))
	wait := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := events(t, st)
			if len(got) >= n || time.Now().After(deadline) {
				return got
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // the watcher has read the first set
	write(`@id("none") forbid (principal, action, resource);`)
	if got := wait(1); len(got) != 1 || got[0] != "policy.reloaded system "+dir {
		t.Fatalf("after a good set: %q", got)
	}
	reloaded := e.Snapshot().Version()
	write(`this is not cedar`)
	got := wait(2)
	if len(got) != 2 || got[1] != "policy.rejected system "+dir {
		t.Fatalf("after a bad set: %q", got)
	}
	recs, err := audit.Query(context.Background(), st, store.AuditQuery{Kind: string(audit.KindAdmin), Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r := recs[0]; r.PolicyVersion != reloaded || r.Detail["problems"] == nil || r.Detail["first_problem"] == "" {
		t.Errorf("refusal recorded as %+v", r)
	}
}
