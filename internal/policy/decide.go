package policy

import (
	"errors"
	"fmt"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/eval"

	"github.com/mandate-mcp/mandate/internal/identity"
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
		return s.lister().visible(&r, nil, true)
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
	return s.lister().visible(&r, nil, false).Effect != Deny
}

func denyErr(s *Snapshot, err error) Decision {
	return Decision{Effect: Deny, Errors: []string{err.Error()}, Version: s.Version()}
}

func (q *question) request() cedar.Request {
	return cedar.Request{
		Principal: q.principal,
		Action:    q.action,
		Resource:  q.resource,
		Context:   types.NewRecord(q.context),
	}
}

// candidates returns the policies whose scope may match q (see
// scopeIndex).
func (s *Snapshot) candidates(q *question) candidates {
	var pb, ab, rb, gb [8]int32
	return s.index.candidates(nil,
		s.index.requestTerms(pb[:0], posPrincipal, q.principal, q.entities),
		s.index.requestTerms(ab[:0], posAction, q.action, q.entities),
		s.index.requestTerms(rb[:0], posResource, q.resource, q.entities),
		s.index.agentTerms(gb[:0], q.agent))
}

// authorize evaluates every policy whose scope matches q (cedar.Authorize
// does not short-circuit, so the decision lists all reasons; a policy
// whose scope does not match can be neither a reason nor an error) and
// applies Mandate's two additions: any error denies, and an
// approval-annotated permit among the reasons turns an Allow into
// NeedsApproval.
func (s *Snapshot) authorize(q question) Decision {
	req := q.request()
	releaseContext(q.context)
	dec, diag := cedar.Authorize(candidateSet{s, s.candidates(&q)}, q.entities, req)
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
type outcome uint8

const (
	notApplicable outcome = iota
	satisfied
	possible // depends on the arguments, or errs for some of them
	failed
)

// visibility decides whether r.Target is listed, with every policy's
// outcome, for explanations.
func (s *Snapshot) visibility(r Request) (Decision, []outcome) {
	outcomes := make([]outcome, s.Len())
	d := s.lister().visible(&r, outcomes, true)
	return d, outcomes
}

// lister answers the visibility of the items of a list. What the items
// share is built once, not per item: the principal's entities and index
// terms; the context of each distinct combination of action, annotations,
// mandate, intent, time and taint (a list has few); and, for each such
// context, the outcome of every policy whose outcome cannot depend on the
// item (compiled.itemFree).
type lister struct {
	s *Snapshot
	// built reports that sub (or err) belongs to principal p.
	built bool
	p     *identity.Principal
	sub   *subject
	err   error
	// terms and agentTerms are the principal's and the agent's index
	// terms.
	terms, agentTerms []int32
	contexts          map[contextKey]*listContext
	// action and actionTerms are the last action asked and its terms.
	action      string
	actionTerms []int32
	// The rest is scratch space for one question. found holds the
	// outcome of each candidate, by position, and is left all
	// notApplicable.
	ents             entities
	cands            candidates
	found            []outcome
	permits, forbids []int
}

// contextKey is what a visibility question's context and action depend on
// besides the subject.
type contextKey struct {
	action      string
	annotations Annotations
	mandate     MandateRef
	intent      string
	time        time.Time
	tainted     bool
}

// listContext is one distinct context of a list's questions, with the
// outcomes found so far of the item-free policies for it, by position.
type listContext struct {
	record   types.Record
	outcomes map[int]outcome
}

func (s *Snapshot) lister() *lister { return &lister{s: s} }

// visibleAll answers Visible for each request, in order.
func (s *Snapshot) visibleAll(rs []Request) []bool {
	l := s.lister()
	out := make([]bool, len(rs))
	for i := range rs {
		out[i] = l.visible(&rs[i], nil, false).Effect != Deny
	}
	return out
}

// visible decides whether r.Target is listed, evaluating its use with the
// arguments unknown (context.args, numbers and decimals alike). A permit
// that may hold for some arguments counts; a forbid hides the item only
// when it holds whatever the arguments are. Visibility thus
// over-approximates the allowed calls: whatever the arguments, a call the
// item's visibility denies is denied too.
//
// Only the policies that may match are evaluated (scopeIndex), and each
// by how it reads the arguments (argsUseOf). One that never reads them is
// evaluated as Decide evaluates it, since its value is the same for every
// argument map, and an error counts as possible; the others as
// partialOutcome says. When outcomes is nil and the set permits everything
// (permitAll), the answer is Allow for any request that maps, with
// permitAll as its one reason, as in Decide; otherwise outcomes receives
// each policy's outcome. The reasons are listed only when why is set.
func (l *lister) visible(r *Request, outcomes []outcome, why bool) Decision {
	s := l.s
	if s == nil {
		return denyErr(s, errNoSnapshot)
	}
	use, ok := useOf[r.Target.Kind]
	if !ok {
		return denyErr(s, fmt.Errorf("target kind %q has no list", r.Target.Kind))
	}
	if !l.built || r.Principal != l.p {
		l.built, l.p = true, r.Principal
		l.sub, l.err = subjectOf(r.Principal)
		l.contexts = nil
		if l.err == nil {
			l.terms = s.index.requestTerms(l.terms[:0], posPrincipal, l.sub.principal, l.sub)
			l.agentTerms = s.index.agentTerms(l.agentTerms[:0], l.sub.agent)
		}
	}
	if l.err != nil {
		return denyErr(s, l.err)
	}
	var q question
	if err := l.sub.target(&q, &l.ents, r.Target, use); err != nil {
		return denyErr(s, err)
	}
	if s.permitAll != "" && outcomes == nil {
		return Decision{Effect: Allow, Reasons: []string{s.permitAll}, Version: s.version}
	}
	lc := l.context(r, use)
	if l.actionTerms == nil || use != l.action {
		l.action = use
		l.actionTerms = s.index.requestTerms(l.actionTerms[:0], posAction, q.action, q.entities)
	}
	var rb [8]int32
	l.cands = s.index.candidates(l.cands, l.terms, l.actionTerms,
		s.index.requestTerms(rb[:0], posResource, q.resource, q.entities), l.agentTerms)
	l.evaluate(&q, lc)
	var permits, forbids []string
	var permitted, forbidden bool
	l.cands.each(func(i int) bool {
		c, o := &s.policies[i], l.found[i]
		l.found[i] = notApplicable
		if o == notApplicable {
			return true
		}
		if outcomes != nil {
			outcomes[i] = o
		}
		switch {
		case c.permit:
			permitted = true
			if why {
				permits = append(permits, c.id)
			}
		case o == satisfied:
			forbidden = true
			if why {
				forbids = append(forbids, c.id)
			}
		}
		return true
	})
	d := Decision{Version: s.version}
	switch {
	case forbidden:
		d.Reasons = forbids
	case permitted:
		d.Effect, d.Reasons = Allow, permits
	}
	return d
}

// evaluate sets l.found to the outcome of each of l.cands for q in list
// context lc, from lc's outcomes of the item-free policies where known,
// and adds to them those it finds.
func (l *lister) evaluate(q *question, lc *listContext) {
	s := l.s
	if l.found == nil {
		l.found = make([]outcome, len(s.policies))
	}
	found := l.found
	l.permits, l.forbids = l.permits[:0], l.forbids[:0]
	l.cands.each(func(i int) bool {
		c := &s.policies[i]
		if o, ok := lc.outcomes[i]; ok {
			found[i] = o
			return true
		}
		switch {
		case c.args != argsNone:
			found[i] = partialOutcome(c, q, lc.record)
			if c.itemFree {
				lc.outcomes[i] = found[i]
			}
		case c.permit:
			l.permits = append(l.permits, i)
		default:
			l.forbids = append(l.forbids, i)
		}
		return true
	})
	// The policies that never read the arguments are evaluated as Decide
	// evaluates them, permits and forbids apart, since Cedar reports the
	// satisfied permits only when no forbid is satisfied.
	for _, group := range [][]int{l.permits, l.forbids} {
		if len(group) == 0 {
			continue
		}
		req := cedar.Request{Principal: q.principal, Action: q.action, Resource: q.resource, Context: lc.record}
		_, diag := cedar.Authorize(policyList{s, group}, q.entities, req)
		for _, e := range diag.Errors {
			found[s.byID[string(e.PolicyID)].at] = possible
		}
		for _, r := range diag.Reasons {
			found[s.byID[string(r.PolicyID)].at] = satisfied
		}
		for _, i := range group {
			if s.policies[i].itemFree {
				lc.outcomes[i] = found[i]
			}
		}
	}
}

// partialOutcome returns the outcome of c, which reads the arguments, for
// a visibility question q with context ctx (the arguments unknown). A
// policy that reads them through the context is partially evaluated, and
// possible unless nothing of its conditions is left; one that names an
// argument entity is possible whenever its scope matches, since partial
// evaluation cannot leave that entity unknown.
func partialOutcome(c *compiled, q *question, ctx types.Record) outcome {
	env := eval.Env{Entities: q.entities, Principal: q.principal, Action: q.action, Resource: q.resource, Context: ctx}
	if c.args == argsLiteral {
		if _, keep := eval.PartialPolicy(env, c.scope); keep {
			return possible
		}
		return notApplicable
	}
	residual, keep := eval.PartialPolicy(env, c.bodyAST)
	switch {
	case !keep:
		return notApplicable
	case len(residual.Conditions) == 0:
		return satisfied
	}
	return possible
}

// context returns the list context of r asked as action, with the
// arguments unknown.
func (l *lister) context(r *Request, action string) *listContext {
	k := contextKey{action: action, annotations: r.Annotations, mandate: r.Mandate, intent: r.Intent, time: r.Time, tainted: r.SessionTainted}
	if c, ok := l.contexts[k]; ok {
		return c
	}
	ctx := withUnknownArgs(l.sub.context(r))
	c := &listContext{record: types.NewRecord(ctx), outcomes: map[int]outcome{}}
	releaseContext(ctx)
	if l.contexts == nil {
		l.contexts = map[contextKey]*listContext{}
	}
	l.contexts[k] = c
	return c
}
