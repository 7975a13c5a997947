package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// These tests run `mandate serve` with its embedded OAuth 2.1 authorization
// server and reach /mcp only with tokens it issued: through the Go and
// TypeScript SDKs' own OAuth clients, with client_credentials, with RFC 8693
// token exchange, and under the conformance suite. Each test starts its own
// server; alice, a local user, is created before it starts.

const (
	aliceName     = "alice"
	alicePassword = "correct-horse-battery-staple"
)

// authServe describes one `mandate serve` for startAuthMandate.
type authServe struct {
	// Auth is the body of the auth section, each line indented two spaces;
	// empty means the defaults (embedded).
	Auth string
	// Upstreams is the upstreams section without its "upstreams:" line;
	// empty means Mandate's demo server as "demo" (tool demo__echo).
	Upstreams string
	// Env is added to the environment of serve and of every admin command.
	Env []string
	// Policy is the Cedar policy Mandate decides with; empty means
	// permitAll: these tests are about authentication, and the decision
	// itself has its own tests (internal/gateway, internal/policy).
	Policy string
	// AllowUnlisted turns off the "call tools/list first" check, for
	// clients that call tools they were never shown (the conformance suite
	// opens a fresh session per scenario and calls at once).
	AllowUnlisted bool
	// PolicySection, when set, is the whole policy section as a YAML flow
	// mapping and Policy and AllowUnlisted are not used: for tests that
	// decide with something other than one Cedar directory (an AuthZEN
	// PDP, a shadow policy).
	PolicySection string
}

// permitAll is a policy that lets every authenticated principal do
// everything.
const permitAll = "@id(\"permit-all\")\npermit (principal, action, resource);\n"

