package gateway

import (
	"context"
	"encoding/json"
	"errors"
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

// enforced is a fixture deciding with the built-in default policy and real
// mandates (consent service over the memory store).
func enforced(t *testing.T) (*fixture, *consent.Service) {
	t.Helper()
	f := newFixture(t, 50, demoUp("a"))
	snap, err := policy.Builtin(policy.BuiltinDefault)
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	svc := consent.New(st, nil, nil)
	f.g.opts.Policy = policy.NewEngine(snap)
	f.g.opts.Mandates = svc
	return f, svc
}

var alice = &identity.Principal{Issuer: "test", User: "alice", Agent: "agent-a", Method: identity.MethodAuthorizationCode}

func (f *fixture) sessionAs(t *testing.T, p *identity.Principal) *Session {
	t.Helper()
	sess := f.g.NewSession("s", "c")
	sess.Principal = p
	mustOK(t, f.handle(t, sess, "init", "initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{}, "clientInfo": map[string]string{"name": "t", "version": "0"},
	}, nil))
	return sess
}

// listedTools lists the session's tools and returns the upstream ones,
// after checking that the list starts with Mandate's own mandate__whoami.
func listedTools(t *testing.T, f *fixture, sess *Session) []string {
	t.Helper()
	var res struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	if err := json.Unmarshal(mustOK(t, f.handle(t, sess, float64(1), "tools/list", nil, nil)), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) == 0 || res.Tools[0].Name != whoamiName {
		t.Fatalf("tools/list %+v does not start with %s", res.Tools, whoamiName)
	}
	var out []string
	for _, tl := range res.Tools[1:] {
		out = append(out, tl.Name)
	}
	return out
}

func errorOf(resp *jsonrpc.Response) (int64, string) {
	var we *jsonrpc.Error
	if resp == nil || !errors.As(resp.Error, &we) {
		return 0, ""
	}
	return we.Code, we.Message
}

func echo(msg string) map[string]any {
	return map[string]any{"name": "a__echo", "arguments": map[string]any{"message": msg}}
}

