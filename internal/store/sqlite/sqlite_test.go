package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
	"github.com/mandate-mcp/mandate/internal/store/storetest"
)

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mandate.db"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), ":memory:")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

// TestShared opens one file twice, as `mandate serve` and the CLI do. The
// lag is zero: a revocation the CLI commits counts on the gateway's next
// request.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "mandate.db")
		var ss [2]store.Store
		for i := range ss {
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			ss[i] = s
		}
		return ss[0], ss[1]
	}, 0)
}

func TestOpenRejectsBadPaths(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{"empty", ""},
		{"query string", "mandate.db?mode=ro"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tc.path)
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Open(%q) error = %v, want ErrInvalid", tc.path, err)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}

func TestOpenFailsOnUnusablePath(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "missing", "dir", "mandate.db"))
	if err == nil {
		s.Close()
		t.Fatal("Open in a directory that does not exist succeeded")
	}
}

// TestDataSurvivesReopen guards the reason to choose SQLite over memory.
func TestDataSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	body := []byte(`[{"name":"x"}]`)
	snap := store.CatalogSnapshot{Upstream: "a", Kind: store.KindTools, Hash: store.CatalogHash(body), Body: body, FetchedAt: time.Unix(1, 0)}
	if _, err := s.PutCatalog(ctx, snap); err != nil {
		t.Fatalf("PutCatalog: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after reopen: %v", err)
	}
	changed, err := s.PutCatalog(ctx, snap)
	if err != nil {
		t.Fatalf("PutCatalog after reopen: %v", err)
	}
	if changed {
		t.Error("catalog stored before reopening was forgotten")
	}
}
