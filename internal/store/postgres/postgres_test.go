package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/migrations"
	"github.com/mandate-mcp/mandate/internal/store/storetest"
)

// defaultAdminDSN is the machine's PostgreSQL that developers and CI share.
const defaultAdminDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// freshDatabase creates a uniquely named database, drops it when the test
// ends, and returns a DSN for it. An unreachable server fails the test rather
// than skipping it, so a broken CI database cannot pass silently; setting
// MANDATE_TEST_POSTGRES=skip opts out explicitly.
func freshDatabase(t *testing.T) string {
	t.Helper()
	adminDSN := os.Getenv("MANDATE_TEST_POSTGRES_DSN")
	if adminDSN == "" {
		adminDSN = defaultAdminDSN
	}
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		if os.Getenv("MANDATE_TEST_POSTGRES") == "skip" {
			t.Skipf("PostgreSQL unreachable and MANDATE_TEST_POSTGRES=skip: %v", err)
		}
		t.Fatalf("PostgreSQL unreachable (set MANDATE_TEST_POSTGRES=skip to skip): %v", err)
	}
	defer admin.Close(ctx)

	name := "mandate_test_" + strings.ToLower(rand.Text()[:16])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return withDatabase(t, adminDSN, name)
}

// withDatabase points dsn, in URL or keyword/value form, at database name.
func withDatabase(t *testing.T, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse MANDATE_TEST_POSTGRES_DSN: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

func openFresh(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), freshDatabase(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

// sharedLag bounds how long a change written by one replica may take to
// reach another's listener; on the machine's PostgreSQL it takes well
// under a millisecond, so this only absorbs a loaded test machine.
const sharedLag = time.Second

// TestShared opens one database twice, as two replicas or `mandate serve`
// and the CLI do.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		a, b := openPair(t)
		return a, b
	}, sharedLag)
}

// openPair opens two stores on one fresh database; the caller closes them.
func openPair(t *testing.T) (*Store, *Store) {
	t.Helper()
	dsn := freshDatabase(t)
	var ss [2]*Store
	for i := range ss {
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		ss[i] = s
	}
	return ss[0], ss[1]
}

func TestConcurrentMigrateOnFreshDatabase(t *testing.T) {
	ctx := t.Context()
	dsn := freshDatabase(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	for i := range stores {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			if err := s.Migrate(ctx); err != nil {
				t.Errorf("Migrate: %v", err)
			}
		})
	}
	wg.Wait()

	ms, err := migrations.For(migrations.Postgres)
	if err != nil {
		t.Fatalf("For: %v", err)
	}
	var n, top int
	if err := stores[0].pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if n != len(ms) || top != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d up to %d", n, top, len(ms), ms[len(ms)-1].Version)
	}
	applied, err := migrations.Apply(ctx, migrations.Postgres, stores[0].beginMigration)
	if err != nil || applied != 0 {
		t.Errorf("Apply on a migrated database = %d, %v; want 0, nil", applied, err)
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	s, err := Open(t.Context(), "postgres://user:secret@[::1")
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Open error = %v, want ErrInvalid", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("Open error leaks the password: %v", err)
	}
	if s != nil {
		s.Close()
	}
}

func TestOpenFailsWhenUnreachable(t *testing.T) {
	// Port 1 on loopback has nothing listening, so the connection is refused
	// at once.
	s, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	if err == nil {
		s.Close()
		t.Fatal("Open of an unreachable server succeeded")
	}
}
