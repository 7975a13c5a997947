package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// The listing rule: a tool is listed for a principal exactly when some call
// of it could be allowed. Visible over-approximates the allowed calls, so
// the property has two faces, checked over generated policy sets,
// principals, tools and argument maps:
//
//  1. if Visible is false, Decide for tools/call denies for every argument map;
//  2. if some generated call is allowed (or needs approval), Visible is true.
//
// The generated conditions cover principal groups and type, the agent and
// its trust level, tool names and upstreams, annotations, the mandate,
// taint, and arguments (guarded tags of args, numbers and decimals: like,
// ==, numeric and decimal comparisons, negated and combined).

var (
	propGroups    = []string{"eng", "ops", "sales"}
	propAgents    = []string{"claude", "cursor", "bot"}
	propUpstreams = []string{"github", "fs"}
	propTools     = []string{"read", "write", "delete"}
	propArgKeys   = []string{"path", "n", "amount"}
	propArgValues = []any{"/tmp/a", "/etc/passwd", "x", 1, 2, true, "2",
		0.0, 1.5, 100.0, 150.0, -3.0, 9.99, 0.00001, float64(1 << 53), 1e300}
	propTrust   = []string{"", "untrusted", "standard", "trusted"}
	propCompare = []string{"<", "<=", ">", ">=", "==", "!="}
	propDecimal = []string{"lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func genAtom(r *rand.Rand) string {
	switch r.IntN(16) {
	case 0:
		return fmt.Sprintf(`principal in Group::%q`, pick(r, propGroups))
	case 1:
		return fmt.Sprintf(`(principal is User && principal.groups.contains(%q))`, pick(r, propGroups))
	case 2:
		return fmt.Sprintf(`context.agent == Agent::%q`, pick(r, propAgents))
	case 3:
		return fmt.Sprintf(`(resource is Tool && resource.name == %q)`, pick(r, propTools))
	case 4:
		return fmt.Sprintf(`resource in Upstream::%q`, pick(r, propUpstreams))
	case 5:
		return pick(r, []string{"context.annotations.destructive", "context.annotations.readOnly", "context.annotations.openWorld"})
	case 6:
		return pick(r, []string{"context.mandate.covered", "context.sessionTainted", "context.delegated"})
	case 7:
		k := pick(r, propArgKeys)
		return fmt.Sprintf(`(context.args.hasTag(%q) && context.args.getTag(%q) like "/tmp/*")`, k, k)
	case 8:
		k := pick(r, propArgKeys)
		return fmt.Sprintf(`(context.args.hasTag(%q) && context.args.getTag(%q) == %q)`, k, k, pick(r, []string{"1", "2", "x", "/etc/passwd"}))
	case 9:
		return fmt.Sprintf(`context.args.hasTag(%q)`, pick(r, propArgKeys))
	case 10:
		return `context.risk == "high"`
	case 11:
		k := pick(r, propArgKeys)
		return fmt.Sprintf(`(context.numbers.hasTag(%q) && context.numbers.getTag(%q) %s %d)`,
			k, k, pick(r, propCompare), pick(r, []int{-1, 0, 1, 2, 100, 150}))
	case 12:
		k := pick(r, propArgKeys)
		return fmt.Sprintf(`(context.decimals.hasTag(%q) && context.decimals.getTag(%q).%s(decimal(%q)))`,
			k, k, pick(r, propDecimal), pick(r, []string{"0.0", "1.5", "9.99", "100.0", "-2.5"}))
	case 13:
		return fmt.Sprintf(`context.numbers.hasTag(%q)`, pick(r, propArgKeys))
	case 14:
		return fmt.Sprintf(`context.agent.trust == %q`, pick(r, propTrust[1:]))
	default:
		if r.IntN(2) == 0 {
			return fmt.Sprintf(`(principal is Agent && principal.trust == %q)`, pick(r, propTrust[1:]))
		}
		return "true"
	}
}

func genExpr(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		a := genAtom(r)
		if r.IntN(4) == 0 {
			return "!(" + a + ")"
		}
		return a
	}
	op := pick(r, []string{"&&", "||"})
	return fmt.Sprintf("(%s %s %s)", genExpr(r, depth-1), op, genExpr(r, depth-1))
}

