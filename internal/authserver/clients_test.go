package authserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/authserver/cimd"
	"github.com/mandate-mcp/mandate/internal/store"
)

func getJSON(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func strings_(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.DCR.Enabled = true
		o.TokenExchangeClients = []string{secretAgent}
	})
	for _, path := range []string{wellKnownAS, wellKnownOIDC} {
		status, m := getJSON(t, e.url+path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", path, status)
		}
		if m["issuer"] != e.url || m["token_endpoint"] != e.url+tokenPath || m["authorization_endpoint"] != e.url+authorizePath ||
			m["jwks_uri"] != e.url+keysPath || m["registration_endpoint"] != e.url+registerPath {
			t.Errorf("%s: endpoints %v", path, m)
		}
		if got := strings_(m["code_challenge_methods_supported"]); !slices.Equal(got, []string{"S256"}) {
			t.Errorf("%s: code_challenge_methods_supported %v", path, got)
		}
		if m["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("%s: authorization_response_iss_parameter_supported %v", path, m["authorization_response_iss_parameter_supported"])
		}
		if _, ok := m["client_id_metadata_document_supported"]; ok {
			t.Errorf("%s: CIMD advertised without a resolver", path)
		}
		grants := strings_(m["grant_types_supported"])
		for _, g := range []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"} {
			if !slices.Contains(grants, g) {
				t.Errorf("%s: grant %s missing from %v", path, g, grants)
			}
		}
		if slices.Contains(grants, "urn:ietf:params:oauth:grant-type:jwt-bearer") || slices.Contains(grants, "implicit") {
			t.Errorf("%s: unexpected grants %v", path, grants)
		}
		if got := strings_(m["scopes_supported"]); !slices.Equal(got, defaultScopes) {
			t.Errorf("%s: scopes %v", path, got)
		}
	}
	if status, _ := getJSON(t, e.url+wellKnownAS+"/mcp"); status != http.StatusNotFound {
		t.Errorf("metadata for an issuer with a path: %d", status)
	}

	off := newEnv(t, func(o *Options) {
		o.ResolveURLClient = func(context.Context, string) (store.Agent, error) { return store.Agent{}, nil }
	})
	_, m := getJSON(t, off.url+wellKnownAS)
	if _, ok := m["registration_endpoint"]; ok {
		t.Error("registration_endpoint advertised with DCR off")
	}
	if m["client_id_metadata_document_supported"] != true {
		t.Error("CIMD not advertised with a resolver")
	}
	if slices.Contains(strings_(m["grant_types_supported"]), "urn:ietf:params:oauth:grant-type:token-exchange") {
		t.Error("token exchange advertised with no client allowed")
	}
}

func register(t *testing.T, e *env, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(e.url+registerPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestDynamicRegistration(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DCR = DCR{Enabled: true, PerMinute: 100} })
	ctx := context.Background()

	t.Run("public client", func(t *testing.T) {
		status, m := register(t, e, `{"client_name":"Claude","redirect_uris":["http://127.0.0.1:33418/cb","https://app.example/cb"],
			"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"scope":"mcp:tools bogus"}`)
		if status != http.StatusCreated {
			t.Fatalf("%d %v", status, m)
		}
		id, _ := m["client_id"].(string)
		if id == "" || m["client_secret"] != nil || m["scope"] != "mcp:tools" {
			t.Fatalf("response %v", m)
		}
		a, err := e.store.GetAgent(ctx, id)
		if err != nil || a.Registration != store.RegistrationDCR || a.Status != store.AgentActive ||
			a.AuthMethod != authNone || a.Name != "Claude" || !slices.Equal(a.Scopes, []string{"mcp:tools"}) {
			t.Fatalf("stored agent %+v (%v)", a, err)
		}

		// The registered agent can run the flow, and the consent page says
		// how it registered.
		_, challenge := pkce()
		v := e.authParams(challenge)
		v.Set("client_id", id)
		v.Set("redirect_uri", "http://127.0.0.1:33418/cb")
		v.Set("scope", "mcp:tools")
		cp, _ := e.browser().login(v)
		if !strings.Contains(cp.body, "dynamic registration") || !strings.Contains(cp.body, "name not verified") {
			t.Errorf("consent page does not flag a self-registered agent")
		}
	})
	t.Run("confidential client", func(t *testing.T) {
		status, m := register(t, e, `{"client_name":"Bot","token_endpoint_auth_method":"client_secret_post",
			"grant_types":["client_credentials"]}`)
		if status != http.StatusCreated {
			t.Fatalf("%d %v", status, m)
		}
		id, _ := m["client_id"].(string)
		secret, _ := m["client_secret"].(string)
		if secret == "" || m["client_secret_expires_at"] != float64(0) {
			t.Fatalf("response %v", m)
		}
		a, _ := e.store.GetAgent(ctx, id)
		if !strings.HasPrefix(a.SecretHash, "$argon2id$") || strings.Contains(string(a.Metadata), secret) {
			t.Fatalf("secret stored in the clear: %+v", a)
		}
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, "", "")
		if status != http.StatusOK {
			t.Fatalf("client_credentials with the issued secret: %d %+v", status, tj)
		}
	})
	t.Run("bad metadata", func(t *testing.T) {
		for name, body := range map[string]string{
			"http non-loopback":  `{"redirect_uris":["http://evil.example/cb"],"token_endpoint_auth_method":"none"}`,
			"javascript":         `{"redirect_uris":["javascript:alert(1)"],"token_endpoint_auth_method":"none"}`,
			"fragment":           `{"redirect_uris":["https://app.example/cb#x"],"token_endpoint_auth_method":"none"}`,
			"relative":           `{"redirect_uris":["/cb"],"token_endpoint_auth_method":"none"}`,
			"no redirect uris":   `{"token_endpoint_auth_method":"none"}`,
			"credentials in uri": `{"redirect_uris":["https://u:p@app.example/cb"],"token_endpoint_auth_method":"none"}`,
			"data uri":           `{"redirect_uris":["data:text/html,hi"],"token_endpoint_auth_method":"none"}`,
		} {
			if status, m := register(t, e, body); status != http.StatusBadRequest || m["error"] != "invalid_redirect_uri" {
				t.Errorf("%s: %d %v", name, status, m)
			}
		}
		for name, body := range map[string]string{
			"auth method":         `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`,
			"implicit":            `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","grant_types":["implicit"]}`,
			"public machine":      `{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}`,
			"jwks_uri":            `{"token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"],"jwks_uri":"https://a.example/jwks"}`,
			"private_key no keys": `{"token_endpoint_auth_method":"private_key_jwt","grant_types":["client_credentials"]}`,
			"control in name":     `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","client_name":"A\u202eB"}`,
			"not json":            `nope`,
			"token response":      `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","response_types":["token"]}`,
		} {
			if status, m := register(t, e, body); status != http.StatusBadRequest || m["error"] != "invalid_client_metadata" {
				t.Errorf("%s: %d %v", name, status, m)
			}
		}
	})
}

