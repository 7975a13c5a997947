// Package sqlite is a store.Store in a single SQLite file, for single-node
// deployments that want history to survive restarts without running a
// database server. It uses the pure-Go modernc.org/sqlite driver so the
// gateway still builds without cgo.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/migrations"
)

// Interface guards.
var _ store.Store = (*Store)(nil)

// busyTimeout is how long a writer waits for another connection's write lock
// before failing. Gateway writes are a few rows each, so a wait this long
// means something is wrong rather than merely busy.
const busyTimeout = 5 * time.Second

// idleConns is how many connections the pool keeps open between uses. A
// new connection costs its pragmas, a read of the schema and a fresh parse
// of every prepared statement, so the pool keeps enough for the requests a
// busy gateway serves at once rather than database/sql's default of two.
// More may be open at a time; those beyond it are closed when returned.
const idleConns = 32

// Store is a store.Store backed by one SQLite database.
type Store struct {
	db     *sql.DB
	closed atomic.Bool
	// stmts maps the text of each query run through prepared to its
	// *sql.Stmt.
	stmts sync.Map
}

// Open opens, creating it if needed, the SQLite database at path. The special
// path ":memory:" gives a private in-memory database that lives until Close.
// Open does not migrate; call Migrate before use.
//
// Every connection runs in WAL mode so readers do not block the writer, with
// synchronous=NORMAL, waits up to busyTimeout for locks, enforces foreign
// keys, and starts transactions with BEGIN IMMEDIATE. NORMAL syncs the WAL at
// checkpoints rather than on every commit: a committed transaction survives
// the process being killed (it is in the WAL, which the next opener
// replays), and only a power loss or kernel crash can lose the last commits
// before a checkpoint. That is the durability the audit log promises (no
// acknowledged record lost to a crash of Mandate), at a fraction of a disk
// sync per commit. The last matters for correctness: a read-then-write
// transaction that starts deferred can fail with SQLITE_BUSY when it upgrades
// to a write lock, whatever the busy timeout.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open sqlite store: %w: empty path", store.ErrInvalid)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store: %w: path %q contains '?'", store.ErrInvalid, path)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	if path == ":memory:" {
		// Each connection to ":memory:" is a separate database, so the pool
		// must keep exactly one connection open for the store's lifetime.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		db.SetMaxIdleConns(idleConns)
	}
	s := &Store{db: db}
	if err := s.Ping(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open sqlite store: %w", err), db.Close())
	}
	return s, nil
}

// Migrate implements store.Store.
func (s *Store) Migrate(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("migrate: %w", store.ErrClosed)
	}
	if _, err := migrations.Apply(ctx, migrations.SQLite, s.beginMigration); err != nil {
		return fmt.Errorf("migrate: %w", s.mapError(err))
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping: %w", store.ErrClosed)
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping: %w", s.mapError(err))
	}
	return nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	s.stmts.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(append(errs, s.db.Close())...)
}

// prepared returns query prepared, preparing it on first use. The queries
// of the request path go through it: SQLite then parses each once per
// connection instead of on every call, where parsing cost more than
// running them. It prepares lazily because a statement naming a table
// Migrate has yet to create cannot be prepared.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs query, prepared, for at most one row. A failure to
// prepare is reported by the row's Scan, as database/sql does.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// errRow is a row whose Scan fails with err.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// RecordHealth implements store.HealthStore.
func (s *Store) RecordHealth(ctx context.Context, ev store.HealthEvent) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("record health: %w", err)
	}
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO health_events (upstream, at_us, status, detail) VALUES (?, ?, ?, ?)`,
		ev.Upstream, toMicros(ev.At), ev.Status, ev.Detail)
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
	rows, err := s.db.QueryContext(ctx, `
SELECT upstream, at_us, status, detail FROM health_events
WHERE upstream = ?
ORDER BY at_us DESC, id DESC
LIMIT ?`, upstream, limit)
	if err != nil {
		return nil, fmt.Errorf("health history: %w", s.mapError(err))
	}
	out, err := scanHealth(rows)
	if err != nil {
		return nil, fmt.Errorf("health history: %w", s.mapError(err))
	}
	return out, nil
}

// LatestHealth implements store.HealthStore.
func (s *Store) LatestHealth(ctx context.Context) (map[string]store.HealthEvent, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT upstream, at_us, status, detail FROM (
    SELECT upstream, at_us, status, detail,
           ROW_NUMBER() OVER (PARTITION BY upstream ORDER BY at_us DESC, id DESC) AS rank
    FROM health_events
) WHERE rank = 1`)
	if err != nil {
		return nil, fmt.Errorf("latest health: %w", s.mapError(err))
	}
	evs, err := scanHealth(rows)
	if err != nil {
		return nil, fmt.Errorf("latest health: %w", s.mapError(err))
	}
	out := make(map[string]store.HealthEvent, len(evs))
	for _, ev := range evs {
		out[ev.Upstream] = ev
	}
	return out, nil
}

