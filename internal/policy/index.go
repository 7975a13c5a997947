package policy

import (
	"math/bits"

	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// scopeIndex finds, for one request, the policies that can match it, so
// that a decision evaluates those and not the whole set. It changes no
// answer: Cedar evaluates a policy's scope, then its conditions in order,
// each from left to right, and stops at the first part that is false. A
// policy whose scope fails is therefore neither a reason nor an error of
// the decision (and partial evaluation drops it likewise), and so is one
// whose first condition starts with a test of the agent that fails (see
// agentTerm).
//
// A scope constrains each of principal, action and resource to be a given
// entity (==), a descendant of one (in, and the entities of an action
// list), of a type (is), or both (is … in); each such constraint is a
// term, and an unconstrained position has term 0. The agent is a fourth
// position, constrained to be a given entity or not at all. Policies are
// bucketed by their terms; a request looks up every combination of terms
// it satisfies: per position term 0, == itself, in itself or any of its
// ancestors, is its type, and is its type in itself or any ancestor. The
// terms a request satisfies are exactly those Cedar's scope evaluation
// finds true, so a candidate's scope holds and a candidate is evaluated
// without it (compiled.body). A scope the index does not know (none
// today) is filed as unconstrained and evaluated with its policy.
type scopeIndex struct {
	terms   [4]map[scopeTerm]int32 // per position; ids start at 1
	buckets map[[4]int32][]int32   // policy positions, ascending
	n       int
}

// Positions of a scopeIndex key.
const (
	posPrincipal = iota
	posAction
	posResource
	posAgent
)

// termKind is the operator of a scopeTerm.
type termKind uint8

const (
	termEq   termKind = iota + 1 // == entity
	termIn                       // in entity
	termIs                       // is typ
	termIsIn                     // is typ in entity
)

// scopeTerm is one constraint of a scope.
type scopeTerm struct {
	kind   termKind
	entity types.EntityUID
	typ    types.EntityType
}

// newScopeIndex indexes ps and reports, per policy, whether the index
// decides its scope exactly.
func newScopeIndex(ps []compiled) (*scopeIndex, []bool) {
	x := &scopeIndex{buckets: map[[4]int32][]int32{}, n: len(ps)}
	for i := range x.terms {
		x.terms[i] = map[scopeTerm]int32{}
	}
	exact := make([]bool, len(ps))
	for i, c := range ps {
		pos := int32(i)
		var keys [3][]int32
		exact[i] = true
		for p, scope := range []xast.IsScopeNode{c.ast.Principal, c.ast.Action, c.ast.Resource} {
			var ok bool
			keys[p], ok = x.scopeTerms(p, scope)
			exact[i] = exact[i] && ok
		}
		if !exact[i] {
			keys = [3][]int32{{0}, {0}, {0}}
		}
		agent := int32(0)
		if uid, ok := agentTerm(c.ast); ok {
			agent = x.term(posAgent, scopeTerm{kind: termEq, entity: uid})
		}
		for _, p := range keys[posPrincipal] {
			for _, a := range keys[posAction] {
				for _, r := range keys[posResource] {
					k := [4]int32{p, a, r, agent}
					if b := x.buckets[k]; len(b) == 0 || b[len(b)-1] != pos {
						x.buckets[k] = append(b, pos)
					}
				}
			}
		}
	}
	return x, exact
}

func (x *scopeIndex) term(pos int, t scopeTerm) int32 {
	id, ok := x.terms[pos][t]
	if !ok {
		id = int32(len(x.terms[pos]) + 1)
		x.terms[pos][t] = id
	}
	return id
}

// scopeTerms returns the terms of one position of a scope, any of which
// the request must satisfy, and whether the scope is one the index knows.
func (x *scopeIndex) scopeTerms(pos int, scope xast.IsScopeNode) ([]int32, bool) {
	var terms []scopeTerm
	switch t := scope.(type) {
	case xast.ScopeTypeAll:
		return []int32{0}, true
	case xast.ScopeTypeEq:
		terms = []scopeTerm{{kind: termEq, entity: t.Entity}}
	case xast.ScopeTypeIn:
		terms = []scopeTerm{{kind: termIn, entity: t.Entity}}
	case xast.ScopeTypeIs:
		terms = []scopeTerm{{kind: termIs, typ: t.Type}}
	case xast.ScopeTypeIsIn:
		terms = []scopeTerm{{kind: termIsIn, typ: t.Type, entity: t.Entity}}
	case xast.ScopeTypeInSet:
		for _, e := range t.Entities {
			terms = append(terms, scopeTerm{kind: termIn, entity: e})
		}
	default:
		return nil, false
	}
	out := make([]int32, 0, len(terms))
	for _, t := range terms {
		out = append(out, x.term(pos, t))
	}
	return out, true
}

// agentTerm returns the agent a policy requires before anything else:
// when its first condition is a `when` whose leftmost conjunct is
// `context.agent == Agent::"…"` (either way round). The context always
// holds the agent, and an equality cannot fail, so for any other agent
// that conjunct is false, the condition short-circuits to false and the
// policy neither holds nor errs, under partial evaluation too.
func agentTerm(p *xast.Policy) (types.EntityUID, bool) {
	if len(p.Conditions) == 0 || p.Conditions[0].Condition != xast.ConditionWhen {
		return types.EntityUID{}, false
	}
	n := p.Conditions[0].Body
	for {
		and, ok := n.(xast.NodeTypeAnd)
		if !ok {
			break
		}
		n = and.Left
	}
	eq, ok := n.(xast.NodeTypeEquals)
	if !ok {
		return types.EntityUID{}, false
	}
	if isContextAgent(eq.Left) {
		return agentValue(eq.Right)
	}
	if isContextAgent(eq.Right) {
		return agentValue(eq.Left)
	}
	return types.EntityUID{}, false
}

func isContextAgent(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "agent" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "context"
}

func agentValue(n xast.IsNode) (types.EntityUID, bool) {
	v, ok := n.(xast.NodeValue)
	if !ok {
		return types.EntityUID{}, false
	}
	uid, ok := v.Value.(types.EntityUID)
	return uid, ok && uid.Type == typeAgent
}

// parentsGetter gives the parents of an entity of a request.
type parentsGetter interface {
	parents(uid types.EntityUID) []types.EntityUID
}

// requestTerms appends to dst the terms of position pos that an entity of
// a request satisfies (see scopeIndex), skipping terms no policy uses.
// Ancestors are found as Cedar's "in" finds them, through the parents of
// every entity reached in entities.
func (x *scopeIndex) requestTerms(dst []int32, pos int, uid types.EntityUID, entities parentsGetter) []int32 {
	terms := x.terms[pos]
	dst = append(dst, 0)
	if len(terms) == 0 {
		return dst
	}
	for _, t := range []scopeTerm{{kind: termEq, entity: uid}, {kind: termIs, typ: uid.Type}} {
		if id, ok := terms[t]; ok {
			dst = append(dst, id)
		}
	}
	seen := append(make([]types.EntityUID, 0, 8), uid)
	for next := 0; next < len(seen); next++ {
		for _, t := range []scopeTerm{{kind: termIn, entity: seen[next]}, {kind: termIsIn, typ: uid.Type, entity: seen[next]}} {
			if id, ok := terms[t]; ok {
				dst = append(dst, id)
			}
		}
		for _, p := range entities.parents(seen[next]) {
			if !containsUID(seen, p) {
				seen = append(seen, p)
			}
		}
	}
	return dst
}

// agentTerms appends to dst the agent terms that agent satisfies: 0 and
// itself.
func (x *scopeIndex) agentTerms(dst []int32, agent types.EntityUID) []int32 {
	dst = append(dst, 0)
	if id, ok := x.terms[posAgent][scopeTerm{kind: termEq, entity: agent}]; ok {
		dst = append(dst, id)
	}
	return dst
}

func containsUID(s []types.EntityUID, u types.EntityUID) bool {
	for _, v := range s {
		if v == u {
			return true
		}
	}
	return false
}

// candidates returns the policies that may match a request whose
// positions satisfy the given terms, as a set of snapshot positions, in
// dst's storage when it has room.
func (x *scopeIndex) candidates(dst candidates, pt, at, rt, gt []int32) candidates {
	c := dst[:0]
	for range (x.n + 63) / 64 {
		c = append(c, 0)
	}
	for _, p := range pt {
		for _, a := range at {
			for _, r := range rt {
				for _, g := range gt {
					for _, i := range x.buckets[[4]int32{p, a, r, g}] {
						c[i/64] |= 1 << (i % 64)
					}
				}
			}
		}
	}
	return c
}

// candidates is a set of snapshot positions.
type candidates []uint64

// each calls f for every position in the set, in ascending (snapshot)
// order, until f returns false.
func (c candidates) each(f func(i int) bool) {
	for w, word := range c {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			if !f(w*64 + b) {
				return
			}
			word &= word - 1
		}
	}
}

