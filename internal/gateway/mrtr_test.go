package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// The tests in this file cover multi-round-trip requests (C-10): the
// input_required results Mandate gives 2026-07-28 clients for consent and
// approval, and the verification of the requestState their retries carry.

var (
	urlCaps  = map[string]any{"elicitation": map[string]any{"form": map[string]any{}, "url": map[string]any{}}}
	formCaps = map[string]any{"elicitation": map[string]any{"form": map[string]any{}}}
)

// inputRequest is one entry of an input_required result's inputRequests.
type inputRequest struct {
	Method string `json:"method"`
	Params struct {
		Mode            string `json:"mode"`
		Message         string `json:"message"`
		URL             string `json:"url"`
		RequestedSchema struct {
			Type       string `json:"type"`
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
			Required []string `json:"required"`
		} `json:"requestedSchema"`
	} `json:"params"`
}

// askOf checks that resp is an input_required result asking exactly one
// elicitation under key with a requestState, and returns both.
func askOf(t *testing.T, resp *jsonrpc.Response, key string) (inputRequest, string) {
	t.Helper()
	res := decode[struct {
		ResultType    string                  `json:"resultType"`
		InputRequests map[string]inputRequest `json:"inputRequests"`
		RequestState  string                  `json:"requestState"`
	}](t, mustOK(t, resp))
	if res.ResultType != "input_required" || len(res.InputRequests) != 1 || res.RequestState == "" {
		t.Fatalf("result %s is not an input_required result with one input request and a state", resp.Result)
	}
	ask, ok := res.InputRequests[key]
	if !ok || ask.Method != "elicitation/create" {
		t.Fatalf("inputRequests %s has no elicitation/create under %q", resp.Result, key)
	}
	return ask, res.RequestState
}

func inputRequiredOf(t *testing.T, resp *jsonrpc.Response, key string) inputRequest {
	t.Helper()
	ask, _ := askOf(t, resp, key)
	return ask
}

// retried is call as a client retries it: the same params with the state
// echoed and the answers given (nil sends no inputResponses).
func retried(call map[string]any, state any, answers map[string]any) map[string]any {
	out := maps.Clone(call)
	out["requestState"] = state
	if answers != nil {
		out["inputResponses"] = answers
	}
	return out
}

func accepted(key string) map[string]any {
	return map[string]any{key: map[string]any{"action": "accept"}}
}

func approved(yes bool) map[string]any {
	return map[string]any{approvalInputKey: map[string]any{"action": "accept", "content": map[string]any{"approve": yes}}}
}

func (f *fixture) upstreamCalls(id string) int { return len(f.wires[id].requests("tools/call")) }

// TestConsentInputRequired: a 2026-07-28 client that declared URL-mode
// elicitation is asked for consent with an input_required result; once
// the user granted, its retry (a new id, the state echoed) is forwarded,
// without Mandate's retry fields, and answered.
func TestConsentInputRequired(t *testing.T) {
	f, svc := enforced(t)
	f.g.opts.ConsentURL = consentPage
	ask, state := askOf(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(1), "tools/call", echo("hi"), nil), consentInputKey)
	if ask.Params.Mode != "url" || ask.Params.URL != consentPage+"?agent=agent-a&tool=a__echo" || !strings.Contains(ask.Params.Message, "a__echo") {
		t.Errorf("input request = %+v", ask)
	}
	if f.upstreamCalls("a") != 0 {
		t.Fatal("the call reached the upstream before consent")
	}

	grant(t, svc, "alice", "agent-a", "echo")
	res := mustOK(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(2), "tools/call", retried(echo("hi"), state, accepted(consentInputKey)), nil))
	if got := toolText(t, res); got != "hi" {
		t.Fatalf("retry returned %q", got)
	}
	calls := f.wires["a"].requests("tools/call")
	if len(calls) != 1 {
		t.Fatalf("upstream got %d calls, want 1", len(calls))
	}
	sent := decode[map[string]json.RawMessage](t, calls[0].Params)
	for _, k := range retryFields {
		if _, ok := sent[k]; ok {
			t.Errorf("upstream was sent Mandate's %s", k)
		}
	}
}

