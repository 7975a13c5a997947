package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// approvalPolicy allows everything, but a/echo only with a human's
// approval of each call.
const approvalPolicy = `
@id("all")
permit (principal, action, resource);

@id("echo-needs-approval")
@approval("required")
permit (principal, action == Action::"tools/call", resource == Tool::"a/echo");
`

// approvalFixture is a gateway over the demo upstream deciding with
// approvalPolicy, with approvals kept in a memory store.
func approvalFixture(t *testing.T, timeout time.Duration) (*fixture, *consent.Approvals, store.Store) {
	t.Helper()
	f := newFixture(t, 50, demoUp("a"))
	snap, problems := policy.Compile(map[string][]byte{"approval.cedar": []byte(approvalPolicy)})
	if len(problems) > 0 {
		t.Fatalf("policy: %v", problems)
	}
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	ap := consent.NewApprovals(st, &consent.ApprovalOptions{Timeout: timeout})
	f.g.opts.Policy = policy.NewEngine(snap)
	f.g.opts.Approvals = ap
	return f, ap, st
}

// approvalSession opens a session of p whose client declared caps, and lists
// the tools as a client does before calling them.
func (f *fixture) approvalSession(t *testing.T, p *identity.Principal, caps map[string]any) *Session {
	t.Helper()
	sess := f.g.NewSession("s-"+p.Agent, "c")
	sess.Principal = p
	mustOK(t, f.handle(t, sess, "init", "initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": caps, "clientInfo": map[string]string{"name": "t", "version": "0"},
	}, nil))
	f.notify(t, sess, "notifications/initialized", nil)
	mustOK(t, f.handle(t, sess, "list", "tools/list", nil, nil))
	return sess
}

