package consent

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// Reason says why no mandate covers a call. Every reason describes only the
// calling user's own mandates to the calling agent, so it is safe to show
// the agent; the mandate ids let the audit log link a denial to the
// revocation or expiry that caused it.
type Reason interface {
	// String is a short sentence for the agent and the audit log.
	String() string
	isReason()
}

// NoMandate: no mandate of the user to the agent names the upstream and
// tool, or the principal acts for no user.
type NoMandate struct{}

// Expired: the newest mandate naming the tool has expired.
type Expired struct{ MandateID string }

// Revoked: the newest mandate naming the tool was revoked.
type Revoked struct{ MandateID string }

// Exhausted: the mandate naming the tool has no uses left.
type Exhausted struct{ MandateID string }

// ConstraintFailed: an active mandate names the tool, but the argument Arg
// fails one of its constraints, for the reason Why. Why describes the
// constraint, never the value the agent sent.
type ConstraintFailed struct {
	MandateID string
	Arg       string
	Why       string
}

func (NoMandate) String() string { return "no mandate covers this call" }
func (r Expired) String() string { return fmt.Sprintf("mandate %s has expired", r.MandateID) }
func (r Revoked) String() string { return fmt.Sprintf("mandate %s was revoked", r.MandateID) }
func (r Exhausted) String() string {
	return fmt.Sprintf("mandate %s has no uses left", r.MandateID)
}
func (r ConstraintFailed) String() string {
	return fmt.Sprintf("argument %q %s (mandate %s)", r.Arg, r.Why, r.MandateID)
}

func (NoMandate) isReason()        {}
func (Expired) isReason()          {}
func (Revoked) isReason()          {}
func (Exhausted) isReason()        {}
func (ConstraintFailed) isReason() {}

// Match is the outcome of Service.Match: the mandate covering the call, or
// the reason none does.
type Match struct {
	// Mandate is the covering mandate; its ID is empty when none covers.
	Mandate Mandate
	// Reason is nil exactly when Mandate covers the call.
	Reason Reason
}

// Covered reports whether a mandate covers the call. The zero Match, which
// Service.Match returns with every error, is not covered.
func (m Match) Covered() bool { return m.Reason == nil && m.Mandate.ID != "" }

// Match finds the active mandate of p's user to p's agent that covers a call
// of tool on upstream with args. Only a delegated principal has mandates; an
// agent acting for nobody gets NoMandate, and the policy alone decides for
// it. A revocation takes effect on the next call (see the package comment).
//
// When several mandates cover the call, one without a use count is
// preferred, so a counted mandate is not spent while an unlimited one
// applies; among equals the newest wins. When none does, the reason is
// ConstraintFailed if an active mandate names the tool, otherwise why the
// newest mandate naming it is inactive, otherwise NoMandate.
//
// Match does not consume a use; call Consume once the call is allowed.
// The mandate returned shares its grants with later calls and must not be
// modified.
func (s *Service) Match(ctx context.Context, p *identity.Principal, upstream, tool string, args map[string]any) (Match, error) {
	if p == nil {
		return Match{}, errors.New("match mandate: no principal")
	}
	// An empty agent would list the user's mandates to every agent.
	if !p.Delegated() || p.Agent == "" {
		return Match{Reason: NoMandate{}}, nil
	}
	ms, err := s.mandates(ctx, p.User, p.Agent)
	if err != nil {
		return Match{}, fmt.Errorf("match mandate: %w", err)
	}
	now := s.now()
	var (
		found    *Mandate
		failed   Reason
		inactive Reason
	)
	for i := range ms {
		m := &ms[i]
		if !m.Covers(upstream, tool) {
			continue
		}
		if r := m.inactive(now); r != nil {
			if inactive == nil {
				inactive = r
			}
			continue
		}
		if r := m.check(upstream, tool, args); r != nil {
			if failed == nil {
				failed = r
			}
			continue
		}
		if found == nil || (found.UsesLeft != Unlimited && m.UsesLeft == Unlimited) {
			found = m
		}
	}
	switch {
	case found != nil:
		return Match{Mandate: *found}, nil
	case failed != nil:
		return Match{Reason: failed}, nil
	case inactive != nil:
		return Match{Reason: inactive}, nil
	default:
		return Match{Reason: NoMandate{}}, nil
	}
}

// Active returns p's mandates to its agent that are active now, for
// filtering lists with Covers. An agent acting for nobody has none. The
// mandates share their grants with later calls and must not be modified.
func (s *Service) Active(ctx context.Context, p *identity.Principal) ([]Mandate, error) {
	if p == nil {
		return nil, errors.New("active mandates: no principal")
	}
	// An empty agent would list the user's mandates to every agent.
	if !p.Delegated() || p.Agent == "" {
		return nil, nil
	}
	ms, err := s.mandates(ctx, p.User, p.Agent)
	if err != nil {
		return nil, fmt.Errorf("active mandates: %w", err)
	}
	now := s.now()
	out := make([]Mandate, 0, len(ms))
	for _, m := range ms {
		if m.Active(now) {
			out = append(out, m)
		}
	}
	return out, nil
}

// mandates returns the mandates of user to agent as List does, from the
// cache while the store's generation is the one they were read at. The
// slice is shared: callers must not modify it.
func (s *Service) mandates(ctx context.Context, user, agent string) ([]Mandate, error) {
	if s.cache == nil {
		return s.List(ctx, user, agent)
	}
	return s.cache.Get(ctx, pair{user, agent}, func(ctx context.Context) ([]Mandate, error) {
		return s.List(ctx, user, agent)
	})
}

// check returns nil when a grant of m naming upstream and tool accepts
// args, and otherwise why the first such grant refused them.
func (m Mandate) check(upstream, tool string, args map[string]any) Reason {
	var first Reason
	for _, g := range m.grants {
		if !g.covers(upstream, tool) {
			continue
		}
		r := g.check(args)
		if r == nil {
			return nil
		}
		if first == nil {
			first = ConstraintFailed{MandateID: m.ID, Arg: r.Arg, Why: r.Why}
		}
	}
	return first
}

func (g compiledGrant) check(args map[string]any) *ConstraintFailed {
	for _, c := range g.constraints {
		if why := c.check(args); why != "" {
			return &ConstraintFailed{Arg: c.Arg, Why: why}
		}
	}
	return nil
}
