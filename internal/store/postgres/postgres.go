// Package postgres is a store.Store on PostgreSQL, for deployments that run
// several gateway replicas against one database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/migrations"
)

// Interface guards.
var _ store.Store = (*Store)(nil)

// migrationLockKey is the advisory lock every migrator takes, so replicas
// starting together apply the schema once. Its value is arbitrary but must
// never change, or old and new binaries would migrate concurrently.
const migrationLockKey int64 = 0x6d616e6461746500 // "mandate\x00"

// SQLSTATE codes the store distinguishes.
const (
	uniqueViolation = "23505"
	// integrityClass prefixes every integrity constraint violation.
	integrityClass = "23"
)

// Store is a store.Store backed by a pgx connection pool. Unless the DSN
// says otherwise the pool keeps a connection until it has been idle for
// half an hour, and pgx caches each connection's prepared statements, so
// unlike database/sql it needs no tuning for queries to be parsed once per
// connection. gen keeps the change generation from a connection of its
// own, outside the pool.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
	gen    *generation
}

// Open connects to the database named by dsn, a URL or keyword/value
// connection string as libpq accepts, and checks that it answers. Open does
// not migrate; call Migrate before use.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included, so it is
		// not passed on.
		return nil, fmt.Errorf("open postgres store: %w: cannot parse connection string", store.ErrInvalid)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return &Store{pool: pool, gen: startGeneration(pool, cfg.ConnConfig.Copy())}, nil
}

// Migrate implements store.Store.
func (s *Store) Migrate(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("migrate: %w", store.ErrClosed)
	}
	if _, err := migrations.Apply(ctx, migrations.Postgres, s.beginMigration); err != nil {
		return fmt.Errorf("migrate: %w", s.mapError(err))
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping: %w", store.ErrClosed)
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", s.mapError(err))
	}
	return nil
}

// Close implements store.Store. It waits for connections in use to be
// returned to the pool.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.gen.close()
	s.pool.Close()
	return nil
}

// RecordHealth implements store.HealthStore.
func (s *Store) RecordHealth(ctx context.Context, ev store.HealthEvent) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("record health: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("record health: %w", err)
	}
	_, err := s.pool.Exec(ctx,
		`INSERT INTO health_events (upstream, at, status, detail) VALUES ($1, $2, $3, $4)`,
		ev.Upstream, normalize(ev.At), ev.Status, ev.Detail)
	if err != nil {
		return fmt.Errorf("record health: %w", s.mapError(err))
	}
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
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("health history: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT upstream, at, status, detail FROM health_events
WHERE upstream = $1
ORDER BY at DESC, id DESC
LIMIT $2`, upstream, limit)
	if err != nil {
		return nil, fmt.Errorf("health history: %w", s.mapError(err))
	}
	out, err := collectHealth(rows)
	if err != nil {
		return nil, fmt.Errorf("health history: %w", s.mapError(err))
	}
	return out, nil
}

// LatestHealth implements store.HealthStore.
func (s *Store) LatestHealth(ctx context.Context) (map[string]store.HealthEvent, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("latest health: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT ON (upstream) upstream, at, status, detail FROM health_events
ORDER BY upstream, at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("latest health: %w", s.mapError(err))
	}
	evs, err := collectHealth(rows)
	if err != nil {
		return nil, fmt.Errorf("latest health: %w", s.mapError(err))
	}
	out := make(map[string]store.HealthEvent, len(evs))
	for _, ev := range evs {
		out[ev.Upstream] = ev
	}
	return out, nil
}

// PutCatalog implements store.CatalogStore. It first tries a plain insert,
// which waits for any concurrent insert of the same key to finish, and
// otherwise locks the existing row before comparing hashes; concurrent puts of
// the same catalog therefore agree on which one changed it.
func (s *Store) PutCatalog(ctx context.Context, snap store.CatalogSnapshot) (changed bool, err error) {
	if err := snap.Validate(); err != nil {
		return false, fmt.Errorf("put catalog: %w", err)
	}
	if err := s.open(); err != nil {
		return false, fmt.Errorf("put catalog: %w", err)
	}
	at := normalize(snap.FetchedAt)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
INSERT INTO catalogs (upstream, kind, hash, body, fetched_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (upstream, kind) DO NOTHING`,
			snap.Upstream, snap.Kind, snap.Hash, snap.Body, at)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() == 1
		if !changed {
			var prev string
			err := tx.QueryRow(ctx,
				`SELECT hash FROM catalogs WHERE upstream = $1 AND kind = $2 FOR UPDATE`,
				snap.Upstream, snap.Kind).Scan(&prev)
			if err != nil {
				return err
			}
			changed = prev != snap.Hash
			_, err = tx.Exec(ctx, `
UPDATE catalogs SET hash = $3, body = $4, fetched_at = $5 WHERE upstream = $1 AND kind = $2`,
				snap.Upstream, snap.Kind, snap.Hash, snap.Body, at)
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `
INSERT INTO catalog_history AS h (upstream, kind, hash, body, first_seen) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (upstream, kind, hash) DO UPDATE SET first_seen = excluded.first_seen
WHERE excluded.first_seen < h.first_seen`,
			snap.Upstream, snap.Kind, snap.Hash, snap.Body, at)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("put catalog: %w", s.mapError(err))
	}
	return changed, nil
}

