// Package migrations holds the SQL schema of every SQL backend, embedded in
// the binary, and the runner that applies it. Both the gateway and the tests
// migrate through this package, so the schema under test is the one shipped.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// files holds one directory per dialect with files named NNNN_description.sql.
//
//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Dialect names a SQL backend and the migration directory written for it.
type Dialect string

// The dialects with embedded migrations.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// bootstrap returns the DDL of the bookkeeping table, which must exist before
// the runner can tell which migrations are applied and so cannot itself be a
// migration.
func (d Dialect) bootstrap() (string, error) {
	switch d {
	case SQLite:
		return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)`, nil
	case Postgres:
		return `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    bigint PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)`, nil
	default:
		return "", fmt.Errorf("unknown migration dialect %q", string(d))
	}
}

// Migration is one schema change.
type Migration struct {
	// Version orders migrations and is recorded once applied.
	Version int
	// Name is the file name the migration was read from.
	Name string
	// SQL is the file's content, possibly several statements.
	SQL string
}

// Tx is the slice of an open transaction the runner needs. Backends adapt
// their driver to it so the runner stays driver-agnostic and no driver type
// leaks across packages.
type Tx interface {
	// Exec runs SQL that returns no rows; it may hold several statements.
	Exec(ctx context.Context, sql string) error
	// Versions runs a query whose rows are a single integer column.
	Versions(ctx context.Context, sql string) ([]int, error)
	// Commit makes the transaction's changes durable.
	Commit(ctx context.Context) error
	// Rollback abandons the transaction. The runner always calls it, also
	// after Commit, and reports its error only when the run already failed.
	Rollback(ctx context.Context) error
}

// Begin opens a transaction that already holds whatever lock serialises
// concurrent migrators on the dialect (an immediate transaction on SQLite, a
// transaction-scoped advisory lock on PostgreSQL). Holding it before the
// applied versions are read is what makes concurrent runs safe.
type Begin func(ctx context.Context) (Tx, error)

// For returns the embedded migrations of d in the order they apply.
func For(d Dialect) ([]Migration, error) {
	if _, err := d.bootstrap(); err != nil {
		return nil, err
	}
	return load(files, string(d))
}

// load reads dir of fsys. It is separate from For so malformed directories can
// be tested without embedding them.
func load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var ms []Migration
	seen := make(map[int]string)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", e.Name())
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: version %q is not a positive integer", e.Name(), prefix)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(body)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Apply brings the database behind begin up to date with the migrations of d
// and returns how many it applied. All pending migrations run in a single
// transaction, so a failure leaves the schema exactly as it was; a second run
// applies nothing.
func Apply(ctx context.Context, d Dialect, begin Begin) (applied int, err error) {
	ms, err := For(d)
	if err != nil {
		return 0, err
	}
	return apply(ctx, d, ms, begin)
}

func apply(ctx context.Context, d Dialect, ms []Migration, begin Begin) (applied int, err error) {
	ddl, err := d.bootstrap()
	if err != nil {
		return 0, err
	}
	tx, err := begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin migration: %w", err)
	}
	defer func() {
		if rbErr := tx.Rollback(ctx); rbErr != nil && err != nil {
			err = errors.Join(err, fmt.Errorf("roll back migration: %w", rbErr))
		}
	}()
	if err := tx.Exec(ctx, ddl); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	versions, err := tx.Versions(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.Version] = true
	}
	done := make(map[int]bool, len(versions))
	for _, v := range versions {
		// A version this binary does not know means a newer binary already
		// migrated the database; running against a schema it does not
		// understand could corrupt data, so refuse.
		if !known[v] {
			return 0, fmt.Errorf("database has migration %d, unknown to this build", v)
		}
		done[v] = true
	}
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		if err := tx.Exec(ctx, m.SQL); err != nil {
			return 0, fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		// The version is an integer parsed from a file name, not input, so
		// formatting it into the statement spares the runner a placeholder
		// syntax per dialect.
		if err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO schema_migrations (version) VALUES (%d)", m.Version)); err != nil {
			return 0, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		applied++
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit migrations: %w", err)
	}
	return applied, nil
}
