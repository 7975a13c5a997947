package policy

import (
	"testing"

	"github.com/mandate-mcp/mandate/internal/identity"
)

func TestExamplePoliciesValidate(t *testing.T) {
	for _, name := range []string{"default.cedar", "local/allow-all.cedar"} {
		if _, problems := Compile(exampleFiles(t, name)); len(problems) > 0 {
			t.Errorf("%s: %v", name, problems)
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	s, problems := Compile(exampleFiles(t, "default.cedar"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	mandated := func(r Request) Request { r.Mandate = MandateRef{ID: "m1", Covered: true}; return r }
	destructive := func(r Request) Request { r.Annotations.Destructive = true; return r }
	tests := []struct {
		name   string
		req    Request
		effect Effect
	}{
		{"delegated with mandate", mandated(call(alice, "github", "create_issue", nil)), Allow},
		{"delegated without mandate", call(alice, "github", "create_issue", nil), Deny},
		{"destructive needs approval", mandated(destructive(call(alice, "github", "delete_repo", nil))), NeedsApproval},
		{"destructive without mandate", destructive(call(alice, "github", "delete_repo", nil)), Deny},
		{"autonomous agent is not named", call(robot, "github", "list_issues", nil), Deny},
		{"autonomous agent cannot borrow a mandate", mandated(call(robot, "github", "list_issues", nil)), Deny},
		{"prompt under mandate", mandated(Request{Principal: alice, Method: "prompts/get",
			Target: Target{Kind: KindPrompt, Upstream: "docs", Name: "p"}}), Allow},
		{"session opens", Request{Principal: robot, Method: "initialize", Target: Target{Kind: KindServer}}, Allow},
		{"list as a whole", Request{Principal: robot, Method: "tools/list", Target: Target{Kind: KindServer, Upstream: "github"}}, Allow},
		{"unlisted tool for autonomous agent", Request{Principal: robot, Method: "tools/list",
			Target: Target{Kind: KindTool, Upstream: "github", Name: "list_issues"}}, Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := s.Decide(tt.req); d.Effect != tt.effect {
				t.Errorf("Decide = %v %v %v, want %v", d.Effect, d.Reasons, d.Errors, tt.effect)
			}
		})
	}
}

func TestAllowAllPolicy(t *testing.T) {
	s, problems := Compile(exampleFiles(t, "local/allow-all.cedar"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	local := identity.Local()
	for m, info := range methods {
		kind := info.kinds[0]
		r := Request{Principal: local, Method: m, Target: Target{Kind: kind, Upstream: "fs", Name: "x"}}
		if d := s.Decide(r); d.Effect != Allow {
			t.Errorf("%s: %v %v", m, d.Effect, d.Errors)
		}
	}
	if d := s.Decide(Request{Principal: local, Method: "tools/delete"}); d.Effect != Deny {
		t.Errorf("allow-all allowed an unknown method")
	}
}
