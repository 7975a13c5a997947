package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// runMandates runs the conformance suite of store.MandateStore, with the
// same contract for open as Run.
func runMandates(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []storeTest{
		{"MandateRoundTrip", testMandateRoundTrip},
		{"CreateMandateInvalid", testCreateMandateInvalid},
		{"CreateMandateConflict", testCreateMandateConflict},
		{"GetMandateNotFound", testGetMandateNotFound},
		{"ListMandates", testListMandates},
		{"RevokeMandate", testRevokeMandate},
		{"ConsumeMandateUse", testConsumeMandateUse},
		{"ConsumeMandateUseConcurrently", testConsumeMandateUseConcurrently},
		{"RevokeStopsConsume", testRevokeStopsConsume},
		{"MandatesAreCopied", testMandateCopies},
		{"MandatesCanceledContext", testMandatesCanceledContext},
		{"MandatesUseAfterClose", testMandatesUseAfterClose},
	}
	runTable(t, open, tests)
}

func testMandateRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := mandate("m-full", "u1", "agent-a", when(0))
	minimal := store.Mandate{
		ID: "m-min", User: "u1", Agent: "agent-a", Grants: []byte(`[]`),
		CreatedAt: at(0), ExpiresAt: at(time.Second), UsesLeft: store.UnlimitedUses,
	}
	exhausted := mandate("m-zero", "u1", "agent-a", when(0))
	exhausted.UsesLeft = 0
	revoked := mandate("m-revoked", "u1", "agent-a", when(0))
	revoked.RevokedAt, revoked.RevokedBy = when(time.Minute), "u1"
	// Revoked by nobody in particular is storable; revoked by someone at no
	// time is not (see CreateMandateInvalid).
	anonymous := mandate("m-anon", "u1", "agent-a", when(0))
	anonymous.RevokedAt = when(time.Minute)
	tests := []struct {
		name string
		m    store.Mandate
	}{
		{"every field set", full},
		{"only required fields", minimal},
		{"no uses left", exhausted},
		{"revoked", revoked},
		{"revoked without a revoker", anonymous},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CreateMandate(ctx, tc.m); err != nil {
				t.Fatalf("CreateMandate: %v", err)
			}
			got, err := s.GetMandate(ctx, tc.m.ID)
			if err != nil {
				t.Fatalf("GetMandate: %v", err)
			}
			assertMandates(t, []store.Mandate{got}, []store.Mandate{tc.m})
		})
	}
}

func testCreateMandateInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.Mandate)
	}{
		{"empty id", func(m *store.Mandate) { m.ID = "" }},
		{"NUL in id", func(m *store.Mandate) { m.ID = "m\x00" }},
		{"empty user", func(m *store.Mandate) { m.User = "" }},
		{"invalid UTF-8 user", func(m *store.Mandate) { m.User = "\xff" }},
		{"empty agent", func(m *store.Mandate) { m.Agent = "" }},
		{"nil grants", func(m *store.Mandate) { m.Grants = nil }},
		{"empty grants", func(m *store.Mandate) { m.Grants = []byte{} }},
		{"grants not JSON", func(m *store.Mandate) { m.Grants = []byte(`[{"tool":`) }},
		{"NUL in purpose", func(m *store.Mandate) { m.Purpose = "a\x00b" }},
		{"zero creation time", func(m *store.Mandate) { m.CreatedAt = time.Time{} }},
		{"zero expiry", func(m *store.Mandate) { m.ExpiresAt = time.Time{} }},
		{"expires when created", func(m *store.Mandate) { m.ExpiresAt = m.CreatedAt }},
		// Below the store's precision the two instants are the same.
		{"expires within the same microsecond", func(m *store.Mandate) {
			m.CreatedAt = at(0)
			m.ExpiresAt = at(999 * time.Nanosecond)
		}},
		{"expires before created", func(m *store.Mandate) { m.ExpiresAt = m.CreatedAt.Add(-time.Hour) }},
		{"uses below unlimited", func(m *store.Mandate) { m.UsesLeft = -2 }},
		{"revoker without revocation time", func(m *store.Mandate) { m.RevokedBy = "u1" }},
		{"invalid UTF-8 revoker", func(m *store.Mandate) { m.RevokedAt, m.RevokedBy = at(0), "\xc3" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mandate("m1", "u1", "agent-a", when(0))
			tc.mutate(&m)
			assertIs(t, s.CreateMandate(ctx, m), store.ErrInvalid)
		})
	}
	got, err := s.ListMandates(ctx, "", "")
	if err != nil {
		t.Fatalf("ListMandates: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ListMandates after invalid creates = %d mandates, want none", len(got))
	}
}

func testCreateMandateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mandate("m1", "u1", "agent-a", when(0))
	mustCreateMandate(t, s, first)
	second := mandate("m1", "u2", "agent-b", when(time.Hour))
	assertIs(t, s.CreateMandate(ctx, second), store.ErrConflict)
	got, err := s.GetMandate(ctx, "m1")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	assertMandates(t, []store.Mandate{got}, []store.Mandate{first})
}

func testGetMandateNotFound(t *testing.T, s store.Store) {
	mustCreateMandate(t, s, mandate("m1", "u1", "agent-a", when(0)))
	for _, id := range []string{"m2", "M1", "", "m1\x00", "\xff"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			_, err := s.GetMandate(t.Context(), id)
			assertIs(t, err, store.ErrNotFound)
		})
	}
}

func testListMandates(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created out of order, with a tie on CreatedAt that ID breaks.
	a1 := mandate("m-b", "alice", "agent-1", when(time.Hour))
	a1tie := mandate("m-a", "alice", "agent-1", when(time.Hour))
	a1old := mandate("m-c", "alice", "agent-1", when(0))
	a1old.RevokedAt, a1old.RevokedBy = when(time.Minute), "alice"
	a2 := mandate("m-d", "alice", "agent-2", when(2*time.Hour))
	b1 := mandate("m-e", "bob", "agent-1", when(30*time.Minute))
	for _, m := range []store.Mandate{a1, b1, a1old, a2, a1tie} {
		mustCreateMandate(t, s, m)
	}
	tests := []struct {
		name, user, agent string
		want              []store.Mandate
	}{
		{"all", "", "", []store.Mandate{a2, a1tie, a1, b1, a1old}},
		{"user and agent", "alice", "agent-1", []store.Mandate{a1tie, a1, a1old}},
		{"user", "alice", "", []store.Mandate{a2, a1tie, a1, a1old}},
		{"agent", "", "agent-1", []store.Mandate{a1tie, a1, b1, a1old}},
		{"pair without mandates", "bob", "agent-2", nil},
		{"unknown user", "carol", "", nil},
		{"filters are exact", "Alice", "", nil},
		{"unstorable user", "alice\x00", "", nil},
		{"invalid UTF-8 agent", "", "\xff", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListMandates(ctx, tc.user, tc.agent)
			if err != nil {
				t.Fatalf("ListMandates: %v", err)
			}
			assertMandates(t, got, tc.want)
		})
	}
}

func testRevokeMandate(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := mandate("m1", "u1", "agent-a", when(0))
	other := mandate("m2", "u1", "agent-a", when(0))
	mustCreateMandate(t, s, m)
	mustCreateMandate(t, s, other)
	first := when(time.Minute)
	if err := s.RevokeMandate(ctx, "m1", "u1", first); err != nil {
		t.Fatalf("RevokeMandate: %v", err)
	}
	// Revoking again succeeds and keeps the first revocation.
	if err := s.RevokeMandate(ctx, "m1", "admin", first.Add(time.Hour)); err != nil {
		t.Fatalf("second RevokeMandate: %v", err)
	}
	want := m
	want.RevokedAt, want.RevokedBy = first, "u1"
	got, err := s.GetMandate(ctx, "m1")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	assertMandates(t, []store.Mandate{got}, []store.Mandate{want})

	tests := []struct {
		name, id, by string
		at           time.Time
		want         error
	}{
		{"unknown", "m3", "u1", first, store.ErrNotFound},
		{"empty id", "", "u1", first, store.ErrNotFound},
		{"NUL in id", "m2\x00", "u1", first, store.ErrNotFound},
		{"empty revoker", "m2", "", first, store.ErrInvalid},
		{"invalid UTF-8 revoker", "m2", "\xff", first, store.ErrInvalid},
		{"zero time", "m2", "u1", time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertIs(t, s.RevokeMandate(ctx, tc.id, tc.by, tc.at), tc.want)
		})
	}
	got, err = s.GetMandate(ctx, "m2")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	assertMandates(t, []store.Mandate{got}, []store.Mandate{other})
}

func testConsumeMandateUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	counted := mandateUntil("counted", now.Add(time.Minute), 2)
	unlimited := mandateUntil("unlimited", now.Add(time.Minute), store.UnlimitedUses)
	exhausted := mandateUntil("exhausted", now.Add(time.Minute), 0)
	revoked := mandateUntil("revoked", now.Add(time.Minute), 3)
	revoked.RevokedAt, revoked.RevokedBy = now.Add(-time.Minute), "u1"
	atExpiry := mandateUntil("at-expiry", now, 3)
	expired := mandateUntil("expired", now.Add(-time.Second), store.UnlimitedUses)
	revokedExpired := mandateUntil("revoked-expired", now.Add(-time.Second), 3)
	revokedExpired.RevokedAt, revokedExpired.RevokedBy = now.Add(-time.Minute), "u1"
	exhaustedExpired := mandateUntil("exhausted-expired", now.Add(-time.Second), 0)
	for _, m := range []store.Mandate{counted, unlimited, exhausted, revoked, atExpiry, expired, revokedExpired, exhaustedExpired} {
		mustCreateMandate(t, s, m)
	}
	tests := []struct {
		name     string
		id       string
		now      time.Time
		want     error
		usesLeft int
	}{
		{"counted", "counted", now, nil, 1},
		{"counted, last use", "counted", now, nil, 0},
		{"counted, used up by the calls before", "counted", now, store.ErrConflict, 0},
		{"unlimited", "unlimited", now, nil, store.UnlimitedUses},
		{"unlimited again", "unlimited", now, nil, store.UnlimitedUses},
		{"no uses left", "exhausted", now, store.ErrConflict, 0},
		{"revoked", "revoked", now, store.ErrConflict, 0},
		// A mandate expires at its ExpiresAt.
		{"expiring at now", "at-expiry", now, store.ErrNotFound, 0},
		{"expired", "expired", now, store.ErrNotFound, 0},
		// Revocation is reported even after expiry.
		{"revoked and expired", "revoked-expired", now, store.ErrConflict, 0},
		{"no uses left and expired", "exhausted-expired", now, store.ErrNotFound, 0},
		{"unknown", "nope", now, store.ErrNotFound, 0},
		{"empty id", "", now, store.ErrNotFound, 0},
		{"zero now", "unlimited", time.Time{}, store.ErrInvalid, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ConsumeMandateUse(ctx, tc.id, tc.now)
			if tc.want != nil {
				assertIs(t, err, tc.want)
				if got.ID != "" {
					t.Errorf("returned %+v with an error, want the zero mandate", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConsumeMandateUse: %v", err)
			}
			stored, err := s.GetMandate(ctx, tc.id)
			if err != nil {
				t.Fatalf("GetMandate: %v", err)
			}
			want := stored
			want.UsesLeft = tc.usesLeft
			assertMandates(t, []store.Mandate{got, stored}, []store.Mandate{want, want})
		})
	}
	// Failed uses leave mandates as they were.
	for _, m := range []store.Mandate{exhausted, revoked, atExpiry, expired, revokedExpired, exhaustedExpired} {
		got, err := s.GetMandate(ctx, m.ID)
		if err != nil {
			t.Fatalf("GetMandate(%s): %v", m.ID, err)
		}
		assertMandates(t, []store.Mandate{got}, []store.Mandate{m})
	}
}

// testConsumeMandateUseConcurrently guards use counts: a mandate for five
// calls covers five calls, however many replicas race for the last ones.
func testConsumeMandateUseConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n, uses = 20, 5
	now := at(time.Hour)
	mustCreateMandate(t, s, mandateUntil("m", now.Add(time.Hour), uses))
	var (
		mu        sync.Mutex
		left      []int
		conflicts int
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			m, err := s.ConsumeMandateUse(ctx, "m", now.Add(time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				left = append(left, m.UsesLeft)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("ConsumeMandateUse: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(left) != uses || conflicts != n-uses {
		t.Fatalf("%d concurrent uses of %d: %d succeeded and %d conflicted, want %d and %d",
			n, uses, len(left), conflicts, uses, n-uses)
	}
	// Each winner saw its own decrement.
	slices.Sort(left)
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(left, want) {
		t.Errorf("uses left seen by the winners = %v, want %v", left, want)
	}
	got, err := s.GetMandate(ctx, "m")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	if got.UsesLeft != 0 {
		t.Errorf("stored UsesLeft = %d, want 0", got.UsesLeft)
	}
}

// testRevokeStopsConsume guards AT-51 at the store: the use right after a
// revocation fails, with no cache in between.
func testRevokeStopsConsume(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	mustCreateMandate(t, s, mandateUntil("m", now.Add(time.Hour), store.UnlimitedUses))
	if _, err := s.ConsumeMandateUse(ctx, "m", now); err != nil {
		t.Fatalf("ConsumeMandateUse before revocation: %v", err)
	}
	if err := s.RevokeMandate(ctx, "m", "u1", now.Add(time.Second)); err != nil {
		t.Fatalf("RevokeMandate: %v", err)
	}
	_, err := s.ConsumeMandateUse(ctx, "m", now.Add(2*time.Second))
	assertIs(t, err, store.ErrConflict)
}

func testMandateCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := mandate("m1", "u1", "agent-a", when(0))
	want := m
	want.Grants = slices.Clone(m.Grants)
	mustCreateMandate(t, s, m)
	m.Grants[0] = 'x'
	got, err := s.GetMandate(ctx, "m1")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	assertMandates(t, []store.Mandate{got}, []store.Mandate{want})
	got.Grants[0] = 'x'
	list, err := s.ListMandates(ctx, "u1", "agent-a")
	if err != nil {
		t.Fatalf("ListMandates: %v", err)
	}
	assertMandates(t, list, []store.Mandate{want})
	list[0].Grants[0] = 'x'
	again, err := s.GetMandate(ctx, "m1")
	if err != nil {
		t.Fatalf("GetMandate: %v", err)
	}
	assertMandates(t, []store.Mandate{again}, []store.Mandate{want})
}

func testMandatesCanceledContext(t *testing.T, s store.Store) {
	mustCreateMandate(t, s, mandate("m", "u1", "agent-a", when(0)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range mandateCalls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(ctx, s), context.Canceled)
		})
	}
}