// ownEntityTypes are the types of the entities a question holds of its
// own rather than from its subject: the target item, its upstream and the
// argument entities.
var ownEntityTypes = map[types.EntityType]bool{
	typeUpstream: true, itemTypes[KindTool]: true, itemTypes[KindPrompt]: true, itemTypes[KindResource]: true,
	typeArguments: true, typeNumbers: true, typeDecimals: true,
}

// itemFreeOf reports, conservatively, that the value of a policy (as a
// candidate evaluates it: see compiled.body) for a list question depends
// on the principal, the action and the context only, not on the item: its
// resource scope is unconstrained, and its conditions neither name the
// resource nor hold a literal of an entity a question holds of its own
// (whose lookup finds the entity only when it is the item asked, or its
// upstream). The context holds no item: the other entity it reaches (the
// agent) is the subject's.
func itemFreeOf(p *xast.Policy) bool {
	if _, ok := p.Resource.(xast.ScopeTypeAll); !ok {
		return false
	}
	free := true
	for _, c := range p.Conditions {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch v := n.(type) {
			case xast.NodeTypeVariable:
				if v.Name == "resource" {
					free = false
				}
			case xast.NodeValue:
				if holdsEntity(v.Value, ownEntityTypes) {
					free = false
				}
			}
			return free
		})
	}
	return free
}

