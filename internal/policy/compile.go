package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strconv"
	"strings"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// Problem is one thing wrong with a policy file, at a position.
type Problem struct {
	File string
	// Line and Column are 1-based; 0 when the problem concerns the whole
	// file or set.
	Line, Column int
	Message      string
}

func (p Problem) String() string {
	switch {
	case p.Line == 0:
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	case p.Column == 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
}

// Policy annotations Mandate gives a meaning to.
const (
	// annotationID names a policy in decisions and audit records; without
	// it a policy is named by its position, "file:line:column".
	annotationID = "id"
	// annotationApproval, set to "required" on a permit, turns an Allow it
	// determines into NeedsApproval.
	annotationApproval = "approval"
)

// compiled is one validated policy of a snapshot.
type compiled struct {
	// at is the policy's position in its snapshot.
	at       int
	id       string
	pos      string
	permit   bool
	approval bool
	policy   *cedar.Policy
	ast      *xast.Policy
	// body and bodyAST are what a decision evaluates of the policy once
	// the scope index found it a candidate: without its scope when the
	// index decides the scope exactly, else the whole policy.
	body    *cedar.Policy
	bodyAST *xast.Policy
	// args is how the conditions read the call's arguments, which
	// decides how visibility evaluates the policy.
	args argsUse
	// scope is bodyAST without its conditions, for an argsLiteral
	// policy's visibility.
	scope *xast.Policy
	// itemFree reports that the body's outcome for a list question
	// cannot depend on which item is asked (see itemFreeOf), so a list
	// evaluates it once per distinct context rather than once per item.
	itemFree bool
}

// Snapshot is an immutable, validated policy set. It is safe for
// concurrent use; a reload builds a new one rather than changing it, because
// cedar-go's PolicySet is mutated in place.
type Snapshot struct {
	version  string
	policies []compiled
	byID     map[string]*compiled
	index    *scopeIndex
	// permitAll is the id of an unconditional permit of everything when the
	// set has no forbid and no approval-annotated permit: then every
	// decision is Allow whatever the request, and Decide skips building
	// Cedar entities (the allow-all set of `auth: none` costs nothing on
	// the request path).
	permitAll string
}

// Version identifies the snapshot by a hash of its sources (file names and
// contents), so equal inputs give equal versions on every replica.
func (s *Snapshot) Version() string {
	if s == nil {
		return ""
	}
	return s.version
}

// Len returns the number of policies in the snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.policies)
}

// candidateSet is the policies of a snapshot at the positions of a
// candidates set, in snapshot order (file name, then source order), so a
// decision lists its reasons in a deterministic order.
type candidateSet struct {
	s *Snapshot
	c candidates
}

func (cs candidateSet) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		cs.c.each(func(i int) bool {
			c := &cs.s.policies[i]
			return yield(cedar.PolicyID(c.id), c.body)
		})
	}
}

// policyList is the policies of a snapshot at some positions, ascending.
type policyList struct {
	s  *Snapshot
	at []int
}

func (pl policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, i := range pl.at {
			c := &pl.s.policies[i]
			if !yield(cedar.PolicyID(c.id), c.body) {
				return
			}
		}
	}
}

var parsePos = regexp.MustCompile(`(?: at)? <input>:(\d+):(\d+)`)

