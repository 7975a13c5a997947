package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccessToken    = "urn:ietf:params:oauth:token-type:access_token"
)

// signWith signs claims with the server's current key and the given typ,
// to forge tokens that only differ from real ones in one respect.
func signWith(t *testing.T, e *env, typ string, claims map[string]any) string {
	t.Helper()
	key, err := e.srv.keys.current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.private, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestTokenExchange(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenExchangeClients = []string{secretAgent} })
	jwtKey := jwtAgent(t, e, "agent-jwt")
	user := e.codeFlow() // alice's token, held by the public agent: mcp:tools mcp:prompts

	exchange := func(form url.Values) (int, tokenJSON) {
		form.Set("grant_type", grantTokenExchange)
		if !form.Has("subject_token_type") {
			form.Set("subject_token_type", typeAccessToken)
		}
		status, tj, _ := e.token(form, secretAgent, agentSecret)
		return status, tj
	}
	actClaim := func(c map[string]any) map[string]any { m, _ := c["act"].(map[string]any); return m }

	t.Run("audience names the agent", func(t *testing.T) {
		status, tj := exchange(url.Values{"subject_token": {user.AccessToken}, "audience": {publicAgent}, "resource": {e.url + "/mcp"}})
		if status != http.StatusOK || tj.IssuedType != typeAccessToken || tj.TokenType != "Bearer" || tj.RefreshToken != "" {
			t.Fatalf("%d %+v", status, tj)
		}
		typ, _, c := e.verifyJWT(tj.AccessToken)
		act := actClaim(c)
		if typ != "at+jwt" || c["sub"] != "usr_alice" || c["client_id"] != publicAgent ||
			act["sub"] != publicAgent || act["client_id"] != publicAgent || act["act"] != nil {
			t.Fatalf("claims %v", c)
		}
		if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != e.url+"/mcp" {
			t.Errorf("aud %v", c["aud"])
		}
		if c["scope"] != "mcp:tools mcp:prompts" {
			t.Errorf("scope %v", c["scope"])
		}

		// Exchanged again for another agent: the new actor is outermost,
		// the earlier one nests inside it.
		status, tj2 := exchange(url.Values{"subject_token": {tj.AccessToken}, "audience": {"agent-jwt"}, "scope": {"mcp:tools"}})
		if status != http.StatusOK {
			t.Fatalf("second exchange: %d %+v", status, tj2)
		}
		_, _, c2 := e.verifyJWT(tj2.AccessToken)
		outer := actClaim(c2)
		inner, _ := outer["act"].(map[string]any)
		if c2["sub"] != "usr_alice" || c2["client_id"] != "agent-jwt" || outer["sub"] != "agent-jwt" || inner["sub"] != publicAgent {
			t.Fatalf("nested act %v", c2)
		}
		if c2["scope"] != "mcp:tools" {
			t.Errorf("scope %v", c2["scope"])
		}
	})

	t.Run("actor token names the agent", func(t *testing.T) {
		status, cc, _ := e.token(url.Values{
			"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {clientAssertion(t, jwtKey, "k1", "agent-jwt", e.url, "actor-jti")},
		}, "", "")
		if status != http.StatusOK {
			t.Fatalf("agent token: %d %+v", status, cc)
		}
		status, tj := exchange(url.Values{"subject_token": {user.AccessToken}, "actor_token": {cc.AccessToken}, "actor_token_type": {typeAccessToken}})
		if status != http.StatusOK {
			t.Fatalf("%d %+v", status, tj)
		}
		_, _, c := e.verifyJWT(tj.AccessToken)
		if c["sub"] != "usr_alice" || c["client_id"] != "agent-jwt" || actClaim(c)["sub"] != "agent-jwt" {
			t.Fatalf("claims %v", c)
		}
	})

	t.Run("no agent named: the caller acts", func(t *testing.T) {
		status, tj := exchange(url.Values{"subject_token": {user.AccessToken}})
		if status != http.StatusOK {
			t.Fatalf("%d %+v", status, tj)
		}
		if _, _, c := e.verifyJWT(tj.AccessToken); c["client_id"] != secretAgent || actClaim(c)["sub"] != secretAgent {
			t.Fatalf("claims %v", c)
		}
	})

	ccStatus, agentTok, _ := e.token(url.Values{"grant_type": {"client_credentials"}}, secretAgent, agentSecret)
	if ccStatus != http.StatusOK {
		t.Fatal("client_credentials token")
	}
	now := time.Now()
	forged := func(typ string, edit func(map[string]any)) string {
		c := map[string]any{
			"iss": e.url, "sub": "usr_alice", "aud": []string{e.url + "/mcp"}, "client_id": publicAgent,
			"scope": "mcp:tools", "jti": "x", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		}
		edit(c)
		return signWith(t, e, typ, c)
	}
	refusals := []struct {
		name string
		form url.Values
		want string
	}{
		{"scope beyond the subject token", url.Values{"subject_token": {user.AccessToken}, "scope": {"mcp:resources"}}, "invalid_scope"},
		{"other resource", url.Values{"subject_token": {user.AccessToken}, "resource": {"https://upstream.example/mcp"}}, "invalid_target"},
		{"unknown agent", url.Values{"subject_token": {user.AccessToken}, "audience": {"nobody"}}, "invalid_target"},
		{"two agents", url.Values{"subject_token": {user.AccessToken}, "audience": {publicAgent, "agent-jwt"}}, "invalid_target"},
		{"client credentials subject", url.Values{"subject_token": {agentTok.AccessToken}}, "invalid_request"},
		{"garbage subject", url.Values{"subject_token": {"not-a-token"}}, "invalid_request"},
		{"refresh token subject", url.Values{"subject_token": {user.RefreshToken}, "subject_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, "invalid_request"},
		{"id-token typed subject", url.Values{"subject_token": {forged("JWT", func(map[string]any) {})}}, "invalid_request"},
		{"subject for another audience", url.Values{"subject_token": {forged("at+jwt", func(c map[string]any) { c["aud"] = []string{"https://upstream.example"} })}}, "invalid_request"},
		{"expired subject", url.Values{"subject_token": {forged("at+jwt", func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })}}, "invalid_request"},
		{"refresh token requested", url.Values{"subject_token": {user.AccessToken}, "requested_token_type": {"urn:ietf:params:oauth:token-type:refresh_token"}}, "invalid_request"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			status, tj := exchange(tt.form)
			if status != http.StatusBadRequest || tj.Error != tt.want {
				t.Fatalf("got %d %+v, want %s", status, tj, tt.want)
			}
		})
	}
	t.Run("the forged-claims helper does make valid tokens", func(t *testing.T) {
		if status, tj := exchange(url.Values{"subject_token": {forged("at+jwt", func(map[string]any) {})}}); status != http.StatusOK {
			t.Fatalf("%d %+v", status, tj)
		}
	})
	t.Run("caller not allowed", func(t *testing.T) {
		status, tj, _ := e.token(url.Values{
			"grant_type": {grantTokenExchange}, "subject_token": {user.AccessToken}, "subject_token_type": {typeAccessToken},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, jwtKey, "k1", "agent-jwt", e.url, "caller-jti")},
		}, "", "")
		if status != http.StatusBadRequest || tj.Error != "unauthorized_client" {
			t.Fatalf("got %d %+v", status, tj)
		}
	})
}
