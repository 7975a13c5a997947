package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// CreateMandate implements store.MandateStore.
func (s *Store) CreateMandate(ctx context.Context, m store.Mandate) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create mandate: %w", err)
	}
	m = copyMandate(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("create mandate: %w", err)
	}
	if _, ok := s.mandates[m.ID]; ok {
		return fmt.Errorf("create mandate %s: %w", m.ID, store.ErrConflict)
	}
	s.mandates[m.ID] = m
	s.gen++
	return nil
}

// GetMandate implements store.MandateStore.
func (s *Store) GetMandate(ctx context.Context, id string) (store.Mandate, error) {
	if !store.StorableKey(id) {
		return store.Mandate{}, fmt.Errorf("get mandate: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.Mandate{}, fmt.Errorf("get mandate: %w", err)
	}
	m, ok := s.mandates[id]
	if !ok {
		return store.Mandate{}, fmt.Errorf("get mandate %s: %w", id, store.ErrNotFound)
	}
	return copyMandate(m), nil
}

// ListMandates implements store.MandateStore.
func (s *Store) ListMandates(ctx context.Context, user, agent string) ([]store.Mandate, error) {
	if (user != "" && !store.StorableKey(user)) || (agent != "" && !store.StorableKey(agent)) {
		return []store.Mandate{}, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("list mandates: %w", err)
	}
	out := []store.Mandate{}
	for _, m := range s.mandates {
		if (user == "" || m.User == user) && (agent == "" || m.Agent == agent) {
			out = append(out, copyMandate(m))
		}
	}
	slices.SortFunc(out, func(a, b store.Mandate) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeMandate implements store.MandateStore.
func (s *Store) RevokeMandate(ctx context.Context, id, by string, at time.Time) error {
	if err := store.ValidateRevocation(by, at); err != nil {
		return fmt.Errorf("revoke mandate: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("revoke mandate: %w", store.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("revoke mandate: %w", err)
	}
	m, ok := s.mandates[id]
	if !ok {
		return fmt.Errorf("revoke mandate %s: %w", id, store.ErrNotFound)
	}
	if m.RevokedAt.IsZero() {
		m.RevokedAt, m.RevokedBy = normal(at), by
		s.mandates[id] = m
		s.gen++
	}
	return nil
}

// ConsumeMandateUse implements store.MandateStore; the write lock makes it
// atomic.
func (s *Store) ConsumeMandateUse(ctx context.Context, id string, now time.Time) (store.Mandate, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", store.ErrNotFound)
	}
	now = normal(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", err)
	}
	m, ok := s.mandates[id]
	switch {
	case !ok:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", store.ErrNotFound)
	case !m.RevokedAt.IsZero():
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: revoked", store.ErrConflict)
	case !m.ExpiresAt.After(now):
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: expired", store.ErrNotFound)
	case m.UsesLeft == 0:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: no uses left", store.ErrConflict)
	}
	if m.UsesLeft > 0 {
		m.UsesLeft--
		s.mandates[id] = m
	}
	return copyMandate(m), nil
}

func copyMandate(m store.Mandate) store.Mandate {
	m.Grants = blob(m.Grants)
	m.CreatedAt, m.ExpiresAt, m.RevokedAt = normal(m.CreatedAt), normal(m.ExpiresAt), normal(m.RevokedAt)
	return m
}