// PutCatalog implements store.CatalogStore. The whole read-compare-write runs
// in one immediate transaction, so concurrent puts of the same catalog agree
// on which one changed it.
func (s *Store) PutCatalog(ctx context.Context, snap store.CatalogSnapshot) (changed bool, err error) {
	if err := snap.Validate(); err != nil {
		return false, fmt.Errorf("put catalog: %w", err)
	}
	at := toMicros(snap.FetchedAt)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var prev string
		err := tx.QueryRowContext(ctx,
			`SELECT hash FROM catalogs WHERE upstream = ? AND kind = ?`,
			snap.Upstream, snap.Kind).Scan(&prev)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			changed = true
			_, err = tx.ExecContext(ctx, `
INSERT INTO catalogs (upstream, kind, hash, body, fetched_at_us) VALUES (?, ?, ?, ?, ?)`,
				snap.Upstream, snap.Kind, snap.Hash, snap.Body, at)
		case err == nil:
			changed = prev != snap.Hash
			_, err = tx.ExecContext(ctx, `
UPDATE catalogs SET hash = ?, body = ?, fetched_at_us = ? WHERE upstream = ? AND kind = ?`,
				snap.Hash, snap.Body, at, snap.Upstream, snap.Kind)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO catalog_history (upstream, kind, hash, body, first_seen_us) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (upstream, kind, hash) DO UPDATE SET first_seen_us = excluded.first_seen_us
WHERE excluded.first_seen_us < catalog_history.first_seen_us`,
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
	snap := store.CatalogSnapshot{Upstream: upstream, Kind: kind}
	var at int64
	err := s.db.QueryRowContext(ctx,
		`SELECT hash, body, fetched_at_us FROM catalogs WHERE upstream = ? AND kind = ?`,
		upstream, kind).Scan(&snap.Hash, &snap.Body, &at)
	if err != nil {
		return store.CatalogSnapshot{}, fmt.Errorf("get catalog %s/%s: %w", upstream, kind, s.mapError(err))
	}
	snap.FetchedAt = fromMicros(at)
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
	rows, err := s.db.QueryContext(ctx, `
SELECT hash, body, first_seen_us FROM catalog_history
WHERE upstream = ? AND kind = ?
ORDER BY first_seen_us DESC, id DESC
LIMIT ?`, upstream, kind, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog history: %w", s.mapError(err))
	}
	defer rows.Close()
	out := []store.CatalogSnapshot{}
	for rows.Next() {
		snap := store.CatalogSnapshot{Upstream: upstream, Kind: kind}
		var at int64
		if err := rows.Scan(&snap.Hash, &snap.Body, &at); err != nil {
			return nil, fmt.Errorf("catalog history: %w", s.mapError(err))
		}
		snap.FetchedAt = fromMicros(at)
		out = append(out, snap)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog history: %w", s.mapError(err))
	}
	return out, nil
}

// inTx runs fn in a transaction and commits when fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	return tx.Commit()
}

// beginMigration opens the migration transaction. Because every transaction
// here starts with BEGIN IMMEDIATE, it already holds the database's write lock,
// which is all the serialisation concurrent migrators need.
func (s *Store) beginMigration(ctx context.Context) (migrations.Tx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return migrationTx{tx}, nil
}

// mapError is the one place SQLite and database/sql errors become the store's
// sentinels. The driver's own error stays in the chain for logs.
func (s *Store) mapError(err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		// database/sql reports use after Close with an unexported error, so
		// the store's own flag is the reliable signal.
		return fmt.Errorf("%w: %w", store.ErrClosed, err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	}
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case code&0xff == sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
	}
	return err
}

// migrationTx adapts a database/sql transaction to migrations.Tx.
type migrationTx struct{ tx *sql.Tx }

func (m migrationTx) Exec(ctx context.Context, query string) error {
	_, err := m.tx.ExecContext(ctx, query)
	return err
}

func (m migrationTx) Versions(ctx context.Context, query string) ([]int, error) {
	rows, err := m.tx.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

func (m migrationTx) Commit(context.Context) error { return m.tx.Commit() }

func (m migrationTx) Rollback(context.Context) error { return ignoreDone(m.tx.Rollback()) }

// ignoreDone drops the error of rolling back a transaction that already ended.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func scanHealth(rows *sql.Rows) ([]store.HealthEvent, error) {
	defer rows.Close()
	out := []store.HealthEvent{}
	for rows.Next() {
		var ev store.HealthEvent
		var at int64
		if err := rows.Scan(&ev.Upstream, &at, &ev.Status, &ev.Detail); err != nil {
			return nil, err
		}
		ev.At = fromMicros(at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// toMicros stores times as Unix microseconds: the store's precision, and an
// integer that sorts exactly, which a text timestamp does not across zones.
func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
