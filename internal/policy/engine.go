package policy

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Engine serves decisions from the current snapshot and swaps in a new one
// atomically: a decision in flight finishes on the snapshot it started
// with, and no decision ever sees a half-loaded set. The zero Engine holds
// no snapshot and denies everything.
type Engine struct {
	current atomic.Pointer[Snapshot]
}

// NewEngine returns an engine serving s (nil: deny everything until a
// snapshot is swapped in).
func NewEngine(s *Snapshot) *Engine {
	e := &Engine{}
	e.current.Store(s)
	return e
}

// Snapshot returns the snapshot currently serving.
func (e *Engine) Snapshot() *Snapshot { return e.current.Load() }

// Swap makes s the serving snapshot and returns the previous one.
func (e *Engine) Swap(s *Snapshot) *Snapshot { return e.current.Swap(s) }

// Reload compiles files and, only if they have no problems, swaps the new
// snapshot in. On problems it keeps the old snapshot serving and returns
// them with an error wrapping ErrInvalidPolicy, so a bad edit is reported
// and never becomes an allow-all or a deny-all.
func (e *Engine) Reload(files map[string][]byte) ([]Problem, error) {
	s, problems := Compile(files)
	if len(problems) > 0 {
		return problems, fmt.Errorf("%w: %d problem(s); still serving %s",
			ErrInvalidPolicy, len(problems), e.Snapshot().Version())
	}
	e.Swap(s)
	return nil, nil
}

// Decide answers r from the current snapshot; see Snapshot.Decide.
func (e *Engine) Decide(r Request) Decision { return e.Snapshot().Decide(r) }

// Visible reports whether r.Target is listed; see Snapshot.Visible.
func (e *Engine) Visible(r Request) bool { return e.Snapshot().Visible(r) }

// DecideContext is Decide for callers that serve decisions from several
// kinds of decision point (an embedded engine, an AuthZEN PDP over the
// network): the embedded engine needs no context, a remote one does.
func (e *Engine) DecideContext(_ context.Context, r Request) Decision { return e.Decide(r) }

// VisibleAll answers Visible for each request of one list, in order. The
// embedded engine cannot fail as a whole (a request it cannot evaluate is
// not visible), so the error is always nil; a remote decision point may
// fail, and then the whole list is refused.
func (e *Engine) VisibleAll(_ context.Context, rs []Request) ([]bool, error) {
	return e.Snapshot().visibleAll(rs), nil
}
