package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// CreateApproval implements store.ApprovalStore.
func (s *Store) CreateApproval(ctx context.Context, a store.Approval) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("create approval: %w", err)
	}
	a = normalApproval(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("create approval: %w", err)
	}
	if s.approvals == nil {
		s.approvals = make(map[string]store.Approval)
	}
	if _, ok := s.approvals[a.ID]; ok {
		return fmt.Errorf("create approval %s: %w", a.ID, store.ErrConflict)
	}
	s.approvals[a.ID] = a
	return nil
}

// GetApproval implements store.ApprovalStore.
func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("get approval: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.Approval{}, fmt.Errorf("get approval: %w", err)
	}
	a, ok := s.approvals[id]
	if !ok {
		return store.Approval{}, fmt.Errorf("get approval %s: %w", id, store.ErrNotFound)
	}
	return a, nil
}

// ListApprovals implements store.ApprovalStore.
func (s *Store) ListApprovals(ctx context.Context, status string) ([]store.Approval, error) {
	if err := store.ValidateApprovalFilter(status); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out := []store.Approval{}
	for _, a := range s.approvals {
		if status == "" || a.Status == status {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b store.Approval) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// DecideApproval implements store.ApprovalStore; the write lock makes it
// atomic.
func (s *Store) DecideApproval(ctx context.Context, id string, approve bool, by string, at time.Time) (store.Approval, error) {
	if err := store.ValidateDecision(by, at); err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("decide approval: %w", store.ErrNotFound)
	}
	at = normal(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	a, ok := s.approvals[id]
	switch {
	case !ok:
		return store.Approval{}, fmt.Errorf("decide approval %s: %w", id, store.ErrNotFound)
	case a.Status != store.ApprovalPending:
		return store.Approval{}, fmt.Errorf("decide approval %s: %w: already %s", id, store.ErrConflict, a.Status)
	case !a.ExpiresAt.After(at):
		return store.Approval{}, fmt.Errorf("decide approval %s: %w: expired", id, store.ErrConflict)
	}
	a.Status = store.ApprovalDenied
	if approve {
		a.Status = store.ApprovalApproved
	}
	a.DecidedAt, a.DecidedBy = at, by
	s.approvals[id] = a
	return a, nil
}

// UseApproval implements store.ApprovalStore; the write lock makes it
// atomic.
func (s *Store) UseApproval(ctx context.Context, id string, now time.Time) (store.Approval, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.Approval{}, fmt.Errorf("use approval: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("use approval: %w", store.ErrNotFound)
	}
	now = normal(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return store.Approval{}, fmt.Errorf("use approval: %w", err)
	}
	a, ok := s.approvals[id]
	switch {
	case !ok:
		return store.Approval{}, fmt.Errorf("use approval %s: %w", id, store.ErrNotFound)
	case a.Status != store.ApprovalApproved:
		return store.Approval{}, fmt.Errorf("use approval %s: %w: %s", id, store.ErrConflict, a.Status)
	case !a.ExpiresAt.After(now):
		return store.Approval{}, fmt.Errorf("use approval %s: %w: expired", id, store.ErrConflict)
	}
	a.Status = store.ApprovalUsed
	s.approvals[id] = a
	return a, nil
}

// normalApproval returns a with its times as every backend returns them.
// Approval holds no slices, so a copy of the value shares nothing.
func normalApproval(a store.Approval) store.Approval {
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = normal(a.CreatedAt), normal(a.ExpiresAt), normal(a.DecidedAt)
	return a
}
