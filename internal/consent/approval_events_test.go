package consent_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

// approvalEvents keeps what Approvals reports, as "event id".
type approvalEvents struct {
	mu  sync.Mutex
	got []string
}

func (e *approvalEvents) add(what string, a store.Approval) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, what+" "+a.ID+" "+a.Status)
}

func (e *approvalEvents) ApprovalRequested(a store.Approval) { e.add("requested", a) }
func (e *approvalEvents) ApprovalDecided(a store.Approval)   { e.add("decided", a) }
func (e *approvalEvents) ApprovalUsed(a store.Approval)      { e.add("used", a) }

// TestApprovalEvents: every change the store accepted is reported once —
// a request returned again to a retrying agent, a refused decision and a
// refused use are not changes, and are not reported.
func TestApprovalEvents(t *testing.T) {
	ev := &approvalEvents{}
	ap, _, _ := newApprovals(t, &consent.ApprovalOptions{Events: ev})
	ctx := context.Background()
	a := args(t, `{"message":"hi"}`)
	rec, err := ap.Request(ctx, approver, "up", "echo", a, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ap.Request(ctx, approver, "up", "echo", a, "v1"); err != nil || again.ID != rec.ID {
		t.Fatalf("second request = %v, %v; want the pending %s", again.ID, err, rec.ID)
	}
	if _, err := ap.Decide(ctx, rec.ID, true, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Decide(ctx, rec.ID, false, "carol"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second decision: %v, want a conflict", err)
	}
	if _, err := ap.Use(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Use(ctx, rec.ID); err == nil {
		t.Fatal("second use succeeded")
	}
	want := []string{
		"requested " + rec.ID + " " + store.ApprovalPending,
		"decided " + rec.ID + " " + store.ApprovalApproved,
		"used " + rec.ID + " " + store.ApprovalUsed,
	}
	if !slices.Equal(ev.got, want) {
		t.Errorf("events = %q, want %q", ev.got, want)
	}
}
