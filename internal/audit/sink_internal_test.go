package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store/memory"
)

// TestAppendFailsClosedWhenFileFails: a configured file that cannot be
// written fails the append, although the store took it, and nothing more is
// committed until the file has caught up; then the file is complete.
func TestAppendFailsClosedWhenFileFails(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	signer := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	l, err := Open(ctx, st, "c1", &Options{Signer: signer, File: path})
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{Kind: KindAdmin, Event: EventConfigChanged, Actor: "cli"}
	if _, err := l.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	good := l.sink.f
	broken, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer broken.Close()
	l.sink.f = broken
	for range 3 {
		if _, err := l.Append(ctx, rec); err == nil || !strings.Contains(err.Error(), "audit file") {
			t.Fatalf("Append with a failing file = %v, want the file's error", err)
		}
	}
	if last, err := st.LastAudit(ctx, "c1"); err != nil || last.Seq != 2 {
		t.Fatalf("store head = %d, %v; want 2: one batch reached the store, later ones waited for the file", last.Seq, err)
	}
	l.sink.f = good
	r, err := l.Append(ctx, rec)
	if err != nil || r.Seq != 3 {
		t.Fatalf("Append after the file recovered = %d, %v", r.Seq, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := VerifyFile(f, []ed25519.PublicKey{signer.Public()})
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if c := rep.Chains[0]; c.Records != 3 || c.Signed != 3 {
		t.Errorf("file report = %+v, want 3 records, all signed", c)
	}
}

// TestFileCatchesUp: a file that missed records (a crash between commit
// and write) is brought up to the store on Open; a new file starts from a
// signed anchor; a cut last line is dropped; a file ahead of the store is
// refused.
func TestFileCatchesUp(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	signer := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	keys := []ed25519.PublicKey{signer.Public()}
	rec := Record{Kind: KindAdmin, Event: EventConfigChanged, Actor: "cli"}
	appendN := func(o *Options, n int) {
		t.Helper()
		l, err := Open(ctx, st, "c1", o)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if _, err := l.Append(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(p string) ChainSummary {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rep, err := VerifyFile(f, keys)
		if err != nil {
			t.Fatalf("VerifyFile(%s): %v", filepath.Base(p), err)
		}
		return rep.Chains[0]
	}

	appendN(&Options{Signer: signer, File: path}, 3)
	// Records the file never got.
	appendN(&Options{Signer: signer}, 2)
	// A crash mid-line.
	fh, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	fh.WriteString(`{"record":{"id":"half`)
	fh.Close()
	appendN(&Options{Signer: signer, File: path}, 1)
	if c := verify(path); c.First != 1 || c.Last != 6 || c.Unsigned() != 0 {
		t.Errorf("caught-up file = %+v", c)
	}

	late := filepath.Join(dir, "late.jsonl")
	appendN(&Options{Signer: signer, File: late}, 1)
	if c := verify(late); c.Anchor != 6 || c.First != 7 || c.Last != 7 {
		t.Errorf("file started late = %+v, want an anchor at 6 then record 7", c)
	}

	if _, err := Open(ctx, memory.New(), "c1", &Options{Signer: signer, File: path}); err == nil ||
		!strings.Contains(err.Error(), "store lost records") {
		t.Errorf("Open with a file ahead of the store = %v", err)
	}
}
