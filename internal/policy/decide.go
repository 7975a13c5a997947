package policy

import (
	"errors"
	"fmt"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/eval"
)

var errNoSnapshot = errors.New("no policy snapshot loaded")

// unknown is a value left open for partial evaluation.
func unknown(name string) types.Value { return eval.Variable(types.String(name)) }

// Decide answers r. It is pure and deterministic: the same snapshot and
// request give the same decision, and nothing outside them is read. It fails
// closed: a nil snapshot, an unknown method, a target the method does not
// apply to, a missing principal or agent, and any policy evaluation error
// all deny, with the cause in Errors.
//
// A list method asked of an item (Method "tools/list", Target.Kind
// KindTool) is the item's visibility: Allow exactly when Visible.
func (s *Snapshot) Decide(r Request) Decision {
	if PassThrough(r.Method) {
		return Decision{Effect: Allow, Version: s.Version()}
	}
	if s == nil {
		return denyErr(s, errNoSnapshot)
	}
	m, ok := methods[r.Method]
	if !ok {
		return denyErr(s, fmt.Errorf("unknown method %q", r.Method))
	}
	if m.lists != "" && r.Target.Kind == m.lists {
		d, _ := s.visibility(r)
		return d
	}
	q, err := ask(r, r.Method, false)
	if err != nil {
		return denyErr(s, err)
	}
	if s.permitAll != "" {
		// The request mapped cleanly and nothing in the set can refuse it.
		return Decision{Effect: Allow, Reasons: []string{s.permitAll}, Version: s.Version()}
	}
	return s.authorize(q)
}

// Visible reports whether the item r.Target appears in its list for
// r.Principal: exactly when some use of it (tools/call for a tool,
// prompts/get for a prompt, resources/read for a resource) could be allowed
// for some arguments. r.Method and r.Args are ignored; every other input is
// used as given, so the gateway must fill annotations, mandate and taint as
// it would for the call.
func (s *Snapshot) Visible(r Request) bool {
	d, _ := s.visibility(r)
	return d.Effect != Deny
}

func denyErr(s *Snapshot, err error) Decision {
	return Decision{Effect: Deny, Errors: []string{err.Error()}, Version: s.Version()}
}

func (q question) request() cedar.Request {
	return cedar.Request{
		Principal: q.principal,
		Action:    q.action,
		Resource:  q.resource,
		Context:   types.NewRecord(q.context),
	}
}

// authorize evaluates every policy (cedar.Authorize does not short-circuit,
// so the decision lists all reasons) and applies Mandate's two additions:
// any error denies, and an approval-annotated permit among the reasons
// turns an Allow into NeedsApproval.
func (s *Snapshot) authorize(q question) Decision {
	dec, diag := cedar.Authorize(policyIter(s.all), q.entities, q.request())
	d := Decision{Version: s.version}
	if len(diag.Errors) > 0 {
		d.Effect = Deny
		for _, e := range diag.Errors {
			d.Reasons = append(d.Reasons, string(e.PolicyID))
			d.Errors = append(d.Errors, fmt.Sprintf("%s: %s", e.PolicyID, e.Message))
		}
		return d
	}
	for _, r := range diag.Reasons {
		d.Reasons = append(d.Reasons, string(r.PolicyID))
	}
	if dec != cedar.Allow {
		return d
	}
	d.Effect = Allow
	for _, id := range d.Reasons {
		if s.byID[id].approval {
			d.Effect = NeedsApproval
			break
		}
	}
	return d
}

// outcome is how one policy fared for a question.
type outcome int

const (
	notApplicable outcome = iota
	satisfied
	possible // depends on the arguments, or errs for some of them
	failed
)

// visibility decides whether r.Target is listed, evaluating its use with
// the arguments unknown (context.args, numbers and decimals alike). A permit that partial evaluation keeps may apply;
// a forbid hides the item only when nothing is left of its conditions.
// Visibility thus over-approximates the allowed calls: whatever the
// arguments, a call the item's visibility denies is denied too.
func (s *Snapshot) visibility(r Request) (Decision, []outcome) {
	if s == nil {
		return denyErr(s, errNoSnapshot), nil
	}
	use, ok := useOf[r.Target.Kind]
	if !ok {
		return denyErr(s, fmt.Errorf("target kind %q has no list", r.Target.Kind)), nil
	}
	q, err := ask(r, use, true)
	if err != nil {
		return denyErr(s, err), nil
	}
	env := eval.Env{
		Entities:  q.entities,
		Principal: q.principal,
		Action:    q.action,
		Resource:  q.resource,
		Context:   types.NewRecord(q.context),
	}
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