// TestConsentRetryWithoutMandate: a retry is decided from scratch. Still
// without a mandate, a user who agreed to open the page (or did not
// answer) is asked again with a new state; one who declined or cancelled
// gets the plain refusal with the link.
func TestConsentRetryWithoutMandate(t *testing.T) {
	tests := []struct {
		name      string
		answers   map[string]any
		askAgain  bool
		wantError int64
	}{
		{"accepted", accepted(consentInputKey), true, 0},
		{"no answer", nil, true, 0},
		{"declined", map[string]any{consentInputKey: map[string]any{"action": "decline"}}, false, codeDenied},
		{"cancelled", map[string]any{consentInputKey: map[string]any{"action": "cancel"}}, false, codeDenied},
		{"malformed answer", map[string]any{consentInputKey: "yes"}, false, codeInvalidParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := enforced(t)
			f.g.opts.ConsentURL = consentPage
			_, state := askOf(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(1), "tools/call", echo("hi"), nil), consentInputKey)
			resp := f.handle(t, f.stateless(t, alice, urlCaps), float64(2), "tools/call", retried(echo("hi"), state, tc.answers), nil)
			switch {
			case tc.askAgain:
				if _, again := askOf(t, resp, consentInputKey); again == state {
					t.Error("asked again with the same state")
				}
			case tc.wantError == codeDenied:
				if d := errorData[consentData](t, resp, codeDenied); d.ConsentURL == "" {
					t.Errorf("refusal data %+v has no consent link", d)
				}
			default:
				wantError(t, resp, tc.wantError)
			}
			if f.upstreamCalls("a") != 0 {
				t.Error("an uncovered call reached the upstream")
			}
		})
	}
}

// TestRequestStateRefused (C-10): a retry whose state does not verify is
// refused with invalid params — never read as consent, even though a
// mandate now covers the call. Each case presents one of alice's states.
func TestRequestStateRefused(t *testing.T) {
	f, svc := enforced(t)
	f.g.opts.ConsentURL = consentPage
	// States are asked for before any mandate exists; then every call is
	// covered, so a state read as consent would let it through.
	var minted []string
	for range 16 {
		_, state := askOf(t, f.handle(t, f.stateless(t, alice, urlCaps), "mint", "tools/call", echo("hi"), nil), consentInputKey)
		minted = append(minted, state)
	}
	mint := func() string {
		s := minted[0]
		minted = minted[1:]
		return s
	}
	flip := func(s string) string {
		b := []byte(s)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	foreign := func() string {
		st := newState(purposeConsent, alice, "tools/call", "a", "echo", mustHash(t, map[string]any{"message": "hi"}), "", time.Now().Add(time.Minute))
		s, err := newStateSealer(nil).seal(st)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bob := *alice
	bob.Agent = "agent-b"
	carol := *alice
	carol.User = "carol"
	otherIssuer := *alice
	otherIssuer.Issuer = "elsewhere"
	for _, p := range []*identity.Principal{alice, &bob, &carol, &otherIssuer} {
		grant(t, svc, p.User, p.Agent, "echo")
		grant(t, svc, p.User, p.Agent, "add")
	}

	tests := []struct {
		name   string
		as     *identity.Principal
		method string
		params func(state string) map[string]any
		state  func() any
	}{
		{"tampered", alice, "tools/call", nil, func() any { return flip(mint()) }},
		{"truncated", alice, "tools/call", nil, func() any { s := mint(); return s[:len(s)-3] }},
		{"not base64", alice, "tools/call", nil, func() any { return "!!" + mint() }},
		{"empty", alice, "tools/call", nil, func() any { return "" }},
		{"not a string", alice, "tools/call", nil, func() any { return 42 }},
		{"sealed by another key", alice, "tools/call", nil, func() any { return foreign() }},
		{"other agent", &bob, "tools/call", nil, func() any { return mint() }},
		{"other user", &carol, "tools/call", nil, func() any { return mint() }},
		{"other issuer", &otherIssuer, "tools/call", nil, func() any { return mint() }},
		{"other arguments", alice, "tools/call", func(string) map[string]any { return echo("bye") }, func() any { return mint() }},
		{"other tool", alice, "tools/call", func(string) map[string]any {
			return map[string]any{"name": "a__add", "arguments": map[string]any{"message": "hi"}}
		}, func() any { return mint() }},
		{"other method", alice, "prompts/get", func(string) map[string]any {
			return map[string]any{"name": "a__greet", "arguments": map[string]any{"message": "hi"}}
		}, func() any { return mint() }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.upstreamCalls("a")
			state := tc.state()
			call := echo("hi")
			if tc.params != nil {
				call = tc.params("")
			}
			e := wantError(t, f.handle(t, f.stateless(t, tc.as, urlCaps), float64(i), tc.method, retried(call, state, accepted(consentInputKey)), nil), codeInvalidParams)
			if e.Message != msgInvalidState {
				t.Errorf("message %q", e.Message)
			}
			if f.upstreamCalls("a") != before {
				t.Error("a call with an invalid state reached the upstream")
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		f, svc := enforced(t)
		f.g.opts.ConsentURL = consentPage
		_, state := askOf(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(1), "tools/call", echo("hi"), nil), consentInputKey)
		grant(t, svc, "alice", "agent-a", "echo")
		f.g.states.now = func() time.Time { return time.Now().Add(consentStateTTL + time.Second) }
		e := wantError(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(2), "tools/call", retried(echo("hi"), state, accepted(consentInputKey)), nil), codeInvalidParams)
		if e.Message != msgInvalidState || f.upstreamCalls("a") != 0 {
			t.Errorf("expired state: %q, %d upstream calls", e.Message, f.upstreamCalls("a"))
		}
	})

	t.Run("replayed", func(t *testing.T) {
		f, svc := enforced(t)
		f.g.opts.ConsentURL = consentPage
		_, state := askOf(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(1), "tools/call", echo("hi"), nil), consentInputKey)
		grant(t, svc, "alice", "agent-a", "echo")
		call := retried(echo("hi"), state, accepted(consentInputKey))
		mustOK(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(2), "tools/call", call, nil))
		e := wantError(t, f.handle(t, f.stateless(t, alice, urlCaps), float64(3), "tools/call", call, nil), codeInvalidParams)
		if e.Message != msgInvalidState || f.upstreamCalls("a") != 1 {
			t.Errorf("replayed state: %q, %d upstream calls", e.Message, f.upstreamCalls("a"))
		}
	})
}

