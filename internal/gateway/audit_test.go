package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// fakeAuditor is the gateway's Auditor over a real audit.Log in a memory
// store, so records are redacted and digested as in production, keeping
// every record it stored and refusing the ones fail names.
type fakeAuditor struct {
	log  *audit.Log
	mu   sync.Mutex
	recs []audit.Record
	fail func(audit.Record) bool
}

var errAuditDown = errors.New("audit log down by design")

func (a *fakeAuditor) Append(ctx context.Context, rec audit.Record) (audit.Record, error) {
	a.mu.Lock()
	fail := a.fail
	a.mu.Unlock()
	if fail != nil && fail(rec) {
		return audit.Record{}, errAuditDown
	}
	got, err := a.log.Append(ctx, rec)
	if err != nil {
		return got, err
	}
	a.mu.Lock()
	a.recs = append(a.recs, got)
	a.mu.Unlock()
	return got, nil
}

// failing makes every record fail refuses.
func (a *fakeAuditor) failing(fail func(audit.Record) bool) {
	a.mu.Lock()
	a.fail = fail
	a.mu.Unlock()
}

// records returns the stored records of method, in order.
func (a *fakeAuditor) records(method string) []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []audit.Record
	for _, r := range a.recs {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// last returns the last stored record of kind and method.
func (a *fakeAuditor) last(t *testing.T, kind audit.Kind, method string) audit.Record {
	t.Helper()
	recs := a.records(method)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == kind {
			return recs[i]
		}
	}
	t.Fatalf("no %s record of %s among %+v", kind, method, recs)
	return audit.Record{}
}

// testDigest stands for the keyed digest of session ids.
func testDigest(id string) string { return "digest-of-" + strings.ToUpper(id) }