func genPolicy(r *rand.Rand, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "@id(\"p%d\")\n", i)
	effect := "permit"
	if r.IntN(3) == 0 {
		effect = "forbid"
	} else if r.IntN(4) == 0 {
		b.WriteString("@approval(\"required\")\n")
	}
	principal := pick(r, []string{"principal", "principal is User", "principal is Agent",
		fmt.Sprintf("principal in Group::%q", pick(r, propGroups)),
		fmt.Sprintf("principal == Agent::%q", pick(r, propAgents))})
	action := pick(r, []string{`action == Action::"tools/call"`, "action",
		`action in [Action::"tools/call", Action::"prompts/get"]`})
	resource := pick(r, []string{"resource",
		fmt.Sprintf("resource in Upstream::%q", pick(r, propUpstreams)),
		fmt.Sprintf("resource == Tool::\"%s/%s\"", pick(r, propUpstreams), pick(r, propTools))})
	fmt.Fprintf(&b, "%s (%s, %s, %s)", effect, principal, action, resource)
	for range r.IntN(3) {
		fmt.Fprintf(&b, "\n%s { %s }", pick(r, []string{"when", "unless"}), genExpr(r, 2))
	}
	b.WriteString(";\n")
	return b.String()
}

func genPrincipal(r *rand.Rand) *identity.Principal {
	agent, trust := pick(r, propAgents), pick(r, propTrust)
	if r.IntN(3) == 0 {
		return &identity.Principal{Agent: agent, TrustLevel: trust, Method: identity.MethodClientCredentials}
	}
	var groups []string
	for _, g := range propGroups {
		if r.IntN(2) == 0 {
			groups = append(groups, g)
		}
	}
	return &identity.Principal{User: fmt.Sprintf("u%d", r.IntN(3)), Groups: groups, Agent: agent,
		TrustLevel: trust, Method: identity.MethodAuthorizationCode}
}

func genArgs(r *rand.Rand) map[string]any {
	args := map[string]any{}
	for _, k := range propArgKeys {
		if r.IntN(3) > 0 {
			args[k] = pick(r, propArgValues)
		}
	}
	return args
}

func TestPropertyListMatchesCall(t *testing.T) {
	const sets, argMapsPerItem = 400, 13
	r := rand.New(rand.NewPCG(1, 2))
	var checked, calls, visible, allowed, rejected int
	for n := range sets {
		var src strings.Builder
		for i := range 1 + r.IntN(5) {
			src.WriteString(genPolicy(r, i))
		}
		s, problems := Compile(map[string][]byte{"gen.cedar": []byte(src.String())})
		if len(problems) > 0 {
			// The generator writes only well-typed policies; a rejection
			// is a bug in it or in the validator.
			rejected++
			t.Errorf("set %d rejected: %v\n%s", n, problems, src.String())
			continue
		}
		argMaps := []map[string]any{nil}
		for range argMapsPerItem - 1 {
			argMaps = append(argMaps, genArgs(r))
		}
		for range 8 {
			req := Request{
				Principal: genPrincipal(r),
				Method:    "tools/call",
				Target:    Target{Kind: KindTool, Upstream: pick(r, propUpstreams), Name: pick(r, propTools)},
				Annotations: Annotations{Destructive: r.IntN(2) == 0, ReadOnly: r.IntN(2) == 0,
					OpenWorld: r.IntN(2) == 0, Risk: pick(r, []string{"", "high"})},
				Mandate:        MandateRef{Covered: r.IntN(2) == 0},
				SessionTainted: r.IntN(4) == 0,
				Time:           noon,
			}
			vis := s.Visible(req)
			listed := s.Decide(Request{Principal: req.Principal, Method: "tools/list", Target: req.Target,
				Annotations: req.Annotations, Mandate: req.Mandate, SessionTainted: req.SessionTainted, Time: noon})
			if vis != (listed.Effect != Deny) {
				t.Fatalf("Visible = %v but tools/list decides %v", vis, listed.Effect)
			}
			if vis {
				visible++
			}
			anyAllowed := false
			for _, args := range argMaps {
				req.Args = args
				d := s.Decide(req)
				calls++
				if d.Effect == Deny {
					continue
				}
				anyAllowed = true
				allowed++
				if !vis {
					t.Fatalf("unlisted tool called: %v with args %v for %+v on %v\npolicies:\n%s",
						d.Effect, args, *req.Principal, req.Target, src.String())
				}
			}
			if anyAllowed && !vis {
				t.Fatalf("a call is allowed but the tool is not listed")
			}
			checked++
		}
	}
	t.Logf("%d policy sets, %d (principal, tool) pairs × %d argument maps = %d calls: %d visible, %d allowed calls, %d sets rejected",
		sets, checked, argMapsPerItem, calls, visible, allowed, rejected)
	if visible == 0 || allowed == 0 || visible == checked {
		t.Errorf("generator is degenerate: %d visible, %d allowed of %d", visible, allowed, checked)
	}
	if calls < 10_000 {
		t.Errorf("only %d calls checked, want at least 10,000", calls)
	}
}
