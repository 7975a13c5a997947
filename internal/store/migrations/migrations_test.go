package migrations

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedDialectsAgree(t *testing.T) {
	lite, err := For(SQLite)
	if err != nil {
		t.Fatalf("For(SQLite): %v", err)
	}
	pg, err := For(Postgres)
	if err != nil {
		t.Fatalf("For(Postgres): %v", err)
	}
	// A version present for one dialect only would leave the backends with
	// different schemas.
	if len(lite) != len(pg) {
		t.Fatalf("sqlite has %d migrations, postgres %d", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].Name != pg[i].Name {
			t.Errorf("migration %d is %s for sqlite but %s for postgres", i, lite[i].Name, pg[i].Name)
		}
	}
}

func TestForUnknownDialect(t *testing.T) {
	if _, err := For("oracle"); err == nil {
		t.Error("For(oracle) succeeded")
	}
}

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr string
	}{
		{
			name: "ordered numerically, other files ignored",
			fs: fstest.MapFS{
				"d/0010_ten.sql":  file("10"),
				"d/0002_two.sql":  file("2"),
				"d/0001_one.sql":  file("1"),
				"d/README.md":     file("notes"),
				"d/sub/0003_x.sq": file("x"),
			},
			want: []int{1, 2, 10},
		},
		{name: "duplicate version", fs: fstest.MapFS{"d/0001_a.sql": file(""), "d/01_b.sql": file("")}, wantErr: "share version 1"},
		{name: "no underscore", fs: fstest.MapFS{"d/0001.sql": file("")}, wantErr: "NNNN_description"},
		{name: "not a number", fs: fstest.MapFS{"d/abc_init.sql": file("")}, wantErr: "not a positive integer"},
		{name: "version zero", fs: fstest.MapFS{"d/0000_init.sql": file("")}, wantErr: "not a positive integer"},
		{name: "empty", fs: fstest.MapFS{"d/README": file("")}, wantErr: "no migrations"},
		{name: "missing directory", fs: fstest.MapFS{}, wantErr: "read migrations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := load(tc.fs, "d")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("load error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("versions = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeDB records what the runner executes, to test the runner's own logic;
// the backends' tests run it against real databases.
type fakeDB struct {
	applied   []int
	execs     []string
	failOn    string
	committed bool
	rolled    bool
}

type fakeTx struct {
	db      *fakeDB
	pending []int
}

func (db *fakeDB) begin(context.Context) (Tx, error) { return &fakeTx{db: db}, nil }

func (tx *fakeTx) Exec(_ context.Context, sql string) error {
	if tx.db.failOn != "" && strings.Contains(sql, tx.db.failOn) {
		return errors.New("boom")
	}
	tx.db.execs = append(tx.db.execs, sql)
	var v int
	if _, err := fmt.Sscanf(sql, "INSERT INTO schema_migrations (version) VALUES (%d)", &v); err == nil {
		tx.pending = append(tx.pending, v)
	}
	return nil
}

func (tx *fakeTx) Versions(context.Context, string) ([]int, error) { return tx.db.applied, nil }

func (tx *fakeTx) Commit(context.Context) error {
	tx.db.applied = append(tx.db.applied, tx.pending...)
	tx.db.committed = true
	tx.pending = nil
	return nil
}

func (tx *fakeTx) Rollback(context.Context) error {
	if tx.pending != nil {
		tx.db.rolled = true
	}
	return nil
}

func TestApply(t *testing.T) {
	ms := []Migration{
		{Version: 1, Name: "0001_a.sql", SQL: "CREATE a"},
		{Version: 2, Name: "0002_b.sql", SQL: "CREATE b"},
	}
	ctx := t.Context()

	t.Run("applies pending in order, then nothing", func(t *testing.T) {
		db := &fakeDB{applied: []int{1}}
		n, err := apply(ctx, SQLite, ms, db.begin)
		if err != nil || n != 1 {
			t.Fatalf("apply = %d, %v; want 1, nil", n, err)
		}
		if !slices.Equal(db.applied, []int{1, 2}) {
			t.Errorf("applied = %v, want [1 2]", db.applied)
		}
		for _, sql := range db.execs {
			if sql == "CREATE a" {
				t.Error("re-ran an applied migration")
			}
		}
		n, err = apply(ctx, SQLite, ms, db.begin)
		if err != nil || n != 0 {
			t.Errorf("second apply = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("failure commits nothing", func(t *testing.T) {
		db := &fakeDB{failOn: "CREATE b"}
		if _, err := apply(ctx, Postgres, ms, db.begin); err == nil || !strings.Contains(err.Error(), "0002_b.sql") {
			t.Fatalf("apply error = %v, want one naming 0002_b.sql", err)
		}
		if db.committed || len(db.applied) != 0 || !db.rolled {
			t.Errorf("failed run: committed=%v applied=%v rolled back=%v", db.committed, db.applied, db.rolled)
		}
	})

	t.Run("refuses a database from a newer build", func(t *testing.T) {
		db := &fakeDB{applied: []int{1, 2, 3}}
		if _, err := apply(ctx, SQLite, ms, db.begin); err == nil || !strings.Contains(err.Error(), "unknown to this build") {
			t.Fatalf("apply error = %v, want a refusal of version 3", err)
		}
		if db.committed {
			t.Error("committed against a newer schema")
		}
	})
}