// TestMandateGatesListAndCall (invariant 3): a delegated agent sees exactly
// the tools its mandate covers, may call them within the mandate's
// argument constraints, and is refused the next call after revocation.
func TestMandateGatesListAndCall(t *testing.T) {
	f, svc := enforced(t)
	sess := f.sessionAs(t, alice)

	if got := listedTools(t, f, sess); len(got) != 0 {
		t.Fatalf("without a mandate tools/list = %v, want nothing", got)
	}
	// The tool was not listed, so the session may not call it.
	code, msg := errorOf(f.handle(t, sess, float64(2), "tools/call", echo("hi"), nil))
	if code != codeDenied || msg != msgNotShown {
		t.Fatalf("call without a mandate: %d %q", code, msg)
	}
	// A stateless request has no list to check; the mandate decides.
	code, msg = errorOf(f.handle(t, f.stateless(t, alice, nil), float64(2), "tools/call", echo("hi"), nil))
	if code != codeDenied || !strings.Contains(msg, "no mandate covers this call") {
		t.Fatalf("stateless call without a mandate: %d %q", code, msg)
	}

	m, err := svc.Grant(context.Background(), consent.Spec{
		User: "alice", Agent: "agent-a", Purpose: "test", ExpiresAt: time.Now().Add(time.Hour), Uses: consent.Unlimited,
		Grants: []consent.Grant{{Upstream: "a", Tool: "echo", Constraints: []consent.Constraint{{Arg: "message", Prefix: "ok"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(listedTools(t, f, sess), ","); got != "a__echo" {
		t.Fatalf("with a mandate for echo tools/list = %s", got)
	}
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", echo("ok, go"), nil))
	if code, msg := errorOf(f.handle(t, sess, float64(4), "tools/call", echo("not ok"), nil)); code != codeDenied || !strings.Contains(msg, "message") {
		t.Fatalf("call breaking the constraint: %d %q", code, msg)
	}
	if code, _ := errorOf(f.handle(t, sess, float64(5), "tools/call", map[string]any{"name": "a__add", "arguments": map[string]any{"a": 1, "b": 2}}, nil)); code != codeDenied {
		t.Fatalf("call of a tool outside the mandate: %d", code)
	}

	// Another agent of the same user has no mandate of its own.
	bob := *alice
	bob.Agent = "agent-b"
	if got := listedTools(t, f, f.sessionAs(t, &bob)); len(got) != 0 {
		t.Fatalf("another agent sees %v", got)
	}

	if _, err := svc.Revoke(context.Background(), m.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if code, msg := errorOf(f.handle(t, sess, float64(6), "tools/call", echo("ok again"), nil)); code != codeDenied || !strings.Contains(msg, "revoked") {
		t.Fatalf("call after revocation: %d %q", code, msg)
	}
}

// TestAutonomousAgentNeedsPolicy: under the default policy an agent acting
// for nobody gets nothing unless a policy names it.
func TestAutonomousAgentNeedsPolicy(t *testing.T) {
	f, _ := enforced(t)
	bot := &identity.Principal{Issuer: "test", Agent: "ci-bot", Method: identity.MethodClientCredentials}
	sess := f.sessionAs(t, bot)
	if got := listedTools(t, f, sess); len(got) != 0 {
		t.Fatalf("tools/list = %v", got)
	}
	if code, _ := errorOf(f.handle(t, sess, float64(2), "tools/call", echo("hi"), nil)); code != codeDenied {
		t.Fatalf("call: %d", code)
	}
}

// TestNoPolicyDeniesEverything (invariant 1): a gateway built without a
// policy refuses every request but ping.
func TestNoPolicyDeniesEverything(t *testing.T) {
	f := newFixture(t, 50, demoUp("a"))
	f.g.opts.Policy = nil
	sess := f.g.NewSession("s", "c")
	sess.Principal = identity.Local()
	if code, _ := errorOf(f.handle(t, sess, float64(1), "initialize", map[string]any{"protocolVersion": "2025-11-25"}, nil)); code != codeDenied {
		t.Fatalf("initialize without a policy: %d", code)
	}
	mustOK(t, f.handle(t, sess, float64(2), "ping", nil, nil))
}

type failingMandates struct{ MandateMatcher }

func (failingMandates) Match(context.Context, *identity.Principal, string, string, map[string]any) (consent.Match, error) {
	return consent.Match{}, store.ErrClosed
}

func (failingMandates) Active(context.Context, *identity.Principal) ([]consent.Mandate, error) {
	return nil, store.ErrClosed
}

// TestMandateLookupFailureDenies (invariant 1): when mandates cannot be
// read, lists and calls are refused, never treated as covered.
func TestMandateLookupFailureDenies(t *testing.T) {
	f, svc := enforced(t)
	grant(t, svc, "alice", "agent-a", "echo")
	sess := f.sessionAs(t, alice)
	listedTools(t, f, sess)
	f.g.opts.Mandates = failingMandates{}
	if code, _ := errorOf(f.handle(t, sess, float64(1), "tools/list", nil, nil)); code != codeDenied {
		t.Fatalf("tools/list: %d", code)
	}
	if code, msg := errorOf(f.handle(t, sess, float64(2), "tools/call", echo("ok"), nil)); code != codeDenied || !strings.Contains(msg, "could not be checked") {
		t.Fatalf("tools/call: %d %q", code, msg)
	}
}

// grant gives agent a mandate of user for tool of upstream a.
func grant(t *testing.T, svc *consent.Service, user, agent, tool string) consent.Mandate {
	t.Helper()
	m, err := svc.Grant(context.Background(), consent.Spec{
		User: user, Agent: agent, Purpose: "test", ExpiresAt: time.Now().Add(time.Hour), Uses: consent.Unlimited,
		Grants: []consent.Grant{{Upstream: "a", Tool: tool}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stateless returns a session for stateless-era (2026-07-28) requests of p
// from a client with capabilities caps.
func (f *fixture) stateless(t *testing.T, p *identity.Principal, caps map[string]any) *Session {
	t.Helper()
	if caps == nil {
		caps = map[string]any{}
	}
	sess := f.g.NewEphemeral("c")
	sess.Principal = p
	params := rawParams(t, map[string]any{"_meta": map[string]any{
		"io.modelcontextprotocol/protocolVersion":    "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": caps,
	}})
	if err := f.g.BeginModern(sess, params, "2026-07-28"); err != nil {
		t.Fatal(err)
	}
	return sess
}

// sessionWith opens a session of p negotiating version with the client
// capabilities caps.
func (f *fixture) sessionWith(t *testing.T, p *identity.Principal, version string, caps map[string]any) *Session {
	t.Helper()
	sess := f.g.NewSession("s", "c")
	sess.Principal = p
	mustOK(t, f.handle(t, sess, "init", "initialize", map[string]any{
		"protocolVersion": version, "capabilities": caps, "clientInfo": map[string]string{"name": "t", "version": "0"},
	}, nil))
	return sess
}

// consentData is the data of a refusal for want of a mandate.
type consentData struct {
	ConsentURL string `json:"consentUrl"`
	Reason     string `json:"reason"`
}

func errorData[T any](t *testing.T, resp *jsonrpc.Response, code int64) T {
	t.Helper()
	e := wantError(t, resp, code)
	var v T
	if len(e.Data) == 0 {
		t.Fatalf("error %d %q has no data", e.Code, e.Message)
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("error data %s: %v", e.Data, err)
	}
	return v
}

const consentPage = "https://mandate.example/consent"

// TestConsentURLOnMissingMandate: a delegated call no mandate covers is
// refused with a link to the consent page naming the agent and the public
// tool name, URL-escaped; after the user grants, the same session's retry
// succeeds.
func TestConsentURLOnMissingMandate(t *testing.T) {
	f, svc := enforced(t)
	f.g.opts.ConsentURL = consentPage
	p := *alice
	p.Agent = "agent a&b=c/d"
	sess := f.sessionAs(t, &p)
	m := grant(t, svc, "alice", p.Agent, "echo")
	listedTools(t, f, sess)
	if _, err := svc.Revoke(context.Background(), m.ID, "alice"); err != nil {
		t.Fatal(err)
	}

	wantURL := consentPage + "?agent=agent+a%26b%3Dc%2Fd&tool=a__echo"
	d := errorData[consentData](t, f.handle(t, sess, float64(1), "tools/call", echo("hi"), nil), codeDenied)
	if d.ConsentURL != wantURL || !strings.Contains(d.Reason, "revoked") {
		t.Errorf("data = %+v, want consentUrl %s and a revocation", d, wantURL)
	}

	d = errorData[consentData](t, f.handle(t, f.stateless(t, &p, nil), float64(2), "tools/call", map[string]any{"name": "a__add", "arguments": map[string]any{"a": 1, "b": 2}}, nil), codeDenied)
	if d.ConsentURL != consentPage+"?agent=agent+a%26b%3Dc%2Fd&tool=a__add" || d.Reason != (consent.NoMandate{}).String() {
		t.Errorf("stateless data = %+v", d)
	}

	grant(t, svc, "alice", p.Agent, "echo")
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", echo("hi again"), nil))
}

// TestNoConsentURLWhenConsentWouldNotHelp: no link for a call that fails
// a mandate's constraints, and none without a consent page.
func TestNoConsentURLWhenConsentWouldNotHelp(t *testing.T) {
	f, svc := enforced(t)
	f.g.opts.ConsentURL = consentPage
	if _, err := svc.Grant(context.Background(), consent.Spec{
		User: "alice", Agent: "agent-a", Purpose: "test", ExpiresAt: time.Now().Add(time.Hour), Uses: consent.Unlimited,
		Grants: []consent.Grant{{Upstream: "a", Tool: "echo", Constraints: []consent.Constraint{{Arg: "message", Prefix: "ok"}}}},
	}); err != nil {
		t.Fatal(err)
	}
	sess := f.sessionAs(t, alice)
	listedTools(t, f, sess)
	if e := wantError(t, f.handle(t, sess, float64(1), "tools/call", echo("not ok"), nil), codeDenied); len(e.Data) != 0 {
		t.Errorf("constraint failure carries data %s", e.Data)
	}

	f.g.opts.ConsentURL = ""
	if e := wantError(t, f.handle(t, f.stateless(t, alice, nil), float64(2), "tools/call", echo("hi"), nil), codeDenied); len(e.Data) != 0 {
		t.Errorf("refusal without a consent page carries data %s", e.Data)
	}
}

// TestURLElicitationRequired (C-07, B-07): a 2025-11-25 client that
// declared URL-mode elicitation gets URLElicitationRequiredError; a client
// without it, an older session and a 2026-07-28 client never get -32042.
// The 2026-07-28 client that declared URL mode is asked through an
// input_required result instead (C-10), one without it gets the plain
// refusal.
func TestURLElicitationRequired(t *testing.T) {
	f, svc := enforced(t)
	f.g.opts.ConsentURL = consentPage
	urlCaps := map[string]any{"elicitation": map[string]any{"form": map[string]any{}, "url": map[string]any{}}}
	wantURL := consentPage + "?agent=agent-a&tool=a__echo"

	sessions := map[string]*Session{
		"2025-11-25 url":  f.sessionWith(t, alice, "2025-11-25", urlCaps),
		"2025-11-25 form": f.sessionWith(t, alice, "2025-11-25", map[string]any{"elicitation": map[string]any{}}),
		"2025-06-18 url":  f.sessionWith(t, alice, "2025-06-18", urlCaps),
	}
	m := grant(t, svc, "alice", "agent-a", "echo")
	for _, s := range sessions {
		listedTools(t, f, s)
	}
	if _, err := svc.Revoke(context.Background(), m.ID, "alice"); err != nil {
		t.Fatal(err)
	}

	type elicitations struct {
		Elicitations []struct {
			Mode, ElicitationID, URL, Message string
		} `json:"elicitations"`
	}
	d := errorData[elicitations](t, f.handle(t, sessions["2025-11-25 url"], float64(1), "tools/call", echo("hi"), nil), -32042)
	if len(d.Elicitations) != 1 {
		t.Fatalf("elicitations = %+v", d.Elicitations)
	}
	if e := d.Elicitations[0]; e.Mode != "url" || e.ElicitationID == "" || e.URL != wantURL || e.Message == "" {
		t.Errorf("elicitation = %+v", e)
	}
	d2 := errorData[elicitations](t, f.handle(t, sessions["2025-11-25 url"], float64(2), "tools/call", echo("hi"), nil), -32042)
	if d2.Elicitations[0].ElicitationID == d.Elicitations[0].ElicitationID {
		t.Error("two refusals share an elicitationId")
	}

	for _, name := range []string{"2025-11-25 form", "2025-06-18 url"} {
		if d := errorData[consentData](t, f.handle(t, sessions[name], float64(3), "tools/call", echo("hi"), nil), codeDenied); d.ConsentURL != wantURL {
			t.Errorf("%s: data = %+v", name, d)
		}
	}
	modern := f.stateless(t, alice, urlCaps)
	if ask := inputRequiredOf(t, f.handle(t, modern, float64(4), "tools/call", echo("hi"), nil), consentInputKey); ask.Params.Mode != "url" || ask.Params.URL != wantURL {
		t.Errorf("2026-07-28 url: input request = %+v", ask)
	}
	formOnly := f.stateless(t, alice, map[string]any{"elicitation": map[string]any{}})
	if d := errorData[consentData](t, f.handle(t, formOnly, float64(5), "tools/call", echo("hi"), nil), codeDenied); d.ConsentURL != wantURL {
		t.Errorf("2026-07-28 form: data = %+v", d)
	}
}

// recordingPolicy passes decisions to a real policy and keeps the requests.
type recordingPolicy struct {
	PolicyDecider
	mu   sync.Mutex
	reqs []policy.Request
}

func (r *recordingPolicy) DecideContext(ctx context.Context, q policy.Request) policy.Decision {
	r.mu.Lock()
	r.reqs = append(r.reqs, q)
	r.mu.Unlock()
	return r.PolicyDecider.DecideContext(ctx, q)
}

func (r *recordingPolicy) last() policy.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs[len(r.reqs)-1]
}

// TestIntentReachesEveryItemDecision: the purpose an agent declares under
// _meta dev.mandate/intent is the decision's Intent for every item call.
func TestIntentReachesEveryItemDecision(t *testing.T) {
	f := newDefaultFixture(t)
	rec := &recordingPolicy{PolicyDecider: f.g.opts.Policy}
	f.g.opts.Policy = rec
	sess := f.caller(t, "s")
	meta := `"_meta":{"dev.mandate/intent":"triage ticket 42"}`
	tests := []struct{ method, params string }{
		{"tools/call", `{"name":"a__echo","arguments":{"message":"x"},` + meta + `}`},
		{"prompts/get", `{"name":"a__greet","arguments":{"name":"Ada"},` + meta + `}`},
		{"resources/read", `{"uri":"mandate://a/demo://readme",` + meta + `}`},
		{"resources/subscribe", `{"uri":"mandate://a/demo://readme",` + meta + `}`},
		{"completion/complete", `{"ref":{"type":"ref/prompt","name":"c__topic"},"argument":{"name":"kind","value":"x"},` + meta + `}`},
	}
	for i, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			// The upstream's answer does not matter (demo servers do not
			// all support subscriptions); the decision was made first.
			if code, msg := errorOf(f.handle(t, sess, float64(i+1), tt.method, tt.params, nil)); code == codeDenied {
				t.Fatalf("denied: %s", msg)
			}
			if got := rec.last(); got.Method != tt.method || got.Intent != "triage ticket 42" {
				t.Errorf("decided %s with intent %q", got.Method, got.Intent)
			}
		})
	}
}

// TestPolicyRequiresIntent: a policy may require a declared intent for
// chosen tools through context.intent.
//
// The requests are stateless: policy.Visible decides a list with the
// intent as given (empty at list time), so such a forbid also hides the
// tool from tools/list, and a session that must list before calling could
// never call it. That is a limitation of visibility, not of the decision.
func TestPolicyRequiresIntent(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	snap, problems := policy.Compile(map[string][]byte{
		"allow.cedar": []byte(`@id("allow-all") permit (principal, action, resource);`),
		"intent.cedar": []byte(`@id("add-needs-intent")
forbid (principal, action == Action::"tools/call", resource == Tool::"a/add")
when { context.intent == "" };`),
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	f.g.opts.Policy = policy.NewEngine(snap)
	sess := f.stateless(t, identity.Local(), nil)
	add := func(meta string) string { return `{"name":"a__add","arguments":{"a":1,"b":2}` + meta + `}` }

	wantError(t, f.handle(t, sess, float64(1), "tools/call", add(""), nil), codeDenied)
	wantError(t, f.handle(t, sess, float64(2), "tools/call", add(`,"_meta":{"dev.mandate/intent":""}`), nil), codeDenied)
	mustOK(t, f.handle(t, sess, float64(3), "tools/call", add(`,"_meta":{"dev.mandate/intent":"sum the invoice lines"}`), nil))
	// Tools the policy does not name need no intent.
	mustOK(t, f.handle(t, sess, float64(4), "tools/call", echo("hi"), nil))
}
