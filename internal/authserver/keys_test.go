package authserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/users"
)

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.KeyRotation = time.Hour })
	ccToken := func() string {
		t.Helper()
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}}, secretAgent, agentSecret)
		if status != http.StatusOK {
			t.Fatalf("%d %+v", status, tj)
		}
		return tj.AccessToken
	}
	old := ccToken()
	_, oldKid, _ := e.verifyJWT(old)

	e.clock.Advance(time.Hour + time.Minute)
	fresh := ccToken()
	_, newKid, _ := e.verifyJWT(fresh)
	if newKid == oldKid {
		t.Fatal("the key did not rotate")
	}
	// The old key still verifies the tokens it signed.
	if _, kid, c := e.verifyJWT(old); kid != oldKid || c["sub"] != secretAgent {
		t.Fatalf("old token: kid %s claims %v", kid, c)
	}
	if n := len(e.jwks().Keys); n != 2 {
		t.Fatalf("%d published keys, want 2", n)
	}

	// Once every token it signed has expired, the old key is withdrawn.
	e.clock.Advance(DefaultAccessTTL)
	set := e.jwks()
	if len(set.Keys) != 1 || set.Keys[0].KeyID != newKid {
		t.Fatalf("published keys %v, want only %s", set.Keys, newKid)
	}
}

