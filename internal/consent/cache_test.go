package consent_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
)

// countingStore counts the mandate lists read from a memory store, and
// fails its generation once genErr is set.
type countingStore struct {
	*memory.Store
	lists  atomic.Int64
	genErr atomic.Pointer[error]
}

func (s *countingStore) ListMandates(ctx context.Context, user, agent string) ([]store.Mandate, error) {
	s.lists.Add(1)
	return s.Store.ListMandates(ctx, user, agent)
}

func (s *countingStore) Generation(ctx context.Context) (uint64, error) {
	if err := s.genErr.Load(); err != nil {
		return 0, *err
	}
	return s.Store.Generation(ctx)
}

// TestMatchReadsTheStoreOnlyAfterAChange: while nothing changes, Match and
// Active answer without listing mandates again; a grant or a revocation
// sends them back to the store.
func TestMatchReadsTheStoreOnlyAfterAChange(t *testing.T) {
	st := &countingStore{Store: memory.New()}
	svc := consent.New(st, nil, func() time.Time { return t0 })
	ctx := t.Context()
	m, err := svc.Grant(ctx, spec(mail()))
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	match := func() consent.Match {
		t.Helper()
		got, err := svc.Match(ctx, p, "mail", "send_email", args)
		if err != nil {
			t.Fatalf("Match: %v", err)
		}
		return got
	}
	for range 3 {
		assertCovered(t, match(), m.ID)
		if _, err := svc.Active(ctx, p); err != nil {
			t.Fatalf("Active: %v", err)
		}
	}
	if n := st.lists.Load(); n != 1 {
		t.Errorf("listed mandates %d times for unchanged mandates, want once", n)
	}
	if _, err := svc.Revoke(ctx, m.ID, "alice"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	assertReason(t, match(), consent.Revoked{MandateID: m.ID})
	if n := st.lists.Load(); n != 2 {
		t.Errorf("listed mandates %d times after a revocation, want twice", n)
	}
}

// TestMatchWithoutGenerationReadsTheStore: when the generation cannot be
// read, nothing cached is trusted.
func TestMatchWithoutGenerationReadsTheStore(t *testing.T) {
	st := &countingStore{Store: memory.New()}
	svc := consent.New(st, nil, func() time.Time { return t0 })
	ctx := t.Context()
	m, err := svc.Grant(ctx, spec(mail()))
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	p := principal("alice", "agent-a")
	if _, err := svc.Match(ctx, p, "mail", "send_email", map[string]any{"to": "x@example.com"}); err != nil {
		t.Fatalf("Match: %v", err)
	}
	boom := errors.New("generation unreadable")
	st.genErr.Store(&boom)
	// Revoked behind the cache's back: only reading the store shows it.
	if err := st.Store.RevokeMandate(ctx, m.ID, "alice", t0); err != nil {
		t.Fatalf("RevokeMandate: %v", err)
	}
	before := st.lists.Load()
	got, err := svc.Match(ctx, p, "mail", "send_email", map[string]any{"to": "x@example.com"})
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	assertReason(t, got, consent.Revoked{MandateID: m.ID})
	if st.lists.Load() == before {
		t.Error("Match with an unreadable generation did not read the store")
	}
}

// openShared opens one SQLite file twice: the gateway's store and the
// CLI's, or two replicas'.
func openShared(t *testing.T) (store.Store, store.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandate.db")
	var ss [2]store.Store
	for i := range ss {
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		ss[i] = s
	}
	return ss[0], ss[1]
}

// TestRevocationByAnotherProcessTakesEffectOnNextMatch guards AT-51 with
// the cache: a mandate revoked through another store on the same database,
// as `mandate mandates revoke` does while `mandate serve` runs, covers
// nothing on the gateway's next Match, and a grant made there covers at
// once.
func TestRevocationByAnotherProcessTakesEffectOnNextMatch(t *testing.T) {
	gwStore, cliStore := openShared(t)
	now := func() time.Time { return t0 }
	gw, cli := consent.New(gwStore, nil, now), consent.New(cliStore, nil, now)
	ctx := t.Context()
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	match := func() consent.Match {
		t.Helper()
		got, err := gw.Match(ctx, p, "mail", "send_email", args)
		if err != nil {
			t.Fatalf("Match: %v", err)
		}
		return got
	}
	assertReason(t, match(), consent.NoMandate{})
	m, err := cli.Grant(ctx, spec(mail()))
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	assertCovered(t, match(), m.ID)
	assertCovered(t, match(), m.ID)
	if _, err := cli.Revoke(ctx, m.ID, "admin"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	assertReason(t, match(), consent.Revoked{MandateID: m.ID})
	if active, err := gw.Active(ctx, p); err != nil || len(active) != 0 {
		t.Errorf("Active after the revocation = %v, %v; want none", active, err)
	}
}

// TestUsesSpentElsewhere: a use leaves the generation alone, so a replica
// may hold a count another replica has spent. The store's count decides:
// Consume refuses, and the next Match reads the store and says why.
func TestUsesSpentElsewhere(t *testing.T) {
	aStore, bStore := openShared(t)
	now := func() time.Time { return t0 }
	a, b := consent.New(aStore, nil, now), consent.New(bStore, nil, now)
	ctx := t.Context()
	s := spec(mail())
	s.Uses = 1
	m, err := a.Grant(ctx, s)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	got, err := a.Match(ctx, p, "mail", "send_email", args)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	assertCovered(t, got, m.ID)
	if _, err := b.Consume(ctx, m.ID); err != nil {
		t.Fatalf("Consume on the other replica: %v", err)
	}
	// The match may still offer the mandate; the use it would take is gone.
	if got, err = a.Match(ctx, p, "mail", "send_email", args); err != nil {
		t.Fatalf("Match: %v", err)
	}
	if got.Covered() {
		if _, err := a.Consume(ctx, got.Mandate.ID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Consume of a use spent elsewhere: %v, want ErrConflict", err)
		}
	}
	got, err = a.Match(ctx, p, "mail", "send_email", args)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	assertReason(t, got, consent.Exhausted{MandateID: m.ID})
}

// TestMatchDuringRevocations runs matches against concurrent grants and
// revocations, for the race detector, and checks that no match made after
// a revocation returned covers the call with the revoked mandate.
func TestMatchDuringRevocations(t *testing.T) {
	gwStore, cliStore := openShared(t)
	now := func() time.Time { return t0 }
	gw, cli := consent.New(gwStore, nil, now), consent.New(cliStore, nil, now)
	ctx := t.Context()
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	var revoked sync.Map
	m, err := cli.Grant(ctx, spec(mail()))
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var before []any
				revoked.Range(func(k, _ any) bool { before = append(before, k); return true })
				got, err := gw.Match(ctx, p, "mail", "send_email", args)
				if err != nil {
					t.Errorf("Match: %v", err)
					return
				}
				for _, id := range before {
					if got.Covered() && got.Mandate.ID == id {
						t.Errorf("Match covered the call with %s, revoked before it began", id)
						return
					}
				}
			}
		})
	}
	for range 20 {
		time.Sleep(time.Millisecond)
		if _, err := cli.Revoke(ctx, m.ID, "admin"); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		revoked.Store(m.ID, true)
		if m, err = cli.Grant(ctx, spec(mail())); err != nil {
			t.Fatalf("Grant: %v", err)
		}
	}
	close(stop)
	wg.Wait()
}