func TestDynamicRegistrationRateLimit(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DCR = DCR{Enabled: true, PerMinute: 2} })
	body := `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`
	for i := range 2 {
		if status, m := register(t, e, body); status != http.StatusCreated {
			t.Fatalf("registration %d: %d %v", i, status, m)
		}
	}
	if status, _ := register(t, e, body); status != http.StatusTooManyRequests {
		t.Fatalf("third registration in a minute: %d, want 429", status)
	}
	e.clock.Advance(31 * time.Second)
	if status, _ := register(t, e, body); status != http.StatusCreated {
		t.Fatalf("after refill: %d", status)
	}
}

func TestDynamicRegistrationDisabled(t *testing.T) {
	e := newEnv(t, nil)
	if status, m := register(t, e, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`); status != http.StatusForbidden {
		t.Fatalf("%d %v, want 403", status, m)
	}
}

func TestClientCredentialsSecret(t *testing.T) {
	e := newEnv(t, nil)
	check := func(t *testing.T, status int, tj tokenJSON) {
		t.Helper()
		if status != http.StatusOK {
			t.Fatalf("%d %+v", status, tj)
		}
		_, _, c := e.verifyJWT(tj.AccessToken)
		if c["sub"] != secretAgent || c["client_id"] != secretAgent || tj.RefreshToken != "" {
			t.Fatalf("claims %v refresh %q", c, tj.RefreshToken)
		}
		if !slices.Equal(scopeSet(c["scope"]), []string{"mcp:prompts", "mcp:resources", "mcp:tools"}) {
			t.Errorf("scope %v", c["scope"])
		}
	}
	t.Run("basic", func(t *testing.T) {
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}}, secretAgent, agentSecret)
		check(t, status, tj)
	})
	t.Run("post", func(t *testing.T) {
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {secretAgent}, "client_secret": {agentSecret}}, "", "")
		check(t, status, tj)
	})
	t.Run("wrong secret", func(t *testing.T) {
		status, tj, hdr := e.token(url.Values{"grant_type": {"client_credentials"}}, secretAgent, "wrong")
		if status != http.StatusUnauthorized || tj.Error != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %+v %v", status, tj, hdr)
		}
	})
	t.Run("public client", func(t *testing.T) {
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {publicAgent}}, "", "")
		if status == http.StatusOK {
			t.Fatalf("public client got a token: %+v", tj)
		}
	})
	t.Run("scope and resource", func(t *testing.T) {
		status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {"mcp:tools"}, "resource": {e.url + "/mcp"}}, secretAgent, agentSecret)
		if status != http.StatusOK || tj.Scope != "mcp:tools" {
			t.Fatalf("%d %+v", status, tj)
		}
		if status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, secretAgent, agentSecret); tj.Error != "invalid_scope" {
			t.Fatalf("unknown scope: %d %+v", status, tj)
		}
		if status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}, "resource": {"https://x.example"}}, secretAgent, agentSecret); tj.Error != "invalid_target" {
			t.Fatalf("other resource: %d %+v", status, tj)
		}
	})
}

// jwtAgent adds a private_key_jwt agent and returns its key.
func jwtAgent(t *testing.T, e *env, id string) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	must(t, e.store.PutAgent(context.Background(), store.Agent{
		ID: id, Name: "JWT Agent", Registration: store.RegistrationConfig, TrustLevel: "standard", Status: store.AgentActive,
		AuthMethod: authPrivateJWT, JWKS: set, GrantTypes: []string{"client_credentials"}, CreatedAt: time.Now(),
	}))
	return key
}

func clientAssertion(t *testing.T, key *rsa.PrivateKey, kid, clientID, aud, jti string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	})
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

func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	e := newEnv(t, nil)
	key := jwtAgent(t, e, "agent-jwt")
	form := func(assertion string) url.Values {
		return url.Values{
			"grant_type":            {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		}
	}
	good := clientAssertion(t, key, "k1", "agent-jwt", e.url, "jti-1")
	status, tj, _ := e.token(form(good), "", "")
	if status != http.StatusOK {
		t.Fatalf("%d %+v", status, tj)
	}
	if _, _, c := e.verifyJWT(tj.AccessToken); c["sub"] != "agent-jwt" || c["client_id"] != "agent-jwt" {
		t.Fatalf("claims %v", c)
	}
	if status, tj, _ := e.token(form(good), "", ""); status != http.StatusUnauthorized || tj.Error != "invalid_client" {
		t.Fatalf("replayed assertion: %d %+v", status, tj)
	}
	if status, tj, _ := e.token(form(clientAssertion(t, key, "k1", "agent-jwt", e.url+tokenPath, "jti-2")), "", ""); status != http.StatusOK {
		t.Fatalf("token endpoint as audience: %d %+v", status, tj)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if status, tj, _ := e.token(form(clientAssertion(t, other, "k1", "agent-jwt", e.url, "jti-3")), "", ""); status != http.StatusUnauthorized {
		t.Fatalf("assertion signed by another key: %d %+v", status, tj)
	}
	if status, tj, _ := e.token(form(clientAssertion(t, key, "k1", "agent-jwt", "https://elsewhere.example", "jti-4")), "", ""); status != http.StatusUnauthorized {
		t.Fatalf("assertion for another audience: %d %+v", status, tj)
	}
	// A secret-based agent cannot be impersonated with an assertion.
	if status, tj, _ := e.token(form(clientAssertion(t, key, "k1", secretAgent, e.url, "jti-5")), "", ""); status != http.StatusUnauthorized {
		t.Fatalf("assertion for a secret client: %d %+v", status, tj)
	}
	// Nor can the JWT agent fall back to a secret.
	if status, tj, _ := e.token(url.Values{"grant_type": {"client_credentials"}}, "agent-jwt", "anything"); status != http.StatusUnauthorized {
		t.Fatalf("secret for a private_key_jwt client: %d %+v", status, tj)
	}
}

// TestCIMDClients runs a Client ID Metadata Document client through the
// real fetcher: the document is fetched, the agent persisted, and the flow
// completes with the URL as client_id.
func TestCIMDClients(t *testing.T) {
	mux := http.NewServeMux()
	doc := httptest.NewServer(mux)
	defer doc.Close()
	clientID := doc.URL + "/client.json"
	mux.HandleFunc("/client.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": clientID, "client_name": "Doc Agent", "redirect_uris": []string{agentRedir},
			"token_endpoint_auth_method": "none",
		})
	})
	resolve, fetchKeys := CIMDClients(cimd.New(&cimd.Options{AllowHosts: []string{"127.0.0.1"}, AllowHTTP: true}))
	e := newEnv(t, func(o *Options) { o.ResolveURLClient, o.FetchJWKS = resolve, fetchKeys })

	verifier, challenge := pkce()
	v := e.authParams(challenge)
	v.Set("client_id", clientID)
	back := e.browser().authorize(v)
	status, tj, _ := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
		"client_id": {clientID}, "code_verifier": {verifier},
	}, "", "")
	if status != http.StatusOK {
		t.Fatalf("%d %+v", status, tj)
	}
	if _, _, c := e.verifyJWT(tj.AccessToken); c["client_id"] != clientID {
		t.Fatalf("claims %v", c)
	}
	a, err := e.store.GetAgent(context.Background(), clientID)
	if err != nil || a.Name != "Doc Agent" || a.Registration != store.RegistrationCIMD || len(a.Metadata) == 0 {
		t.Fatalf("agent %+v (%v)", a, err)
	}
	// An unreachable document is no client.
	v.Set("client_id", doc.URL+"/missing.json")
	if p := e.browser().get("/authorize?" + v.Encode()); p.status != http.StatusBadRequest {
		t.Fatalf("missing document: %d", p.status)
	}
}
