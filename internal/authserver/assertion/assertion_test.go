package assertion

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
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testIssuer   = "https://idp.example"
	testAudience = "https://mandate.example"
	testResource = "https://mandate.example/mcp"
	testClient   = "https://agent.example/client.json"
)

var testNow = time.Unix(1_750_000_000, 0)

// staticKeys is a fixed key set, optionally able to "refresh" into a
// second set, as an issuer rotating keys would.
type staticKeys struct {
	set       jose.JSONWebKeySet
	next      *jose.JSONWebKeySet
	refreshes atomic.Int32
	err       error
}

func (s *staticKeys) Keys(context.Context) (*jose.JSONWebKeySet, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &s.set, nil
}

func (s *staticKeys) Refresh(context.Context) (*jose.JSONWebKeySet, error) {
	s.refreshes.Add(1)
	if s.next != nil {
		return s.next, nil
	}
	return &s.set, nil
}

var _ KeyRefresher = (*staticKeys)(nil)

type signingKey struct {
	alg jose.SignatureAlgorithm
	kid string
	key crypto.Signer
}

func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

var (
	ecKey, rsaKey, edKey, otherKey signingKey
)

func init() {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey = signingKey{jose.ES256, "ec-1", ec}
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaKey = signingKey{jose.RS256, "rsa-1", r}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edKey = signingKey{jose.EdDSA, "ed-1", ed}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey = signingKey{jose.ES256, "ec-1", other} // same kid, not the issuer's key
}