// GetCatalog implements store.CatalogStore.
func (s *Store) GetCatalog(ctx context.Context, upstream, kind string) (store.CatalogSnapshot, error) {
	if err := store.ValidateCatalogKey(upstream, kind); err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog: %w", err)
	}
	if err := s.open(); err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog: %w", err)
	}
	snap := store.CatalogSnapshot{Upstream: upstream, Kind: kind}
	err := s.pool.QueryRow(ctx,
		`SELECT hash, body, fetched_at FROM catalogs WHERE upstream = $1 AND kind = $2`,
		upstream, kind).Scan(&snap.Hash, &snap.Body, &snap.FetchedAt)
	if err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog %s/%s: %w", upstream, kind, s.mapError(err))
	}
	snap.FetchedAt = snap.FetchedAt.UTC()
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
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("catalog history: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT hash, body, first_seen FROM catalog_history
WHERE upstream = $1 AND kind = $2
ORDER BY first_seen DESC, id DESC
LIMIT $3`, upstream, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog history: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.CatalogSnapshot, error) {
		snap := store.CatalogSnapshot{Upstream: upstream, Kind: kind}
		err := row.Scan(&snap.Hash, &snap.Body, &snap.FetchedAt)
		snap.FetchedAt = snap.FetchedAt.UTC()
		return snap, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog history: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// open reports ErrClosed after Close. pgxpool answers use of a closed pool
// with an unexported error, so the store checks its own flag first.
func (s *Store) open() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// beginMigration opens the migration transaction and takes the migration
// advisory lock. The lock is transaction-scoped, so it is released by commit
// or rollback even if the process dies, and a second migrator blocks here
// until the first has committed, then finds nothing left to apply.
func (s *Store) beginMigration(ctx context.Context) (migrations.Tx, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return nil, errors.Join(err, ignoreDone(tx.Rollback(ctx)))
	}
	return migrationTx{tx}, nil
}

// mapError is the one place pgx and PostgreSQL errors become the store's
// sentinels. The driver's own error stays in the chain for logs.
func (s *Store) mapError(err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", store.ErrClosed, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case pe.Code == uniqueViolation:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case strings.HasPrefix(pe.Code, integrityClass):
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
	}
	return err
}

// migrationTx adapts a pgx transaction to migrations.Tx.
type migrationTx struct{ tx pgx.Tx }

func (m migrationTx) Exec(ctx context.Context, sql string) error {
	// Without arguments pgx uses the simple protocol, which accepts the
	// several statements a migration file holds.
	_, err := m.tx.Exec(ctx, sql)
	return err
}

func (m migrationTx) Versions(ctx context.Context, sql string) ([]int, error) {
	rows, err := m.tx.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

func (m migrationTx) Commit(ctx context.Context) error { return m.tx.Commit(ctx) }

func (m migrationTx) Rollback(ctx context.Context) error { return ignoreDone(m.tx.Rollback(ctx)) }

// ignoreDone drops the error of rolling back a transaction that already ended.
func ignoreDone(err error) error {
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return err
}

func collectHealth(rows pgx.Rows) ([]store.HealthEvent, error) {
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.HealthEvent, error) {
		var ev store.HealthEvent
		err := row.Scan(&ev.Upstream, &ev.At, &ev.Status, &ev.Detail)
		ev.At = ev.At.UTC()
		return ev, err
	})
	return nonNil(evs), err
}

// normalize truncates to the store's precision. PostgreSQL would round to the
// nearest microsecond instead, and every backend must agree.
func normalize(t time.Time) time.Time { return t.UTC().Truncate(store.TimePrecision) }

// nonNil returns an empty slice for no rows, so "nothing recorded" reads the
// same on every backend.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
