package policy

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// Decider is what Shadow compares: the gateway's view of a decision point,
// which Engine and an AuthZEN PDP client both are.
type Decider interface {
	DecideContext(ctx context.Context, r Request) Decision
	VisibleAll(ctx context.Context, rs []Request) ([]bool, error)
}

// Shadow decides with a live decider and asks a candidate the same
// questions, so a new policy set can be tried on real traffic before it
// takes effect: every answer is the live one, and each question on which
// the candidate's effect differs is logged ("policy shadow differs") and
// counted. The candidate can never change an answer, even when it fails:
// its errors are logged, and nothing else. The candidate is asked in line,
// after the live decider, which suits an embedded engine that answers in
// microseconds.
//
// The log names the method, the target, the agent and both effects with
// their reasons, never argument values, which may be secrets; the
// gateway's audit record is where a call's content is kept.
type Shadow struct {
	live, candidate Decider
	log             *slog.Logger
	differences     atomic.Uint64
}

// Interface guards.
var (
	_ Decider = (*Shadow)(nil)
	_ Decider = (*Engine)(nil)
)

// NewShadow returns a Shadow that answers with live and compares
// candidate. A nil log discards the comparisons (they are still counted).
func NewShadow(live, candidate Decider, log *slog.Logger) *Shadow {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shadow{live: live, candidate: candidate, log: log}
}

// Differences returns the number of questions on which the candidate's
// effect differed from the live one so far.
func (s *Shadow) Differences() uint64 { return s.differences.Load() }

// Version is the live decider's version: that is the policy whose
// decisions count.
func (s *Shadow) Version() string {
	switch p := s.live.(type) {
	case interface{ Version() string }:
		return p.Version()
	case interface{ Snapshot() *Snapshot }:
		return p.Snapshot().Version()
	}
	return ""
}

// DecideContext returns the live decision for r and compares the
// candidate's.
func (s *Shadow) DecideContext(ctx context.Context, r Request) Decision {
	live := s.live.DecideContext(ctx, r)
	cand := s.candidate.DecideContext(ctx, r)
	if len(cand.Errors) > 0 {
		s.log.Warn("policy shadow failed", s.attrs(r, live, cand)...)
	}
	if cand.Effect != live.Effect {
		s.differences.Add(1)
		s.log.Info("policy shadow differs", s.attrs(r, live, cand)...)
	}
	return live
}

// VisibleAll returns the live visibility of rs and compares the
// candidate's item by item. A failure of the live decider is returned
// as is; a failure of the candidate is only logged.
func (s *Shadow) VisibleAll(ctx context.Context, rs []Request) ([]bool, error) {
	live, err := s.live.VisibleAll(ctx, rs)
	if err != nil {
		return live, err
	}
	cand, cerr := s.candidate.VisibleAll(ctx, rs)
	switch {
	case cerr != nil:
		s.log.Warn("policy shadow failed", "items", len(rs), "err", cerr)
		return live, nil
	case len(cand) != len(rs) || len(live) != len(rs):
		s.log.Warn("policy shadow failed", "items", len(rs), "live_answers", len(live), "shadow_answers", len(cand))
		return live, nil
	}
	for i, r := range rs {
		if cand[i] == live[i] {
			continue
		}
		s.differences.Add(1)
		s.log.Info("policy shadow differs",
			"method", r.Method, "listing", true,
			"upstream", r.Target.Upstream, "name", r.Target.Name, "agent", agentOf(r),
			"live", visibility(live[i]), "shadow", visibility(cand[i]))
	}
	return live, nil
}

func (s *Shadow) attrs(r Request, live, cand Decision) []any {
	a := []any{
		"method", r.Method,
		"upstream", r.Target.Upstream, "name", r.Target.Name, "agent", agentOf(r),
		"live", live.Effect.String(), "live_reasons", live.Reasons,
		"shadow", cand.Effect.String(), "shadow_reasons", cand.Reasons,
	}
	if len(cand.Errors) > 0 {
		a = append(a, "shadow_errors", cand.Errors)
	}
	return a
}

func agentOf(r Request) string {
	if r.Principal == nil {
		return ""
	}
	return r.Principal.Agent
}

func visibility(listed bool) string {
	if listed {
		return "listed"
	}
	return "hidden"
}
