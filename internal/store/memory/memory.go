// Package memory is a store.Store kept in process memory. It backs tests and
// single-process deployments that accept losing history on restart.
package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Interface guards.
var _ store.Store = (*Store)(nil)

// Store keeps everything in maps behind one RWMutex. Values are copied in and
// out, so a caller mutating a slice it passed or received cannot change what
// other callers read.
type Store struct {
	mu     sync.RWMutex
	closed bool
	seq    int64
	// gen is the store.ChangeStore generation, moved by every write to
	// users, agents and mandates that the contract says moves it.
	gen uint64

	health   map[string][]healthRow
	catalogs map[catalogKey]store.CatalogSnapshot
	history  map[catalogKey][]historyRow

	users         map[string]store.User
	agents        map[string]store.Agent
	authRequests  map[string]store.AuthRequest
	refreshTokens map[string]store.RefreshToken
	signingKeys   map[string]store.SigningKey
	mandates      map[string]store.Mandate
	approvals     map[string]store.Approval // made on first write, in approvals.go
	auditLog      *auditData
}

// healthRow carries the insertion sequence that breaks ties between events
// with equal times, as the SQL backends' identity columns do.
type healthRow struct {
	ev  store.HealthEvent
	seq int64
}

type catalogKey struct{ upstream, kind string }

type historyRow struct {
	snap store.CatalogSnapshot
	seq  int64
}

// New returns an empty store.
func New() *Store {
	return &Store{
		health:   make(map[string][]healthRow),
		catalogs: make(map[catalogKey]store.CatalogSnapshot),
		history:  make(map[catalogKey][]historyRow),

		users:         make(map[string]store.User),
		agents:        make(map[string]store.Agent),
		authRequests:  make(map[string]store.AuthRequest),
		refreshTokens: make(map[string]store.RefreshToken),
		signingKeys:   make(map[string]store.SigningKey),
		mandates:      make(map[string]store.Mandate),
		auditLog:      newAuditData(),
	}
}

// Migrate has no schema to change; it only reports whether the store is open.
func (s *Store) Migrate(ctx context.Context) error {
	return s.Ping(ctx)
}

// Ping reports ErrClosed after Close and the context's error if it is done.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.usable(ctx)
}

// Close drops the data. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.health, s.catalogs, s.history = nil, nil, nil
	s.users, s.agents, s.authRequests, s.refreshTokens, s.signingKeys = nil, nil, nil, nil, nil
	s.mandates = nil
	return nil
}

// RecordHealth implements store.HealthStore.
func (s *Store) RecordHealth(ctx context.Context, ev store.HealthEvent) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("record health: %w", err)
	}
	ev.At = ev.At.UTC().Truncate(store.TimePrecision)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("record health: %w", err)
	}
	s.seq++
	s.health[ev.Upstream] = append(s.health[ev.Upstream], healthRow{ev: ev, seq: s.seq})
	return nil
}

// HealthHistory implements store.HealthStore.
func (s *Store) HealthHistory(ctx context.Context, upstream string, limit int) ([]store.HealthEvent, error) {
	if err := store.ValidateUpstream(upstream); err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	if err := store.ValidateLimit(limit); err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	rows := slices.Clone(s.health[upstream])
	slices.SortFunc(rows, newestHealthFirst)
	out := make([]store.HealthEvent, 0, min(limit, len(rows)))
	for _, r := range rows[:min(limit, len(rows))] {
		out = append(out, r.ev)
	}
	return out, nil
}

// LatestHealth implements store.HealthStore.
func (s *Store) LatestHealth(ctx context.Context) (map[string]store.HealthEvent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("latest health: %w", err)
	}
	out := make(map[string]store.HealthEvent, len(s.health))
	for upstream, rows := range s.health {
		out[upstream] = slices.MinFunc(rows, newestHealthFirst).ev
	}
	return out, nil
}

// PutCatalog implements store.CatalogStore.
func (s *Store) PutCatalog(ctx context.Context, snap store.CatalogSnapshot) (bool, error) {
	if err := snap.Validate(); err != nil {
		return false, fmt.Errorf("put catalog: %w", err)
	}
	snap.Body = bytes.Clone(snap.Body)
	snap.FetchedAt = snap.FetchedAt.UTC().Truncate(store.TimePrecision)
	key := catalogKey{snap.Upstream, snap.Kind}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return false, fmt.Errorf("put catalog: %w", err)
	}
	prev, existed := s.catalogs[key]
	s.catalogs[key] = snap

	hist := s.history[key]
	i := slices.IndexFunc(hist, func(r historyRow) bool { return r.snap.Hash == snap.Hash })
	switch {
	case i < 0:
		s.seq++
		s.history[key] = append(hist, historyRow{snap: snap, seq: s.seq})
	case snap.FetchedAt.Before(hist[i].snap.FetchedAt):
		hist[i].snap.FetchedAt = snap.FetchedAt
	}
	return !existed || prev.Hash != snap.Hash, nil
}

// GetCatalog implements store.CatalogStore.
func (s *Store) GetCatalog(ctx context.Context, upstream, kind string) (store.CatalogSnapshot, error) {
	if err := store.ValidateCatalogKey(upstream, kind); err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog: %w", err)
	}
	snap, ok := s.catalogs[catalogKey{upstream, kind}]
	if !ok {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog %s/%s: %w", upstream, kind, store.ErrNotFound)
	}
	snap.Body = bytes.Clone(snap.Body)
	return snap, nil
}

// CatalogHistory implements store.CatalogStore.
func (s *Store) CatalogHistory(ctx context.Context, upstream, kind string, limit int) ([]store.CatalogSnapshot, error) {
	if err := store.ValidateCatalogKey(upstream, kind); err != nil {
		return nil, fmt.Errorf("catalog history: %w", err)
	}
	if err := store.ValidateLimit(limit); err != nil {
		return nil, fmt.Errorf("catalog history: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("catalog history: %w", err)
	}
	rows := slices.Clone(s.history[catalogKey{upstream, kind}])
	slices.SortFunc(rows, func(a, b historyRow) int {
		if c := b.snap.FetchedAt.Compare(a.snap.FetchedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	out := make([]store.CatalogSnapshot, 0, min(limit, len(rows)))
	for _, r := range rows[:min(limit, len(rows))] {
		snap := r.snap
		snap.Body = bytes.Clone(snap.Body)
		out = append(out, snap)
	}
	return out, nil
}

// usable is the one place the backend decides whether an operation may
// proceed; the caller must hold s.mu.
func (s *Store) usable(ctx context.Context) error {
	if s.closed {
		return store.ErrClosed
	}
	return ctx.Err()
}

// newestHealthFirst orders events as HealthHistory returns them.
func newestHealthFirst(a, b healthRow) int {
	if c := b.ev.At.Compare(a.ev.At); c != 0 {
		return c
	}
	return cmp.Compare(b.seq, a.seq)
}
