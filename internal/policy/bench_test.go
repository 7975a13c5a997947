package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/benchstat"
	"github.com/mandate-mcp/mandate/internal/identity"
)

func BenchmarkDecide(b *testing.B) {
	s, problems := Compile(exampleFiles(b, "default.cedar"))
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	r := call(alice, "github", "create_issue", map[string]any{"repo": "mandate", "title": "x", "labels": []any{"bug"}})
	r.Mandate = MandateRef{ID: "m1", Covered: true}
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Decide(r); d.Effect != Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkVisible(b *testing.B) {
	s, problems := Compile(exampleFiles(b, "default.cedar"))
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	r := Request{Principal: alice, Target: Target{Kind: KindTool, Upstream: "github", Name: "create_issue"},
		Mandate: MandateRef{ID: "m1", Covered: true}}
	b.ReportAllocs()
	for b.Loop() {
		if !s.Visible(r) {
			b.Fatal("not visible")
		}
	}
}

// BenchmarkDecide1000Policies is target (a)'s policy half: one tools/call
// decision against an organisation's 1,000 policies (OrgPolicies), which
// must stay within 20 µs at the median and 100 µs at p99 together with the
// mandate lookup.
func BenchmarkDecide1000Policies(b *testing.B) {
	s := mustCompileFiles(b, OrgPolicies(1000))
	r := OrgCall()
	if d := s.Decide(r); d.Effect != Allow {
		b.Fatalf("the benchmark's call is not allowed: %+v", d)
	}
	var lat benchstat.Latencies
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		d := s.Decide(r)
		lat.Add(time.Since(t))
		if d.Effect != Allow {
			b.Fatal(d)
		}
	}
	lat.Report(b)
}

// BenchmarkVisible500Tools is target (b): filtering a list of 500 tools,
// one Visible question each through Engine.VisibleAll, must take at most
// 3 ms. It runs against the built-in default policy and against the
// organisation's 1,000 policies.
func BenchmarkVisible500Tools(b *testing.B) {
	def, err := Builtin(BuiltinDefault)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		snap *Snapshot
	}{
		{"default", def},
		{"1000policies", mustCompileFiles(b, OrgPolicies(1000))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := NewEngine(tc.snap)
			reqs := OrgListing(500)
			ok, err := e.VisibleAll(context.Background(), reqs)
			if err != nil {
				b.Fatal(err)
			}
			if n := visibleCount(ok); n == 0 || n == len(ok) {
				b.Fatalf("%d of %d tools visible: the listing filters nothing", n, len(ok))
			}
			var lat benchstat.Latencies
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				_, err := e.VisibleAll(context.Background(), reqs)
				lat.Add(time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.Report(b)
		})
	}
}

func visibleCount(ok []bool) int {
	n := 0
	for _, v := range ok {
		if v {
			n++
		}
	}
	return n
}

func mustCompileFiles(tb testing.TB, files map[string][]byte) *Snapshot {
	tb.Helper()
	s, problems := Compile(files)
	if len(problems) > 0 {
		tb.Fatalf("Compile: %d problems, first %v", len(problems), problems[0])
	}
	return s
}

// The organisation OrgPolicies describes: upstreams svc-00…svc-39 offering
// the tools of orgTools, teams team-00…team-59, delegated agents
// agent-00…agent-79 and autonomous bots bot-00…bot-39.
const (
	orgUpstreams = 40
	orgTeams     = 60
	orgAgents    = 80
	orgBots      = 40
)

var orgTools = func() []string {
	var out []string
	for _, verb := range []string{"list", "get", "create", "update", "delete", "search", "export", "archive", "assign", "close"} {
		for _, noun := range []string{"issues", "files", "users", "reports", "tickets"} {
			out = append(out, verb+"_"+noun)
		}
	}
	return out
}()

// The call OrgCall makes and the policy that allows it.
const (
	orgUser     = "u-0001"
	orgAgent    = "agent-12"
	orgTeam     = "team-07"
	orgUpstream = "svc-07"
	orgTool     = "list_issues"
)

