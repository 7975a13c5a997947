package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// runApprovals runs the conformance suite of store.ApprovalStore, with the
// same contract for open as Run.
func runApprovals(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []storeTest{
		{"ApprovalRoundTrip", testApprovalRoundTrip},
		{"CreateApprovalInvalid", testCreateApprovalInvalid},
		{"CreateApprovalConflict", testCreateApprovalConflict},
		{"GetApprovalNotFound", testGetApprovalNotFound},
		{"ListApprovals", testListApprovals},
		{"DecideApproval", testDecideApproval},
		{"DecideApprovalConcurrently", testDecideApprovalConcurrently},
		{"UseApproval", testUseApproval},
		{"UseApprovalConcurrently", testUseApprovalConcurrently},
		{"ApprovalsCanceledContext", testApprovalsCanceledContext},
		{"ApprovalsUseAfterClose", testApprovalsUseAfterClose},
	}
	runTable(t, open, tests)
}

func testApprovalRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending := approval("a-pending", when(0))
	autonomous := approval("a-autonomous", when(0))
	autonomous.User, autonomous.PolicyVersion = "", ""
	decided := approval("a-decided", when(0))
	decided.Status, decided.DecidedAt, decided.DecidedBy = store.ApprovalUsed, when(time.Minute), "in-band:alice"
	expired := approval("a-expired", when(0))
	expired.Status = store.ApprovalExpired
	for _, a := range []store.Approval{pending, autonomous, decided, expired} {
		t.Run(a.ID, func(t *testing.T) {
			if err := s.CreateApproval(ctx, a); err != nil {
				t.Fatalf("CreateApproval: %v", err)
			}
			got, err := s.GetApproval(ctx, a.ID)
			if err != nil {
				t.Fatalf("GetApproval: %v", err)
			}
			assertApprovals(t, []store.Approval{got}, []store.Approval{a})
		})
	}
}

func testCreateApprovalInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.Approval)
	}{
		{"empty id", func(a *store.Approval) { a.ID = "" }},
		{"NUL in id", func(a *store.Approval) { a.ID = "a\x00" }},
		{"invalid UTF-8 user", func(a *store.Approval) { a.User = "\xff" }},
		{"empty agent", func(a *store.Approval) { a.Agent = "" }},
		{"empty upstream", func(a *store.Approval) { a.Upstream = "" }},
		{"empty tool", func(a *store.Approval) { a.Tool = "" }},
		{"short hash", func(a *store.Approval) { a.ArgsHash = "abc" }},
		{"uppercase hash", func(a *store.Approval) { a.ArgsHash = strings.ToUpper(a.ArgsHash) }},
		{"preview not JSON", func(a *store.Approval) { a.ArgsPreview = `{"a":` }},
		{"empty preview", func(a *store.Approval) { a.ArgsPreview = "" }},
		{"NUL in policy version", func(a *store.Approval) { a.PolicyVersion = "v\x00" }},
		{"unknown status", func(a *store.Approval) { a.Status = "maybe" }},
		{"empty status", func(a *store.Approval) { a.Status = "" }},
		{"zero creation time", func(a *store.Approval) { a.CreatedAt = time.Time{} }},
		{"zero expiry", func(a *store.Approval) { a.ExpiresAt = time.Time{} }},
		{"expires when created", func(a *store.Approval) { a.ExpiresAt = a.CreatedAt }},
		{"pending with a decision", func(a *store.Approval) { a.DecidedAt, a.DecidedBy = at(0), "cli" }},
		{"approved without a decision", func(a *store.Approval) { a.Status = store.ApprovalApproved }},
		{"decider without a time", func(a *store.Approval) {
			a.Status, a.DecidedBy = store.ApprovalDenied, "cli"
		}},
		{"decision time without a decider", func(a *store.Approval) {
			a.Status, a.DecidedAt = store.ApprovalDenied, at(0)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := approval("a1", when(0))
			tc.mutate(&a)
			assertIs(t, s.CreateApproval(ctx, a), store.ErrInvalid)
		})
	}
	got, err := s.ListApprovals(ctx, "")
	if err != nil {
		t.Fatalf("ListApprovals: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ListApprovals after invalid creates = %d approvals, want none", len(got))
	}
}

func testCreateApprovalConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := approval("a1", when(0))
	mustCreateApproval(t, s, first)
	second := approval("a1", when(time.Hour))
	second.Tool = "other"
	assertIs(t, s.CreateApproval(ctx, second), store.ErrConflict)
	got, err := s.GetApproval(ctx, "a1")
	if err != nil {
		t.Fatalf("GetApproval: %v", err)
	}
	assertApprovals(t, []store.Approval{got}, []store.Approval{first})
}

func testGetApprovalNotFound(t *testing.T, s store.Store) {
	mustCreateApproval(t, s, approval("a1", when(0)))
	for _, id := range []string{"a2", "A1", "", "a1\x00", "\xff"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			_, err := s.GetApproval(t.Context(), id)
			assertIs(t, err, store.ErrNotFound)
		})
	}
}

func testListApprovals(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created out of order, with a tie on CreatedAt that ID breaks.
	p1 := approval("a-b", when(time.Hour))
	p1tie := approval("a-a", when(time.Hour))
	p2 := approval("a-c", when(0))
	d := approval("a-d", when(2*time.Hour))
	d.Status, d.DecidedAt, d.DecidedBy = store.ApprovalDenied, when(2*time.Hour+time.Second), "cli"
	for _, a := range []store.Approval{p1, d, p2, p1tie} {
		mustCreateApproval(t, s, a)
	}
	tests := []struct {
		name, status string
		want         []store.Approval
	}{
		{"all", "", []store.Approval{d, p1tie, p1, p2}},
		{"pending", store.ApprovalPending, []store.Approval{p1tie, p1, p2}},
		{"denied", store.ApprovalDenied, []store.Approval{d}},
		{"none used", store.ApprovalUsed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListApprovals(ctx, tc.status)
			if err != nil {
				t.Fatalf("ListApprovals: %v", err)
			}
			if got == nil {
				t.Error("ListApprovals returned nil, want an empty slice")
			}
			assertApprovals(t, got, tc.want)
		})
	}
	for _, status := range []string{"Pending", "maybe", "pending\x00"} {
		_, err := s.ListApprovals(ctx, status)
		assertIs(t, err, store.ErrInvalid)
	}
}

func testDecideApproval(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Minute)
	yes := approval("yes", at(0))
	no := approval("no", at(0))
	atExpiry := approvalUntil("at-expiry", now)
	expired := approvalUntil("expired", now.Add(-time.Second))
	for _, a := range []store.Approval{yes, no, atExpiry, expired} {
		mustCreateApproval(t, s, a)
	}
	got, err := s.DecideApproval(ctx, "yes", true, "cli", when(time.Minute))
	if err != nil {
		t.Fatalf("DecideApproval(approve): %v", err)
	}
	wantYes := yes
	wantYes.Status, wantYes.DecidedAt, wantYes.DecidedBy = store.ApprovalApproved, when(time.Minute), "cli"
	stored, err := s.GetApproval(ctx, "yes")
	if err != nil {
		t.Fatalf("GetApproval: %v", err)
	}
	assertApprovals(t, []store.Approval{got, stored}, []store.Approval{wantYes, wantYes})

	got, err = s.DecideApproval(ctx, "no", false, "in-band:alice", now)
	if err != nil {
		t.Fatalf("DecideApproval(deny): %v", err)
	}
	wantNo := no
	wantNo.Status, wantNo.DecidedAt, wantNo.DecidedBy = store.ApprovalDenied, now, "in-band:alice"
	assertApprovals(t, []store.Approval{got}, []store.Approval{wantNo})

	tests := []struct {
		name, id, by string
		approve      bool
		at           time.Time
		want         error
	}{
		// A decision is final: neither the same nor the other one again.
		{"approved again", "yes", "cli", true, now, store.ErrConflict},
		{"approved, then denied", "yes", "cli", false, now, store.ErrConflict},
		{"denied, then approved", "no", "cli", true, now, store.ErrConflict},
		// A request expires at its ExpiresAt: a timeout means deny.
		{"expiring at the decision", "at-expiry", "cli", true, now, store.ErrConflict},
		{"expired", "expired", "cli", true, now, store.ErrConflict},
		{"unknown", "nope", "cli", true, now, store.ErrNotFound},
		{"empty id", "", "cli", true, now, store.ErrNotFound},
		{"NUL in id", "yes\x00", "cli", true, now, store.ErrNotFound},
		{"empty decider", "at-expiry", "", true, at(0), store.ErrInvalid},
		{"invalid UTF-8 decider", "at-expiry", "\xff", true, at(0), store.ErrInvalid},
		{"zero time", "at-expiry", "cli", true, time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.DecideApproval(ctx, tc.id, tc.approve, tc.by, tc.at)
			assertIs(t, err, tc.want)
			if got.ID != "" {
				t.Errorf("returned %+v with an error, want the zero approval", got)
			}
		})
	}
	// Failed decisions leave approvals as they were.
	for _, want := range []store.Approval{wantYes, wantNo, atExpiry, expired} {
		got, err := s.GetApproval(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetApproval(%s): %v", want.ID, err)
		}
		assertApprovals(t, []store.Approval{got}, []store.Approval{want})
	}
}