func mustHash(t *testing.T, args map[string]any) string {
	t.Helper()
	h, err := consent.ArgsHash(args)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRequestStateSharedKey: replicas sharing Options.RequestStateKey
// accept each other's states; a replica with its own key refuses them.
func TestRequestStateSharedKey(t *testing.T) {
	key := make([]byte, RequestStateKeySize)
	for i := range key {
		key[i] = byte(i)
	}
	one, _ := enforced(t)
	two, svc := enforced(t)
	three, svc3 := enforced(t)
	for _, f := range []*fixture{one, two, three} {
		f.g.opts.ConsentURL = consentPage
	}
	one.g.states, two.g.states = newStateSealer(key), newStateSealer(key)
	_, state := askOf(t, one.handle(t, one.stateless(t, alice, urlCaps), float64(1), "tools/call", echo("hi"), nil), consentInputKey)
	grant(t, svc, "alice", "agent-a", "echo")
	grant(t, svc3, "alice", "agent-a", "echo")
	call := retried(echo("hi"), state, accepted(consentInputKey))
	wantError(t, three.handle(t, three.stateless(t, alice, urlCaps), float64(2), "tools/call", call, nil), codeInvalidParams)
	mustOK(t, two.handle(t, two.stateless(t, alice, urlCaps), float64(3), "tools/call", call, nil))
}

// TestRequestStateKeyLength: a key of the wrong length is a configuration
// error New refuses loudly, never a silent per-process key.
func TestRequestStateKeyLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New accepted a 16-byte RequestStateKey")
		}
	}()
	New(Options{RequestStateKey: make([]byte, 16)})
}