// pendingID returns the approval id of a codeNeedsApproval refusal.
func pendingID(t *testing.T, resp *jsonrpc.Response) string {
	t.Helper()
	e := wantError(t, resp, codeNeedsApproval)
	var data struct {
		ApprovalID string `json:"approvalId"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil || data.ApprovalID == "" {
		t.Fatalf("refusal data %s carries no approvalId (%v)", e.Data, err)
	}
	if !strings.Contains(e.Message, data.ApprovalID) {
		t.Errorf("refusal message %q does not name approval %s", e.Message, data.ApprovalID)
	}
	return data.ApprovalID
}

// TestApprovalOutOfBand: a call needing approval is refused with the id of
// a pending request; once a human approves it, the same call succeeds
// exactly once.
func TestApprovalOutOfBand(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	ctx := context.Background()
	sess := f.approvalSession(t, alice, map[string]any{})

	id := pendingID(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil))
	// A retry before anyone decided points at the same request.
	if again := pendingID(t, f.handle(t, sess, float64(2), "tools/call", echo("hi"), nil)); again != id {
		t.Fatalf("retry got request %s, want %s", again, id)
	}
	// Calls the policy allows outright need no approval.
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", map[string]any{"name": "a__add", "arguments": map[string]any{"a": 1, "b": 2}}, nil))

	if _, err := ap.Decide(ctx, id, true, "cli"); err != nil {
		t.Fatal(err)
	}
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(4), "tools/call", echo("hi"), nil))); got != "hi" {
		t.Fatalf("approved call returned %q", got)
	}
	rec, err := ap.Get(ctx, id)
	if err != nil || rec.Status != store.ApprovalUsed || rec.DecidedBy != "cli" || rec.User != "alice" || rec.Agent != "agent-a" {
		t.Fatalf("approval after the call = %+v, %v", rec, err)
	}
	// Single use: the same call again needs a new approval.
	if next := pendingID(t, f.handle(t, sess, float64(5), "tools/call", echo("hi"), nil)); next == id {
		t.Fatalf("second call reused the used approval %s", id)
	}
}

// TestApprovalChangedArgumentsNeedNewApproval: an approval covers the
// arguments it was given for, not the tool.
func TestApprovalChangedArgumentsNeedNewApproval(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	sess := f.approvalSession(t, alice, map[string]any{})
	id := pendingID(t, f.handle(t, sess, float64(1), "tools/call", echo("pay 10"), nil))
	if _, err := ap.Decide(context.Background(), id, true, "cli"); err != nil {
		t.Fatal(err)
	}
	other := pendingID(t, f.handle(t, sess, float64(2), "tools/call", echo("pay 10000"), nil))
	if other == id {
		t.Fatal("changed arguments used the approval of other arguments")
	}
	// Another agent of the same user cannot use alice's agent's approval.
	bob := *alice
	bob.Agent = "agent-b"
	if got := pendingID(t, f.handle(t, f.approvalSession(t, &bob, map[string]any{}), float64(3), "tools/call", echo("pay 10"), nil)); got == id {
		t.Fatal("another agent used the approval")
	}
	// The approved call itself still goes through.
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(4), "tools/call", echo("pay 10"), nil))); got != "pay 10" {
		t.Fatalf("approved call returned %q", got)
	}
}

// elicitor is a client stream that answers elicitation/create requests the
// way answer says, and records them.
type elicitor struct {
	sess   *Session
	answer any // the result to send; nil never answers

	mu  sync.Mutex
	got []*jsonrpc.Request
}

func (e *elicitor) Send(_ context.Context, m jsonrpc.Message) error {
	req, ok := m.(*jsonrpc.Request)
	if !ok || req.Method != "elicitation/create" {
		return nil
	}
	e.mu.Lock()
	e.got = append(e.got, req)
	e.mu.Unlock()
	if e.answer != nil {
		e.sess.deliverResponse(&jsonrpc.Response{ID: req.ID, Result: mustJSON(e.answer)})
	}
	return nil
}

func (e *elicitor) requests() []*jsonrpc.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got
}

func inBand(t *testing.T, f *fixture, answer any) (*Session, *elicitor) {
	t.Helper()
	sess := f.approvalSession(t, alice, map[string]any{"elicitation": map[string]any{"form": map[string]any{}}})
	e := &elicitor{sess: sess, answer: answer}
	if !sess.SetStandalone(e) {
		t.Fatal("SetStandalone refused")
	}
	return sess, e
}

func onlyApproval(t *testing.T, ap *consent.Approvals) store.Approval {
	t.Helper()
	all, err := ap.List(context.Background(), "")
	if err != nil || len(all) != 1 {
		t.Fatalf("approvals = %+v, %v; want exactly one", all, err)
	}
	return all[0]
}

// TestApprovalInBandAccept: a client that declared form elicitation is
// asked, and the human's yes lets the call through at once.
func TestApprovalInBandAccept(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	sess, e := inBand(t, f, map[string]any{"action": "accept", "content": map[string]any{"approve": true}})
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil))); got != "hi" {
		t.Fatalf("call returned %q", got)
	}
	reqs := e.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d elicitations, want 1", len(reqs))
	}
	var params struct {
		Mode            string `json:"mode"`
		Message         string `json:"message"`
		RequestedSchema struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"requestedSchema"`
	}
	if err := json.Unmarshal(reqs[0].Params, &params); err != nil {
		t.Fatal(err)
	}
	if params.Mode != "form" || params.RequestedSchema.Properties["approve"].Type != "boolean" ||
		!strings.Contains(params.Message, "a__echo") || !strings.Contains(params.Message, `{"message":"hi"}`) {
		t.Errorf("elicitation params = %s", reqs[0].Params)
	}
	rec := onlyApproval(t, ap)
	if rec.Status != store.ApprovalUsed || rec.DecidedBy != "in-band:alice" {
		t.Errorf("approval = %+v, want used, decided in band by alice", rec)
	}
}

// TestApprovalInBandRefusals: anything but an explicit yes denies.
func TestApprovalInBandRefusals(t *testing.T) {
	tests := []struct {
		name   string
		answer any
		status string
	}{
		{"decline", map[string]any{"action": "decline"}, store.ApprovalDenied},
		{"accept with no", map[string]any{"action": "accept", "content": map[string]any{"approve": false}}, store.ApprovalDenied},
		{"accept without content", map[string]any{"action": "accept"}, store.ApprovalDenied},
		{"cancel", map[string]any{"action": "cancel"}, store.ApprovalPending},
		{"unknown action", map[string]any{"action": "yes please"}, store.ApprovalPending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ap, _ := approvalFixture(t, time.Minute)
			sess, _ := inBand(t, f, tc.answer)
			wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
			if rec := onlyApproval(t, ap); rec.Status != tc.status {
				t.Errorf("approval status %s, want %s", rec.Status, tc.status)
			}
			if len(f.wires["a"].requests("tools/call")) != 0 {
				t.Error("a refused call reached the upstream")
			}
		})
	}
}