// writePolicyDir writes src as the only policy file of a new directory.
func writePolicyDir(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.cedar"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// authMandate is a running `mandate serve` with embedded authentication.
type authMandate struct {
	URL    string // the MCP endpoint, also the tokens' audience
	Issuer string // the embedded authorization server
	Meta   *ASMetadata
	Config string // the config file, for admin commands
	UserID string // alice's user id
	bin    string
	env    []string
	proc   *Process
}

// startAuthMandate writes a config, adds alice with `mandate users add`,
// starts `mandate serve` on a free loopback port and waits until the
// authorization server answers with its metadata.
func startAuthMandate(t *testing.T, s authServe) *authMandate {
	t.Helper()
	bin := BuildGoBinary(t, "./cmd/mandate")
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	authBody := s.Auth
	if strings.TrimSpace(authBody) == "" {
		authBody = "  mode: embedded\n"
	}
	ups := s.Upstreams
	if ups == "" {
		ups = fmt.Sprintf("  - id: demo\n    stdio: {command: %q, args: [\"demo-upstream\"]}\n", bin)
	}
	section := s.PolicySection
	if section == "" {
		pol := s.Policy
		if pol == "" {
			pol = permitAll
		}
		section = fmt.Sprintf("{dir: %q, require_listing: %t}", writePolicyDir(t, pol), !s.AllowUnlisted)
	}
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\npolicy: %s\nauth:\n%s\nupstreams:\n%s",
		addr, filepath.Join(dir, "data"), section, strings.TrimRight(authBody, "\n"), ups)
	m := &authMandate{
		URL: "http://" + addr + "/mcp", Issuer: "http://" + addr,
		Config: filepath.Join(dir, "mandate.yaml"), bin: bin, env: s.Env,
	}
	if err := os.WriteFile(m.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(dir, "alice.password")
	if err := os.WriteFile(pw, []byte(alicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := m.admin("users", "add", aliceName, "--password-file", pw)
	if err != nil {
		t.Fatalf("mandate users add: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	id := regexp.MustCompile(`\(id (\S+)\)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("mandate users add printed no id: %q", out)
	}
	m.UserID = id[1]

	cmd := exec.Command(bin, "serve", "--config", m.Config)
	cmd.Env = append(os.Environ(), s.Env...)
	m.proc = StartProcess(t, "mandate serve", cmd)
	WaitForListen(t, addr, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m.Meta, err = FetchASMetadata(ctx, m.Issuer); err != nil {
		t.Fatalf("authorization server of %s: %v", m.Issuer, err)
	}
	return m
}

// admin runs `mandate ARGS... --config CFG` and returns its combined output.
func (m *authMandate) admin(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, append(args, "--config", m.Config)...)
	cmd.Env = append(os.Environ(), m.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// alice returns a browser that signs in as alice and checks the issuer.
func (m *authMandate) alice(rt http.RoundTripper) *Browser {
	return &Browser{Username: aliceName, Password: alicePassword, Issuer: m.Issuer, Client: NewBrowserClient(rt)}
}

// loopbackRedirect is a redirect URI on 127.0.0.1. Nothing listens there:
// the browser stops at the redirect and hands over the code itself.
func loopbackRedirect(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d/callback", FreePort(t))
}

func newSecret() string { return rand.Text() }

// bearerClient is an HTTP client that presents token on every request.
func bearerClient(token string) *http.Client {
	return &http.Client{Transport: &BearerTransport{Token: token}}
}

// connectMCP opens a Go SDK client session over Streamable HTTP.
func connectMCP(ctx context.Context, tr *mcp.StreamableClientTransport) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-oauth-client", Version: "1"}, nil)
	return c.Connect(ctx, tr, nil)
}

// useDemo lists the session's tools and calls demo__echo with msg.
func useDemo(ctx context.Context, cs *mcp.ClientSession, msg string) error {
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return fmt.Errorf("tools/list: %w", err)
		}
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "demo__echo") {
		return fmt.Errorf("tools/list lacks demo__echo: %v", names)
	}
	return echo(ctx, cs, msg)
}

func echo(ctx context.Context, cs *mcp.ClientSession, msg string) error {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": msg}})
	if err != nil {
		return fmt.Errorf("tools/call demo__echo: %w", err)
	}
	if res.IsError || len(res.Content) != 1 {
		return fmt.Errorf("tools/call demo__echo: %+v", res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != msg {
		return fmt.Errorf("tools/call demo__echo = %+v, want %q", res.Content[0], msg)
	}
	return nil
}

// useDemoWithToken connects with token, lists tools and calls demo__echo.
func useDemoWithToken(t *testing.T, mcpURL, token, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: bearerClient(token)})
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	defer cs.Close()
	if err := useDemo(ctx, cs, msg); err != nil {
		t.Fatal(err)
	}
}

// mcpProbe posts an initialize request with token (none when empty) and
// returns the status and WWW-Authenticate header.
func mcpProbe(t *testing.T, mcpURL, token string) (int, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}`
	req, err := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// claims decodes token's header and claims, failing the test if it cannot.
func claims(t *testing.T, token string) (map[string]any, map[string]any) {
	t.Helper()
	h, c, err := JWTParts(token)
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	return h, c
}

// sameScopes reports whether two space-separated scope lists hold the same
// scopes, in any order.
func sameScopes(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// httpLog is a RoundTripper that records "METHOD PATH STATUS [ERROR]" of
// every request, ERROR being the error code of a Bearer challenge, so a
// test can check the order of an OAuth flow's steps.
type httpLog struct {
	mu    sync.Mutex
	lines []string
}

var challengeErrorRE = regexp.MustCompile(`\berror="([^"]*)"`)

func (l *httpLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	line := r.Method + " " + r.URL.Path + " "
	if err != nil {
		line += "error"
	} else {
		line += strconv.Itoa(resp.StatusCode)
		if m := challengeErrorRE.FindStringSubmatch(resp.Header.Get("WWW-Authenticate")); m != nil {
			line += " " + m[1]
		}
	}
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return resp, err
}

// since returns the lines recorded after the first n.
func (l *httpLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines[n:])
}