// TestApprovalInputRequiredAccept: a 2026-07-28 client that declared form
// elicitation is asked to approve with an input_required result, the
// approval request is pending where every approver sees it, and the
// retry's yes lets the call through exactly once.
func TestApprovalInputRequiredAccept(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	ask, state := askOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(1), "tools/call", echo("hi"), nil), approvalInputKey)
	rec := onlyApproval(t, ap)
	if rec.Status != store.ApprovalPending {
		t.Fatalf("approval %+v is not pending", rec)
	}
	p := ask.Params
	if p.Mode != "form" || p.RequestedSchema.Type != "object" || p.RequestedSchema.Properties["approve"].Type != "boolean" ||
		len(p.RequestedSchema.Required) != 1 || p.RequestedSchema.Required[0] != "approve" {
		t.Errorf("input request = %+v", ask)
	}
	for _, want := range []string{`"agent-a"`, "a__echo", `upstream "a"`, `{"message":"hi"}`, rec.ID} {
		if !strings.Contains(p.Message, want) {
			t.Errorf("message %q does not show %s", p.Message, want)
		}
	}
	if f.upstreamCalls("a") != 0 {
		t.Fatal("the call reached the upstream before approval")
	}

	call := retried(echo("hi"), state, approved(true))
	if got := toolText(t, mustOK(t, f.handle(t, f.stateless(t, alice, formCaps), float64(2), "tools/call", call, nil))); got != "hi" {
		t.Fatalf("approved retry returned %q", got)
	}
	if rec := onlyApproval(t, ap); rec.Status != store.ApprovalUsed || rec.DecidedBy != "in-band:alice" {
		t.Errorf("approval = %+v, want used, decided in band by alice", rec)
	}
	// Exactly once: the same retry again is refused, and the call itself
	// needs a new approval.
	wantError(t, f.handle(t, f.stateless(t, alice, formCaps), float64(3), "tools/call", call, nil), codeInvalidParams)
	inputRequiredOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(4), "tools/call", echo("hi"), nil), approvalInputKey)
	if f.upstreamCalls("a") != 1 {
		t.Errorf("upstream got %d calls, want 1", f.upstreamCalls("a"))
	}
}

// TestApprovalInputRequiredAnswers: anything but an explicit yes refuses;
// a decline or a no is recorded, a cancel leaves the request pending, no
// answer asks again about the same request, a malformed one is invalid.
func TestApprovalInputRequiredAnswers(t *testing.T) {
	tests := []struct {
		name      string
		answers   map[string]any
		code      int64 // 0: asked again
		status    string
		decidedBy string
	}{
		{"decline", map[string]any{approvalInputKey: map[string]any{"action": "decline"}}, codeDenied, store.ApprovalDenied, "in-band:alice"},
		{"accept with no", approved(false), codeDenied, store.ApprovalDenied, "in-band:alice"},
		{"accept without content", map[string]any{approvalInputKey: map[string]any{"action": "accept"}}, codeDenied, store.ApprovalDenied, "in-band:alice"},
		{"cancel", map[string]any{approvalInputKey: map[string]any{"action": "cancel"}}, codeDenied, store.ApprovalPending, ""},
		{"no answer", nil, 0, store.ApprovalPending, ""},
		{"answer to another question", accepted(consentInputKey), 0, store.ApprovalPending, ""},
		{"malformed answer", map[string]any{approvalInputKey: []string{"yes"}}, codeInvalidParams, store.ApprovalPending, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, ap, _ := approvalFixture(t, time.Minute)
			_, state := askOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(1), "tools/call", echo("hi"), nil), approvalInputKey)
			id := onlyApproval(t, ap).ID
			resp := f.handle(t, f.stateless(t, alice, formCaps), float64(2), "tools/call", retried(echo("hi"), state, tc.answers), nil)
			if tc.code == 0 {
				if _, again := askOf(t, resp, approvalInputKey); again == state {
					t.Error("asked again with the same state")
				}
			} else {
				wantError(t, resp, tc.code)
			}
			rec := onlyApproval(t, ap)
			if rec.ID != id || rec.Status != tc.status || rec.DecidedBy != tc.decidedBy {
				t.Errorf("approval = %+v, want %s %s decided by %q", rec, id, tc.status, tc.decidedBy)
			}
			if f.upstreamCalls("a") != 0 {
				t.Error("a call without approval reached the upstream")
			}
		})
	}
}

// TestApprovalInputRequiredChangedArguments: the state binds the argument
// digest, so a yes cannot be carried over to other arguments.
func TestApprovalInputRequiredChangedArguments(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	_, state := askOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(1), "tools/call", echo("pay 10"), nil), approvalInputKey)
	e := wantError(t, f.handle(t, f.stateless(t, alice, formCaps), float64(2), "tools/call", retried(echo("pay 10000"), state, approved(true)), nil), codeInvalidParams)
	if e.Message != msgInvalidState {
		t.Errorf("message %q", e.Message)
	}
	if rec := onlyApproval(t, ap); rec.Status != store.ApprovalPending {
		t.Errorf("approval = %+v, want still pending", rec)
	}
	if f.upstreamCalls("a") != 0 {
		t.Error("the changed call reached the upstream")
	}
}

