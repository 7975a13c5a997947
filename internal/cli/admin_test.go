package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/store"
)

// testIdP is a trusted external issuer: it publishes one ES256 key and
// signs the access tokens a test asks for.
type testIdP struct {
	url string
	key *ecdsa.PrivateKey
}

func newTestIdP(t *testing.T) *testIdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: key.Public(), KeyID: "k1", Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	return &testIdP{url: srv.URL, key: key}
}

// token is an access token for audience, about sub, held by agent.
func (idp *testIdP) token(t *testing.T, audience, sub, agent, scope string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: idp.key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": idp.url, "aud": audience, "sub": sub, "client_id": agent, "scope": scope,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("%s-%s-%d", sub, agent, now.UnixNano()),
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

// call sends one request with a bearer token (if any) and returns the
// status, the WWW-Authenticate challenge and the body.
func call(t *testing.T, method, url, token, contentType, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if strings.HasSuffix(url, "/mcp") {
		req.Header.Set("Accept", "application/json, text/event-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
	`"capabilities":{},"clientInfo":{"name":"cli-test","version":"1"}}}`

// TestServeAdminAPISuspendsAgent runs "mandate serve" trusting an external
// issuer, with an administrator in the store, and checks the whole path:
// an agent works on /mcp; the administrator suspends it through the admin
// API with a real token; the agent's very next /mcp request gets 401; once
// resumed it works again.
func TestServeAdminAPISuspendsAgent(t *testing.T) {
	const audience = "https://mandate.test/mcp"
	idp := newTestIdP(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	st := openDB(t, filepath.Join(dataDir, "mandate.db"))
	if err := st.CreateUser(t.Context(), store.User{
		ID: "u-root", Username: "root", Groups: []string{"admin"}, Issuer: idp.url, Subject: "root-sub", CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %s
store: {driver: sqlite}
auth:
  mode: external
  issuers:
    - issuer: %q
      jwks_url: %q
      audience: %q
`, dataDir, idp.url, idp.url+"/jwks", audience))
	s := startServe(t, "--config", cfg)

	agentToken := idp.token(t, audience, "bob", "agent-x", "mcp:tools")
	adminToken := idp.token(t, audience, "root-sub", "admin-console", "mandate:admin")
	agentURL := s.base + "/admin/api/agents/agent-x"

	if code, challenge, body := call(t, "POST", s.base+"/mcp", agentToken, "application/json", initialize); code != 200 {
		t.Fatalf("agent before suspension: %d %q %s", code, challenge, body)
	}
	code, _, body := call(t, "GET", agentURL, adminToken, "", "")
	if code != 200 || !strings.Contains(string(body), `"status":"active"`) {
		t.Fatalf("GET agent: %d %s", code, body)
	}
	code, challenge, body := call(t, "POST", agentURL+"/suspend", agentToken, "application/json", "{}")
	if code != 403 || !strings.Contains(challenge, `error="insufficient_scope", scope="mandate:admin"`) {
		t.Fatalf("suspend with the agent's own token: %d %q %s", code, challenge, body)
	}

	code, _, body = call(t, "POST", agentURL+"/suspend", adminToken, "application/json", "{}")
	if code != 200 || !strings.Contains(string(body), `"status":"suspended"`) {
		t.Fatalf("suspend: %d %s", code, body)
	}
	code, challenge, body = call(t, "POST", s.base+"/mcp", agentToken, "application/json", initialize)
	if code != 401 || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "agent suspended") {
		t.Fatalf("agent after suspension: %d %q %s; want 401 agent suspended", code, challenge, body)
	}

	code, _, body = call(t, "POST", agentURL+"/resume", adminToken, "", "")
	if code != 200 || !strings.Contains(string(body), `"status":"active"`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	if code, challenge, body := call(t, "POST", s.base+"/mcp", agentToken, "application/json", initialize); code != 200 {
		t.Fatalf("agent after resumption: %d %q %s", code, challenge, body)
	}
	if log := s.stderr.String(); !strings.Contains(log, `msg="admin change" action=agent.suspend target=agent-x`) ||
		!strings.Contains(log, "by.username=root") {
		t.Errorf("the suspension is not in the log:\n%s", log)
	}
}

// TestServeAdminAPIMounted checks where serve mounts the admin API: behind
// authentication, challenging for mandate:admin, in embedded mode (whose
// authorization server issues that scope while /mcp's metadata does not
// advertise it), and nowhere with auth: none.
func TestServeAdminAPIMounted(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		s := startServe(t, "--config", writeConfig(t, dir, "store: {driver: memory}\n"), "--data-dir", filepath.Join(dir, "data"))
		code, challenge, body := call(t, "GET", s.base+"/admin/api/agents", "", "", "")
		if code != 401 || !strings.Contains(challenge, `scope="mandate:admin"`) {
			t.Errorf("admin API without a token: %d %q %s", code, challenge, body)
		}
		scopes := func(path string) []string {
			code, body := httpGet(t, s.base+path)
			var m struct {
				Scopes []string `json:"scopes_supported"`
			}
			if err := json.Unmarshal(body, &m); code != 200 || err != nil {
				t.Fatalf("%s: %d %s", path, code, body)
			}
			return m.Scopes
		}
		if got := scopes("/.well-known/oauth-authorization-server"); !slices.Contains(got, "mandate:admin") {
			t.Errorf("authorization server scopes %q lack mandate:admin", got)
		}
		if got := scopes("/.well-known/oauth-protected-resource/mcp"); slices.Contains(got, "mandate:admin") || len(got) == 0 {
			t.Errorf("/mcp resource metadata scopes %q: want the baseline, without mandate:admin", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		dir := t.TempDir()
		s := startServe(t, "--config", writeConfig(t, dir, "auth: {mode: none}\n"), "--data-dir", filepath.Join(dir, "data"))
		if code, body := httpGet(t, s.base+"/admin/api/agents"); code != 404 {
			t.Errorf("admin API with auth: none: %d %s, want 404", code, body)
		}
	})
}