// OrgPolicies returns n valid policies of the kind an organisation writes
// against the shipped schema — per-team upstream grants under a mandate,
// per-bot tool grants, argument-constrained grants, forbids on destructive
// or open-world tools, approval for high-risk ones, intent requirements,
// time windows — spread over many distinct upstreams, tools, teams and
// agents, so that a decision cannot be answered by a handful of policies.
// The set is the same on every run. Policy 0 lets anyone open a session;
// the last lets orgTeam use orgUpstream under a mandate, which is what
// allows OrgCall.
func OrgPolicies(n int) map[string][]byte {
	r := rand.New(rand.NewPCG(1, 1000))
	up := func() string { return fmt.Sprintf("svc-%02d", r.IntN(orgUpstreams)) }
	team := func() string { return fmt.Sprintf("team-%02d", r.IntN(orgTeams)) }
	agent := func() string { return fmt.Sprintf("agent-%02d", r.IntN(orgAgents)) }
	bot := func() string { return fmt.Sprintf("bot-%02d", r.IntN(orgBots)) }
	tool := func() string { return orgTools[r.IntN(len(orgTools))] }

	var b strings.Builder
	b.WriteString(`@id("session")
permit (principal, action in [Action::"initialize", Action::"server/discover", Action::"logging/setLevel",
  Action::"subscriptions/listen", Action::"tools/list", Action::"prompts/list", Action::"resources/list",
  Action::"resources/templates/list", Action::"tasks/get", Action::"tasks/list", Action::"tasks/result",
  Action::"tasks/cancel"], resource);
`)
	for i := 1; i < n-1; i++ {
		fmt.Fprintf(&b, "@id(\"p%04d\")\n", i)
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "permit (principal == Agent::%q, action == Action::\"tools/call\", resource == Tool::%q);\n",
				bot(), up()+"/"+tool())
		case 1:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"tools/call\", resource in Upstream::%q)\n"+
				"when { context.mandate.covered && context.scopes.contains(\"mcp:tools\") };\n", team(), up())
		case 2:
			fmt.Fprintf(&b, "forbid (principal is User, action == Action::\"tools/call\", resource in Upstream::%q)\n"+
				"when { context.annotations.destructive } unless { principal in Group::%q };\n", up(), team())
		case 3:
			fmt.Fprintf(&b, "permit (principal is User, action == Action::\"tools/call\", resource == Tool::%q)\n"+
				"when { context.agent == Agent::%q && context.args.hasTag(\"repo\") && context.args.getTag(\"repo\") like \"org-%02d/*\" };\n",
				up()+"/"+tool(), agent(), r.IntN(orgTeams))
		case 4:
			fmt.Fprintf(&b, "forbid (principal, action == Action::\"tools/call\", resource)\n"+
				"when { context.agent == Agent::%q && context.sessionTainted && context.annotations.openWorld };\n", agent())
		case 5:
			fmt.Fprintf(&b, "@approval(\"required\")\npermit (principal in Group::%q, action == Action::\"tools/call\", resource in Upstream::%q)\n"+
				"when { context.mandate.covered && context.risk == \"high\" };\n", team(), up())
		case 6:
			fmt.Fprintf(&b, "permit (principal in Group::%q, action == Action::\"prompts/get\", resource in Upstream::%q);\n", team(), up())
		case 7:
			fmt.Fprintf(&b, "permit (principal is User, action in [Action::\"resources/read\", Action::\"resources/subscribe\"], resource in Upstream::%q)\n"+
				"when { principal.email like \"*@dept-%02d.example.com\" };\n", up(), r.IntN(orgTeams))
		case 8:
			fmt.Fprintf(&b, "forbid (principal, action == Action::\"tools/call\", resource == Tool::%q)\nwhen { context.intent == \"\" };\n",
				up()+"/"+tool())
		case 9:
			fmt.Fprintf(&b, "forbid (principal == Agent::%q, action, resource)\n"+
				"unless { context.time >= datetime(\"2026-01-01T00:00:00Z\") && context.time < datetime(\"2027-01-01T00:00:00Z\") };\n", bot())
		}
	}
	fmt.Fprintf(&b, "@id(\"team-07-svc-07\")\npermit (principal in Group::%q, action == Action::\"tools/call\", resource in Upstream::%q)\n"+
		"when { context.mandate.covered && context.scopes.contains(\"mcp:tools\") };\n", orgTeam, orgUpstream)
	return map[string][]byte{"org.cedar": []byte(b.String())}
}

// OrgPrincipal is the delegated principal of OrgCall: a member of orgTeam
// acting through orgAgent.
func OrgPrincipal() *identity.Principal {
	return &identity.Principal{
		Issuer: "https://idp.example", User: orgUser, Email: "u-0001@dept-07.example.com",
		Groups: []string{"team-33", orgTeam, "all-staff"}, Agent: orgAgent,
		Scopes: []string{"mcp:tools", "mcp:prompts", "mcp:resources"}, Method: identity.MethodExternal,
	}
}

// OrgCall is a covered tools/call of orgTool on orgUpstream by OrgPrincipal,
// allowed by OrgPolicies.
func OrgCall() Request {
	return Request{
		Principal: OrgPrincipal(), Method: "tools/call",
		Target:  Target{Kind: KindTool, Upstream: orgUpstream, Name: orgTool},
		Args:    map[string]any{"repo": "org-07/api", "state": "open", "limit": 50},
		Mandate: MandateRef{ID: "mnd_bench", Covered: true},
		Intent:  "triage this week's issues",
		Time:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// OrgListing is the listing of n tools for OrgPrincipal: the tools of
// orgTools on upstreams svc-00, svc-01, … in turn, with the annotations an
// upstream sends (readOnly for list/get/search, destructive for
// delete/archive) and orgUpstream's tools covered by a mandate.
func OrgListing(n int) []Request {
	p := OrgPrincipal()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]Request, n)
	for i := range out {
		name := orgTools[i%len(orgTools)]
		upstream := fmt.Sprintf("svc-%02d", (7+i/len(orgTools))%orgUpstreams)
		verb, _, _ := strings.Cut(name, "_")
		out[i] = Request{
			Principal: p, Method: "tools/call",
			Target: Target{Kind: KindTool, Upstream: upstream, Name: name},
			Annotations: Annotations{
				ReadOnly:    verb == "list" || verb == "get" || verb == "search",
				Destructive: verb == "delete" || verb == "archive",
				OpenWorld:   verb == "export",
			},
			Mandate: MandateRef{Covered: upstream == orgUpstream},
			Time:    at,
		}
	}
	return out
}
