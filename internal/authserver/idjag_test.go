package authserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/authserver/assertion"
	"github.com/mandate-mcp/mandate/internal/store"
)

type staticKeySet struct{ set *jose.JSONWebKeySet }

func (s staticKeySet) Keys(context.Context) (*jose.JSONWebKeySet, error) { return s.set, nil }

const (
	idpIssuer     = "https://idp.example"
	jwtBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	idjagAgent    = "agent-idjag"
	idjagPassword = "idjag-agent-secret-0123456789"
)

func TestIDJAGGrant(t *testing.T) {
	idpKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.Assertions = &assertion.Validator{
			Issuers: []assertion.TrustedIssuer{{Issuer: idpIssuer, Keys: staticKeySet{&jose.JSONWebKeySet{
				Keys: []jose.JSONWebKey{{Key: &idpKey.PublicKey, KeyID: "idp1", Algorithm: "RS256", Use: "sig"}},
			}}}},
			Audience: o.Issuer,
			Resource: o.Issuer + "/mcp",
			Replay:   assertion.NewMemoryReplayCache(0),
		}
	})
	ctx := context.Background()
	hash, err := hashSecret(idjagPassword)
	if err != nil {
		t.Fatal(err)
	}
	must(t, e.store.PutAgent(ctx, store.Agent{
		ID: idjagAgent, Registration: store.RegistrationConfig, TrustLevel: "standard", Status: store.AgentActive,
		AuthMethod: authSecretBase, SecretHash: hash, GrantTypes: []string{jwtBearer}, CreatedAt: time.Now(),
	}))
	must(t, e.store.CreateUser(ctx, store.User{
		ID: "usr_bob", Username: "bob", Issuer: idpIssuer, Subject: "bob@idp", CreatedAt: time.Now(),
	}))
	sign := func(edit func(map[string]any)) string {
		now := time.Now()
		c := map[string]any{
			"iss": idpIssuer, "sub": "bob@idp", "aud": e.url, "resource": e.url + "/mcp", "client_id": idjagAgent,
			"jti": randomToken(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "scope": "mcp:tools",
		}
		edit(c)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: idpKey, KeyID: "idp1"}},
			(&jose.SignerOptions{}).WithType("oauth-id-jag+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		payload, _ := json.Marshal(c)
		jws, err := signer.Sign(payload)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := jws.CompactSerialize()
		return s
	}
	grant := func(assertion, user, pass string) (int, tokenJSON) {
		status, tj, _ := e.token(url.Values{"grant_type": {jwtBearer}, "assertion": {assertion}}, user, pass)
		return status, tj
	}

	good := sign(func(map[string]any) {})
	status, tj := grant(good, idjagAgent, idjagPassword)
	if status != http.StatusOK {
		t.Fatalf("%d %+v", status, tj)
	}
	_, _, c := e.verifyJWT(tj.AccessToken)
	if c["sub"] != "usr_bob" || c["client_id"] != idjagAgent || c["scope"] != "mcp:tools" || tj.RefreshToken != "" {
		t.Fatalf("claims %v", c)
	}
	if exp, _ := c["exp"].(float64); int64(exp) > time.Now().Add(2*time.Minute).Unix() {
		t.Errorf("token outlives the assertion")
	}
	for name, tc := range map[string]struct {
		assertion, user, pass, want string
	}{
		"replayed":          {good, idjagAgent, idjagPassword, "invalid_grant"},
		"unknown user":      {sign(func(c map[string]any) { c["sub"] = "eve@idp" }), idjagAgent, idjagPassword, "invalid_grant"},
		"other client":      {sign(func(c map[string]any) { c["client_id"] = secretAgent }), idjagAgent, idjagPassword, "invalid_grant"},
		"wrong audience":    {sign(func(c map[string]any) { c["aud"] = "https://other.example" }), idjagAgent, idjagPassword, "invalid_grant"},
		"unauthenticated":   {sign(func(map[string]any) {}), "", "", "invalid_client"},
		"grant not allowed": {sign(func(c map[string]any) { c["client_id"] = secretAgent }), secretAgent, agentSecret, "unauthorized_client"},
	} {
		t.Run(name, func(t *testing.T) {
			status, tj := grant(tc.assertion, tc.user, tc.pass)
			if status == http.StatusOK || tj.Error != tc.want {
				t.Fatalf("got %d %+v, want %s", status, tj, tc.want)
			}
		})
	}
}

func TestJWTBearerOffByDefault(t *testing.T) {
	e := newEnv(t, nil)
	status, tj, _ := e.token(url.Values{"grant_type": {jwtBearer}, "assertion": {"x.y.z"}}, secretAgent, agentSecret)
	if status != http.StatusBadRequest || tj.Error != "unsupported_grant_type" {
		t.Fatalf("got %d %+v", status, tj)
	}
}
