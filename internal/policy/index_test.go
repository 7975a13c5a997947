package policy

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/eval"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// Decisions evaluate only the policies the scope index returns, from
// entities built on first use, and list questions reuse what the items of
// a list share. None of that may change an answer. The tests below compare
// both decision paths with a reference that evaluates every policy whole,
// with every entity built up front, as Mandate decided before the index
// existed: cedar.Authorize over the whole set for a decision (effect,
// reasons and errors, bit for bit), and partial evaluation of every policy
// for visibility (effect, reasons and each policy's outcome).
//
// The policy sets are the property test's (genPolicy) and wider ones
// (genWidePolicy): every scope form (==, in, is, is … in, action lists),
// conditions that read the resource, the user's attributes, entity
// literals (which err when the entity is not the item asked), and a first
// conjunct on the agent (the index's fourth position).

// referenceAsk is the mapping of a Request to Cedar with every entity in
// one map, built eagerly, independently of ask.
func referenceAsk(r Request, action string, unknownArgs bool) (types.EntityMap, cedar.Request, error) {
	p := r.Principal
	if p == nil {
		return nil, cedar.Request{}, errNoPrincipal
	}
	if p.Agent == "" {
		return nil, cedar.Request{}, errNoAgent
	}
	itemType, ok := itemTypes[r.Target.Kind]
	if !ok {
		return nil, cedar.Request{}, fmt.Errorf("unknown target kind %q", r.Target.Kind)
	}
	if !slices.Contains(methods[action].kinds, r.Target.Kind) {
		return nil, cedar.Request{}, fmt.Errorf("method %s does not apply to a %s", action, r.Target.Kind)
	}
	ents := types.EntityMap{}
	req := cedar.Request{Action: types.NewEntityUID(typeAction, types.String(action))}
	agent := types.NewEntityUID(typeAgent, types.String(p.Agent))
	ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(types.RecordMap{"trust": types.String(p.Trust())})}
	req.Principal = agent
	if p.Delegated() {
		req.Principal = types.NewEntityUID(typeUser, types.String(p.User))
		var groups []types.Value
		var parents []types.EntityUID
		for _, g := range p.Groups {
			groups = append(groups, types.String(g))
			gid := types.NewEntityUID(typeGroup, types.String(g))
			parents = append(parents, gid)
			ents[gid] = types.Entity{UID: gid}
		}
		ents[req.Principal] = types.Entity{UID: req.Principal, Parents: types.NewEntityUIDSet(parents...),
			Attributes: types.NewRecord(types.RecordMap{"email": types.String(p.Email), "groups": types.NewSet(groups...)})}
	}
	upstream := types.NewEntityUID(typeUpstream, types.String(r.Target.Upstream))
	ents[upstream] = types.Entity{UID: upstream}
	req.Resource = upstream
	if r.Target.Kind != KindServer {
		req.Resource = types.NewEntityUID(itemType, types.String(r.Target.Upstream+"/"+r.Target.Name))
		ents[req.Resource] = types.Entity{UID: req.Resource, Parents: types.NewEntityUIDSet(upstream),
			Attributes: types.NewRecord(types.RecordMap{"upstream": types.String(r.Target.Upstream), "name": types.String(r.Target.Name)})}
	}
	var scopes []types.Value
	for _, s := range p.Scopes {
		scopes = append(scopes, types.String(s))
	}
	ctx := types.RecordMap{
		"agent": agent, "delegated": types.Boolean(p.Delegated()), "authMethod": types.String(p.Method),
		"scopes": types.NewSet(scopes...),
		"annotations": types.NewRecord(types.RecordMap{
			"readOnly": types.Boolean(r.Annotations.ReadOnly), "destructive": types.Boolean(r.Annotations.Destructive),
			"idempotent": types.Boolean(r.Annotations.Idempotent), "openWorld": types.Boolean(r.Annotations.OpenWorld),
		}),
		"risk":           types.String(r.Annotations.Risk),
		"mandate":        types.NewRecord(types.RecordMap{"id": types.String(r.Mandate.ID), "covered": types.Boolean(r.Mandate.Covered)}),
		"intent":         types.String(r.Intent),
		"time":           types.NewDatetime(r.Time),
		"sessionTainted": types.Boolean(r.SessionTainted),
	}
	if unknownArgs {
		for _, name := range argContext {
			ctx[types.String(name)] = unknown(name)
		}
	} else {
		a, err := argEntities(r.Args)
		if err != nil {
			return nil, cedar.Request{}, err
		}
		ctx["args"], ctx["numbers"], ctx["decimals"] = argsUID, numbersUID, decimalsUID
		ents[argsUID] = types.Entity{UID: argsUID, Tags: types.NewRecord(a.tags)}
		ents[numbersUID] = types.Entity{UID: numbersUID, Tags: types.NewRecord(a.numbers)}
		ents[decimalsUID] = types.Entity{UID: decimalsUID, Tags: types.NewRecord(a.decimals)}
	}
	req.Context = types.NewRecord(ctx)
	return ents, req, nil
}