// sign makes a compact JWS of claims with headers (typ defaults to the
// ID-JAG type; a nil value removes a header).
func sign(t *testing.T, k signingKey, claims map[string]any, headers map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(TokenType).WithHeader("kid", k.kid)
	for h, v := range headers {
		if v == nil {
			delete(opts.ExtraHeaders, jose.HeaderKey(h))
			continue
		}
		opts.WithHeader(jose.HeaderKey(h), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var jtiSeq atomic.Int64

// goodClaims are a valid ID-JAG's claims with a fresh jti, changed by
// edits (a nil value deletes a claim).
func goodClaims(edits map[string]any) map[string]any {
	c := map[string]any{
		"iss":       testIssuer,
		"sub":       "alice@corp",
		"aud":       testAudience,
		"resource":  testResource,
		"client_id": testClient,
		"jti":       fmt.Sprintf("jti-%d", jtiSeq.Add(1)),
		"exp":       testNow.Add(5 * time.Minute).Unix(),
		"iat":       testNow.Unix(),
		"scope":     "tools:read tools:call",
		"email":     "alice@corp.example",
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newValidator(keys KeySource) *Validator {
	return &Validator{
		Issuers:  []TrustedIssuer{{Issuer: testIssuer, Keys: keys}},
		Audience: testAudience,
		Resource: testResource,
		Replay:   newTestReplay(),
		Now:      func() time.Time { return testNow },
	}
}

func newTestReplay() *MemoryReplayCache {
	c := NewMemoryReplayCache(0)
	c.now = func() time.Time { return testNow }
	return c
}

func issuerKeys() *staticKeys {
	return &staticKeys{set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{ecKey.public(), rsaKey.public(), edKey.public()}}}
}

func TestValidate(t *testing.T) {
	hmacKey := []byte(strings.Repeat("k", 32))
	tests := []struct {
		name    string
		key     signingKey
		claims  map[string]any
		headers map[string]any
		client  string
		raw     string // used instead of signing when set
		want    string // substring of the error; "" means valid
	}{
		{name: "valid ES256", key: ecKey, claims: goodClaims(nil)},
		{name: "valid RS256", key: rsaKey, claims: goodClaims(nil)},
		{name: "valid EdDSA", key: edKey, claims: goodClaims(nil)},
		{name: "valid aud as one-element array", key: ecKey, claims: goodClaims(map[string]any{"aud": []string{testAudience}})},
		{name: "valid iat within skew", key: ecKey, claims: goodClaims(map[string]any{"iat": testNow.Add(20 * time.Second).Unix()})},
		{name: "valid without kid", key: signingKey{ecKey.alg, "", ecKey.key}, claims: goodClaims(nil)},

		// AT-60 (a): typ must be the ID-JAG type, exactly.
		{name: "AT-60a typ JWT", key: ecKey, claims: goodClaims(nil), headers: map[string]any{"typ": "JWT"}, want: "typ"},
		{name: "AT-60a typ missing", key: ecKey, claims: goodClaims(nil), headers: map[string]any{"typ": nil}, want: "typ"},
		{name: "AT-60a typ other case", key: ecKey, claims: goodClaims(nil), headers: map[string]any{"typ": "OAUTH-ID-JAG+JWT"}, want: "typ"},
		{name: "AT-60a typ access token", key: ecKey, claims: goodClaims(nil), headers: map[string]any{"typ": "at+jwt"}, want: "typ"},
		// AT-60 (b): aud must be Mandate's issuer, alone.
		{name: "AT-60b aud other server", key: ecKey, claims: goodClaims(map[string]any{"aud": "https://other-as.example"}), want: "aud"},
		{name: "AT-60b aud with another", key: ecKey, claims: goodClaims(map[string]any{"aud": []string{testAudience, "https://other-as.example"}}), want: "aud"},
		{name: "AT-60b aud missing", key: ecKey, claims: goodClaims(map[string]any{"aud": nil}), want: "aud"},
		{name: "AT-60b aud is resource", key: ecKey, claims: goodClaims(map[string]any{"aud": testResource}), want: "aud"},
		// AT-60 (c): client_id must be the authenticated client.
		{name: "AT-60c client_id other", key: ecKey, claims: goodClaims(nil), client: "https://evil.example/client.json", want: "client_id"},
		{name: "AT-60c client_id missing", key: ecKey, claims: goodClaims(map[string]any{"client_id": nil}), want: "client_id"},
		// AT-60 (d): resource must be Mandate's canonical URL.
		{name: "AT-60d resource other", key: ecKey, claims: goodClaims(map[string]any{"resource": "https://other.example/mcp"}), want: "resource"},
		{name: "AT-60d resource missing", key: ecKey, claims: goodClaims(map[string]any{"resource": nil}), want: "resource"},
		{name: "AT-60d resource array", key: ecKey, claims: goodClaims(map[string]any{"resource": []string{testResource}}), want: "resource"},
		{name: "AT-60d resource trailing slash", key: ecKey, claims: goodClaims(map[string]any{"resource": testResource + "/"}), want: "resource"},
		// AT-60 (f): expired.
		{name: "AT-60f expired", key: ecKey, claims: goodClaims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()}), want: "expired"},
		{name: "AT-60f expires now", key: ecKey, claims: goodClaims(map[string]any{"exp": testNow.Unix()}), want: "expired"},

		{name: "iat in the future", key: ecKey, claims: goodClaims(map[string]any{"iat": testNow.Add(time.Minute).Unix()}), want: "iat"},
		{name: "nbf in the future", key: ecKey, claims: goodClaims(map[string]any{"nbf": testNow.Add(time.Minute).Unix()}), want: "nbf"},
		{name: "exp as string", key: ecKey, claims: goodClaims(map[string]any{"exp": "9999999999"}), want: "claims"},
		{name: "iss missing", key: ecKey, claims: goodClaims(map[string]any{"iss": nil}), want: "not trusted"},
		{name: "sub missing", key: ecKey, claims: goodClaims(map[string]any{"sub": nil}), want: "sub"},
		{name: "jti missing", key: ecKey, claims: goodClaims(map[string]any{"jti": nil}), want: "jti"},
		{name: "exp missing", key: ecKey, claims: goodClaims(map[string]any{"exp": nil}), want: "exp"},
		{name: "iat missing", key: ecKey, claims: goodClaims(map[string]any{"iat": nil}), want: "iat"},
		{name: "untrusted issuer", key: ecKey, claims: goodClaims(map[string]any{"iss": "https://evil-idp.example"}), want: "not trusted"},
		{name: "issuer differs by slash", key: ecKey, claims: goodClaims(map[string]any{"iss": testIssuer + "/"}), want: "not trusted"},
		{name: "signed by another key", key: otherKey, claims: goodClaims(nil), want: "signature"},
		{name: "unknown kid", key: signingKey{ecKey.alg, "nope", ecKey.key}, claims: goodClaims(nil), want: "no key"},
		{name: "alg HS256", raw: hs256(t, hmacKey, goodClaims(nil)), want: "parse"},
		{name: "alg none", raw: algNone(goodClaims(nil)), want: "parse"},
		{name: "ES384 not allowed", key: es384(), claims: goodClaims(nil), want: "parse"},
		{name: "not a JWT", raw: "hello", want: "parse"},
		{name: "JWE", raw: "a.b.c.d.e", want: "parse"},
		{name: "huge", raw: strings.Repeat("a", 20000), want: "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newValidator(issuerKeys())
			tok := tt.raw
			if tok == "" {
				tok = sign(t, tt.key, tt.claims, tt.headers)
			}
			client := tt.client
			if client == "" {
				client = testClient
			}
			g, err := v.Validate(t.Context(), tok, client)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if g.Issuer != testIssuer || g.Subject != "alice@corp" || g.ClientID != testClient || g.JTI != tt.claims["jti"] ||
					g.Email != "alice@corp.example" || len(g.Scopes) != 2 || g.Scopes[1] != "tools:call" ||
					!g.Expiry.Equal(testNow.Add(5*time.Minute)) {
					t.Errorf("grant = %+v", g)
				}
				return
			}
			if !errors.Is(err, ErrInvalidGrant) {
				t.Fatalf("Validate = %v, want invalid_grant", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want a reason mentioning %q", err, tt.want)
			}
		})
	}
}

// TestValidateReplay is AT-60 (e): an assertion is good once.
func TestValidateReplay(t *testing.T) {
	v := newValidator(issuerKeys())
	first := goodClaims(nil)
	tok := sign(t, ecKey, first, nil)
	if _, err := v.Validate(t.Context(), tok, testClient); err != nil {
		t.Fatalf("first use: %v", err)
	}
	_, err := v.Validate(t.Context(), tok, testClient)
	if !errors.Is(err, ErrInvalidGrant) || !errors.Is(err, ErrReplay) {
		t.Fatalf("second use = %v, want invalid_grant wrapping ErrReplay", err)
	}
	// Another token reusing the jti of the same issuer is a replay too.
	c := goodClaims(nil)
	c["jti"] = first["jti"]
	if _, err := v.Validate(t.Context(), sign(t, rsaKey, c, nil), testClient); !errors.Is(err, ErrReplay) {
		t.Fatalf("same jti, new token = %v, want ErrReplay", err)
	}
}

// TestValidateRejectedAssertionKeepsItsJTI: a misdirected copy must not
// spend the id of the genuine assertion.
func TestValidateRejectedAssertionKeepsItsJTI(t *testing.T) {
	v := newValidator(issuerKeys())
	tok := sign(t, ecKey, goodClaims(nil), nil)
	if _, err := v.Validate(t.Context(), tok, "https://evil.example/client.json"); err == nil {
		t.Fatal("accepted for the wrong client")
	}
	if _, err := v.Validate(t.Context(), tok, testClient); err != nil {
		t.Fatalf("genuine use after a rejected one: %v", err)
	}
}

func TestValidateFailsClosedWithoutReplayCache(t *testing.T) {
	v := newValidator(issuerKeys())
	v.Replay = nil
	if _, err := v.Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Validate = %v, want invalid_grant", err)
	}
}

