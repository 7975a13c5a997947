package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// migratedPair opens two migrated stores on one fresh database and waits
// until the first one's listener vouches for its copy.
func migratedPair(t *testing.T) (*Store, *Store) {
	t.Helper()
	a, b := openPair(t)
	for _, s := range []*Store{a, b} {
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	await(t, "the listener to vouch for its copy", func() bool { _, ok := a.gen.current(); return ok })
	return a, b
}

func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGenerationFromListener: once listening, Generation answers from
// memory and follows another replica's changes by notification.
func TestGenerationFromListener(t *testing.T) {
	a, b := migratedPair(t)
	ctx := t.Context()
	before, err := a.Generation(ctx)
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	if err := b.PutAgent(ctx, testAgent("agent-a")); err != nil {
		t.Fatalf("PutAgent: %v", err)
	}
	await(t, "the notification", func() bool { return a.gen.value.Load() > before })
	// Its probes keep vouching for the copy past staleAfter.
	time.Sleep(staleAfter + probeInterval)
	if _, ok := a.gen.current(); !ok {
		t.Error("a listener that is receiving its probes does not vouch for its copy")
	}
}

// TestGenerationListenerDownReadsTheRow guards the fallback: with its
// listener cut off, a replica reads the row, so a suspension written by
// another replica counts at once rather than when the listener is back.
func TestGenerationListenerDownReadsTheRow(t *testing.T) {
	a, b := migratedPair(t)
	ctx := t.Context()
	if err := b.PutAgent(ctx, testAgent("agent-a")); err != nil {
		t.Fatalf("PutAgent: %v", err)
	}
	pid := a.gen.listenerPID.Load()
	if pid == 0 {
		t.Fatal("no listener connection")
	}
	if _, err := b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)); err != nil {
		t.Fatalf("terminate the listener: %v", err)
	}
	await(t, "the listener to notice", func() bool { return a.gen.listenerPID.Load() != pid })
	before := a.gen.value.Load()
	if err := b.SetAgentStatus(ctx, "agent-a", store.AgentSuspended); err != nil {
		t.Fatalf("SetAgentStatus: %v", err)
	}
	g, err := a.Generation(ctx)
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	if g <= before {
		t.Errorf("Generation with the listener down = %d, want above %d at once", g, before)
	}
	// The listener comes back and vouches for its copy again.
	await(t, "the listener to reconnect", func() bool { _, ok := a.gen.current(); return ok })
}

// TestGenerationUntrustedCopies: a copy is not vouched for before the
// listener has read the row, once its last proof is older than
// staleAfter, or after a write through the store until a probe sent after
// it has come back.
func TestGenerationUntrustedCopies(t *testing.T) {
	g := &generation{start: time.Now().Add(-time.Hour)}
	now := g.now()
	tests := []struct {
		name             string
		confirmed, wrote int64
		want             bool
	}{
		{"not listening", -1, 0, false},
		{"current", now, 0, true},
		{"proof too old", now - int64(staleAfter) - int64(time.Millisecond), 0, false},
		{"written since the last proof", now - int64(time.Millisecond), now, false},
		{"proof after the write", now, now - int64(time.Millisecond), true},
	}
	for _, tc := range tests {
		g.confirmed.Store(tc.confirmed)
		g.wrote.Store(tc.wrote)
		if _, ok := g.current(); ok != tc.want {
			t.Errorf("%s: current ok = %v, want %v", tc.name, ok, tc.want)
		}
	}
}

// TestGenerationWithoutSchema: before Migrate there is no row to read, and
// Generation says so rather than inventing a number.
func TestGenerationWithoutSchema(t *testing.T) {
	s := openFresh(t)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.Generation(ctx); err == nil {
		t.Error("Generation on an unmigrated database succeeded")
	}
}

func testAgent(id string) store.Agent {
	return store.Agent{ID: id, Registration: store.RegistrationConfig, TrustLevel: "standard",
		Status: store.AgentActive, AuthMethod: "none", CreatedAt: time.Now()}
}