// wholeSet is every policy of a snapshot, whole, in snapshot order.
type wholeSet struct{ s *Snapshot }

func (w wholeSet) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for i := range w.s.policies {
			if !yield(cedar.PolicyID(w.s.policies[i].id), w.s.policies[i].policy) {
				return
			}
		}
	}
}

// referenceDecide is Decide evaluating every policy of s with
// cedar.Authorize, without the permitAll shortcut.
func referenceDecide(s *Snapshot, r Request) Decision {
	ents, req, err := referenceAsk(r, r.Method, false)
	if err != nil {
		return denyErr(s, err)
	}
	dec, diag := cedar.Authorize(wholeSet{s}, ents, req)
	d := Decision{Version: s.version}
	if len(diag.Errors) > 0 {
		for _, e := range diag.Errors {
			d.Reasons = append(d.Reasons, string(e.PolicyID))
			d.Errors = append(d.Errors, fmt.Sprintf("%s: %s", e.PolicyID, e.Message))
		}
		return d
	}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	if dec == cedar.Allow {
		d.Effect = Allow
		for _, id := range d.Reasons {
			if s.byID[id].approval {
				d.Effect = NeedsApproval
			}
		}
	}
	return d
}

// referenceVisibility is visibility by partial evaluation of every policy
// of s, whole, with the arguments unknown.
func referenceVisibility(s *Snapshot, r Request) (Decision, []outcome) {
	ents, req, err := referenceAsk(r, useOf[r.Target.Kind], true)
	if err != nil {
		return denyErr(s, err), nil
	}
	env := eval.Env{Entities: ents, Principal: req.Principal, Action: req.Action, Resource: req.Resource, Context: req.Context}
	outcomes := make([]outcome, len(s.policies))
	var permits, forbids []string
	for i, c := range s.policies {
		residual, keep := eval.PartialPolicy(env, c.ast)
		if !keep {
			continue
		}
		o := possible
		if len(residual.Conditions) == 0 {
			o = satisfied
		}
		outcomes[i] = o
		switch {
		case c.permit:
			permits = append(permits, c.id)
		case o == satisfied:
			forbids = append(forbids, c.id)
		}
	}
	d := Decision{Version: s.version}
	switch {
	case len(forbids) > 0:
		d.Reasons = forbids
	case len(permits) > 0:
		d.Effect, d.Reasons = Allow, permits
	}
	return d, outcomes
}

func genWideScope(r *rand.Rand) string {
	principal := pick(r, []string{"principal", "principal is User", "principal is Agent",
		fmt.Sprintf("principal in Group::%q", pick(r, propGroups)),
		fmt.Sprintf("principal is User in Group::%q", pick(r, propGroups)),
		fmt.Sprintf("principal == Agent::%q", pick(r, propAgents)),
		fmt.Sprintf("principal == User::\"u%d\"", r.IntN(3)),
		fmt.Sprintf("principal in User::\"u%d\"", r.IntN(3))})
	action := pick(r, []string{"action", `action == Action::"tools/call"`, `action == Action::"prompts/get"`,
		`action in [Action::"tools/call", Action::"prompts/get"]`,
		`action in [Action::"tools/call", Action::"resources/read", Action::"completion/complete"]`,
		`action in [Action::"initialize", Action::"tools/list"]`})
	up, tool := pick(r, propUpstreams), pick(r, propTools)
	resource := pick(r, []string{"resource", "resource is Tool", "resource is Prompt",
		fmt.Sprintf("resource in Upstream::%q", up),
		fmt.Sprintf("resource is Tool in Upstream::%q", up),
		fmt.Sprintf("resource == Tool::\"%s/%s\"", up, tool),
		fmt.Sprintf("resource in Tool::\"%s/%s\"", up, tool),
		fmt.Sprintf("resource == Upstream::%q", up)})
	return fmt.Sprintf("(%s, %s, %s)", principal, action, resource)
}