// TestApprovalInBandTimeoutDenies: a human who never answers denies the
// call once the approval times out.
func TestApprovalInBandTimeoutDenies(t *testing.T) {
	f, ap, _ := approvalFixture(t, 200*time.Millisecond)
	sess, e := inBand(t, f, nil)
	start := time.Now()
	e2 := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waited %v", d)
	}
	if !strings.Contains(e2.Message, "in time") || len(e.requests()) != 1 {
		t.Errorf("refusal %q after %d elicitations", e2.Message, len(e.requests()))
	}
	time.Sleep(10 * time.Millisecond)
	if rec := onlyApproval(t, ap); rec.Status != store.ApprovalExpired {
		t.Errorf("approval status %s, want expired", rec.Status)
	}
}

// TestApprovalNotInBand: the human is asked in band only where one can
// answer: not without an open stream, not for an autonomous agent, not for
// a client without form elicitation. Each gets the out-of-band refusal.
func TestApprovalNotInBand(t *testing.T) {
	f, _, _ := approvalFixture(t, time.Minute)
	form := map[string]any{"elicitation": map[string]any{}}

	noStream := f.approvalSession(t, alice, form)
	pendingID(t, f.handle(t, noStream, float64(1), "tools/call", echo("a"), nil))

	bot := &identity.Principal{Issuer: "test", Agent: "ci-bot", Method: identity.MethodClientCredentials}
	botSess := f.approvalSession(t, bot, form)
	e := &elicitor{sess: botSess, answer: map[string]any{"action": "accept", "content": map[string]any{"approve": true}}}
	botSess.SetStandalone(e)
	pendingID(t, f.handle(t, botSess, float64(2), "tools/call", echo("b"), nil))

	urlOnly := f.approvalSession(t, &identity.Principal{Issuer: "test", User: "carol", Agent: "agent-c", Method: identity.MethodAuthorizationCode},
		map[string]any{"elicitation": map[string]any{"url": map[string]any{}}})
	e2 := &elicitor{sess: urlOnly, answer: map[string]any{"action": "accept", "content": map[string]any{"approve": true}}}
	urlOnly.SetStandalone(e2)
	pendingID(t, f.handle(t, urlOnly, float64(3), "tools/call", echo("c"), nil))

	if n := len(e.requests()) + len(e2.requests()); n != 0 {
		t.Errorf("%d elicitations sent to clients that cannot approve in band", n)
	}
}

// TestNoApprovalsRefuses: without an approval service a call needing
// approval is refused, never allowed.
func TestNoApprovalsRefuses(t *testing.T) {
	f, _, _ := approvalFixture(t, time.Minute)
	f.g.opts.Approvals = nil
	sess := f.approvalSession(t, alice, map[string]any{})
	e := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeNeedsApproval)
	if len(e.Data) != 0 {
		t.Errorf("refusal carries data %s", e.Data)
	}
}

// TestApprovalStoreFailureDenies (invariant 1): when approvals cannot be
// read, a call needing one is denied, never allowed or left pending.
func TestApprovalStoreFailureDenies(t *testing.T) {
	f, _, st := approvalFixture(t, time.Minute)
	sess := f.approvalSession(t, alice, map[string]any{})
	st.Close()
	e := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
	if !strings.Contains(e.Message, "could not be checked") {
		t.Errorf("refusal %q", e.Message)
	}
	if len(f.wires["a"].requests("tools/call")) != 0 {
		t.Error("the call reached the upstream")
	}
}