// testDecideApprovalConcurrently guards against two approvers (a CLI and a
// web page, on two replicas) both deciding one request.
func testDecideApprovalConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 16
	mustCreateApproval(t, s, approval("a", at(0)))
	var (
		mu        sync.Mutex
		won       []store.Approval
		conflicts int
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a, err := s.DecideApproval(ctx, "a", i%2 == 0, fmt.Sprintf("approver-%d", i), at(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, a)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("DecideApproval: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 || conflicts != n-1 {
		t.Fatalf("%d concurrent decisions: %d succeeded and %d conflicted, want 1 and %d", n, len(won), conflicts, n-1)
	}
	got, err := s.GetApproval(ctx, "a")
	if err != nil {
		t.Fatalf("GetApproval: %v", err)
	}
	assertApprovals(t, []store.Approval{got}, won)
}

func testUseApproval(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Minute)
	decided := func(id, status string, expires time.Time) store.Approval {
		a := approvalUntil(id, expires)
		a.Status, a.DecidedAt, a.DecidedBy = status, at(time.Second), "cli"
		return a
	}
	approved := decided("approved", store.ApprovalApproved, now.Add(time.Minute))
	pending := approvalUntil("pending", now.Add(time.Minute))
	denied := decided("denied", store.ApprovalDenied, now.Add(time.Minute))
	atExpiry := decided("at-expiry", store.ApprovalApproved, now)
	expired := decided("expired", store.ApprovalApproved, now.Add(-time.Second))
	for _, a := range []store.Approval{approved, pending, denied, atExpiry, expired} {
		mustCreateApproval(t, s, a)
	}
	got, err := s.UseApproval(ctx, "approved", now)
	if err != nil {
		t.Fatalf("UseApproval: %v", err)
	}
	used := approved
	used.Status = store.ApprovalUsed
	stored, err := s.GetApproval(ctx, "approved")
	if err != nil {
		t.Fatalf("GetApproval: %v", err)
	}
	assertApprovals(t, []store.Approval{got, stored}, []store.Approval{used, used})

	tests := []struct {
		name, id string
		now      time.Time
		want     error
	}{
		{"used already", "approved", now, store.ErrConflict},
		{"pending", "pending", now, store.ErrConflict},
		{"denied", "denied", now, store.ErrConflict},
		{"expiring at the use", "at-expiry", now, store.ErrConflict},
		{"expired", "expired", now, store.ErrConflict},
		{"unknown", "nope", now, store.ErrNotFound},
		{"empty id", "", now, store.ErrNotFound},
		{"zero now", "pending", time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UseApproval(ctx, tc.id, tc.now)
			assertIs(t, err, tc.want)
			if got.ID != "" {
				t.Errorf("returned %+v with an error, want the zero approval", got)
			}
		})
	}
	for _, want := range []store.Approval{used, pending, denied, atExpiry, expired} {
		got, err := s.GetApproval(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetApproval(%s): %v", want.ID, err)
		}
		assertApprovals(t, []store.Approval{got}, []store.Approval{want})
	}
}

