package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite golden files")

// checkGolden compares got with testdata/name below the file's header
// comment (its lines starting with "#"), rewriting the body under -update.
func checkGolden(t *testing.T, name, header, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		var h strings.Builder
		for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
			h.WriteString("# " + strings.TrimSpace(l) + "\n")
		}
		if err := os.WriteFile(path, []byte(h.String()+got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want := string(data)
	for strings.HasPrefix(want, "#") {
		_, want, _ = strings.Cut(want, "\n")
	}
	if got != want {
		t.Errorf("output differs from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// testSigner is a fixed key, so signatures in golden files are stable
// (Ed25519 signing is deterministic).
func testSigner() *audit.Signer {
	return audit.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
}

func testKeys() []ed25519.PublicKey { return []ed25519.PublicKey{testSigner().Public()} }

func testRedactor(t testing.TB) *audit.Redactor {
	t.Helper()
	r, err := audit.NewRedactor(audit.DefaultRules(), []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixedOptions make a log deterministic: ids count up and the clock ticks
// one millisecond per reading.
func fixedOptions(t testing.TB) *audit.Options {
	var ids, ticks atomic.Int64
	start := time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.UTC)
	return &audit.Options{
		Signer:   testSigner(),
		Redactor: testRedactor(t),
		Now:      func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Millisecond) },
		NewID:    func() string { return fmt.Sprintf("aud_%04d", ids.Add(1)) },
	}
}

func openLog(t testing.TB, st audit.Writer, chain string, o *audit.Options) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), st, chain, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func closeLog(t testing.TB, l *audit.Log) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustAppend(t testing.TB, l *audit.Log, r audit.Record) audit.Record {
	t.Helper()
	got, err := l.Append(context.Background(), r)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

func newMemory() *memory.Store { return memory.New() }

// openSQLite opens (and migrates) the SQLite store at path.
func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// decision is a tools/call decision of user alice with arguments that
// carry secrets.
func decision(n int) audit.Record {
	return audit.Record{
		Kind: audit.KindDecision, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		User: "alice", Agent: "claude-desktop", AuthMethod: "authorization_code", Session: "s-1",
		Upstream: "github", Method: "tools/call", Name: "create_issue",
		Args: map[string]any{
			"title": fmt.Sprintf("issue %d", n), "password": "hunter2",
			"auth": map[string]any{"header": "Bearer abcdefghijklmnop"},
		},
		Decision: "allow", Reasons: []string{"permit-github-issues"}, PolicyVersion: "v1-3f2a", Mandate: "mnd_1",
	}
}

// verifyOK fails the test unless src verifies.
func verifyOK(t testing.TB, src audit.Reader) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), src, testKeys())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// Interface guards: every backend serves the log and its readers.
var (
	_ audit.Writer      = store.Store(nil)
	_ audit.StoryReader = store.Store(nil)
	_ audit.Pruner      = store.Store(nil)
)
