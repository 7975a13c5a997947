package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// runChanges runs the conformance suite of store.ChangeStore on one store,
// with the same contract for open as Run.
func runChanges(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	runTable(t, open, []storeTest{
		{"GenerationMovesWithEveryChange", testGenerationMoves},
		{"GenerationIgnoresBookkeeping", testGenerationIgnoresBookkeeping},
		{"GenerationAfterClose", testGenerationAfterClose},
	})
}

// RunShared checks what a cache of users, agents and mandates relies on
// when several processes share one database: a change written through one
// store moves the generation another store reads, and bookkeeping does
// not. open returns two stores on one new, empty database, as two replicas
// or the gateway and the CLI would open it; RunShared migrates and closes
// both. lag is how long after a write returns the other store may still
// report the earlier generation: zero for a backend that reads the
// database on every call.
func RunShared(t *testing.T, open func(t *testing.T) (first, second store.Store), lag time.Duration) {
	t.Helper()
	t.Run("GenerationSeesOtherWriters", func(t *testing.T) {
		a, b := open(t)
		for _, s := range []store.Store{a, b} {
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		testGenerationShared(t, a, b, lag)
	})
}

// change is one write the generation must follow, to be made in order on a
// fresh store.
type change struct {
	name  string
	write func(ctx context.Context, s store.Store) error
}

// changes are the writes a cache of users, agents and mandates must not
// miss, in an order each can be made in.
func changes() []change {
	return []change{
		{"CreateUser", func(ctx context.Context, s store.Store) error { return s.CreateUser(ctx, user("u1", "alice")) }},
		{"UpdateUser", func(ctx context.Context, s store.Store) error {
			u := user("u1", "alice")
			u.Disabled = false
			return s.UpdateUser(ctx, u)
		}},
		{"PutAgent", func(ctx context.Context, s store.Store) error { return s.PutAgent(ctx, agent("agent-a")) }},
		{"PutAgent replacing", func(ctx context.Context, s store.Store) error {
			a := agent("agent-a")
			a.TrustLevel = "trusted"
			return s.PutAgent(ctx, a)
		}},
		{"SetAgentStatus", func(ctx context.Context, s store.Store) error {
			return s.SetAgentStatus(ctx, "agent-a", store.AgentSuspended)
		}},
		{"CreateMandate", func(ctx context.Context, s store.Store) error {
			return s.CreateMandate(ctx, mandate("m1", "u1", "agent-a", at(0)))
		}},
		{"RevokeMandate", func(ctx context.Context, s store.Store) error {
			return s.RevokeMandate(ctx, "m1", "u1", at(time.Minute))
		}},
	}
}

func testGenerationMoves(t *testing.T, s store.Store) {
	ctx := t.Context()
	prev := mustGeneration(t, s)
	for _, c := range changes() {
		if err := c.write(ctx, s); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// A write through the store itself counts as soon as it returns,
		// whatever the backend: the same process asks next.
		g := mustGeneration(t, s)
		if g <= prev {
			t.Errorf("Generation after %s = %d, want above %d", c.name, g, prev)
		}
		prev = g
	}
}

// bookkeeping writes what the contract lets the generation ignore, on the
// records changes left behind plus a mandate with uses left.
func bookkeeping(ctx context.Context, s store.Store) error {
	if _, err := s.ConsumeMandateUse(ctx, "m-uses", at(time.Minute)); err != nil {
		return err
	}
	if err := s.TouchAgent(ctx, "agent-a", at(2*time.Hour)); err != nil {
		return err
	}
	u, err := s.GetUser(ctx, "u1")
	if err != nil {
		return err
	}
	u.LastLogin = at(3 * time.Hour)
	return s.UpdateUser(ctx, u)
}

func setUpBookkeeping(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	for _, c := range changes()[:4] {
		if err := c.write(ctx, s); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	mustCreateMandate(t, s, mandate("m-uses", "u1", "agent-a", at(0)))
}

func testGenerationIgnoresBookkeeping(t *testing.T, s store.Store) {
	setUpBookkeeping(t, s)
	before := mustGeneration(t, s)
	if err := bookkeeping(t.Context(), s); err != nil {
		t.Fatalf("bookkeeping: %v", err)
	}
	if after := mustGeneration(t, s); after != before {
		t.Errorf("Generation moved from %d to %d on a use, a sighting and a login", before, after)
	}
}

func testGenerationAfterClose(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Generation(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Generation after Close: %v, want ErrClosed", err)
	}
}

func testGenerationShared(t *testing.T, a, b store.Store, lag time.Duration) {
	ctx := t.Context()
	prev := mustGeneration(t, a)
	for _, c := range changes() {
		if err := c.write(ctx, b); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		g := awaitGeneration(t, a, prev, lag)
		if g <= prev {
			t.Fatalf("Generation of the other store after %s = %d, want above %d within %v", c.name, g, prev, lag)
		}
		prev = g
	}

	mustCreateMandate(t, b, mandate("m-uses", "u1", "agent-a", at(0)))
	before := awaitGeneration(t, a, prev, lag)
	if err := bookkeeping(ctx, b); err != nil {
		t.Fatalf("bookkeeping: %v", err)
	}
	time.Sleep(lag)
	if after := mustGeneration(t, a); after != before {
		t.Errorf("Generation of the other store moved from %d to %d on a use, a sighting and a login", before, after)
	}
}

// awaitGeneration returns s's generation once it is above prev, or what it
// is when lag has passed.
func awaitGeneration(t *testing.T, s store.Store, prev uint64, lag time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(lag)
	for {
		g := mustGeneration(t, s)
		if g > prev || !time.Now().Before(deadline) {
			return g
		}
		time.Sleep(time.Millisecond)
	}
}

func mustGeneration(t *testing.T, s store.Store) uint64 {
	t.Helper()
	g, err := s.Generation(t.Context())
	if err != nil {
		t.Fatalf("Generation: %v", err)
	}
	return g
}
