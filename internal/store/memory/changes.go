package memory

import (
	"context"
	"fmt"
)

// Generation implements store.ChangeStore. Every write takes the store's
// lock, so the counter read here already covers any write that returned.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return 0, fmt.Errorf("generation: %w", err)
	}
	return s.gen, nil
}
