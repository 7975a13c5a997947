package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// externalIssuer is a stand-in for an organisation's identity provider
// (Keycloak, Okta, Entra): a key pair whose public half is served as a JWKS
// on 127.0.0.1, signing the access tokens agents present to Mandate.
type externalIssuer struct {
	url    string
	signer jose.Signer
}

func newExternalIssuer(t *testing.T) *externalIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	t.Cleanup(srv.Close)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	return &externalIssuer{url: srv.URL, signer: signer}
}

func (e *externalIssuer) token(t *testing.T, aud string, extra map[string]any) string {
	t.Helper()
	claims := map[string]any{
		"iss": e.url, "aud": aud, "sub": "user-42", "azp": "kc-agent", "scope": "mcp:tools mcp:prompts mcp:resources",
		"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(), "jti": fmt.Sprint(time.Now().UnixNano()),
	}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := jwt.Signed(e.signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestExternalIdP: with `auth: external`, Mandate accepts tokens of the
// trusted issuer for its own audience only, takes the agent from the
// token's azp, and registers that agent on first sight.
func TestExternalIdP(t *testing.T) {
	t.Parallel()
	idp := newExternalIssuer(t)
	mandate := BuildGoBinary(t, "./cmd/mandate")
	port := FreePort(t)
	resource := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
	cfg := writeConfig(t, fmt.Sprintf(`
listen: 127.0.0.1:%d
policy: {dir: %q}
auth:
  mode: external
  issuers:
    - issuer: %q
      jwks_url: %q
      claims: {agent: azp}
upstreams:
  - id: demo
    stdio: {command: %q, args: ["demo-upstream"]}
`, port, writePolicyDir(t, permitAll), idp.url, idp.url+"/jwks", mandate))
	StartProcess(t, "mandate", exec.Command(mandate, "serve", "--config", cfg))
	WaitForListen(t, fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second)

	// A token for another resource is refused (AT-17).
	req, _ := http.NewRequest(http.MethodPost, resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+idp.token(t, "https://other.example/mcp", nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The refused request's connection is not reused by the client below.
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("token for another audience: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	c := mcp.NewClient(&mcp.Implementation{Name: "kc-agent", Version: "1"}, nil)
	hc := &http.Client{Transport: bearerTransport{idp.token(t, resource, nil)}}
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: resource, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "from keycloak"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "from keycloak" {
		t.Fatalf("demo__echo: %v %+v", err, res)
	}
	out, err := exec.Command(mandate, "agents", "show", "kc-agent", "--config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"registration": "external"`) {
		t.Fatalf("agents show kc-agent: %v\n%s", err, out)
	}
}
