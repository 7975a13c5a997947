package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/users"
)

// env is one authorization server on a loopback httptest listener, with a
// memory store.
type env struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	store *memory.Store
	url   string // issuer
	clock *clock
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const (
	testUser     = "alice"
	testPassword = "correct horse battery staple"
	publicAgent  = "agent-public"
	secretAgent  = "agent-secret"
	agentSecret  = "s3cret-of-the-agent-0123456789"
	agentRedir   = "http://127.0.0.1:9999/callback"
)

var (
	userHashOnce sync.Once
	userHash     string
	secretHash   string
)

// newEnv starts a server; edit adjusts the options before New.
func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	st := memory.New()
	sealer, err := NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	opts := Options{
		Issuer: issuer,
		Store:  st,
		Sealer: sealer,
		Now:    clk.Now,
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	e := &env{t: t, srv: srv, ts: ts, store: st, url: issuer, clock: clk}
	e.seed()
	return e
}

// seed adds alice and two pre-registered agents: a public one with the
// refresh grant and a confidential one with client_credentials.
func (e *env) seed() {
	e.t.Helper()
	userHashOnce.Do(func() {
		var err error
		if userHash, err = users.HashPassword(testPassword); err != nil {
			panic(err)
		}
		if secretHash, err = hashSecret(agentSecret); err != nil {
			panic(err)
		}
	})
	ctx := context.Background()
	now := time.Now()
	must(e.t, e.store.CreateUser(ctx, store.User{ID: "usr_alice", Username: testUser, PasswordHash: userHash, CreatedAt: now}))
	must(e.t, e.store.PutAgent(ctx, store.Agent{
		ID: publicAgent, Name: "Public Agent", Registration: store.RegistrationConfig, TrustLevel: "standard",
		Status: store.AgentActive, RedirectURIs: []string{agentRedir}, AuthMethod: authNone,
		GrantTypes: []string{"authorization_code", "refresh_token"}, CreatedAt: now,
	}))
	must(e.t, e.store.PutAgent(ctx, store.Agent{
		ID: secretAgent, Name: "Secret Agent", Registration: store.RegistrationConfig, TrustLevel: "standard",
		Status: store.AgentActive, RedirectURIs: []string{"https://agent.example/cb"}, AuthMethod: authSecretBase,
		SecretHash: secretHash, GrantTypes: []string{"authorization_code", "client_credentials"}, CreatedAt: now,
	}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// browser is a test user agent: a cookie jar, redirects not followed.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.abs(path))
	if err != nil {
		b.e.t.Fatal(err)
	}
	return readPage(b.e.t, resp)
}

func (b *browser) post(path string, form url.Values) page {
	b.e.t.Helper()
	resp, err := b.c.PostForm(b.e.abs(path), form)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return readPage(b.e.t, resp)
}

func readPage(t *testing.T, resp *http.Response) page {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (e *env) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return e.url + path
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, p page) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf field in page (status %d): %s", p.status, p.body)
	}
	return m[1]
}

// pkce returns a verifier and its S256 challenge.
func pkce() (string, string) {
	verifier := randomToken()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams are a valid authorization request for the public agent.
func (e *env) authParams(challenge string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {publicAgent},
		"redirect_uri":          {agentRedir},
		"state":                 {"state-123"},
		"scope":                 {"mcp:tools mcp:prompts"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"resource":              {e.url + "/mcp"},
	}
}

// location parses a redirect's Location.
func location(t *testing.T, p page) *url.URL {
	t.Helper()
	if p.status < 300 || p.status > 399 {
		t.Fatalf("want a redirect, got %d: %s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// login drives /authorize → login → consent page and returns the consent
// page and the request id.
func (b *browser) login(params url.Values) (page, string) {
	t := b.e.t
	t.Helper()
	loc := location(t, b.get("/authorize?"+params.Encode()))
	if loc.Path != loginPath {
		t.Fatalf("authorize redirected to %s, want the login page", loc)
	}
	id := loc.Query().Get("id")
	lp := b.get(loc.String())
	if lp.status != http.StatusOK {
		t.Fatalf("login page: %d %s", lp.status, lp.body)
	}
	after := b.post(loginPath, url.Values{
		"id": {id}, "csrf": {csrfOf(t, lp)}, "username": {testUser}, "password": {testPassword},
	})
	cl := location(t, after)
	if cl.Path != consentPath {
		t.Fatalf("login redirected to %s, want consent", cl)
	}
	cp := b.get(cl.String())
	if cp.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", cp.status, cp.body)
	}
	return cp, id
}

// authorize runs the whole browser part with Allow and returns the
// redirect back to the client.
func (b *browser) authorize(params url.Values) *url.URL {
	t := b.e.t
	t.Helper()
	cp, id := b.login(params)
	return location(t, b.post(consentPath, url.Values{"id": {id}, "csrf": {csrfOf(t, cp)}, "action": {"allow"}}))
}

// tokenResponse is the token endpoint's JSON.
type tokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token"`
	IssuedType   string `json:"issued_token_type"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
}

// token posts form to the token endpoint, with HTTP Basic when user is set.
func (e *env) token(form url.Values, user, pass string) (int, tokenJSON, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+tokenPath, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tj tokenJSON
	if err := json.NewDecoder(resp.Body).Decode(&tj); err != nil {
		e.t.Fatalf("token response (%d) is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, tj, resp.Header
}

// jwks fetches the published keys.
func (e *env) jwks() jose.JSONWebKeySet {
	e.t.Helper()
	resp, err := http.Get(e.url + keysPath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatal(err)
	}
	return set
}

// verifyJWT checks token against the published keys as a resource server
// would, and returns its header type, kid and claims.
func (e *env) verifyJWT(token string) (typ, kid string, claims map[string]any) {
	e.t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		e.t.Fatal(err)
	}
	hdr := jws.Signatures[0].Protected
	set := e.jwks()
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q: %d published keys", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		e.t.Fatalf("signature: %v", err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		e.t.Fatal(err)
	}
	typ, _ = hdr.ExtraHeaders[jose.HeaderType].(string)
	return typ, hdr.KeyID, claims
}

// codeFlow runs the whole flow for the public agent and returns the
// token response.
func (e *env) codeFlow() tokenJSON {
	e.t.Helper()
	verifier, challenge := pkce()
	back := e.browser().authorize(e.authParams(challenge))
	status, tj, _ := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
		"client_id": {publicAgent}, "code_verifier": {verifier},
	}, "", "")
	if status != http.StatusOK {
		e.t.Fatalf("code exchange: %d %+v", status, tj)
	}
	return tj
}

func scopeSet(v any) []string {
	s, _ := v.(string)
	f := strings.Fields(s)
	slices.Sort(f)
	return f
}
