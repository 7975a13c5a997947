package keyfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLoadOrCreateOnce: many concurrent first starts agree on one file,
// written owner-only, and later loads read it without creating.
func TestLoadOrCreateOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	var mu sync.Mutex
	got := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			b, err := LoadOrCreate(path, func() ([]byte, error) { return []byte{byte(i), 1, 2, 3}, nil }, os.ReadFile)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[string(b)] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(got) != 1 {
		t.Fatalf("concurrent creators read %d different files", len(got))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
	b, err := LoadOrCreate(path, func() ([]byte, error) { return nil, errors.New("must not create") }, os.ReadFile)
	if err != nil || !got[string(b)] {
		t.Fatalf("reload = %q, %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestLoadOrCreateReadErrors: a read error other than "does not exist" is
// returned as is, and nothing is created over the file.
func TestLoadOrCreateReadErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("wrong length")
	_, err := LoadOrCreate(path, func() ([]byte, error) { return []byte("new"), nil }, func(string) ([]byte, error) { return nil, bad })
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, []byte("short")) {
		t.Fatalf("file changed to %q", b)
	}
}