func testMandatesUseAfterClose(t *testing.T, s store.Store) {
	mustCreateMandate(t, s, mandate("m", "u1", "agent-a", when(0)))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range mandateCalls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(t.Context(), s), store.ErrClosed)
		})
	}
}

// mandateCalls exercises every MandateStore method with valid arguments.
func mandateCalls() []struct {
	name string
	call func(context.Context, store.Store) error
} {
	return []struct {
		name string
		call func(context.Context, store.Store) error
	}{
		{"CreateMandate", func(ctx context.Context, s store.Store) error {
			return s.CreateMandate(ctx, mandate("m2", "u1", "agent-a", when(0)))
		}},
		{"GetMandate", func(ctx context.Context, s store.Store) error {
			_, err := s.GetMandate(ctx, "m")
			return err
		}},
		{"ListMandates", func(ctx context.Context, s store.Store) error {
			_, err := s.ListMandates(ctx, "u1", "")
			return err
		}},
		{"RevokeMandate", func(ctx context.Context, s store.Store) error {
			return s.RevokeMandate(ctx, "m", "u1", at(time.Minute))
		}},
		{"ConsumeMandateUse", func(ctx context.Context, s store.Store) error {
			_, err := s.ConsumeMandateUse(ctx, "m", at(time.Minute))
			return err
		}},
	}
}

// mandate returns a mandate with every field but the revocation set, times
// finer than the store's precision and not in UTC.
func mandate(id, user, agent string, created time.Time) store.Mandate {
	return store.Mandate{
		ID: id, User: user, Agent: agent,
		// Grants keep their exact bytes, whitespace and key order included.
		Grants:    []byte(`[ {"upstream":"mail","tool":"send_*","constraints":[{"arg":"to","suffix":"@example.com"}]} ]`),
		Purpose:   "Send the weekly report ✓ 'quoted'",
		CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour), UsesLeft: 7,
	}
}

func mandateUntil(id string, expires time.Time, uses int) store.Mandate {
	m := mandate(id, "u1", "agent-a", at(0))
	m.ExpiresAt, m.UsesLeft = expires, uses
	return m
}

func mustCreateMandate(t *testing.T, s store.Store, m store.Mandate) {
	t.Helper()
	if err := s.CreateMandate(t.Context(), m); err != nil {
		t.Fatalf("CreateMandate(%s): %v", m.ID, err)
	}
}

func assertMandates(t *testing.T, got, want []store.Mandate) {
	t.Helper()
	render := func(m store.Mandate) string {
		return fmt.Sprintf("%q|%q|%q|%s|%q|%s|%s|%d|%s|%q", m.ID, m.User, m.Agent, raw(m.Grants), m.Purpose,
			stamp(m.CreatedAt), stamp(m.ExpiresAt), m.UsesLeft, stamp(m.RevokedAt), m.RevokedBy)
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(m store.Mandate) string {
		m.CreatedAt, m.ExpiresAt, m.RevokedAt = normal(m.CreatedAt), normal(m.ExpiresAt), normal(m.RevokedAt)
		return render(m)
	}))
}