func TestValidateFailsClosedWithoutAudienceOrResource(t *testing.T) {
	for _, mod := range []func(*Validator){
		func(v *Validator) { v.Audience = "" },
		func(v *Validator) { v.Resource = "" },
	} {
		v := newValidator(issuerKeys())
		mod(v)
		c := goodClaims(map[string]any{"aud": "", "resource": ""})
		if _, err := v.Validate(t.Context(), sign(t, ecKey, c, nil), testClient); !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("Validate = %v, want invalid_grant", err)
		}
	}
	v := newValidator(issuerKeys())
	if _, err := v.Validate(t.Context(), sign(t, ecKey, goodClaims(map[string]any{"client_id": ""}), nil), ""); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("no authenticated client: Validate = %v, want invalid_grant", err)
	}
}

func TestValidateFailsClosedWhenKeysUnavailable(t *testing.T) {
	keys := issuerKeys()
	keys.err = errors.New("jwks unreachable")
	if _, err := newValidator(keys).Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Validate = %v, want invalid_grant", err)
	}
}

func TestValidateFailsClosedWhenReplayCacheFails(t *testing.T) {
	v := newValidator(issuerKeys())
	v.Replay = failingReplay{}
	if _, err := v.Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Validate = %v, want invalid_grant", err)
	}
}

