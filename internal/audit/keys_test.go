package audit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mandate-mcp/mandate/internal/audit"
)

func TestLoadKeysCreatesOnceOwnerOnly(t *testing.T) {
	dir := audit.KeysDir(t.TempDir())
	k1, err := audit.LoadKeys(dir)
	if err != nil {
		t.Fatalf("LoadKeys: %v", err)
	}
	for _, name := range []string{audit.SigningKeyFile, audit.DigestKeyFile, audit.ChainFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	k2, err := audit.LoadKeys(dir)
	if err != nil {
		t.Fatalf("second LoadKeys: %v", err)
	}
	if !k1.Signer.Public().Equal(k2.Signer.Public()) || !bytes.Equal(k1.DigestKey, k2.DigestKey) || k1.Chain != k2.Chain {
		t.Error("a second load made new keys")
	}
	if len(k1.DigestKey) != 32 || !strings.HasPrefix(k1.Chain, "chain_") {
		t.Errorf("digest key of %d bytes, chain %q", len(k1.DigestKey), k1.Chain)
	}
	pubs, err := audit.ParsePublicKeys(k1.Signer.PublicPEM())
	if err != nil || len(pubs) != 1 || !pubs[0].Equal(k1.Signer.Public()) {
		t.Errorf("the exported public key does not parse back: %v", err)
	}
	if audit.KeyID(pubs[0]) != k1.Signer.KeyID() {
		t.Error("KeyID of the exported key differs")
	}
}

// TestLoadKeysConcurrently guards two processes starting on one data
// directory: both must end up with the same key, not each its own.
func TestLoadKeysConcurrently(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]*audit.Keys, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := audit.LoadKeys(dir)
			if err != nil {
				t.Errorf("LoadKeys: %v", err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if k == nil || keys[0] == nil || !k.Signer.Public().Equal(keys[0].Signer.Public()) || k.Chain != keys[0].Chain {
			t.Fatal("concurrent loads disagree")
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestLoadKeysRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := audit.LoadKeys(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, audit.SigningKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.LoadKeys(dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("LoadKeys with a world-readable key = %v, want a refusal", err)
	}
}

func TestParsePublicKeys(t *testing.T) {
	a, b := testSigner().PublicPEM(), audit.PublicPEM(mustSigner(t).Public())
	keys, err := audit.ParsePublicKeys(append(append([]byte("comment\n"), a...), b...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParsePublicKeys = %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := audit.ParsePublicKeys([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKeys(%q) succeeded", bad)
		}
	}
}

func mustSigner(t *testing.T) *audit.Signer {
	t.Helper()
	s, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
