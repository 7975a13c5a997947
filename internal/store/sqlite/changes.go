package sqlite

import (
	"context"
	"fmt"
)

// Generation implements store.ChangeStore by reading the row the triggers
// of migration 0007 keep. Reading it on every call is what lets a change
// written by another process, such as the CLI revoking a mandate, count
// from its commit on: SQLite has no notification across processes, and
// the prepared read costs a few microseconds.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.queryRow(ctx, `SELECT value FROM generations WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("generation: %w", s.mapError(err))
	}
	return uint64(v), nil
}
