package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
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

func listedTools(t *testing.T, f *fixture, sess *Session) []string {
	t.Helper()
	var res struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	if err := json.Unmarshal(mustOK(t, f.handle(t, sess, float64(1), "tools/list", nil, nil)), &res); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tl := range res.Tools {
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
	code, msg := errorOf(f.handle(t, sess, float64(2), "tools/call", echo("hi"), nil))
	if code != codeDenied || !strings.Contains(msg, "no mandate covers this call") {
		t.Fatalf("call without a mandate: %d %q", code, msg)
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
	f, _ := enforced(t)
	f.g.opts.Mandates = failingMandates{}
	sess := f.sessionAs(t, alice)
	if code, _ := errorOf(f.handle(t, sess, float64(1), "tools/list", nil, nil)); code != codeDenied {
		t.Fatalf("tools/list: %d", code)
	}
	if code, msg := errorOf(f.handle(t, sess, float64(2), "tools/call", echo("ok"), nil)); code != codeDenied || !strings.Contains(msg, "could not be checked") {
		t.Fatalf("tools/call: %d %q", code, msg)
	}
}
