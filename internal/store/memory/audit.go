package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/mandate-mcp/mandate/internal/store"
)

// auditData is a store's audit state. It is guarded by the store's mu like
// every other table.
type auditData struct {
	chains      map[string][]*store.AuditRecord // in Seq order
	byID        map[string]*store.AuditRecord
	checkpoints map[string][]store.AuditCheckpoint // in Seq order
}

func newAuditData() *auditData {
	return &auditData{
		chains:      make(map[string][]*store.AuditRecord),
		byID:        make(map[string]*store.AuditRecord),
		checkpoints: make(map[string][]store.AuditCheckpoint),
	}
}

// audit returns s's audit state; the caller holds s.mu.
func (s *Store) audit() *auditData { return s.auditLog }

// AppendAudit implements store.AuditStore; the write lock makes the check
// that the batch continues its chain and the write one step.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if err := store.ValidateAuditBatch(recs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	d := s.audit()
	chain := recs[0].Chain
	var last *store.AuditRecord
	if c := d.chains[chain]; len(c) > 0 {
		last = c[len(c)-1]
	}
	if err := store.ContinuesAudit(last, recs[0]); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	for i, r := range recs {
		if _, taken := d.byID[r.ID]; taken || slices.ContainsFunc(recs[:i], func(o store.AuditRecord) bool { return o.ID == r.ID }) {
			return fmt.Errorf("append audit %s: %w", r.ID, store.ErrConflict)
		}
	}
	for _, r := range recs {
		r = copyAuditRecord(r)
		d.chains[chain] = append(d.chains[chain], &r)
		d.byID[r.ID] = &r
	}
	return nil
}

// LastAudit implements store.AuditStore.
func (s *Store) LastAudit(ctx context.Context, chain string) (store.AuditRecord, error) {
	if !store.StorableKey(chain) {
		return store.AuditRecord{}, fmt.Errorf("last audit: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.AuditRecord{}, fmt.Errorf("last audit: %w", err)
	}
	c := s.audit().chains[chain]
	if len(c) == 0 {
		return store.AuditRecord{}, fmt.Errorf("last audit of chain %s: %w", chain, store.ErrNotFound)
	}
	return copyAuditRecord(*c[len(c)-1]), nil
}

// GetAudit implements store.AuditStore.
func (s *Store) GetAudit(ctx context.Context, id string) (store.AuditRecord, error) {
	if !store.StorableKey(id) {
		return store.AuditRecord{}, fmt.Errorf("get audit: %w", store.ErrNotFound)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return store.AuditRecord{}, fmt.Errorf("get audit: %w", err)
	}
	r, ok := s.audit().byID[id]
	if !ok {
		return store.AuditRecord{}, fmt.Errorf("get audit %s: %w", id, store.ErrNotFound)
	}
	return copyAuditRecord(*r), nil
}

// QueryAudit implements store.AuditStore.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	since, until := normal(q.Since), normal(q.Until)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	match := func(r store.AuditRecord) bool {
		for _, f := range [][2]string{
			{q.User, r.User}, {q.Agent, r.Agent}, {q.Upstream, r.Upstream}, {q.Name, r.Name},
			{q.Decision, r.Decision}, {q.Mandate, r.Mandate}, {q.Kind, r.Kind}, {q.Ref, r.Ref},
		} {
			if f[0] != "" && f[0] != f[1] {
				return false
			}
		}
		return (since.IsZero() || !r.At.Before(since)) && (until.IsZero() || r.At.Before(until))
	}
	var hits []store.AuditRecord
	for _, c := range s.audit().chains {
		for _, r := range c {
			if match(*r) {
				hits = append(hits, *r)
			}
		}
	}
	slices.SortFunc(hits, func(a, b store.AuditRecord) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Chain, b.Chain); c != 0 {
			return c
		}
		return cmp.Compare(b.Seq, a.Seq)
	})
	out := make([]store.AuditRecord, 0, min(q.Limit, len(hits)))
	for _, r := range hits[:min(q.Limit, len(hits))] {
		out = append(out, copyAuditRecord(r))
	}
	return out, nil
}

// AuditChains implements store.AuditStore.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	d := s.audit()
	out := []string{}
	for c, recs := range d.chains {
		if len(recs) > 0 {
			out = append(out, c)
		}
	}
	for c, cps := range d.checkpoints {
		if len(cps) > 0 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out, nil
}

// AuditRange implements store.AuditStore.
func (s *Store) AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error) {
	if err := store.ValidateAuditRange(chain, after, limit); err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	c := s.audit().chains[chain]
	i, _ := slices.BinarySearchFunc(c, after+1, func(r *store.AuditRecord, seq int64) int { return cmp.Compare(r.Seq, seq) })
	out := make([]store.AuditRecord, 0, min(limit, len(c)-i))
	for _, r := range c[i:min(len(c), i+limit)] {
		out = append(out, copyAuditRecord(*r))
	}
	return out, nil
}

// AddAuditCheckpoint implements store.AuditStore.
func (s *Store) AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error {
	if err := cp.Validate(); err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	cp.At = normal(cp.At)
	cp.Signature = bytes.Clone(cp.Signature)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	d := s.audit()
	cps := d.checkpoints[cp.Chain]
	i, found := slices.BinarySearchFunc(cps, cp.Seq, func(c store.AuditCheckpoint, seq int64) int { return cmp.Compare(c.Seq, seq) })
	if found {
		return fmt.Errorf("add audit checkpoint %s/%d: %w", cp.Chain, cp.Seq, store.ErrConflict)
	}
	d.checkpoints[cp.Chain] = slices.Insert(cps, i, cp)
	return nil
}

// AuditCheckpoints implements store.AuditStore.
func (s *Store) AuditCheckpoints(ctx context.Context, chain string) ([]store.AuditCheckpoint, error) {
	if err := store.ValidateAuditRange(chain, 0, 1); err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	cps := s.audit().checkpoints[chain]
	out := make([]store.AuditCheckpoint, 0, len(cps))
	for _, cp := range cps {
		cp.Signature = bytes.Clone(cp.Signature)
		out = append(out, cp)
	}
	return out, nil
}

// PruneAudit implements store.AuditStore.
func (s *Store) PruneAudit(ctx context.Context, chain string, through int64) error {
	if err := store.ValidateAuditPrune(chain, through); err != nil {
		return fmt.Errorf("prune audit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("prune audit: %w", err)
	}
	d := s.audit()
	cps := d.checkpoints[chain]
	i, found := slices.BinarySearchFunc(cps, through, func(c store.AuditCheckpoint, seq int64) int { return cmp.Compare(c.Seq, seq) })
	if !found {
		return fmt.Errorf("prune audit %s through %d: %w: no checkpoint there", chain, through, store.ErrConflict)
	}
	c := d.chains[chain]
	if len(c) == 0 || c[len(c)-1].Seq <= through {
		return fmt.Errorf("prune audit %s through %d: %w: would remove the chain's last record", chain, through, store.ErrConflict)
	}
	keep := slices.IndexFunc(c, func(r *store.AuditRecord) bool { return r.Seq > through })
	for _, r := range c[:keep] {
		delete(d.byID, r.ID)
	}
	d.chains[chain] = slices.Clone(c[keep:])
	d.checkpoints[chain] = slices.Clone(cps[i:])
	return nil
}

// copyAuditRecord returns r with its times as every backend returns them and
// a body of its own.
func copyAuditRecord(r store.AuditRecord) store.AuditRecord {
	r.At = normal(r.At)
	r.Body = bytes.Clone(r.Body)
	return r
}