func genWideAtom(r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return fmt.Sprintf(`(principal is User && principal.email like "*@%s.example")`, pick(r, propGroups))
	case 1:
		return fmt.Sprintf(`Tool::"%s/%s".name == %q`, pick(r, propUpstreams), pick(r, propTools), pick(r, propTools))
	case 2:
		return fmt.Sprintf(`(resource is Tool && resource in Upstream::%q)`, pick(r, propUpstreams))
	case 3:
		return fmt.Sprintf(`(context.agent == Agent::%q && %s)`, pick(r, propAgents), genAtom(r))
	case 4:
		return fmt.Sprintf(`(Arguments::"call".hasTag(%q))`, pick(r, propArgKeys))
	default:
		return genAtom(r)
	}
}

func genWideExpr(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		if r.IntN(4) == 0 {
			return "!(" + genWideAtom(r) + ")"
		}
		return genWideAtom(r)
	}
	return fmt.Sprintf("(%s %s %s)", genWideExpr(r, depth-1), pick(r, []string{"&&", "||"}), genWideExpr(r, depth-1))
}

// genWidePolicy writes a policy of every scope form, often starting with
// a test of the agent.
func genWidePolicy(r *rand.Rand, i int, literals bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "@id(\"w%d\")\n", i)
	effect := "permit"
	if r.IntN(3) == 0 {
		effect = "forbid"
	} else if r.IntN(4) == 0 {
		b.WriteString("@approval(\"required\")\n")
	}
	fmt.Fprintf(&b, "%s %s", effect, genWideScope(r))
	for n := range r.IntN(3) {
		cond := pick(r, []string{"when", "unless"})
		body := genWideExpr(r, 2)
		if n == 0 && r.IntN(2) == 0 {
			cond, body = "when", fmt.Sprintf("context.agent == Agent::%q && %s", pick(r, propAgents), body)
		}
		if !literals {
			body = strings.ReplaceAll(body, `Arguments::"call"`, "context.args")
		}
		fmt.Fprintf(&b, "\n%s { %s }", cond, body)
	}
	b.WriteString(";\n")
	return b.String()
}

// genSets returns n generated snapshots, half of the property test's
// policies, half wide; literals allows policies that name the Arguments
// entity. A wide policy the validator rejects (a scope no action applies
// to, an attribute its types lack) is drawn again.
func genSets(t *testing.T, r *rand.Rand, n int, literals bool) []*Snapshot {
	t.Helper()
	var out []*Snapshot
	for k := range n {
		var src strings.Builder
		for i := range 1 + r.IntN(6) {
			if k%2 == 0 {
				src.WriteString(genPolicy(r, i))
				continue
			}
			for {
				p := genWidePolicy(r, i, literals)
				if _, problems := Compile(map[string][]byte{"p.cedar": []byte(p)}); len(problems) == 0 {
					src.WriteString(p)
					break
				}
			}
		}
		s, problems := Compile(map[string][]byte{"gen.cedar": []byte(src.String())})
		if len(problems) > 0 {
			t.Fatalf("set %d rejected: %v\n%s", k, problems, src.String())
		}
		out = append(out, s)
	}
	return out
}

func genRequest(r *rand.Rand) Request {
	kinds := []struct{ method, kind string }{
		{"tools/call", KindTool}, {"tools/call", KindTool}, {"prompts/get", KindPrompt},
		{"resources/read", KindResource}, {"completion/complete", KindPrompt},
		{"tools/list", KindServer}, {"initialize", KindServer},
	}
	k := pick(r, kinds)
	req := Request{
		Principal: genPrincipal(r), Method: k.method,
		Target: Target{Kind: k.kind, Upstream: pick(r, propUpstreams), Name: pick(r, propTools)},
		Args:   genArgs(r),
		Annotations: Annotations{Destructive: r.IntN(2) == 0, ReadOnly: r.IntN(2) == 0,
			OpenWorld: r.IntN(2) == 0, Risk: pick(r, []string{"", "high"})},
		Mandate:        MandateRef{Covered: r.IntN(2) == 0},
		SessionTainted: r.IntN(4) == 0,
		Intent:         pick(r, []string{"", "triage"}),
		Time:           noon,
	}
	if k.kind == KindServer {
		req.Target.Name = ""
	}
	if req.Principal.Delegated() {
		req.Principal.Email = fmt.Sprintf("u@%s.example", pick(r, propGroups))
		req.Principal.Scopes = []string{"mcp"}
	}
	return req
}