type failingReplay struct{}

func (failingReplay) Use(context.Context, string, time.Time) error { return errors.New("store down") }

// TestValidateRefreshesKeysForUnknownKid: a key the issuer rotated in is
// found by one refresh.
func TestValidateRefreshesKeysForUnknownKid(t *testing.T) {
	keys := &staticKeys{
		set:  jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaKey.public()}},
		next: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaKey.public(), ecKey.public()}},
	}
	if _, err := newValidator(keys).Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if n := keys.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

func TestValidateRejectsWeakOrMismatchedKeys(t *testing.T) {
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakKey := signingKey{jose.RS256, "weak", weak}
	keys := &staticKeys{set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{weakKey.public()}}}
	if _, err := newValidator(keys).Validate(t.Context(), sign(t, weakKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("1024-bit RSA: Validate = %v, want invalid_grant", err)
	}
	// A key published for another algorithm is not tried.
	pub := ecKey.public()
	pub.Algorithm = string(jose.ES384)
	keys = &staticKeys{set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}}
	if _, err := newValidator(keys).Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("alg mismatch: Validate = %v, want invalid_grant", err)
	}
	// An encryption key is not a signing key.
	pub = ecKey.public()
	pub.Use = "enc"
	keys = &staticKeys{set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}}
	if _, err := newValidator(keys).Validate(t.Context(), sign(t, ecKey, goodClaims(nil), nil), testClient); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("use=enc: Validate = %v, want invalid_grant", err)
	}
}

func TestValidateScopeAbsent(t *testing.T) {
	g, err := newValidator(issuerKeys()).Validate(t.Context(), sign(t, ecKey, goodClaims(map[string]any{"scope": nil}), nil), testClient)
	if err != nil {
		t.Fatal(err)
	}
	if g.Scopes != nil {
		t.Errorf("Scopes = %q, want nil", g.Scopes)
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := testNow
	c := NewMemoryReplayCache(2)
	c.now = func() time.Time { return now }
	ctx := t.Context()
	if err := c.Use(ctx, "a", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Use(ctx, "a", now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("reuse = %v, want ErrReplay", err)
	}
	if err := c.Use(ctx, "b", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Full of live ids: refuse rather than forget.
	if err := c.Use(ctx, "c", now.Add(time.Minute)); err == nil || errors.Is(err, ErrReplay) {
		t.Fatalf("full cache = %v, want a refusal that is not ErrReplay", err)
	}
	now = now.Add(time.Minute)
	// a has expired: its slot is free, and its id may be seen again (an
	// assertion carrying it would be expired anyway).
	if err := c.Use(ctx, "c", now.Add(time.Minute)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := c.Use(ctx, "b", now.Add(time.Minute)); !errors.Is(err, ErrReplay) {
		t.Fatalf("live id after sweep = %v, want ErrReplay", err)
	}
}

func hs256(t *testing.T, key []byte, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key}, (&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, _ := signer.Sign(payload)
	s, _ := jws.CompactSerialize()
	return s
}

func algNone(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]any{"alg": "none", "typ": TokenType}) + "." + enc(claims) + "."
}

func es384() signingKey {
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	return signingKey{jose.ES384, "ec-1", k}
}

func FuzzValidate(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.e30.AAAA")
	f.Add("a.b.c")
	f.Add("")
	v := newValidator(issuerKeys())
	f.Fuzz(func(t *testing.T, s string) {
		g, err := v.Validate(context.Background(), s, testClient)
		if err == nil {
			t.Fatalf("accepted %q as %+v", s, g)
		}
		if !errors.Is(err, ErrInvalidGrant) {
			t.Fatalf("error %v does not wrap ErrInvalidGrant", err)
		}
	})
}