func (l *httpLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// requireInOrder checks that each of want is a prefix of a recorded line,
// in this order (other lines may come between).
func (l *httpLog) requireInOrder(t *testing.T, want ...string) {
	t.Helper()
	l.mu.Lock()
	lines := slices.Clone(l.lines)
	l.mu.Unlock()
	i := 0
	for _, line := range lines {
		if i < len(want) && strings.HasPrefix(line, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("requests lack %q (after %q); the flow was:\n  %s", want[i], want[:i], strings.Join(lines, "\n  "))
	}
	t.Logf("flow:\n  %s", strings.Join(lines, "\n  "))
}

var _ http.RoundTripper = (*httpLog)(nil)

// TestOAuthGoSDKDynamicRegistration: the Go SDK's AuthorizationCodeHandler,
// starting from nothing but Mandate's MCP URL, goes the whole way — 401,
// protected resource metadata, authorization server metadata, dynamic
// registration, alice's login and consent, the token — and then lists and
// calls tools with the token it got.
func TestOAuthGoSDKDynamicRegistration(t *testing.T) {
	t.Parallel()
	m := startAuthMandate(t, authServe{})
	log := &httpLog{}
	hc := &http.Client{Transport: log, Timeout: 30 * time.Second}
	b := m.alice(log)
	redirect := loopbackRedirect(t)
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "Go SDK e2e agent",
			RedirectURIs:            []string{redirect},
			TokenEndpointAuthMethod: "none",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
		}},
		RedirectURL: redirect,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			r, err := b.Authorize(ctx, args.URL)
			if err != nil {
				return nil, err
			}
			return &auth.AuthorizationResult{Code: r.Code, State: r.State, Iss: r.Iss}, nil
		},
		Client: hc,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: hc, OAuthHandler: h})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if err := useDemo(ctx, cs, "authorized by the Go SDK"); err != nil {
		t.Fatal(err)
	}
	log.requireInOrder(t,
		"POST /mcp 401",
		"GET /.well-known/oauth-protected-resource/mcp 200",
		"GET /.well-known/oauth-authorization-server 200",
		"POST /register 201",
		"GET /authorize 3",
		"GET /login 200",
		"POST /login 303",
		"GET /consent 200",
		"POST /consent 303",
		"POST /oauth/token 200",
		"POST /mcp 200",
	)
	if !slices.Equal(b.Pages, []string{"login", "consent"}) {
		t.Errorf("pages filled in: %v, want login then consent", b.Pages)
	}

	ts, err := h.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	hdr, c := claims(t, tok.AccessToken)
	clientID, _ := c["client_id"].(string)
	if hdr["typ"] != "at+jwt" || c["iss"] != m.Issuer || c["sub"] != m.UserID || !strings.HasPrefix(clientID, "dcr_") {
		t.Errorf("token header %v claims %v: want typ at+jwt, iss %s, sub %s (alice), a dcr_ client", hdr, c, m.Issuer, m.UserID)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != m.URL {
		t.Errorf("aud %v, want [%s]", c["aud"], m.URL)
	}
	if scope, _ := c["scope"].(string); !sameScopes(scope, "mcp:tools mcp:prompts mcp:resources") {
		t.Errorf("scope %q, want the three challenged scopes", scope)
	}
	if tok.RefreshToken == "" {
		t.Errorf("no refresh token for a client registered with refresh_token")
	}
	out, err := m.admin("agents", "show", clientID)
	if err != nil || !strings.Contains(out, `"registration": "dcr"`) || !strings.Contains(out, `"name": "Go SDK e2e agent"`) {
		t.Errorf("agents show %s: %v\n%s", clientID, err, out)
	}
}