func TestIndexedDecisionMatchesFullEvaluation(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var decisions, allowed, denied, errored, reasons int
	for _, s := range genSets(t, r, 600, true) {
		for range 30 {
			req := genRequest(r)
			want := referenceDecide(s, req)
			q, err := ask(req, req.Method, false)
			if err != nil {
				t.Fatalf("ask: %v", err)
			}
			got := s.authorize(q)
			if !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(got.Errors, want.Errors) || got.Effect != want.Effect {
				t.Fatalf("indexed decision differs for %s %+v (principal %+v)\ngot  %+v\nwant %+v\npolicies:\n%s",
					req.Method, req.Target, *req.Principal, got, want, sources(s))
			}
			if s.permitAll == "" {
				if d := s.Decide(req); d.Effect != want.Effect || !slices.Equal(d.Reasons, want.Reasons) || !slices.Equal(d.Errors, want.Errors) {
					t.Fatalf("Decide differs: got %+v, want %+v", d, want)
				}
			}
			decisions++
			reasons += len(want.Reasons)
			switch {
			case len(want.Errors) > 0:
				errored++
			case want.Effect == Deny:
				denied++
			default:
				allowed++
			}
		}
	}
	t.Logf("%d decisions: %d allowed, %d denied, %d erred; %d reasons", decisions, allowed, denied, errored, reasons)
	if allowed == 0 || denied == 0 || errored == 0 {
		t.Error("generator is degenerate")
	}
}

func TestIndexedVisibilityMatchesPartialEvaluation(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 17))
	var items, visible, possibles int
	for _, s := range genSets(t, r, 600, false) {
		// One list: one principal, items of every kind and upstream with
		// varied annotations, mandate and taint, decided as a batch.
		p := genRequest(r).Principal
		var list []Request
		for range 24 {
			req := genRequest(r)
			req.Principal = p
			req.Method = "tools/list"
			req.Target.Kind = pick(r, []string{KindTool, KindTool, KindPrompt, KindResource})
			req.Target.Name = pick(r, propTools)
			list = append(list, req)
		}
		batch := s.visibleAll(list)
		for i, req := range list {
			want, wantOutcomes := referenceVisibility(s, req)
			got, gotOutcomes := s.visibility(req)
			if got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(gotOutcomes, wantOutcomes) {
				t.Fatalf("visibility differs for %+v (principal %+v)\ngot  %+v %v\nwant %+v %v\npolicies:\n%s",
					req.Target, *p, got, gotOutcomes, want, wantOutcomes, sources(s))
			}
			if batch[i] != (want.Effect != Deny) {
				t.Fatalf("VisibleAll differs for item %d %+v: got %v, want %v\npolicies:\n%s", i, req.Target, batch[i], want.Effect, sources(s))
			}
			items++
			if batch[i] {
				visible++
			}
			for _, o := range wantOutcomes {
				if o == possible {
					possibles++
				}
			}
		}
	}
	t.Logf("%d items: %d visible; %d possible outcomes", items, visible, possibles)
	if visible == 0 || visible == items || possibles == 0 {
		t.Error("generator is degenerate")
	}
}