// testUseApprovalConcurrently guards single use: one approval lets exactly
// one call through, however many replicas race for it.
func testUseApprovalConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	a := approvalUntil("a", at(time.Hour))
	a.Status, a.DecidedAt, a.DecidedBy = store.ApprovalApproved, at(time.Second), "cli"
	mustCreateApproval(t, s, a)
	var (
		mu             sync.Mutex
		uses, conflict int
		wg             sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := s.UseApproval(ctx, "a", at(time.Minute+time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				uses++
			case errors.Is(err, store.ErrConflict):
				conflict++
			default:
				t.Errorf("UseApproval: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if uses != 1 || conflict != n-1 {
		t.Fatalf("%d concurrent uses of one approval: %d succeeded and %d conflicted, want 1 and %d", n, uses, conflict, n-1)
	}
}

func testApprovalsCanceledContext(t *testing.T, s store.Store) {
	mustCreateApproval(t, s, approval("a", at(0)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range approvalCalls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(ctx, s), context.Canceled)
		})
	}
}

func testApprovalsUseAfterClose(t *testing.T, s store.Store) {
	mustCreateApproval(t, s, approval("a", at(0)))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range approvalCalls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(t.Context(), s), store.ErrClosed)
		})
	}
}

// approvalCalls exercises every ApprovalStore method with valid arguments.
func approvalCalls() []struct {
	name string
	call func(context.Context, store.Store) error
} {
	return []struct {
		name string
		call func(context.Context, store.Store) error
	}{
		{"CreateApproval", func(ctx context.Context, s store.Store) error {
			return s.CreateApproval(ctx, approval("a2", at(0)))
		}},
		{"GetApproval", func(ctx context.Context, s store.Store) error {
			_, err := s.GetApproval(ctx, "a")
			return err
		}},
		{"ListApprovals", func(ctx context.Context, s store.Store) error {
			_, err := s.ListApprovals(ctx, store.ApprovalPending)
			return err
		}},
		{"DecideApproval", func(ctx context.Context, s store.Store) error {
			_, err := s.DecideApproval(ctx, "a", true, "cli", at(time.Second))
			return err
		}},
		{"UseApproval", func(ctx context.Context, s store.Store) error {
			_, err := s.UseApproval(ctx, "a", at(time.Second))
			return err
		}},
	}
}

// approval returns a pending approval with every field but the decision
// set, times finer than the store's precision and not in UTC.
func approval(id string, created time.Time) store.Approval {
	return store.Approval{
		ID: id, User: "u1", Agent: "agent-a", Upstream: "mail", Tool: "send",
		ArgsHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		// The preview keeps its exact text, whitespace and key order included.
		ArgsPreview:   `{ "to":"a@example.com", "body":"Quarterly ✓ 'quoted'…", "amount":12.5 }`,
		PolicyVersion: "v1-3f2a",
		Status:        store.ApprovalPending,
		CreatedAt:     created, ExpiresAt: created.Add(5 * time.Minute),
	}
}

func approvalUntil(id string, expires time.Time) store.Approval {
	a := approval(id, at(0))
	a.ExpiresAt = expires
	return a
}

func mustCreateApproval(t *testing.T, s store.Store, a store.Approval) {
	t.Helper()
	if err := s.CreateApproval(t.Context(), a); err != nil {
		t.Fatalf("CreateApproval(%s): %v", a.ID, err)
	}
}

func assertApprovals(t *testing.T, got, want []store.Approval) {
	t.Helper()
	render := func(a store.Approval) string {
		return fmt.Sprintf("%q|%q|%q|%q|%q|%q|%q|%q|%q|%s|%s|%s|%q", a.ID, a.User, a.Agent, a.Upstream, a.Tool,
			a.ArgsHash, a.ArgsPreview, a.PolicyVersion, a.Status, stamp(a.CreatedAt), stamp(a.ExpiresAt),
			stamp(a.DecidedAt), a.DecidedBy)
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(a store.Approval) string {
		a.CreatedAt, a.ExpiresAt, a.DecidedAt = normal(a.CreatedAt), normal(a.ExpiresAt), normal(a.DecidedAt)
		return render(a)
	}))
}
