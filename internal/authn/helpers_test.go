package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://as.example"
	testAudience = "http://127.0.0.1:8787/mcp"
)

// testNow is the fixed clock of every verifier built by newTestVerifier.
var testNow = time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)

// testKey is a signing key of a test issuer.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// Keys are generated once per test binary: RSA generation is slow.
var keyCache sync.Map // name → *testKey

// key returns the test key named name for alg, the same on every call.
func key(t testing.TB, alg jose.SignatureAlgorithm, name string) *testKey {
	t.Helper()
	id := string(alg) + "/" + name
	if k, ok := keyCache.Load(id); ok {
		return k.(*testKey)
	}
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test keys for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	k, _ := keyCache.LoadOrStore(id, &testKey{kid: name, alg: alg, priv: priv})
	return k.(*testKey)
}

// jwk is the published form of k.
func (k *testKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign signs claims as an at+jwt with k, through go-jose: the same path a
// real authorization server takes.
func (k *testKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	return k.signWith(t, claims, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
}

func (k *testKey) signWith(t testing.TB, claims map[string]any, opts *jose.SignerOptions) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// craft assembles a compact JWS from raw JSON parts and signature bytes,
// for tokens no honest signer would produce.
func craft(header, payload string, sig []byte) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(sig)
}

// claims returns the claims of a user-delegated token from testIssuer for
// testAudience, valid at testNow, with overrides applied; a nil override
// deletes the claim.
func claims(overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":       testIssuer,
		"aud":       testAudience,
		"sub":       "alice",
		"client_id": "agent-a",
		"scope":     "mcp:tools mcp:prompts",
		"exp":       testNow.Add(5 * time.Minute).Unix(),
		"iat":       testNow.Add(-time.Minute).Unix(),
		"nbf":       testNow.Add(-time.Minute).Unix(),
		"jti":       "jti-1",
	}
	maps.Copy(c, overrides)
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		}
	}
	return c
}

// fixedClock is a settable clock for verifiers and key sources.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fixedClock { return &fixedClock{t: testNow} }

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// staticKeys publishes the public keys of keys.
func staticKeys(keys ...*testKey) *StaticKeys {
	s := &StaticKeys{}
	for _, k := range keys {
		s.Set.Keys = append(s.Set.Keys, k.jwk())
	}
	return s
}

// newTestVerifier trusts testIssuer with keys and testAudience, at testNow.
func newTestVerifier(t testing.TB, keys ...*testKey) *JWTVerifier {
	t.Helper()
	return NewJWTVerifier(JWTOptions{
		Issuers: []IssuerSpec{{Issuer: testIssuer, Keys: staticKeys(keys...), Audience: testAudience}},
		Now:     func() time.Time { return testNow },
	})
}

// errKeySource is a key source that always fails.
type errKeySource struct{ err error }

func (e errKeySource) Keys(context.Context) (*jose.JSONWebKeySet, error) { return nil, e.err }