// TestOAuthTSClientMetadataDocument: the TypeScript SDK's client,
// identified by a Client ID Metadata Document URL that this test serves,
// authorizes through its OAuthClientProvider (tsoauth.mjs drives the pages
// with fetch) and then lists and calls tools. The SDK accepts only https://
// document URLs, so the document is served over TLS on 127.0.0.1 with a
// certificate Mandate is told to trust through SSL_CERT_FILE. The same
// document over plain http (auth.cimd.allow_http, for allow_hosts only) is
// then used by a Go client with Browser, to show that configuration works.
func TestOAuthTSClientMetadataDocument(t *testing.T) {
	t.Parallel()
	tsRedirect, goRedirect := loopbackRedirect(t), loopbackRedirect(t)
	var fetches atomic.Int32
	docs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id":                  scheme + "://" + r.Host + r.URL.Path,
			"client_name":                "TypeScript e2e agent",
			"redirect_uris":              []string{tsRedirect, goRedirect},
			"grant_types":                []string{"authorization_code"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	})
	tlsDocs := httptest.NewTLSServer(docs)
	t.Cleanup(tlsDocs.Close)
	plainDocs := httptest.NewServer(docs)
	t.Cleanup(plainDocs.Close)
	for _, u := range []string{tlsDocs.URL, plainDocs.URL} {
		assertLoopbackOnly(t, u)
	}
	certFile := filepath.Join(t.TempDir(), "docs-ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsDocs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startAuthMandate(t, authServe{
		Auth: "  cimd: {allow_hosts: [\"127.0.0.1\"], allow_http: true}\n",
		Env:  []string{"SSL_CERT_FILE=" + certFile},
	})
	if !m.Meta.CIMDSupported {
		t.Fatalf("metadata does not advertise client_id_metadata_document_supported")
	}

	clientID := tlsDocs.URL + "/agents/ts.json"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Node22(t), SourceFile(t, "tsoauth.mjs"),
		"--url", m.URL, "--redirect-url", tsRedirect, "--client-metadata-url", clientID,
		"--call", `demo__echo={"message":"authorized by the TypeScript SDK"}`)
	cmd.Env = nodeEnv(t, "MANDATE_E2E_PASSWORD="+alicePassword)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("tsoauth.mjs: %v\nstderr:\n%s\nserve:\n%s", err, tail(stderr.String(), 8<<10), tail(m.proc.Output(), 8<<10))
	}
	var r struct {
		Tools []string                   `json:"tools"`
		Calls map[string]json.RawMessage `json:"calls"`
		Auth  struct {
			ClientID              string            `json:"clientId"`
			Issuer                string            `json:"issuer"`
			Iss                   string            `json:"iss"`
			Resource              string            `json:"resource"`
			TokenScope            string            `json:"tokenScope"`
			AuthorizationRequests int               `json:"authorizationRequests"`
			AuthorizationRequest  map[string]string `json:"authorizationRequest"`
			Browser               []string          `json:"browser"`
			ConnectAttempts       int               `json:"connectAttempts"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("tsoauth.mjs output: %v\n%s", err, stdout)
	}
	t.Logf("TypeScript client: client_id %s, %d authorization request(s), %d connect attempts, pages %v",
		r.Auth.ClientID, r.Auth.AuthorizationRequests, r.Auth.ConnectAttempts, r.Auth.Browser)
	if r.Auth.ClientID != clientID || r.Auth.AuthorizationRequest["client_id"] != clientID {
		t.Errorf("client_id %q (request %q), want the metadata document URL %s", r.Auth.ClientID, r.Auth.AuthorizationRequest["client_id"], clientID)
	}
	if r.Auth.Issuer != m.Issuer || r.Auth.Iss != m.Issuer || r.Auth.Resource != m.URL || r.Auth.AuthorizationRequest["resource"] != m.URL {
		t.Errorf("issuer %q, iss %q, resource %q / %q; want %s and %s", r.Auth.Issuer, r.Auth.Iss, r.Auth.Resource, r.Auth.AuthorizationRequest["resource"], m.Issuer, m.URL)
	}
	if r.Auth.AuthorizationRequests != 1 || r.Auth.AuthorizationRequest["code_challenge_method"] != "S256" {
		t.Errorf("authorization requests: %d, %v", r.Auth.AuthorizationRequests, r.Auth.AuthorizationRequest)
	}
	if !slices.Contains(r.Tools, "demo__echo") {
		t.Errorf("tools lack demo__echo: %v", r.Tools)
	}
	got := TSResult{Calls: r.Calls}.CallText("demo__echo")
	if got != "authorized by the TypeScript SDK" {
		t.Errorf("demo__echo = %q (%s)", got, r.Calls["demo__echo"])
	}
	if fetches.Load() == 0 {
		t.Errorf("Mandate never fetched the metadata document")
	}
	out, err := m.admin("agents", "show", clientID)
	if err != nil || !strings.Contains(out, `"registration": "cimd"`) || !strings.Contains(out, `"name": "TypeScript e2e agent"`) {
		t.Errorf("agents show %s: %v\n%s", clientID, err, out)
	}

	// The same agent published over plain http: accepted for an
	// allow_hosts host with allow_http.
	plainID := plainDocs.URL + "/agents/go.json"
	tok, err := CodeFlow{Meta: m.Meta, ClientID: plainID, RedirectURI: goRedirect, Resource: m.URL}.Run(ctx, m.alice(nil))
	if err != nil {
		t.Fatalf("code flow with http client id %s: %v", plainID, err)
	}
	if _, c := claims(t, tok.AccessToken); c["client_id"] != plainID || c["sub"] != m.UserID {
		t.Errorf("claims %v, want client_id %s, sub %s", c, plainID, m.UserID)
	}
	useDemoWithToken(t, m.URL, tok.AccessToken, "http metadata document")
}

// TestOAuthClientCredentials: a pre-registered confidential agent gets a
// token of its own (sub = its id, no user) and uses /mcp with it; the
// agent then shows up in `mandate agents list` with a last-seen time.
func TestOAuthClientCredentials(t *testing.T) {
	t.Parallel()
	secret := newSecret()
	m := startAuthMandate(t, authServe{
		Auth: `  clients:
    - id: ci-bot
      name: CI bot
      secret: "${env:E2E_CI_BOT_SECRET}"
      grant_types: [client_credentials]
`,
		Env: []string{"E2E_CI_BOT_SECRET=" + secret},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := ClientCredentials(ctx, m.Meta.TokenEndpoint, "ci-bot", "wrong-"+secret, m.URL); err == nil {
		t.Fatal("client_credentials with a wrong secret succeeded")
	} else if te := (*TokenError)(nil); !errors.As(err, &te) || te.Status != http.StatusUnauthorized || te.Code != "invalid_client" {
		t.Errorf("wrong secret: %v, want 401 invalid_client", err)
	}

	tok, err := ClientCredentials(ctx, m.Meta.TokenEndpoint, "ci-bot", secret, m.URL)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" || tok.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response: refresh token %t, Cache-Control %q", tok.RefreshToken != "", tok.Header.Get("Cache-Control"))
	}
	_, c := claims(t, tok.AccessToken)
	if c["sub"] != "ci-bot" || c["client_id"] != "ci-bot" || c["act"] != nil || c["auth_time"] != nil {
		t.Errorf("claims %v: want sub = client_id = ci-bot, no act, no auth_time", c)
	}
	useDemoWithToken(t, m.URL, tok.AccessToken, "client credentials")

	out, err := m.admin("agents", "list")
	if err != nil {
		t.Fatalf("agents list: %v\n%s", err, out)
	}
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "ci-bot" {
			row = f
		}
	}
	// ID NAME(two words) REGISTRATION OWNER TRUST STATUS FIRST-SEEN LAST-SEEN
	if len(row) < 2 {
		t.Fatalf("agents list has no ci-bot:\n%s", out)
	}
	lastSeen := row[len(row)-1]
	seen, err := time.Parse(time.RFC3339, lastSeen)
	if err != nil || time.Since(seen) > time.Minute || !slices.Contains(row, "active") {
		t.Errorf("agents list row %q: want active with a recent last-seen time\n%s", row, out)
	}
	t.Logf("agents list:\n%s", out)
}

// TestOAuthTokenExchange: a trusted platform exchanges alice's token (which
// she gave to the agent "webapp") for a delegated token for agent-x: sub
// stays alice, client_id and act name agent-x, and the token works on /mcp.
// A client that is not trusted may not exchange.
func TestOAuthTokenExchange(t *testing.T) {
	t.Parallel()
	secret := newSecret()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Auth: fmt.Sprintf(`  clients:
    - id: webapp
      name: Web app
      redirect_uris: [%q]
    - id: platform
      name: Agent platform
      secret: %q
      grant_types: [client_credentials]
    - id: agent-x
      name: Agent X
      redirect_uris: [%q]
  token_exchange:
    trusted_clients: [platform]
`, redirect, secret, redirect)})
	if !slices.Contains(m.Meta.GrantTypesSupported, GrantTokenExchange) {
		t.Errorf("metadata grant_types_supported %v lacks token exchange", m.Meta.GrantTypesSupported)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	user, err := CodeFlow{Meta: m.Meta, ClientID: "webapp", RedirectURI: redirect, Resource: m.URL}.Run(ctx, m.alice(nil))
	if err != nil {
		t.Fatalf("alice's token for webapp: %v", err)
	}
	exchange := url.Values{
		"grant_type":         {GrantTokenExchange},
		"subject_token":      {user.AccessToken},
		"subject_token_type": {TokenTypeAccessToken},
		"audience":           {"agent-x"},
		"resource":           {m.URL},
	}
	if _, err := PostToken(ctx, nil, m.Meta.TokenEndpoint, "webapp", "", exchange); err == nil {
		t.Errorf("an untrusted public client exchanged a token")
	}
	tok, err := PostToken(ctx, nil, m.Meta.TokenEndpoint, "platform", secret, exchange)
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	if tok.IssuedTokenType != TokenTypeAccessToken || tok.RefreshToken != "" {
		t.Errorf("issued_token_type %q, refresh token %t", tok.IssuedTokenType, tok.RefreshToken != "")
	}
	_, c := claims(t, tok.AccessToken)
	act, _ := c["act"].(map[string]any)
	if c["sub"] != m.UserID || c["client_id"] != "agent-x" || act == nil || act["sub"] != "agent-x" || act["client_id"] != "agent-x" {
		t.Errorf("delegated token claims %v: want sub %s (alice), client_id agent-x, act {sub, client_id: agent-x}", c, m.UserID)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != m.URL {
		t.Errorf("aud %v", c["aud"])
	}
	t.Logf("delegated token claims: %v", c)
	useDemoWithToken(t, m.URL, tok.AccessToken, "delegated to agent-x")
	// The agent the principal names is agent-x: it is the one Mandate saw.
	out, err := m.admin("agents", "show", "agent-x")
	if err != nil || !strings.Contains(string(out), `"last_seen": "2`) {
		t.Errorf("agents show agent-x after its delegated call: %v\n%s", err, out)
	}
}

