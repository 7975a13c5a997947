package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/identity"
)

const testPolicies = `
@id("eng-github")
permit (principal in Group::"eng", action == Action::"tools/call", resource in Upstream::"github")
when { context.mandate.covered };

@id("destructive-approval")
@approval("required")
permit (principal, action == Action::"tools/call", resource)
when { context.annotations.destructive && context.mandate.covered };

@id("no-tainted-open-world")
forbid (principal, action == Action::"tools/call", resource)
when { context.sessionTainted && context.annotations.openWorld };

@id("robot-reads")
permit (principal == Agent::"nightly-report", action == Action::"tools/call", resource == Tool::"github/list_issues");

@id("tmp-only")
permit (principal is User, action == Action::"tools/call", resource == Tool::"fs/write")
when { context.args.hasTag("path") && context.args.getTag("path") like "/tmp/*" };

@id("no-etc")
forbid (principal, action == Action::"tools/call", resource in Upstream::"fs")
when { context.args.hasTag("path") && context.args.getTag("path") like "/etc/*" };

@id("fs-read")
permit (principal, action == Action::"tools/call", resource == Tool::"fs/read");

@id("fs-never-for-robots")
forbid (principal is Agent, action == Action::"tools/call", resource == Tool::"fs/read");
`

func TestDecideEffects(t *testing.T) {
	s := mustCompile(t, map[string]string{"test.cedar": testPolicies})
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	covered := func(r *Request) { r.Mandate = MandateRef{ID: "m1", Covered: true} }
	tests := []struct {
		name    string
		req     Request
		effect  Effect
		reasons []string
	}{
		{"group member with mandate", with(call(alice, "github", "create_issue", nil), covered),
			Allow, []string{"eng-github"}},
		{"group member without mandate", call(alice, "github", "create_issue", nil), Deny, nil},
		{"not a group member", with(call(bob, "github", "create_issue", nil), covered), Deny, nil},
		{"destructive needs approval", with(call(alice, "github", "delete_repo", nil), func(r *Request) {
			covered(r)
			r.Annotations.Destructive = true
		}), NeedsApproval, []string{"eng-github", "destructive-approval"}},
		{"forbid wins over approval", with(call(alice, "github", "delete_repo", nil), func(r *Request) {
			covered(r)
			r.Annotations = Annotations{Destructive: true, OpenWorld: true}
			r.SessionTainted = true
		}), Deny, []string{"no-tainted-open-world"}},
		{"named agent", call(robot, "github", "list_issues", nil), Allow, []string{"robot-reads"}},
		{"agent not named for tool", call(robot, "github", "create_issue", nil), Deny, nil},
		{"argument allows", call(bob, "fs", "write", map[string]any{"path": "/tmp/x"}), Allow, []string{"tmp-only"}},
		{"argument does not allow", call(bob, "fs", "write", map[string]any{"path": "/home/x"}), Deny, nil},
		{"argument missing", call(bob, "fs", "write", nil), Deny, nil},
		{"argument forbidden", call(bob, "fs", "read", map[string]any{"path": "/etc/passwd"}), Deny, []string{"no-etc"}},
		{"forbid on principal type", call(robot, "fs", "read", nil), Deny, []string{"fs-never-for-robots"}},
		{"list visibility", Request{Principal: bob, Method: "tools/list", Target: Target{Kind: KindTool, Upstream: "fs", Name: "write"}},
			Allow, []string{"tmp-only"}},
		{"list visibility hidden", Request{Principal: robot, Method: "tools/list", Target: Target{Kind: KindTool, Upstream: "fs", Name: "read"}},
			Deny, []string{"fs-never-for-robots"}},
		{"list method as a whole has no permit", Request{Principal: bob, Method: "tools/list", Target: Target{Kind: KindServer, Upstream: "fs"}},
			Deny, nil},
		{"ping passes", Request{Method: "ping"}, Allow, nil},
		{"notification passes", Request{Method: "notifications/initialized"}, Allow, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if d.Effect != tt.effect || !slices.Equal(d.Reasons, tt.reasons) || len(d.Errors) > 0 {
				t.Errorf("Decide = %v %v %v, want %v %v", d.Effect, d.Reasons, d.Errors, tt.effect, tt.reasons)
			}
			if d.Version != s.Version() {
				t.Errorf("version %q, want %q", d.Version, s.Version())
			}
		})
	}
}