// TestApprovalStatelessNotInBand: a stateless-era request has no session
// to carry a server-to-client request. A client that declared form
// elicitation is asked through an input_required result instead (C-10);
// one that did not gets the out-of-band refusal. Neither is sent an
// elicitation/create request.
func TestApprovalStatelessNotInBand(t *testing.T) {
	for _, tc := range []struct {
		name      string
		caps      map[string]any
		wantInput bool
	}{
		{"form", map[string]any{"elicitation": map[string]any{"form": map[string]any{}}}, true},
		{"url only", map[string]any{"elicitation": map[string]any{"url": map[string]any{}}}, false},
		{"none", map[string]any{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, _ := approvalFixture(t, time.Minute)
			sess := f.g.NewEphemeral("c")
			sess.Principal = alice
			meta := map[string]any{
				"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
				"io.modelcontextprotocol/clientCapabilities": tc.caps,
			}
			if err := f.g.BeginModern(sess, rawParams(t, map[string]any{"_meta": meta}), "2026-07-28"); err != nil {
				t.Fatal(err)
			}
			e := &elicitor{sess: sess, answer: map[string]any{"action": "accept", "content": map[string]any{"approve": true}}}
			sess.SetStandalone(e)
			call := echo("hi")
			call["_meta"] = meta
			resp := f.handle(t, sess, float64(1), "tools/call", call, e)
			if tc.wantInput {
				inputRequiredOf(t, resp, approvalInputKey)
			} else {
				pendingID(t, resp)
			}
			if len(e.requests()) != 0 {
				t.Error("an elicitation was sent on a stateless request")
			}
		})
	}
}

// waitForPending returns the id of the one pending approval request, once
// the held call has created it.
func waitForPending(t *testing.T, ap *consent.Approvals) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		recs, err := ap.List(context.Background(), store.ApprovalPending)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 1 {
			return recs[0].ID
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no pending approval request appeared")
	return ""
}

// TestApprovalHeldCall: with ApprovalWait, a call nobody can approve in
// band waits for the out-of-band decision: it proceeds once approved, is
// refused once denied, is refused when the request expires while it waits
// (a timeout is a denial), and when the wait ends first it is refused with
// the pending request's id.
func TestApprovalHeldCall(t *testing.T) {
	cases := []struct {
		name    string
		ttl     time.Duration
		wait    time.Duration
		decide  *bool // nil: nobody decides
		want    string
		pending bool
	}{
		{name: "approved while held", ttl: time.Minute, wait: 30 * time.Second, decide: ptr(true), want: "ok"},
		{name: "denied while held", ttl: time.Minute, wait: 30 * time.Second, decide: ptr(false), want: "the approval was denied"},
		{name: "expired while held", ttl: 600 * time.Millisecond, wait: 30 * time.Second, want: "expired before anyone approved it"},
		{name: "wait ends first", ttl: time.Minute, wait: 400 * time.Millisecond, pending: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, ap, _ := approvalFixture(t, c.ttl)
			f.g.opts.ApprovalWait = c.wait
			sess := f.approvalSession(t, alice, map[string]any{})
			if c.decide != nil {
				go func() {
					id := waitForPending(t, ap)
					if _, err := ap.Decide(context.Background(), id, *c.decide, "cli"); err != nil {
						t.Error(err)
					}
				}()
			}
			resp := f.handle(t, sess, float64(1), "tools/call", echo("ok"), nil)
			switch {
			case c.pending:
				pendingID(t, resp)
			case c.want == "ok":
				if got := toolText(t, mustOK(t, resp)); got != "ok" {
					t.Fatalf("approved call returned %q", got)
				}
				// Single use: the same call again waits for a new approval.
				f.g.opts.ApprovalWait = 0
				pendingID(t, f.handle(t, sess, float64(2), "tools/call", echo("ok"), nil))
			default:
				if e := wantError(t, resp, codeDenied); !strings.Contains(e.Message, c.want) {
					t.Fatalf("refusal %q does not say %q", e.Message, c.want)
				}
			}
		})
	}
}

// TestApprovalHeldCallCancelled: a held call whose client goes away stops
// waiting and is not forwarded.
func TestApprovalHeldCallCancelled(t *testing.T) {
	f, _, _ := approvalFixture(t, time.Minute)
	f.g.opts.ApprovalWait = time.Minute
	sess := f.approvalSession(t, alice, map[string]any{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	msg := &jsonrpc.Request{ID: mustID(t, float64(1)), Method: "tools/call", Params: rawParams(t, echo("held"))}
	if resp := f.g.Handle(ctx, sess, msg, nil); resp != nil {
		t.Fatalf("a cancelled call got a response: %+v", resp)
	}
}

func ptr[T any](v T) *T { return &v }