func TestKeysSealedAndShared(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	keys, err := e.store.ListSigningKeys(ctx, time.Now())
	if err != nil || len(keys) != 1 {
		t.Fatalf("stored keys %v (%v)", keys, err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(keys[0].Private); err == nil {
		t.Fatal("private key stored unsealed")
	}
	if keys[0].Algorithm != "RS256" || !keys[0].RetireAt.Equal(keys[0].NotAfter.Add(DefaultAccessTTL)) {
		t.Errorf("key %+v", keys[0])
	}
	// A second replica on the same store and sealer signs with the same key.
	replica, err := New(ctx, Options{Issuer: e.url, Store: e.store, Sealer: e.srv.opts.Sealer})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	k, err := replica.keys.current(ctx)
	if err != nil || k.id != keys[0].ID {
		t.Fatalf("replica key %v (%v), want %s", k, err, keys[0].ID)
	}
	if k.private.N.BitLen() != 2048 {
		t.Errorf("key size %d", k.private.N.BitLen())
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	sealer, err := NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Options{Issuer: "http://127.0.0.1:8787", Store: st, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	if err := s.EnsureAdmin(ctx, &out); err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(out.String())
	var password string
	for i, f := range fields {
		if f == "password" && i+1 < len(fields) && password == "" {
			password = fields[i+1]
		}
	}
	if len(password) != 20 {
		t.Fatalf("printed %q: no 20-character password", out.String())
	}
	u, err := st.GetUserByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(u.PasswordHash, password) || !verifyPassword(u.PasswordHash, password) {
		t.Fatalf("stored hash %q does not verify the printed password", u.PasswordHash)
	}
	if !slices.Equal(u.Groups, []string{"admin"}) || u.Disabled {
		t.Fatalf("admin has groups %q, disabled %v; want [admin], false", u.Groups, u.Disabled)
	}
	out.Reset()
	if err := s.EnsureAdmin(ctx, &out); err != nil || out.Len() != 0 {
		t.Fatalf("second call printed %q (%v)", out.String(), err)
	}
	if n, _ := st.CountUsers(ctx); n != 1 {
		t.Fatalf("%d users", n)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	sealer, err := NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, issuer := range []string{"http://mandate.example", "https://mandate.example/auth", "ftp://127.0.0.1", "", "https://mandate.example?x=1"} {
		if _, err := New(ctx, Options{Issuer: issuer, Store: memory.New(), Sealer: sealer}); err == nil {
			t.Errorf("issuer %q accepted", issuer)
		}
	}
	if _, err := New(ctx, Options{Issuer: "https://mandate.example", Sealer: sealer}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := New(ctx, Options{Issuer: "https://mandate.example", Store: memory.New()}); err == nil {
		t.Error("no sealer accepted")
	}
	s, err := New(ctx, Options{Issuer: "http://localhost:8787/", Store: memory.New(), Sealer: sealer})
	if err != nil {
		t.Fatalf("loopback http issuer: %v", err)
	}
	defer s.Close()
	if s.issuer != "http://localhost:8787" || s.resource != "http://localhost:8787/mcp" {
		t.Errorf("issuer %q resource %q", s.issuer, s.resource)
	}
}

func TestFileSealer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := NewFileSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, SealKeyFile))
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != 32 {
		t.Fatalf("key file %v (%v)", info, err)
	}
	sealed, err := a.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewFileSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Open(sealed); err != nil || string(got) != "secret" {
		t.Fatalf("reopened sealer: %q %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := a.Open(tampered); err == nil {
		t.Error("tampered value opened")
	}
	other, err := NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(sealed); err == nil {
		t.Error("value opened with another key")
	}
	if err := os.WriteFile(filepath.Join(dir, SealKeyFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileSealer(dir); err == nil {
		t.Error("short key file accepted")
	}
}

// TestPasswordHash checks the adapters over package users: human
// passwords get the human parameters, client secrets the cheap ones, and a
// hash that cannot be verified never matches.
func TestPasswordHash(t *testing.T) {
	h, err := users.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("password hash %q", h)
	}
	if !verifyPassword(h, "pw") || verifyPassword(h, "pW") || verifyPassword(h, "") {
		t.Error("verification wrong")
	}
	if !verifyPassword(dummyHash(), "mandate: no such user") || !strings.HasPrefix(dummyHash(), "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("dummy hash %q does not cost what a password does", dummyHash())
	}
	s, err := hashSecret("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=1024,t=1,p=1$") || !verifyPassword(s, "secret") || verifyPassword(s, "Secret") {
		t.Errorf("secret hash %q", s)
	}
	for _, bad := range []string{
		"", "pw", "$argon2i$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$!!",
	} {
		if verifyPassword(bad, "pw") {
			t.Errorf("malformed hash %q verified", bad)
		}
	}
}

func TestURLClientResolution(t *testing.T) {
	const cimdID = "https://client.example/oauth/metadata.json"
	calls := 0
	e := newEnv(t, func(o *Options) {
		o.ResolveURLClient = func(_ context.Context, id string) (store.Agent, error) {
			calls++
			return store.Agent{
				ID: id, Name: "Doc Client", RedirectURIs: []string{agentRedir}, AuthMethod: authNone,
				GrantTypes: []string{"authorization_code"}, Metadata: []byte(`{}`),
			}, nil
		}
	})
	_, challenge := pkce()
	v := e.authParams(challenge)
	v.Set("client_id", cimdID)
	cp, _ := e.browser().login(v)
	if !strings.Contains(cp.body, "Doc Client") || !strings.Contains(cp.body, "metadata document") {
		t.Error("consent page does not describe the CIMD client")
	}
	a, err := e.store.GetAgent(context.Background(), cimdID)
	if err != nil || a.Registration != store.RegistrationCIMD || a.Status != store.AgentActive || a.TrustLevel != "untrusted" {
		t.Fatalf("persisted agent %+v (%v)", a, err)
	}
	if calls == 0 {
		t.Fatal("resolver not called")
	}
	// A suspension survives the next resolution of the document.
	must(t, e.store.SetAgentStatus(context.Background(), cimdID, store.AgentSuspended))
	if p := e.browser().get("/authorize?" + v.Encode()); p.status != http.StatusBadRequest {
		t.Fatalf("suspended CIMD agent: %d", p.status)
	}
	if a, _ := e.store.GetAgent(context.Background(), cimdID); a.Status != store.AgentSuspended {
		t.Fatal("re-resolution lifted the suspension")
	}
}
