package policy

import (
	"fmt"
	"iter"
	"slices"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Explanation is a decision with every policy that matched and why, for
// operators (the admin UI, `mandate policy explain`); audit records keep the
// shorter Decision.
type Explanation struct {
	Decision Decision
	// Principal, Action and Resource are the request in Cedar's terms.
	Principal, Action, Resource string
	// Policies are the policies that matched, erred or (for a list
	// visibility question) may match depending on the arguments, in
	// snapshot order.
	Policies []PolicyMatch
}

// PolicyMatch is one policy's part in a decision.
type PolicyMatch struct {
	ID string
	// Position is "file:line:column".
	Position string
	// Effect is "permit" or "forbid".
	Effect string
	// Approval reports an @approval("required") permit.
	Approval bool
	// Outcome is "satisfied", "depends on arguments" or "error: …".
	Outcome string
	// Determining reports that the policy is among the decision's reasons.
	Determining bool
	// Source is the policy's Cedar text: its scope and conditions are the
	// why.
	Source string
}

// Explain decides r and reports every policy that matched. It evaluates
// each policy on its own, so a permit overridden by a forbid is listed too.
func (s *Snapshot) Explain(r Request) Explanation {
	x := Explanation{Decision: s.Decide(r), Action: actionName(r.Method), Principal: principalName(r.Principal)}
	if s == nil || PassThrough(r.Method) {
		return x
	}
	m, ok := methods[r.Method]
	if !ok {
		return x
	}
	if itemType, ok := itemTypes[r.Target.Kind]; ok {
		id := r.Target.Upstream
		if r.Target.Kind != KindServer {
			id += "/" + r.Target.Name
		}
		x.Resource = types.NewEntityUID(itemType, types.String(id)).String()
	}
	determining := map[string]bool{}
	for _, id := range x.Decision.Reasons {
		determining[id] = true
	}
	if m.lists != "" && r.Target.Kind == m.lists {
		_, outcomes := s.visibility(r)
		for i, o := range outcomes {
			switch o {
			case satisfied:
				x.Policies = append(x.Policies, s.match(i, "satisfied", determining))
			case possible:
				x.Policies = append(x.Policies, s.match(i, "depends on arguments", determining))
			}
		}
		return x
	}
	q, err := ask(r, r.Method, false)
	if err != nil {
		return x
	}
	req := q.request()
	for i := range s.policies {
		c := &s.policies[i]
		_, diag := cedar.Authorize(onePolicy{c}, q.entities, req)
		switch {
		case len(diag.Errors) > 0:
			x.Policies = append(x.Policies, s.match(i, "error: "+diag.Errors[0].Message, determining))
		case len(diag.Reasons) > 0:
			x.Policies = append(x.Policies, s.match(i, "satisfied", determining))
		}
	}
	return x
}

// onePolicy is a policy set of one policy.
type onePolicy struct{ c *compiled }

func (o onePolicy) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		yield(cedar.PolicyID(o.c.id), o.c.policy)
	}
}

func (s *Snapshot) match(i int, outcome string, determining map[string]bool) PolicyMatch {
	c := &s.policies[i]
	effect := "forbid"
	if c.permit {
		effect = "permit"
	}
	return PolicyMatch{
		ID:          c.id,
		Position:    c.pos,
		Effect:      effect,
		Approval:    c.approval,
		Outcome:     outcome,
		Determining: determining[c.id],
		Source:      string(c.policy.MarshalCedar()),
	}
}

func actionName(method string) string {
	return types.NewEntityUID(typeAction, types.String(method)).String()
}

// String renders the explanation as stable, human-readable text.
func (x Explanation) String() string {
	var b strings.Builder
	d := x.Decision
	fmt.Fprintf(&b, "decision: %s (policy %s)\n", d.Effect, d.Version)
	fmt.Fprintf(&b, "request: %s\n", strings.Join(slices.DeleteFunc([]string{x.Principal, x.Action, x.Resource},
		func(s string) bool { return s == "" }), " "))
	for _, e := range d.Errors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	if len(x.Policies) == 0 {
		b.WriteString("no policy matched\n")
	}
	for _, p := range x.Policies {
		fmt.Fprintf(&b, "\n%s %q at %s: %s", p.Effect, p.ID, p.Position, p.Outcome)
		if p.Approval {
			b.WriteString(", approval required")
		}
		if p.Determining {
			b.WriteString(", determining")
		}
		b.WriteString("\n")
		for _, line := range strings.Split(strings.TrimSpace(p.Source), "\n") {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	return b.String()
}
