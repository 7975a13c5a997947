package authn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/identity"
)

type tokenCase struct {
	name  string
	token string
	ok    bool
}

// at17Cases are the tokens of AT-17 (audience confusion), verified by
// newTestVerifier(t, key(t, jose.RS256, "rsa-1")): (a)(b)(c)(e)(f)(g) are
// refused, (d) — an aud array that names Mandate's canonical URL — is
// accepted.
func at17Cases(t testing.TB) []tokenCase {
	rs := key(t, jose.RS256, "rsa-1")
	ec := key(t, jose.ES256, "ec-1")
	body, _ := json.Marshal(claims(nil))

	// HS256 keyed with the issuer's public key: a verifier that lets the
	// header pick the algorithm would check this HMAC with the public
	// key, which anyone has.
	der, err := x509.MarshalPKIXPublicKey(rs.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	hsHeader := `{"alg":"HS256","typ":"at+jwt","kid":"rsa-1"}`
	unsigned := craft(hsHeader, string(body), nil)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(strings.TrimSuffix(unsigned, ".")))
	hs256 := craft(hsHeader, string(body), mac.Sum(nil))

	nRaw := rs.priv.Public().(*rsa.PublicKey).N.Bytes()
	mac = hmac.New(sha256.New, nRaw)
	mac.Write([]byte(strings.TrimSuffix(unsigned, ".")))
	hs256n := craft(hsHeader, string(body), mac.Sum(nil))

	return []tokenCase{
		{"a/aud is an upstream MCP server", rs.sign(t, claims(map[string]any{"aud": "https://good-srv.example/mcp"})), false},
		{"b/aud is another resource server", rs.sign(t, claims(map[string]any{"aud": "https://api.other.example"})), false},
		{"b/aud is Mandate's URL with a trailing slash", rs.sign(t, claims(map[string]any{"aud": testAudience + "/"})), false},
		{"c/no aud", rs.sign(t, claims(map[string]any{"aud": nil})), false},
		{"c/empty aud array", rs.sign(t, claims(map[string]any{"aud": []string{}})), false},
		{"d/aud array containing Mandate", rs.sign(t, claims(map[string]any{"aud": []string{"https://good-srv.example/mcp", testAudience}})), true},
		{"d/aud array without Mandate", rs.sign(t, claims(map[string]any{"aud": []string{"https://good-srv.example/mcp", "https://api.other.example"}})), false},
		{"e/expired beyond skew", rs.sign(t, claims(map[string]any{"exp": testNow.Add(-31 * time.Second).Unix()})), false},
		{"f/untrusted iss", rs.sign(t, claims(map[string]any{"iss": "https://evil.example"})), false},
		{"f/iss with a trailing slash", rs.sign(t, claims(map[string]any{"iss": testIssuer + "/"})), false},
		{"f/no iss", rs.sign(t, claims(map[string]any{"iss": nil})), false},
		{"g/alg none", craft(`{"alg":"none","typ":"at+jwt"}`, string(body), nil), false},
		{"g/alg none with a signature", craft(`{"alg":"none","kid":"rsa-1"}`, string(body), []byte("sig")), false},
		{"g/alg None", craft(`{"alg":"None"}`, string(body), nil), false},
		{"g/HS256 keyed with the public key (DER)", hs256, false},
		{"g/HS256 keyed with the public key (modulus)", hs256n, false},
		{"g/ES256 header naming the RSA key", ec.signWith(t, claims(nil), (&jose.SignerOptions{}).WithHeader("kid", "rsa-1")), false},
		{"g/PS256 with the RSA key", key(t, jose.RS256, "rsa-1").signPS256(t, claims(nil)), false},
		{"valid RS256 token", rs.sign(t, claims(nil)), true},
	}
}

// signPS256 signs with the RSA key under PS256, an algorithm Mandate
// does not accept.
func (k *testKey) signPS256(t testing.TB, c map[string]any) string {
	ps := &testKey{kid: k.kid, alg: jose.PS256, priv: k.priv}
	return ps.sign(t, c)
}

