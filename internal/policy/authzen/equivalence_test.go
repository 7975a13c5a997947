package authzen_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/policy/authzen/authzentest"
)

var allKinds = []string{policy.KindTool, policy.KindPrompt, policy.KindResource, policy.KindServer, "bogus"}

// mcpMethods are the methods an MCP session may send, and a few it may
// not.
var mcpMethods = []string{
	"tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe",
	"completion/complete", "tools/list", "prompts/list", "resources/list", "resources/templates/list",
	"initialize", "server/discover", "logging/setLevel", "subscriptions/listen",
	"tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
	"ping", "notifications/initialized", "notifications/cancelled",
	"sampling/createMessage", "elicitation/create", "roots/list", "tools/destroy", "",
}

// TestMethodsMatchCedar: with policies that allow everything, the client
// and the embedded engine allow exactly the same (method, target kind)
// pairs, so neither decision point knows a method the other denies.
func TestMethodsMatchCedar(t *testing.T) {
	cedar := policy.AllowAll()
	_, c := start(t, allowAll, nil)
	ctx := context.Background()
	for _, m := range mcpMethods {
		for _, k := range allKinds {
			r := policy.Request{Principal: alice, Method: m, Target: policy.Target{Kind: k, Upstream: "u", Name: "n"}, Time: noon}
			if k == policy.KindServer {
				r.Target.Name = ""
			}
			want := cedar.DecideContext(ctx, r).Effect
			if got := c.DecideContext(ctx, r); got.Effect != want {
				t.Errorf("%s on a %s: AuthZEN %v (%q), Cedar %v", m, k, got.Effect, got.Errors, want)
			}
		}
	}
}

// TestMandateRulesMatchDefaultCedar: authzentest.MandateRules behind the
// client decides as the built-in default Cedar policy does — effect and
// reasons of every call, and every listing — so the end-to-end scenario
// means the same against both decision points.
func TestMandateRulesMatchDefaultCedar(t *testing.T) {
	snap, err := policy.Builtin(policy.BuiltinDefault)
	if err != nil {
		t.Fatal(err)
	}
	cedar := policy.NewEngine(snap)
	_, c := start(t, authzentest.MandateRules, nil)
	ctx := context.Background()

	var reqs []policy.Request
	for _, p := range []*identity.Principal{alice, robot} {
		for _, m := range mcpMethods {
			for _, k := range allKinds {
				for _, covered := range []bool{false, true} {
					for _, destructive := range []bool{false, true} {
						reqs = append(reqs, policy.Request{
							Principal: p, Method: m,
							Target:      policy.Target{Kind: k, Upstream: "github", Name: "delete_repo"},
							Args:        map[string]any{"repo": "mandate"},
							Annotations: policy.Annotations{Destructive: destructive},
							Mandate:     policy.MandateRef{ID: "mnd_1", Covered: covered},
							Time:        noon,
						})
					}
				}
			}
		}
	}
	for _, r := range reqs {
		want, got := cedar.DecideContext(ctx, r), c.DecideContext(ctx, r)
		if got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) {
			t.Errorf("%s %s on a %s (covered %v, destructive %v): AuthZEN %v %q %q, Cedar %v %q",
				who(r.Principal), r.Method, r.Target.Kind, r.Mandate.Covered, r.Annotations.Destructive,
				got.Effect, got.Reasons, got.Errors, want.Effect, want.Reasons)
		}
	}

	want, _ := cedar.VisibleAll(ctx, reqs)
	got, err := c.VisibleAll(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if got[i] != want[i] {
			t.Errorf("%s listing a %s (covered %v, destructive %v): AuthZEN %v, Cedar %v",
				who(r.Principal), r.Target.Kind, r.Mandate.Covered, r.Annotations.Destructive, got[i], want[i])
		}
	}
}

func who(p *identity.Principal) string {
	if p.Delegated() {
		return fmt.Sprintf("user %s via %s", p.User, p.Agent)
	}
	return "agent " + p.Agent
}
