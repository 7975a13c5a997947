package gateway

import (
	"testing"
)

// TestUnlistedCallRefused (interrogation): a session may call only tools
// a tools/list page delivered to it; each page counts as it is read, and
// one session's list shows nothing to another.
func TestUnlistedCallRefused(t *testing.T) {
	f := newFixture(t, 2, demoUp("a"))
	sess := f.session(t, "s")
	add := `{"name":"a__add","arguments":{"a":1,"b":2}}`
	echo := `{"name":"a__echo","arguments":{"message":"hi"}}`

	if e := wantError(t, f.handle(t, sess, float64(1), "tools/call", add, nil), codeDenied); e.Message != msgNotShown {
		t.Errorf("message = %q, want %q", e.Message, msgNotShown)
	}
	if n := len(f.wires["a"].requests("tools/call")); n != 0 {
		t.Fatalf("upstream got %d calls of an unlisted tool", n)
	}

	// The first page holds mandate__whoami and a__add only.
	first := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(2), "tools/list", nil, nil)))
	if len(first.Tools) != 2 || first.NextCursor == nil {
		t.Fatalf("first page = %+v", first)
	}
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", add, nil))
	wantError(t, f.handle(t, sess, float64(4), "tools/call", echo, nil), codeDenied)

	f.listAll(t, sess, "tools/list", "name")
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(5), "tools/call", echo, nil))); got != "hi" {
		t.Errorf("a__echo = %q", got)
	}

	other := f.session(t, "other")
	wantError(t, f.handle(t, other, float64(1), "tools/call", echo, nil), codeDenied)
	// mandate__whoami needs no list.
	mustOK(t, f.handle(t, other, float64(2), "tools/call", `{"name":"mandate__whoami"}`, nil))
}

// TestAllowUnlisted: the switch lets a session call without listing.
func TestAllowUnlisted(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	f.g.opts.AllowUnlisted = true
	if got := toolText(t, mustOK(t, f.handle(t, f.session(t, "s"), float64(1), "tools/call", `{"name":"a__echo","arguments":{"message":"hi"}}`, nil))); got != "hi" {
		t.Errorf("a__echo = %q", got)
	}
}

// TestStatelessCallsAreNotInterrogated: a 2026-07-28 request has no
// session to remember a list in, so it is decided without one.
func TestStatelessCallsAreNotInterrogated(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	sess := f.stateless(t, alice, nil)
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(1), "tools/call", `{"name":"a__echo","arguments":{"message":"hi"}}`, nil))); got != "hi" {
		t.Errorf("a__echo = %q", got)
	}
}