// audited gives f's gateway an auditor; set it before the first request.
func audited(t *testing.T, f *fixture) *fakeAuditor {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	r, err := audit.NewRedactor(audit.DefaultRules(), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(t.Context(), st, "chain-test", &audit.Options{Redactor: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	a := &fakeAuditor{log: l}
	f.g.opts.Audit, f.g.opts.SessionDigest = a, testDigest
	return a
}

// isCall matches the records of tools/call.
func isCall(kind audit.Kind) func(audit.Record) bool {
	return func(r audit.Record) bool { return r.Method == "tools/call" && r.Kind == kind }
}

// TestAuditUnavailableRefusesCall (fail closed): a call whose decision
// cannot be recorded is refused and never reaches the upstream.
func TestAuditUnavailableRefusesCall(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	sess := f.caller(t, "s")
	a.failing(isCall(audit.KindDecision))
	e := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
	if e.Message != msgAuditUnavailable {
		t.Errorf("refusal %q, want %q", e.Message, msgAuditUnavailable)
	}
	if n := len(f.wires["a"].requests("tools/call")); n != 0 {
		t.Fatalf("the upstream got %d calls whose decision was not recorded", n)
	}
	if recs := a.records("tools/call"); len(recs) != 0 {
		t.Errorf("records of the refused call: %+v", recs)
	}
}

// TestAuditUnavailableRefusesSessionMethods (fail closed): initialize and
// a list whose decision cannot be recorded are refused too.
func TestAuditUnavailableRefusesSessionMethods(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	sess := f.session(t, "s")
	a.failing(func(r audit.Record) bool { return r.Kind == audit.KindDecision })
	if e := wantError(t, f.handle(t, sess, float64(1), "tools/list", nil, nil), codeDenied); e.Message != msgAuditUnavailable {
		t.Errorf("list refused with %q", e.Message)
	}
	other := f.g.NewSession("t", "c")
	other.Principal = sess.Principal
	wantError(t, f.handle(t, other, "init", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{}}`, nil), codeDenied)
	if other.Version() != "" {
		t.Errorf("a session whose initialize was not recorded negotiated %q", other.Version())
	}
}

// TestAuditOutcomeAfterCall: an allowed call is recorded twice, its
// decision before the upstream is called and its outcome, naming that
// decision, once the upstream answered.
func TestAuditOutcomeAfterCall(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	sess := f.caller(t, "s")
	var calledAt int
	a.failing(func(r audit.Record) bool {
		if r.Kind == audit.KindOutcome {
			calledAt = len(f.wires["a"].requests("tools/call"))
		}
		return false
	})
	if got := toolText(t, mustOK(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil))); got != "hi" {
		t.Fatalf("a__echo = %q", got)
	}
	recs := a.records("tools/call")
	if len(recs) != 2 {
		t.Fatalf("records: %+v", recs)
	}
	d, o := recs[0], recs[1]
	if d.Kind != audit.KindDecision || d.Decision != decisionAllow || o.Kind != audit.KindOutcome || o.Ref != d.ID || o.Seq <= d.Seq {
		t.Fatalf("decision %+v, outcome %+v", d, o)
	}
	if calledAt != 1 {
		t.Errorf("the outcome was recorded when the upstream had %d calls, want after the one", calledAt)
	}
	if o.Status != statusOK || o.ResultBytes == 0 || o.Latency <= 0 || o.Upstream != "a" || o.Name != "echo" || o.Agent != d.Agent {
		t.Errorf("outcome %+v", o)
	}

	// An error the tool reports is an error outcome.
	mustOK(t, f.handle(t, sess, float64(2), "tools/call", `{"name":"a__add","arguments":{"a":"x"}}`, nil))
	if o := a.last(t, audit.KindOutcome, "tools/call"); o.Status != statusError || o.Name != "add" {
		t.Errorf("outcome of a failing tool: %+v", o)
	}
}

// TestAuditOutcomeUnrecordedWithholdsResult (fail closed): when the
// outcome cannot be recorded the client gets an error, not the result.
func TestAuditOutcomeUnrecordedWithholdsResult(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	sess := f.caller(t, "s")
	a.failing(isCall(audit.KindOutcome))
	if e := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeInternal); e.Message != msgOutcomeUnrecorded {
		t.Errorf("error %q, want %q", e.Message, msgOutcomeUnrecorded)
	}
	if n := len(f.wires["a"].requests("tools/call")); n != 1 {
		t.Errorf("upstream calls: %d, want 1", n)
	}
}

// TestAuditRecordFields: a decision names who (principal, delegation,
// authentication, a digest of the session id), where (trace id, upstream,
// tool), what (redacted arguments with their digest, declared intent),
// what the session was shown, and why (policy version).
func TestAuditRecordFields(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	sess := f.caller(t, "s")
	const secret = "sk-live0123456789abcdefghijklmnop"
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := WithTraceID(t.Context(), trace)
	params := `{"name":"a__echo","arguments":{"message":"` + secret + `"},"_meta":{"dev.mandate/intent":"say hello"}}`
	resp := f.g.Handle(ctx, sess, &jsonrpc.Request{ID: mustID(t, float64(1)), Method: "tools/call", Params: rawParams(t, params)}, nil)
	mustOK(t, resp)
	d := a.last(t, audit.KindDecision, "tools/call")
	p := sess.Principal
	if d.User != p.User || d.Agent != p.Agent || d.AuthMethod != string(p.Method) {
		t.Errorf("principal: user %q agent %q method %q, want %+v", d.User, d.Agent, d.AuthMethod, p)
	}
	if d.Session != testDigest("s") {
		t.Errorf("session %q, want the digest of the id", d.Session)
	}
	if d.TraceID != trace || d.Upstream != "a" || d.Name != "echo" || d.Intent != "say hello" {
		t.Errorf("trace %q upstream %q name %q intent %q", d.TraceID, d.Upstream, d.Name, d.Intent)
	}
	if d.ArgsDigest == "" || d.Args["message"] != audit.Redacted {
		t.Errorf("arguments %v digest %q: want the secret redacted and a digest", d.Args, d.ArgsDigest)
	}
	body, err := audit.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(secret)) {
		t.Fatalf("the record holds the secret argument:\n%s", body)
	}
	if d.CatalogHash == "" || d.CatalogHash != sess.shownDigest() {
		t.Errorf("catalog hash %q, want the digest of what the session was shown", d.CatalogHash)
	}
	if d.PolicyVersion == "" {
		t.Errorf("no policy version")
	}
	if o := a.last(t, audit.KindOutcome, "tools/call"); o.TraceID != trace || o.Session != d.Session {
		t.Errorf("outcome trace %q session %q", o.TraceID, o.Session)
	}

	// The session-level decisions: initialize, and the list with the
	// number of items it showed.
	if r := a.last(t, audit.KindDecision, "initialize"); r.Decision != decisionAllow || r.Agent != p.Agent {
		t.Errorf("initialize recorded as %+v", r)
	}
	list := a.last(t, audit.KindDecision, "tools/list")
	if n, _ := list.Detail["items"].(int); list.Decision != decisionAllow || n != 5 {
		t.Errorf("tools/list recorded as %+v, want allow with 5 items (whoami and 4 demo tools)", list)
	}
	for _, m := range []string{"initialize", "tools/list"} {
		if recs := a.records(m); len(recs) != 1 {
			t.Errorf("%s recorded %d times, want one decision and no outcome: %+v", m, len(recs), recs)
		}
	}

	// mandate__whoami is recorded like any call.
	mustOK(t, f.handle(t, sess, float64(2), "tools/call", `{"name":"mandate__whoami"}`, nil))
	if w := a.last(t, audit.KindDecision, "tools/call"); w.Name != whoamiName || w.Decision != decisionAllow || w.Upstream != "" {
		t.Errorf("whoami recorded as %+v", w)
	}
}

// TestAuditDeniedCallsRecorded: refusals are recorded with the reason
// they wait on (a mandate) or as plain denials (a tool never shown), and a
// refusal stays a refusal when its record cannot be written.
func TestAuditDeniedCallsRecorded(t *testing.T) {
	f, svc := enforced(t)
	a := audited(t, f)
	sess := f.sessionAs(t, alice)
	listedTools(t, f, sess)

	// Never shown (interrogation).
	wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
	if d := a.last(t, audit.KindDecision, "tools/call"); d.Decision != decisionDeny || d.Name != "a__echo" || d.Error != msgNotShown {
		t.Errorf("unlisted call recorded as %+v", d)
	}
	// No mandate: refused, waiting on one.
	wantError(t, f.handle(t, f.stateless(t, alice, nil), float64(2), "tools/call", echo("hi"), nil), codeDenied)
	d := a.last(t, audit.KindDecision, "tools/call")
	if d.Decision != decisionNeedsMandate || d.Upstream != "a" || d.Name != "echo" || d.User != "alice" || !strings.Contains(d.Error, "no mandate") {
		t.Errorf("call without a mandate recorded as %+v", d)
	}

	// Under a mandate: allowed, naming it.
	m := grant(t, svc, "alice", "agent-a", "echo")
	listedTools(t, f, sess)
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", echo("hi"), nil))
	if d := a.last(t, audit.KindDecision, "tools/call"); d.Decision != decisionAllow || d.Mandate != m.ID || d.PolicyVersion == "" {
		t.Errorf("call under a mandate recorded as %+v", d)
	}

	// A denial whose record fails is still a denial, with its own message.
	a.failing(isCall(audit.KindDecision))
	n := len(f.wires["a"].requests("tools/call"))
	e := wantError(t, f.handle(t, f.stateless(t, alice, nil), float64(4), "tools/call", map[string]any{"name": "a__add", "arguments": map[string]any{"a": 1, "b": 2}}, nil), codeDenied)
	if e.Message == msgAuditUnavailable || len(f.wires["a"].requests("tools/call")) != n {
		t.Errorf("denied call with the log down: %q, upstream calls %d → %d", e.Message, n, len(f.wires["a"].requests("tools/call")))
	}
}

// TestAuditApprovalRecorded: a call held for approval is recorded as
// needing one, with the request's id, and the approved retry as allowed
// under that approval.
func TestAuditApprovalRecorded(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	a := audited(t, f)
	sess := f.approvalSession(t, alice, map[string]any{})
	id := pendingID(t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil))
	if d := a.last(t, audit.KindDecision, "tools/call"); d.Decision != decisionNeedsApproval || d.Approval != id ||
		!slices.Contains(d.Reasons, "echo-needs-approval") {
		t.Errorf("held call recorded as %+v", d)
	}
	if _, err := ap.Decide(context.Background(), id, true, "cli"); err != nil {
		t.Fatal(err)
	}
	mustOK(t, f.handle(t, sess, float64(2), "tools/call", echo("hi"), nil))
	recs := a.records("tools/call")
	d, o := recs[len(recs)-2], recs[len(recs)-1]
	if d.Decision != decisionAllow || d.Approval != id || o.Ref != d.ID || o.Status != statusOK {
		t.Errorf("approved call recorded as %+v then %+v", d, o)
	}
}

// TestAuditNoPolicyRecordsDenial: the refusals of a gateway without a
// policy are recorded too.
func TestAuditNoPolicyRecordsDenial(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	a := audited(t, f)
	f.g.opts.Policy = nil
	sess := f.g.NewSession("s", "c")
	sess.Principal = alice
	wantError(t, f.handle(t, sess, "init", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{}}`, nil), codeDenied)
	if r := a.last(t, audit.KindDecision, "initialize"); r.Decision != decisionDeny || r.User != "alice" {
		t.Errorf("refused initialize recorded as %+v", r)
	}
}

// countedByDecoding is countItems done by encoding/json.
func countedByDecoding(res []byte, field string) (int, bool) {
	var o map[string]json.RawMessage
	if json.Unmarshal(res, &o) != nil {
		return 0, false
	}
	raw, ok := o[field]
	var items []json.RawMessage
	if !ok || json.Unmarshal(raw, &items) != nil || items == nil {
		return 0, false
	}
	return len(items), true
}

func TestCountItems(t *testing.T) {
	for _, tc := range []struct {
		res  string
		want int
		ok   bool
	}{
		{`{"tools":[]}`, 0, true},
		{`{"nextCursor":"x","tools":[{"name":"a","d":"[{\"]}"},{"name":"b","s":{"x":[1,2,{}]}}]}`, 2, true},
		{` { "a" : [ 1 , "]" ] , "tools" : [ 1 , true , null , "x" , -2.5e3 ] } `, 5, true},
		{`{"_meta":{"tools":[1,2,3]},"tools":[1]}`, 1, true},
		{`{"prompts":[1]}`, 0, false},
		{`{"tools":{"a":1}}`, 0, false},
		{`[]`, 0, false},
		{`{"tools":[1,]}`, 0, false},
	} {
		n, ok := countItems([]byte(tc.res), "tools")
		if n != tc.want || ok != tc.ok {
			t.Errorf("countItems(%s) = %d, %v; want %d, %v", tc.res, n, ok, tc.want, tc.ok)
		}
	}
}

// FuzzCountItems: on every list result encoding/json reads, countItems
// counts what it counts.
func FuzzCountItems(f *testing.F) {
	for _, s := range []string{`{"tools":[{"name":"a"},{"name":"b\"]"}]}`, `{"x":"\\","tools":[[],{},""]}`, `{"tools":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, res []byte) {
		want, wantOK := countedByDecoding(res, "tools")
		if !wantOK {
			return
		}
		if n, ok := countItems(res, "tools"); n != want || !ok {
			t.Fatalf("countItems(%q) = %d, %v; want %d", res, n, ok, want)
		}
	})
}