func TestVerifyAudienceConfusion(t *testing.T) { // AT-17
	v := newTestVerifier(t, key(t, jose.RS256, "rsa-1"))
	for _, tc := range at17Cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.token)
			if tc.ok {
				if err != nil || p == nil {
					t.Fatalf("Verify = %v, %v; want a principal", p, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || p != nil {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	ec := key(t, jose.ES256, "ec-1")
	ed := key(t, jose.EdDSA, "ed-1")
	v := newTestVerifier(t, rs, ec, ed)
	good := rs.sign(t, claims(nil))
	h, p, s := splitToken(good)
	payload, _ := json.Marshal(claims(nil))
	typed := func(typ string) string {
		return rs.signWith(t, claims(nil), (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "rsa-1"))
	}

	tests := []struct {
		name   string
		token  string
		reason string // part of the logged reason
	}{
		{"empty", "", "segments"},
		{"two segments", h + "." + p, "segments"},
		{"four segments", good + ".x", "segments"},
		{"padding", good + "=", "byte"},
		{"CR LF inside", h + ".\r\n" + p + "." + s, "byte"},
		{"JSON serialization", `{"payload":"` + p + `"}`, "byte"},
		{"non-canonical signature encoding", h + "." + p + "." + flipLastBits(s), "signature"},
		{"too long", strings.Repeat("a", maxTokenBytes+1), "longer"},
		{"tampered payload", h + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "alice", "mallory", 1))) + "." + s, "signature"},
		{"signature of another key", h + "." + p + "." + tail(ec.sign(t, claims(nil))), "signature"},
		{"unknown kid", key(t, jose.RS256, "rsa-2").sign(t, claims(nil)), "kid"},
		{"typ oauth-id-jag+jwt", typed("oauth-id-jag+jwt"), "typ"},
		{"typ dpop+jwt", typed("dpop+jwt"), "typ"},
		{"typ logout+jwt", typed("logout+jwt"), "typ"},
		{"crit header", rs.signWith(t, claims(nil), (&jose.SignerOptions{}).WithHeader("kid", "rsa-1").WithHeader("crit", []string{"exp"}).WithHeader("exp", 1)), "crit"},
		{"cty header (nested JWT)", rs.signWith(t, claims(nil), (&jose.SignerOptions{}).WithHeader("kid", "rsa-1").WithContentType("JWT")), "cty"},
		{"duplicate header member", craft(`{"alg":"none","alg":"RS256","kid":"rsa-1"}`, string(payload), []byte("x")), "repeated"},
		{"duplicate claim", signRawPayload(t, rs, strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","sub":"bob"`, 1)), "repeated"},
		{"duplicate claim by escape", signRawPayload(t, rs, strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","\u0073ub":"bob"`, 1)), "repeated"},
		{"claims not UTF-8", signRawPayload(t, rs, strings.Replace(string(payload), `"alice"`, "\"al\xffice\"", 1)), "UTF-8"},
		{"claims trailing data", signRawPayload(t, rs, string(payload)+"{}"), "object"},
		{"claims null", signRawPayload(t, rs, "null"), "object"},
		{"claims not an object", signRawPayload(t, rs, `["iss"]`), "object"},
		{"no exp", rs.sign(t, claims(map[string]any{"exp": nil})), "no exp"},
		{"exp as string", rs.sign(t, claims(map[string]any{"exp": fmt.Sprint(testNow.Add(time.Hour).Unix())})), "exp is not a number"},
		{"exp huge", rs.sign(t, claims(map[string]any{"exp": 1e300})), "out of range"},
		{"exp exactly at skew", rs.sign(t, claims(map[string]any{"exp": testNow.Add(-30 * time.Second).Unix()})), "expired"},
		{"nbf beyond skew", rs.sign(t, claims(map[string]any{"nbf": testNow.Add(31 * time.Second).Unix()})), "nbf"},
		{"iat beyond skew", rs.sign(t, claims(map[string]any{"iat": testNow.Add(time.Minute).Unix()})), "iat"},
		{"aud a number", rs.sign(t, claims(map[string]any{"aud": 7})), "aud"},
		{"aud array of non-strings", rs.sign(t, claims(map[string]any{"aud": []any{testAudience, 1}})), "aud"},
		{"iss an array", rs.sign(t, claims(map[string]any{"iss": []string{testIssuer}})), "iss"},
		{"no agent", rs.sign(t, claims(map[string]any{"client_id": nil})), "no agent"},
		{"client_id not a string", rs.sign(t, claims(map[string]any{"client_id": 42})), "client_id"},
		{"scope a number", rs.sign(t, claims(map[string]any{"scope": 1})), "scope"},
		{"groups of numbers", rs.sign(t, claims(map[string]any{"groups": []int{1}})), "groups"},
		{"act names no actor", rs.sign(t, claims(map[string]any{"act": map[string]any{"iss": "x"}})), "act"},
		{"act nested too deep", rs.sign(t, claims(map[string]any{"act": deepAct(9)})), "deeper"},
		{"act not an object", rs.sign(t, claims(map[string]any{"act": "agent-b"})), "act"},
		{"ES256 signature in ASN.1 form", asn1ES256(t, ec), "signature"},
		{"EdDSA token naming the EC key", ed.signWith(t, claims(nil), (&jose.SignerOptions{}).WithHeader("kid", "ec-1")), "kid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.token)
			if !errors.Is(err, ErrInvalidToken) || p != nil {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("reason %q does not mention %q", err, tc.reason)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20]) {
				t.Errorf("reason %q quotes the token", err)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	ec := key(t, jose.ES256, "ec-1")
	ed := key(t, jose.EdDSA, "ed-1")
	v := newTestVerifier(t, rs, ec, ed)
	typed := func(typ string) string {
		return rs.signWith(t, claims(nil), (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", "rsa-1"))
	}
	payload, _ := json.Marshal(claims(nil))
	tests := []struct{ name, token string }{
		{"RS256", rs.sign(t, claims(nil))},
		{"ES256", ec.sign(t, claims(nil))},
		{"EdDSA", ed.sign(t, claims(nil))},
		{"typ at+jwt", typed("at+jwt")},
		{"typ application/at+jwt", typed("application/at+jwt")},
		{"typ JWT", typed("JWT")},
		{"no typ", rs.signWith(t, claims(nil), (&jose.SignerOptions{}).WithHeader("kid", "rsa-1"))},
		{"no kid, one key of the alg", ec.signWith(t, claims(nil), &jose.SignerOptions{})},
		{"expired within skew", rs.sign(t, claims(map[string]any{"exp": testNow.Add(-29 * time.Second).Unix()}))},
		{"fractional exp", rs.sign(t, claims(map[string]any{"exp": float64(testNow.Unix()) + 60.5}))},
		{"nbf within skew", rs.sign(t, claims(map[string]any{"nbf": testNow.Add(29 * time.Second).Unix()}))},
		{"iat within skew", rs.sign(t, claims(map[string]any{"iat": testNow.Add(29 * time.Second).Unix()}))},
		{"no nbf, no iat", rs.sign(t, claims(map[string]any{"nbf": nil, "iat": nil}))},
		{"agent from azp", rs.sign(t, claims(map[string]any{"client_id": nil, "azp": "agent-a"}))},
		{"same names in nested objects and strings", signRawPayload(t, rs, strings.Replace(string(payload), `"sub":"alice"`, `"sub":"alice","x":{"sub":"b","a":[{"sub":"c"}],"s":"\\\":{"}`, 1)+" ")},
		{"unknown header and claims ignored", rs.signWith(t, claims(map[string]any{"x-custom": map[string]any{"a": 1}}), (&jose.SignerOptions{}).WithHeader("kid", "rsa-1").WithHeader("x5t", "abc"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tc.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Agent != "agent-a" || p.User != "alice" {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestVerifyPrincipal(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	exp := testNow.Add(5 * time.Minute)
	base := func(p identity.Principal) *identity.Principal {
		p.Issuer = testIssuer
		p.Expiry = exp
		p.TokenID = "jti-1"
		return &p
	}
	tests := []struct {
		name   string
		spec   func(*IssuerSpec)
		claims map[string]any
		want   *identity.Principal
	}{
		{
			name:   "authorization code",
			claims: map[string]any{"email": "alice@example.com", "groups": []string{"eng", "ops"}},
			want: base(identity.Principal{User: "alice", Agent: "agent-a", Email: "alice@example.com", Groups: []string{"eng", "ops"},
				Scopes: []string{"mcp:tools", "mcp:prompts"}, Method: identity.MethodAuthorizationCode}),
		},
		{
			name:   "client credentials: sub is the client",
			claims: map[string]any{"sub": "agent-a"},
			want:   base(identity.Principal{Agent: "agent-a", Scopes: []string{"mcp:tools", "mcp:prompts"}, Method: identity.MethodClientCredentials}),
		},
		{
			name:   "client credentials: no sub",
			claims: map[string]any{"sub": nil, "scope": nil},
			want:   base(identity.Principal{Agent: "agent-a", Method: identity.MethodClientCredentials}),
		},
		{
			name:   "client credentials: azp",
			claims: map[string]any{"sub": "svc", "client_id": nil, "azp": "svc", "scope": nil},
			want:   base(identity.Principal{Agent: "svc", Method: identity.MethodClientCredentials}),
		},
		{
			name:   "method from the issuer spec",
			spec:   func(s *IssuerSpec) { s.Method = identity.MethodExternal },
			claims: map[string]any{"scope": nil},
			want:   base(identity.Principal{User: "alice", Agent: "agent-a", Method: identity.MethodExternal}),
		},
		{
			name: "token exchange: one actor",
			claims: map[string]any{"scope": nil, "client_id": "exchanger",
				"act": map[string]any{"sub": "agent-b-sub", "client_id": "agent-b"}},
			want: base(identity.Principal{User: "alice", Agent: "agent-b", Method: identity.MethodTokenExchange,
				Chain: []identity.Actor{{Subject: "agent-b-sub", ClientID: "agent-b"}}}),
		},
		{
			name: "token exchange: nested actors, current first",
			claims: map[string]any{"scope": nil, "client_id": nil,
				"act": map[string]any{"sub": "agent-c", "act": map[string]any{"sub": "agent-b", "client_id": "b", "act": map[string]any{"client_id": "a"}}}},
			want: base(identity.Principal{User: "alice", Agent: "agent-c", Method: identity.MethodTokenExchange,
				Chain: []identity.Actor{{Subject: "agent-c"}, {Subject: "agent-b", ClientID: "b"}, {ClientID: "a"}}}),
		},
		{
			name:   "token exchange overrides the spec method",
			spec:   func(s *IssuerSpec) { s.Method = identity.MethodExternal },
			claims: map[string]any{"scope": nil, "act": map[string]any{"client_id": "agent-b"}},
			want: base(identity.Principal{User: "alice", Agent: "agent-b", Method: identity.MethodTokenExchange,
				Chain: []identity.Actor{{ClientID: "agent-b"}}}),
		},
		{
			name: "claim map (Entra-style)",
			spec: func(s *IssuerSpec) {
				s.Claims = ClaimMap{User: "oid", Agent: "appid", Email: "upn", Groups: "roles", Scopes: "scp"}
			},
			claims: map[string]any{"oid": "u-123", "appid": "app-9", "upn": "a@corp.example", "roles": "Admin",
				"scp": "mcp:tools mcp:resources", "scope": "ignored", "client_id": "not-the-agent"},
			want: base(identity.Principal{User: "u-123", Agent: "app-9", Email: "a@corp.example", Groups: []string{"Admin"},
				Scopes: []string{"mcp:tools", "mcp:resources"}, Method: identity.MethodAuthorizationCode}),
		},
		{
			name:   "self-declared names never make the agent", // AT-40
			claims: map[string]any{"client_name": "Claude Desktop (trusted)", "clientInfo": map[string]any{"name": "agent-z"}, "x-agent-id": "agent-z"},
			want:   base(identity.Principal{User: "alice", Agent: "agent-a", Scopes: []string{"mcp:tools", "mcp:prompts"}, Method: identity.MethodAuthorizationCode}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := IssuerSpec{Issuer: testIssuer, Keys: staticKeys(rs), Audience: testAudience}
			if tc.spec != nil {
				tc.spec(&spec)
			}
			v := NewJWTVerifier(JWTOptions{Issuers: []IssuerSpec{spec}, Now: func() time.Time { return testNow }})
			p, err := v.Verify(context.Background(), rs.sign(t, claims(tc.claims)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Errorf("principal\n got %+v\nwant %+v", p, tc.want)
			}
		})
	}
}

func TestVerifyScopeForms(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"scope string", map[string]any{"scope": "mcp:tools mcp:prompts"}, []string{"mcp:tools", "mcp:prompts"}},
		{"scope string, extra spaces and repeats", map[string]any{"scope": " mcp:tools  mcp:tools mcp:resources "}, []string{"mcp:tools", "mcp:resources"}},
		{"scp array", map[string]any{"scope": nil, "scp": []string{"mcp:tools", "mcp:resources"}}, []string{"mcp:tools", "mcp:resources"}},
		{"scp string", map[string]any{"scope": nil, "scp": "mcp:prompts"}, []string{"mcp:prompts"}},
		{"scope array", map[string]any{"scope": []string{"mcp:tools"}}, []string{"mcp:tools"}},
		{"scope wins over scp", map[string]any{"scope": "mcp:tools", "scp": []string{"mcp:resources"}}, []string{"mcp:tools"}},
		{"empty scope", map[string]any{"scope": ""}, nil},
		{"no scope", map[string]any{"scope": nil}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), rs.sign(t, claims(tc.claims)))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !reflect.DeepEqual(p.Scopes, tc.want) {
				t.Errorf("Scopes = %q, want %q", p.Scopes, tc.want)
			}
		})
	}
}

// TestVerifyNoKidNeedsOneKey: a token without kid is checked only when
// the issuer has exactly one key for its alg.
func TestVerifyNoKidNeedsOneKey(t *testing.T) {
	rs1, rs2 := key(t, jose.RS256, "rsa-1"), key(t, jose.RS256, "rsa-2")
	token := rs1.signWith(t, claims(nil), &jose.SignerOptions{})
	if _, err := newTestVerifier(t, rs1, key(t, jose.ES256, "ec-1")).Verify(context.Background(), token); err != nil {
		t.Fatalf("one RS256 key: %v", err)
	}
	_, err := newTestVerifier(t, rs1, rs2).Verify(context.Background(), token)
	if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "no kid") {
		t.Fatalf("two RS256 keys: %v, want ErrInvalidToken (no kid)", err)
	}
}

// TestVerifyRefusesNonCanonicalEncoding: one token has one spelling, so
// the cache key and any replay check on the token see every copy of it.
func TestVerifyRefusesNonCanonicalEncoding(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	good := rs.sign(t, claims(nil))
	h, p, s := splitToken(good)
	respelled := h + "." + p + "." + flipLastBits(s)
	a, _ := base64.RawURLEncoding.DecodeString(s)
	b, err := base64.RawURLEncoding.DecodeString(flipLastBits(s))
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("test setup: re-spelled signature decodes differently leniently")
	}
	v := newTestVerifier(t, rs)
	if _, err := v.Verify(context.Background(), respelled); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("re-spelled token: %v, want ErrInvalidToken", err)
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("original token: %v", err)
	}
}

func TestVerifyRejectsWeakAndMisfiledKeys(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	ec := key(t, jose.ES256, "ec-1")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakKey := &testKey{kid: "weak", alg: jose.RS256, priv: weak}
	tests := []struct {
		name  string
		jwk   jose.JSONWebKey
		token string
	}{
		{"RSA key under 2048 bits", weakKey.jwk(), weakKey.sign(t, claims(nil))},
		{"key for encryption", jose.JSONWebKey{Key: rs.priv.Public(), KeyID: "rsa-1", Use: "enc"}, rs.sign(t, claims(nil))},
		{"key declared for another alg", jose.JSONWebKey{Key: rs.priv.Public(), KeyID: "rsa-1", Algorithm: "PS256"}, rs.sign(t, claims(nil))},
		{"private key published", jose.JSONWebKey{Key: rs.priv, KeyID: "rsa-1"}, rs.sign(t, claims(nil))},
		{"EC key on P-384 for ES256", jose.JSONWebKey{Key: p384(t), KeyID: "ec-1"}, ec.sign(t, claims(nil))},
		{"symmetric key with HS256", jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"},
			hmacToken(t, "hmac", []byte("0123456789abcdef0123456789abcdef"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewJWTVerifier(JWTOptions{
				Issuers: []IssuerSpec{{Issuer: testIssuer, Keys: &StaticKeys{Set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{tc.jwk}}}, Audience: testAudience}},
				Now:     func() time.Time { return testNow },
			})
			if p, err := v.Verify(context.Background(), tc.token); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
		})
	}
}

// TestVerifyFailsClosedOnMisconfiguredIssuer: an issuer without keys or
// audience, or listed twice, verifies nothing.
func TestVerifyFailsClosedOnMisconfiguredIssuer(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	token := rs.sign(t, claims(nil))
	good := IssuerSpec{Issuer: testIssuer, Keys: staticKeys(rs), Audience: testAudience}
	tests := []struct {
		name    string
		issuers []IssuerSpec
	}{
		{"no issuers", nil},
		{"no key source", []IssuerSpec{{Issuer: testIssuer, Audience: testAudience}}},
		{"no audience", []IssuerSpec{{Issuer: testIssuer, Keys: staticKeys(rs)}}},
		{"listed twice", []IssuerSpec{good, good}},
		{"key source fails", []IssuerSpec{{Issuer: testIssuer, Keys: errKeySource{errors.New("boom")}, Audience: testAudience}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := NewJWTVerifier(JWTOptions{Issuers: tc.issuers, Now: func() time.Time { return testNow }})
			p, err := v.Verify(context.Background(), token)
			if err == nil || p != nil {
				t.Fatalf("Verify = %+v, %v; want an error", p, err)
			}
			if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Verify error %v wraps neither sentinel", err)
			}
		})
	}
}

func TestVerifySkewOption(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	expired10s := rs.sign(t, claims(map[string]any{"exp": testNow.Add(-10 * time.Second).Unix()}))
	expired40s := rs.sign(t, claims(map[string]any{"exp": testNow.Add(-40 * time.Second).Unix()}))
	tests := []struct {
		skew         time.Duration
		ok10s, ok40s bool
	}{
		{0, true, false},
		{-1, false, false},
		{5 * time.Second, false, false},
		{time.Hour, true, false}, // capped at MaxSkew
	}
	for _, tc := range tests {
		t.Run(tc.skew.String(), func(t *testing.T) {
			v := NewJWTVerifier(JWTOptions{
				Issuers:   []IssuerSpec{{Issuer: testIssuer, Keys: staticKeys(rs), Audience: testAudience}},
				Skew:      tc.skew,
				CacheSize: -1,
				Now:       func() time.Time { return testNow },
			})
			if _, err := v.Verify(context.Background(), expired10s); (err == nil) != tc.ok10s {
				t.Errorf("expired 10s ago: err = %v, want ok=%v", err, tc.ok10s)
			}
			if _, err := v.Verify(context.Background(), expired40s); (err == nil) != tc.ok40s {
				t.Errorf("expired 40s ago: err = %v, want ok=%v", err, tc.ok40s)
			}
		})
	}
}

func TestVerifyCacheReturnsCopies(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	clock := newClock()
	keys := &countingKeys{KeySource: staticKeys(rs)}
	v := NewJWTVerifier(JWTOptions{
		Issuers: []IssuerSpec{{Issuer: testIssuer, Keys: keys, Audience: testAudience}},
		Now:     clock.Now,
	})
	token := rs.sign(t, claims(map[string]any{"groups": []string{"eng"}, "act": map[string]any{"client_id": "agent-a"}}))
	p1, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	want := clonePrincipal(p1)
	p1.Agent, p1.User = "mallory", "mallory"
	p1.Scopes[0], p1.Groups[0], p1.Chain[0].ClientID = "admin", "root", "mallory"
	p1.Scopes = append(p1.Scopes, "extra")

	p2, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p2, want) {
		t.Fatalf("cached principal changed by a caller:\n got %+v\nwant %+v", p2, want)
	}
	if keys.n != 1 {
		t.Errorf("key source asked %d times, want 1 (second verification from cache)", keys.n)
	}
	p2.Scopes[0] = "admin"
	if p3, _ := v.Verify(context.Background(), token); p3.Scopes[0] != "mcp:tools" {
		t.Fatalf("cache hit returned a shared principal")
	}

	// The entry goes at exp (+ skew), like the token.
	clock.Add(5*time.Minute + MaxSkew)
	if p, err := v.Verify(context.Background(), token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify after exp = %+v, %v; want ErrInvalidToken", p, err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := NewJWTVerifier(JWTOptions{
		Issuers:   []IssuerSpec{{Issuer: testIssuer, Keys: staticKeys(rs), Audience: testAudience}},
		CacheSize: 3,
		Now:       func() time.Time { return testNow },
	})
	for i := range 10 {
		if _, err := v.Verify(context.Background(), rs.sign(t, claims(map[string]any{"jti": fmt.Sprint(i)}))); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.len(); n > 3 {
			t.Fatalf("cache holds %d entries, bound 3", n)
		}
	}
}

// countingKeys counts calls to Keys.
type countingKeys struct {
	KeySource
	n int
}

func (c *countingKeys) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	c.n++
	return c.KeySource.Keys(ctx)
}

func splitToken(token string) (h, p, s string) {
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ = strings.Cut(rest, ".")
	return h, p, s
}

func tail(token string) string { _, _, s := splitToken(token); return s }

// flipLastBits re-spells a base64url segment with nonzero unused trailing
// bits: lenient decoders read the same bytes from it.
func flipLastBits(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	return seg[:len(seg)-1] + string(alphabet[last|1])
}

// signRawPayload signs payload bytes as they are, for claims JSON no
// encoder would write.
func signRawPayload(t testing.TB, k *testKey, payload string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// asn1ES256 signs a token with ec but writes the signature in ASN.1 DER,
// as crypto/ecdsa produces it, instead of JWS's fixed R || S.
func asn1ES256(t testing.TB, ec *testKey) string {
	t.Helper()
	payload, _ := json.Marshal(claims(nil))
	unsigned := craft(`{"alg":"ES256","typ":"at+jwt","kid":"ec-1"}`, string(payload), nil)
	input := strings.TrimSuffix(unsigned, ".")
	h := sha256.Sum256([]byte(input))
	sig, err := ecdsa.SignASN1(rand.Reader, ec.priv.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// hmacToken is a well-formed HS256 token under secret.
func hmacToken(t testing.TB, kid string, secret []byte) string {
	t.Helper()
	k := &testKey{kid: kid, alg: jose.HS256}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims(nil))
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

func p384(t testing.TB) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func deepAct(n int) map[string]any {
	act := map[string]any{"sub": fmt.Sprint("actor-", n)}
	for i := n - 1; i > 0; i-- {
		act = map[string]any{"sub": fmt.Sprint("actor-", i), "act": act}
	}
	return act
}