func TestVisible(t *testing.T) {
	s := mustCompile(t, map[string]string{"test.cedar": testPolicies})
	item := func(p *identity.Principal, up, name string) Request {
		return Request{Principal: p, Target: Target{Kind: KindTool, Upstream: up, Name: name}, Time: noon}
	}
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"argument-dependent permit is deferred to call time", item(bob, "fs", "write"), true},
		{"argument-dependent forbid does not hide", item(bob, "fs", "read"), true},
		{"unconditional forbid hides", item(robot, "fs", "read"), false},
		{"nothing permits", item(bob, "github", "create_issue"), false},
		{"mandate condition is not deferred", item(alice, "github", "create_issue"), false},
		{"server is not an item", Request{Principal: bob, Target: Target{Kind: KindServer, Upstream: "fs"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Visible(tt.req); got != tt.want {
				t.Errorf("Visible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFailClosedUnknownMethod(t *testing.T) {
	s := mustCompile(t, map[string]string{"all.cedar": `permit (principal, action, resource);`})
	for _, m := range []string{"tools/delete", "", "sampling/createMessage", "elicitation/create", "Tools/Call", "pingx"} {
		d := s.Decide(Request{Principal: alice, Method: m, Target: Target{Kind: KindTool, Upstream: "a", Name: "b"}})
		if d.Effect != Deny || len(d.Errors) == 0 {
			t.Errorf("%q: %v %v, want deny with error", m, d.Effect, d.Errors)
		}
	}
}

func TestFailClosedEvaluationError(t *testing.T) {
	// Cedar alone skips an erroring policy, so the permit would allow; a
	// gateway must not.
	s := mustCompile(t, map[string]string{"e.cedar": `
@id("all") permit (principal, action, resource);
@id("overflow") forbid (principal, action, resource)
when { context.sessionTainted && 9223372036854775807 + 1 > 0 };
`})
	r := call(alice, "a", "b", nil)
	if d := s.Decide(r); d.Effect != Allow {
		t.Fatalf("untainted: %v %v", d.Effect, d.Errors)
	}
	r.SessionTainted = true
	d := s.Decide(r)
	if d.Effect != Deny || !slices.Equal(d.Reasons, []string{"overflow"}) || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "overflow") {
		t.Fatalf("Decide = %v %v %v, want deny by the erroring policy", d.Effect, d.Reasons, d.Errors)
	}
}

func TestFailClosedNoSnapshot(t *testing.T) {
	var s *Snapshot
	if d := s.Decide(call(alice, "a", "b", nil)); d.Effect != Deny || len(d.Errors) == 0 {
		t.Errorf("nil snapshot: %v %v", d.Effect, d.Errors)
	}
	if s.Visible(Request{Principal: alice, Target: Target{Kind: KindTool, Upstream: "a", Name: "b"}}) {
		t.Error("nil snapshot lists a tool")
	}
	var e Engine
	if d := e.Decide(call(alice, "a", "b", nil)); d.Effect != Deny {
		t.Errorf("zero engine: %v", d.Effect)
	}
}

func TestFailClosedMappingError(t *testing.T) {
	s := mustCompile(t, map[string]string{"all.cedar": `permit (principal, action, resource);`})
	for name, r := range map[string]Request{
		"no principal":       {Method: "tools/call", Target: Target{Kind: KindTool, Upstream: "a", Name: "b"}},
		"no agent":           call(&identity.Principal{User: "u"}, "a", "b", nil),
		"wrong target kind":  {Principal: alice, Method: "tools/call", Target: Target{Kind: KindServer, Upstream: "a"}},
		"unencodable args":   call(alice, "a", "b", map[string]any{"c": make(chan int)}),
		"list of wrong kind": {Principal: alice, Method: "tools/list", Target: Target{Kind: KindPrompt, Upstream: "a", Name: "b"}},
	} {
		if d := s.Decide(r); d.Effect != Deny || len(d.Errors) == 0 {
			t.Errorf("%s: %v %v, want deny with error", name, d.Effect, d.Errors)
		}
	}
}

func TestDecideIsDeterministic(t *testing.T) {
	s := mustCompile(t, map[string]string{"test.cedar": testPolicies})
	r := call(alice, "github", "delete_repo", nil)
	r.Mandate.Covered = true
	r.Annotations.Destructive = true
	first := s.Decide(r)
	for range 50 {
		if d := s.Decide(r); d.Effect != first.Effect || !slices.Equal(d.Reasons, first.Reasons) {
			t.Fatalf("Decide changed: %v, then %v", first, d)
		}
	}
}

const numericPolicies = `
@id("small-payments")
permit (principal is User, action == Action::"tools/call", resource == Tool::"pay/transfer")
when { context.numbers.hasTag("amount") && context.numbers.getTag("amount") <= 100 };

@id("large-payments-need-approval")
@approval("required")
permit (principal is User, action == Action::"tools/call", resource == Tool::"pay/transfer")
when { context.numbers.hasTag("amount") && context.numbers.getTag("amount") > 100 };

@id("cheap-fees")
permit (principal is User, action == Action::"tools/call", resource == Tool::"pay/fee")
when {
  context.decimals.hasTag("fee") &&
  context.decimals.getTag("fee").lessThanOrEqual(decimal("9.99"))
};

@id("untrusted-never-pays")
forbid (principal, action == Action::"tools/call", resource in Upstream::"pay")
when { context.agent.trust == "untrusted" };
`

func TestDecideNumbersAndTrust(t *testing.T) {
	s := mustCompile(t, map[string]string{"pay.cedar": numericPolicies})
	standard := &identity.Principal{User: "alice", Agent: "claude", TrustLevel: identity.TrustStandard,
		Method: identity.MethodAuthorizationCode}
	untrusted := &identity.Principal{User: "alice", Agent: "dcr-client", TrustLevel: identity.TrustUntrusted,
		Method: identity.MethodAuthorizationCode}
	unknownTrust := &identity.Principal{User: "alice", Agent: "claude", Method: identity.MethodAuthorizationCode}
	tests := []struct {
		name    string
		req     Request
		effect  Effect
		reasons []string
	}{
		{"amount > 100 needs approval", call(standard, "pay", "transfer", map[string]any{"amount": 150.0}),
			NeedsApproval, []string{"large-payments-need-approval"}},
		{"amount ≤ 100 allowed", call(standard, "pay", "transfer", map[string]any{"amount": 100.0}),
			Allow, []string{"small-payments"}},
		{"amount as an int", call(standard, "pay", "transfer", map[string]any{"amount": 7}),
			Allow, []string{"small-payments"}},
		{"negative amount allowed", call(standard, "pay", "transfer", map[string]any{"amount": -5.0}),
			Allow, []string{"small-payments"}},
		{"amount missing", call(standard, "pay", "transfer", nil), Deny, nil},
		{"amount as a string is no number", call(standard, "pay", "transfer", map[string]any{"amount": "50"}), Deny, nil},
		{"fractional amount is no integer", call(standard, "pay", "transfer", map[string]any{"amount": 50.5}), Deny, nil},
		{"amount beyond exact integers is left out", call(standard, "pay", "transfer", map[string]any{"amount": 1e300}), Deny, nil},
		{"decimal fee allowed", call(standard, "pay", "fee", map[string]any{"fee": 9.99}), Allow, []string{"cheap-fees"}},
		{"integer fee compared as decimal", call(standard, "pay", "fee", map[string]any{"fee": 3.0}), Allow, []string{"cheap-fees"}},
		{"decimal fee too high", call(standard, "pay", "fee", map[string]any{"fee": 10.5}), Deny, nil},
		{"fee with five places is left out", call(standard, "pay", "fee", map[string]any{"fee": 0.00001}), Deny, nil},
		{"untrusted agent is forbidden", call(untrusted, "pay", "transfer", map[string]any{"amount": 1.0}),
			Deny, []string{"untrusted-never-pays"}},
		{"unknown trust is untrusted", call(unknownTrust, "pay", "transfer", map[string]any{"amount": 1.0}),
			Deny, []string{"untrusted-never-pays"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(tt.req)
			if d.Effect != tt.effect || !slices.Equal(d.Reasons, tt.reasons) || len(d.Errors) > 0 {
				t.Errorf("Decide = %v %v %v, want %v %v", d.Effect, d.Reasons, d.Errors, tt.effect, tt.reasons)
			}
		})
	}
	item := func(p *identity.Principal, name string) Request {
		return Request{Principal: p, Target: Target{Kind: KindTool, Upstream: "pay", Name: name}, Time: noon}
	}
	if !s.Visible(item(standard, "transfer")) || !s.Visible(item(standard, "fee")) {
		t.Error("a tool whose use depends on numeric arguments is hidden")
	}
	if s.Visible(item(untrusted, "transfer")) {
		t.Error("a tool forbidden to untrusted agents whatever the arguments is listed for one")
	}
}