// TestOAuthAgentSuspension: `mandate agents suspend` on a running server
// refuses the agent's very next request with 401 invalid_token (its token
// is still unexpired), and its next token request too; `resume` lets it
// back in with the same token.
func TestOAuthAgentSuspension(t *testing.T) {
	t.Parallel()
	secret := newSecret()
	m := startAuthMandate(t, authServe{Auth: fmt.Sprintf(`  clients:
    - id: ops-bot
      name: Ops bot
      secret: %q
      grant_types: [client_credentials]
`, secret)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := ClientCredentials(ctx, m.Meta.TokenEndpoint, "ops-bot", secret, m.URL)
	if err != nil {
		t.Fatal(err)
	}
	log := &httpLog{}
	hc := &http.Client{Transport: &BearerTransport{Token: tok.AccessToken, Base: log}}
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: hc, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := useDemo(ctx, cs, "before"); err != nil {
		t.Fatal(err)
	}

	if out, err := m.admin("agents", "suspend", "ops-bot"); err != nil {
		t.Fatalf("agents suspend: %v\n%s", err, out)
	}
	before := log.len()
	if err := echo(ctx, cs, "while suspended"); err == nil {
		t.Fatal("the suspended agent's next call succeeded")
	} else {
		t.Logf("the session's next call: %v", err)
	}
	next := log.since(before)
	if len(next) == 0 || next[0] != "POST /mcp 401 invalid_token" {
		t.Errorf("requests after the suspension: %q, want the first to be POST /mcp 401 invalid_token", next)
	}
	status, challenge := mcpProbe(t, m.URL, tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("suspended agent: %d %q, want 401 with error=\"invalid_token\"", status, challenge)
	}
	if _, err := ClientCredentials(ctx, m.Meta.TokenEndpoint, "ops-bot", secret, m.URL); err == nil {
		t.Errorf("a suspended agent got a new token")
	}

	if out, err := m.admin("agents", "resume", "ops-bot"); err != nil {
		t.Fatalf("agents resume: %v\n%s", err, out)
	}
	if status, challenge := mcpProbe(t, m.URL, tok.AccessToken); status != http.StatusOK {
		t.Errorf("resumed agent: %d %q, want 200", status, challenge)
	}
	useDemoWithToken(t, m.URL, tok.AccessToken, "after resume")
}

// TestOAuthConformanceWithBearerToken: with authentication on, the
// conformance suite — every request carrying a client_credentials token
// with all three scopes — passes every check through Mandate fronting the
// Go SDK everything-server, as TestConformanceThroughMandateGoEverythingServer
// does without authentication.
func TestOAuthConformanceWithBearerToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		upstream func(t *testing.T) string // the upstream's transport line
	}{
		{"stdio", func(t *testing.T) string { return fmt.Sprintf("stdio: {command: %q}", GoEverythingServer(t)) }},
		{"http", func(t *testing.T) string { return fmt.Sprintf("http: {url: %q}", StartGoEverythingServer(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secret := newSecret()
			m := startAuthMandate(t, authServe{
				Auth: fmt.Sprintf(`  access_token_ttl: 15m
  clients:
    - id: conformance
      name: Conformance suite
      secret: %q
      grant_types: [client_credentials]
      scopes: [mcp:tools, mcp:prompts, mcp:resources]
`, secret),
				Upstreams:     "  - id: ev\n    prefix: \"\"\n    " + tc.upstream(t) + "\n",
				AllowUnlisted: true,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tok, err := ClientCredentials(ctx, m.Meta.TokenEndpoint, "conformance", secret, m.URL)
			if err != nil {
				t.Fatal(err)
			}
			if !sameScopes(tok.Scope, "mcp:tools mcp:prompts mcp:resources") {
				t.Fatalf("token scope %q", tok.Scope)
			}
			if status, _ := mcpProbe(t, m.URL, ""); status != http.StatusUnauthorized {
				t.Fatalf("/mcp without a token: %d, want 401", status)
			}
			res := RunConformanceWith(t, m.URL, ConformanceOptions{Suite: "active", Headers: map[string]string{"Authorization": "Bearer " + tok.AccessToken}})
			requireAllPass(t, res, goEverythingChecks)
		})
	}
}

// TestOAuthAuthorizationServerConformance runs the conformance suite's
// authorization server scenarios (`conformance authorization`) against the
// embedded server: its metadata document, and an authorization code grant
// for a pre-registered public client, in which Browser plays the person
// the CLI asks to open the authorization URL.
func TestOAuthAuthorizationServerConformance(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	callback := fmt.Sprintf("http://127.0.0.1:%d/callback", port)
	m := startAuthMandate(t, authServe{Auth: fmt.Sprintf(`  clients:
    - id: as-conformance
      name: Conformance suite
      redirect_uris: [%q]
`, callback)})
	res := RunASConformance(t, ASConformanceOptions{
		Issuer: m.Issuer, ClientID: "as-conformance", Resource: m.URL, Port: port,
		Authorize: func(ctx context.Context, authURL string) error {
			ar, err := m.alice(nil).Authorize(ctx, authURL)
			if err != nil {
				return err
			}
			// Deliver the authorization response to the CLI's callback
			// server, which may still be starting.
			for i := 0; ; i++ {
				resp, err := http.Get(ar.Location.String())
				if err == nil {
					resp.Body.Close()
					return nil
				}
				if i == 20 {
					return err
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
	})
	keys := make([]string, 0, len(res.Checks))
	for k := range res.Checks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%s: %s %s", k, res.Checks[k], res.Messages[k])
	}
	t.Logf("conformance authorization: %d passed, %d failed (exit %d)", res.Passed, res.Failed, res.ExitCode)
	if res.AuthorizeErr != nil {
		t.Errorf("browser: %v", res.AuthorizeErr)
	}
	for _, k := range []string{
		"authorization-server-metadata-endpoint/authorization-server-metadata",
		"authorization-server-metadata-endpoint/authorization-server-metadata-cimd",
		"authorization-code-grant/authorization-code-grant",
	} {
		if res.Checks[k] != "SUCCESS" {
			t.Errorf("check %s: %q %s", k, res.Checks[k], res.Messages[k])
		}
	}
	if res.Failed != 0 || res.ExitCode != 0 {
		t.Errorf("want every check to pass:\n%s", tail(res.Raw, 8<<10))
	}
}

// TestOAuthFlowTiming measures a person's whole authorization against the
// running server — authorization request, login page, password, consent
// page, allow, code redemption — in a fresh browser each time. It logs the
// median of ten runs; the target is under 300 ms. Nothing is asserted about
// the time.
func TestOAuthFlowTiming(t *testing.T) {
	t.Parallel()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Auth: fmt.Sprintf(`  clients:
    - id: timer
      name: Timer
      redirect_uris: [%q]
`, redirect)})
	flow := CodeFlow{Meta: m.Meta, ClientID: "timer", RedirectURI: redirect, Resource: m.URL}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := flow.Run(ctx, m.alice(nil)); err != nil { // warm-up
		t.Fatal(err)
	}
	const runs = 10
	var times []time.Duration
	for range runs {
		b := m.alice(nil)
		start := time.Now()
		if _, err := flow.Run(ctx, b); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	median := (times[runs/2-1] + times[runs/2]) / 2
	t.Logf("login + consent + token, %d runs: median %v (min %v, max %v; target < 300ms)", runs, median.Round(time.Millisecond),
		times[0].Round(time.Millisecond), times[runs-1].Round(time.Millisecond))
}

// TestOAuthUserDisabled: disabling a user denies the very next request made
// for them, although the agent's access token has not expired; enabling
// the user again restores it.
func TestOAuthUserDisabled(t *testing.T) {
	t.Parallel()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Auth: fmt.Sprintf(`  clients:
    - id: webapp
      name: Web app
      redirect_uris: [%q]
`, redirect)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := CodeFlow{Meta: m.Meta, ClientID: "webapp", RedirectURI: redirect, Resource: m.URL}.Run(ctx, m.alice(nil))
	if err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	if status, challenge := mcpProbe(t, m.URL, tok.AccessToken); status != http.StatusOK {
		t.Fatalf("before: %d %q", status, challenge)
	}
	if out, err := m.admin("users", "disable", "alice"); err != nil {
		t.Fatalf("users disable: %v\n%s", err, out)
	}
	if status, challenge := mcpProbe(t, m.URL, tok.AccessToken); status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Errorf("disabled user: %d %q, want 401 invalid_token", status, challenge)
	}
	if out, err := m.admin("users", "enable", "alice"); err != nil {
		t.Fatalf("users enable: %v\n%s", err, out)
	}
	if status, challenge := mcpProbe(t, m.URL, tok.AccessToken); status != http.StatusOK {
		t.Errorf("enabled again: %d %q", status, challenge)
	}
}