// TestApprovalInputRequiredOutOfBand: an approver who approves the
// pending request elsewhere (CLI) lets the retry through, whatever the
// client answered, once.
func TestApprovalInputRequiredOutOfBand(t *testing.T) {
	f, ap, _ := approvalFixture(t, time.Minute)
	_, state := askOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(1), "tools/call", echo("hi"), nil), approvalInputKey)
	id := onlyApproval(t, ap).ID
	if _, err := ap.Decide(context.Background(), id, true, "cli"); err != nil {
		t.Fatal(err)
	}
	if got := toolText(t, mustOK(t, f.handle(t, f.stateless(t, alice, formCaps), float64(2), "tools/call", retried(echo("hi"), state, nil), nil))); got != "hi" {
		t.Fatalf("retry returned %q", got)
	}
	if rec := onlyApproval(t, ap); rec.Status != store.ApprovalUsed || rec.DecidedBy != "cli" {
		t.Errorf("approval = %+v, want used, decided by cli", rec)
	}
}

// resourceApprovalPolicy wants a human's approval of every resource read
// and subscription.
const resourceApprovalPolicy = `
@id("all")
permit (principal, action, resource);

@id("resources-need-approval")
@approval("required")
permit (principal, action in [Action::"resources/read", Action::"resources/subscribe"], resource);
`

// TestInputRequiredOnlyForItemReads (C-10): resources/read may be answered
// with input_required; resources/subscribe never is, and keeps the
// out-of-band refusal.
func TestInputRequiredOnlyForItemReads(t *testing.T) {
	f, _, _ := approvalFixture(t, time.Minute)
	snap, problems := policy.Compile(map[string][]byte{"p.cedar": []byte(resourceApprovalPolicy)})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	f.g.opts.Policy = policy.NewEngine(snap)
	readme := map[string]any{"uri": "mandate://a/demo://readme"}
	ask := inputRequiredOf(t, f.handle(t, f.stateless(t, alice, formCaps), float64(1), "resources/read", readme, nil), approvalInputKey)
	if !strings.Contains(ask.Params.Message, "demo://readme") {
		t.Errorf("message %q does not name the resource", ask.Params.Message)
	}
	pendingID(t, f.handle(t, f.stateless(t, alice, formCaps), float64(2), "resources/subscribe", readme, nil))
}

// TestReplayCacheBounded: a nonce is redeemed once; a full cache sweeps
// expired nonces and otherwise refuses rather than forget one.
func TestReplayCacheBounded(t *testing.T) {
	now := time.Now()
	c := replayCache{max: 2}
	if !c.redeem("a", now.Add(time.Minute), now) || !c.redeem("b", now.Add(time.Hour), now) {
		t.Fatal("fresh nonces refused")
	}
	if c.redeem("a", now.Add(time.Minute), now) {
		t.Error("nonce redeemed twice")
	}
	if c.redeem("c", now.Add(time.Minute), now) {
		t.Error("full cache forgot an unexpired nonce")
	}
	later := now.Add(2 * time.Minute)
	if !c.redeem("c", later.Add(time.Minute), later) {
		t.Error("full cache did not sweep an expired nonce")
	}
	if c.redeem("b", later.Add(time.Minute), later) {
		t.Error("sweep forgot an unexpired nonce")
	}
}

// FuzzOpenRequestState: no input crashes open, and none but a state this
// sealer issued opens (requestState is attacker-controlled, C-10). The key
// is random per process, so a seed sealed by another fuzzing process is
// just another forgery.
func FuzzOpenRequestState(f *testing.F) {
	s := newStateSealer(nil)
	valid, err := s.seal(newState(purposeApproval, alice, "tools/call", "a", "echo", "00", "v1", time.Now().Add(time.Hour)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add(valid[:len(valid)-1])
	f.Add(valid + "A")
	f.Add(strings.Repeat("A", 200))
	f.Fuzz(func(t *testing.T, token string) {
		if _, err := s.open(token); err == nil && token != valid {
			t.Fatalf("forged state %q opened", token)
		}
	})
}