// argEntityTypes are the types of the entities that hold a call's
// arguments; argsLiteral reports a policy that names one of them directly.
var argEntityTypes = map[types.EntityType]bool{typeArguments: true, typeNumbers: true, typeDecimals: true}

// argsUse says how a policy's conditions may read the call's arguments.
type argsUse int

const (
	// argsNone: the conditions never read context.args, numbers or
	// decimals, so their value without the arguments is their value
	// with any arguments.
	argsNone argsUse = iota
	// argsContext: the conditions may read the arguments through the
	// context; visibility evaluates them with the arguments unknown.
	argsContext
	// argsLiteral: the conditions name an argument entity
	// (Arguments::"call", …) directly. Partial evaluation cannot leave
	// such an entity unknown, so visibility counts the policy as
	// depending on the arguments whenever its scope matches.
	argsLiteral
)

// argsUseOf inspects a policy conservatively: anything but an access of a
// named context attribute other than args, numbers and decimals counts as
// reading the arguments (the whole context, `context has args`, …), and any
// literal of an argument entity's type counts as naming one.
func argsUseOf(p *xast.Policy) argsUse {
	use := argsNone
	for _, c := range p.Conditions {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch v := n.(type) {
			case xast.NodeTypeAccess:
				if ctx, ok := v.Arg.(xast.NodeTypeVariable); ok && ctx.Name == "context" {
					if isArgContext(v.Value) {
						use = max(use, argsContext)
					}
					return false
				}
			case xast.NodeTypeVariable:
				if v.Name == "context" {
					use = max(use, argsContext)
				}
			case xast.NodeValue:
				if holdsEntity(v.Value, argEntityTypes) {
					use = argsLiteral
				}
			}
			return true
		})
	}
	return use
}

func isArgContext(attr types.String) bool {
	for _, a := range argContext {
		if string(attr) == a {
			return true
		}
	}
	return false
}

// holdsEntity reports whether v is, or holds, an entity of one of the
// types.
func holdsEntity(v types.Value, of map[types.EntityType]bool) bool {
	switch t := v.(type) {
	case types.EntityUID:
		return of[t.Type]
	case types.Set:
		for e := range t.All() {
			if holdsEntity(e, of) {
				return true
			}
		}
	case types.Record:
		for _, e := range t.All() {
			if holdsEntity(e, of) {
				return true
			}
		}
	}
	return false
}