// Compile parses every file (name → Cedar policy text), validates each
// policy against the shipped schema and Mandate's annotations, and returns
// the snapshot, or nil and every problem found, sorted by position. The
// validator checks a policy once per action it may apply to, so one mistake
// can give a problem per action. An empty
// set is valid and denies everything.
func Compile(files map[string][]byte) (*Snapshot, []Problem) {
	var problems []Problem
	v, err := newValidator()
	if err != nil {
		return nil, []Problem{{File: schemaFile, Message: err.Error()}}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	h := sha256.New()
	s := &Snapshot{byID: map[string]*compiled{}}
	seen := map[string]string{}
	for _, name := range names {
		src := files[name]
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(src))
		h.Write(src)

		list, err := cedar.NewPolicyListFromBytes(name, src)
		if err != nil {
			problems = append(problems, parseProblem(name, err))
			continue
		}
		for _, p := range list {
			pos := p.Position()
			at := func(msg string) Problem {
				return Problem{File: name, Line: pos.Line, Column: pos.Column, Message: msg}
			}
			c := compiled{
				pos:    fmt.Sprintf("%s:%d:%d", name, pos.Line, pos.Column),
				permit: p.Effect() == cedar.Permit,
				policy: p,
				ast:    (*xast.Policy)(p.AST()),
			}
			c.id = c.pos
			ann := p.Annotations()
			if id, ok := ann[annotationID]; ok {
				if id == "" {
					problems = append(problems, at("@id must not be empty"))
				}
				c.id = string(id)
			}
			if a, ok := ann[annotationApproval]; ok {
				switch {
				case a != "required":
					problems = append(problems, at(fmt.Sprintf(`@approval must be "required", not %q`, string(a))))
				case !c.permit:
					problems = append(problems, at("@approval applies to permit policies only"))
				}
				c.approval = true
			}
			if prev, dup := seen[c.id]; dup {
				problems = append(problems, at(fmt.Sprintf("policy id %q already used at %s", c.id, prev)))
			}
			seen[c.id] = c.pos
			if err := v.Policy("", c.ast); err != nil {
				for _, e := range flatten(err) {
					problems = append(problems, at(e.Error()))
				}
			}
			s.policies = append(s.policies, c)
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line),
				cmp.Compare(a.Column, b.Column), cmp.Compare(a.Message, b.Message))
		})
		return nil, slices.Compact(problems)
	}
	var exact []bool
	s.index, exact = newScopeIndex(s.policies)
	for i := range s.policies {
		c := &s.policies[i]
		c.at = i
		s.byID[c.id] = c
		c.body, c.bodyAST = c.policy, c.ast
		if exact[i] {
			body := *c.ast
			body.Principal, body.Action, body.Resource = xast.ScopeTypeAll{}, xast.ScopeTypeAll{}, xast.ScopeTypeAll{}
			c.body, c.bodyAST = cedar.NewPolicyFromAST((*ast.Policy)(&body)), &body
		}
		c.args = argsUseOf(c.bodyAST)
		c.itemFree = itemFreeOf(c.bodyAST)
		if c.args == argsLiteral {
			scope := *c.bodyAST
			scope.Conditions = nil
			c.scope = &scope
		}
	}
	s.permitAll = unconditionalPermitAll(s.policies)
	s.version = "sha256:" + hex.EncodeToString(h.Sum(nil))[:24]
	return s, nil
}

// parseProblem places a cedar-go parse error, which names its input
// "<input>", at its line and column in file.
func parseProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	p := Problem{File: file}
	if m := parsePos.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Column, _ = strconv.Atoi(m[2])
		msg = strings.Replace(msg, m[0], "", 1)
	}
	p.Message = msg
	return p
}

func flatten(err error) []error {
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// ErrInvalidPolicy is returned by Engine.Reload when the new files have
// problems; the engine then keeps serving the previous snapshot.
var ErrInvalidPolicy = errors.New("invalid policy")

// unconditionalPermitAll returns the id of a permit with no scope
// constraint and no condition, if the set has one and nothing that could
// turn an allow into something else (a forbid, an approval annotation).
func unconditionalPermitAll(ps []compiled) string {
	id := ""
	for _, c := range ps {
		if !c.permit || c.approval {
			return ""
		}
		if c.ast == nil || len(c.ast.Conditions) > 0 {
			continue
		}
		_, p := c.ast.Principal.(xast.ScopeTypeAll)
		_, a := c.ast.Action.(xast.ScopeTypeAll)
		_, r := c.ast.Resource.(xast.ScopeTypeAll)
		if p && a && r && id == "" {
			id = c.id
		}
	}
	return id
}
