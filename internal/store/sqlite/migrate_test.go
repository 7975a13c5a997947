package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store/migrations"
)

func TestMigrateRecordsEachVersionOnce(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	ms, err := migrations.For(migrations.SQLite)
	if err != nil {
		t.Fatalf("For: %v", err)
	}
	for i := range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	var n, top int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	if n != len(ms) || top != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d up to %d", n, top, len(ms), ms[len(ms)-1].Version)
	}
	applied, err := migrations.Apply(ctx, migrations.SQLite, s.beginMigration)
	if err != nil || applied != 0 {
		t.Errorf("Apply on a migrated database = %d, %v; want 0, nil", applied, err)
	}
}

func TestPragmas(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, tc := range tests {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
}