// TestIndexedOrgPolicies compares both paths with the reference on the
// benchmarks' organisation: 1,000 policies, its call and a listing.
func TestIndexedOrgPolicies(t *testing.T) {
	s := mustCompileFiles(t, OrgPolicies(1000))
	listing := OrgListing(120)
	batch := s.visibleAll(listing)
	for i, r := range listing {
		want, wantOutcomes := referenceVisibility(s, r)
		got, gotOutcomes := s.visibility(r)
		if got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(gotOutcomes, wantOutcomes) {
			t.Fatalf("visibility of %+v: got %+v, want %+v", r.Target, got, want)
		}
		if batch[i] != (want.Effect != Deny) {
			t.Fatalf("VisibleAll of %+v: got %v, want %v", r.Target, batch[i], want.Effect)
		}
		r.Args = map[string]any{"repo": "org-07/api", "limit": 50}
		r.Intent = pick(rand.New(rand.NewPCG(uint64(i), 0)), []string{"", "triage"})
		r.Mandate.ID = "m"
		if got, want := s.Decide(r), referenceDecide(s, r); got.Effect != want.Effect ||
			!slices.Equal(got.Reasons, want.Reasons) || !slices.Equal(got.Errors, want.Errors) {
			t.Fatalf("Decide of %+v: got %+v, want %+v", r.Target, got, want)
		}
	}
	if got, want := s.Decide(OrgCall()), referenceDecide(s, OrgCall()); got.Effect != want.Effect || !slices.Equal(got.Reasons, want.Reasons) {
		t.Fatalf("Decide(OrgCall()) = %+v, want %+v", got, want)
	}
}

// TestPropertyListMatchesCallWide is TestPropertyListMatchesCall's
// property over the wide policies, which name the Arguments entity too:
// a tool is listed whenever some call of it is allowed.
func TestPropertyListMatchesCallWide(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 23))
	var calls, allowed int
	for _, s := range genSets(t, r, 300, true) {
		argMaps := []map[string]any{nil}
		for range 12 {
			argMaps = append(argMaps, genArgs(r))
		}
		for range 4 {
			req := genRequest(r)
			req.Method, req.Target.Kind = "tools/call", KindTool
			req.Target.Name = pick(r, propTools)
			vis := s.Visible(req)
			for _, args := range argMaps {
				req.Args = args
				calls++
				if d := s.Decide(req); d.Effect != Deny {
					allowed++
					if !vis {
						t.Fatalf("unlisted tool called: %v with args %v for %+v on %v\npolicies:\n%s",
							d.Effect, args, *req.Principal, req.Target, sources(s))
					}
				}
			}
		}
	}
	t.Logf("%d calls, %d allowed", calls, allowed)
	if calls < 10_000 || allowed == 0 {
		t.Errorf("%d calls, %d allowed: too few", calls, allowed)
	}
}

// TestVisibleArgumentEntityLiteral: a policy that names the Arguments
// entity itself reads the arguments as surely as one that reads
// context.args, so its tool is listed whenever a call could be allowed.
func TestVisibleArgumentEntityLiteral(t *testing.T) {
	s := mustCompile(t, map[string]string{"a.cedar": `
@id("literal")
permit (principal, action == Action::"tools/call", resource)
when { Arguments::"call".hasTag("path") && Arguments::"call".getTag("path") like "/tmp/*" };

@id("not-fs")
forbid (principal, action == Action::"tools/call", resource in Upstream::"fs")
when { Numbers::"call".hasTag("n") };
`})
	r := call(alice, "github", "read", map[string]any{"path": "/tmp/x"})
	if d := s.Decide(r); d.Effect != Allow {
		t.Fatalf("the call is not allowed: %+v", d)
	}
	if !s.Visible(r) {
		t.Error("a tool a call of which is allowed is not listed")
	}
	r.Target.Upstream = "fs"
	if !s.Visible(r) {
		t.Error("a forbid that holds for some arguments only hides the tool")
	}
}

// TestVisibleAllowAllFastPath: a set that permits everything lists every
// item that maps, with the permit as its reason, and still refuses what
// cannot be mapped.
func TestVisibleAllowAllFastPath(t *testing.T) {
	s := AllowAll().Snapshot()
	r := Request{Principal: alice, Target: Target{Kind: KindTool, Upstream: "github", Name: "x"}}
	if d := s.lister().visible(&r, nil, true); d.Effect != Allow || !slices.Equal(d.Reasons, []string{"allow-all"}) {
		t.Errorf("visible = %+v", d)
	}
	for _, bad := range []Request{
		{Target: r.Target},
		{Principal: &identity.Principal{User: "u"}, Target: r.Target},
		{Principal: alice, Target: Target{Kind: KindServer}},
		{Principal: alice, Target: Target{Kind: "nonsense"}},
	} {
		if s.Visible(bad) {
			t.Errorf("Visible(%+v) = true", bad)
		}
	}
}

func sources(s *Snapshot) string {
	var b strings.Builder
	for _, c := range s.policies {
		b.Write(c.policy.MarshalCedar())
		b.WriteString("\n")
	}
	return b.String()
}
