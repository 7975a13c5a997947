package e2e

// This file drives Mandate's embedded OAuth authorization server from the
// outside, the way a person's browser and an MCP client would: a Browser
// walks the login and consent pages, and the functions around it build
// authorization requests, redeem codes and decode the tokens that come back.
// They know the pages only by their form fields (login: id, csrf, username,
// password; consent: id, csrf, action=allow|deny), never by their layout.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Browser is a user agent for the authorization server's pages: it keeps
// cookies, follows the server's own redirects, fills in the login form with
// Username and Password, answers the consent form with Allow (or Deny), and
// stops at the redirect to the client's redirect URI, which it returns
// without following.
type Browser struct {
	// Username and Password are typed into the login form.
	Username, Password string
	// Issuer is what the authorization response's RFC 9207 iss parameter
	// must be. Empty skips that check.
	Issuer string
	// Deny answers the consent page with Deny instead of Allow.
	Deny bool
	// Client sends the requests. Nil means a client of its own with a
	// cookie jar; a client given here must have a jar and must not follow
	// redirects (see NewBrowserClient).
	Client *http.Client
	// Pages lists the forms ("login", "consent") the last Authorize
	// filled in, in order: a browser with a live session skips the login.
	Pages []string
}

// NewBrowserClient returns an HTTP client with a fresh cookie jar that
// does not follow redirects, as Browser needs. rt is its transport (nil
// means http.DefaultTransport).
func NewBrowserClient(rt http.RoundTripper) *http.Client {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	return &http.Client{
		Jar:       jar,
		Transport: rt,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// AuthorizationResponse is what the authorization server sent to the
// client's redirect URI.
type AuthorizationResponse struct {
	Code, State, Iss string
	// Location is the whole redirect.
	Location *url.URL
}

// Authorize opens authURL (an authorization request) and walks the pages
// until the server redirects to the request's redirect_uri. It checks that
// the response carries no error, a code, the request's state and, when
// Issuer is set, iss = Issuer.
func (b *Browser) Authorize(ctx context.Context, authURL string) (*AuthorizationResponse, error) {
	req, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("authorization URL: %w", err)
	}
	redirect, err := url.Parse(req.Query().Get("redirect_uri"))
	if err != nil || req.Query().Get("redirect_uri") == "" {
		return nil, fmt.Errorf("authorization URL %s has no usable redirect_uri", authURL)
	}
	if b.Client == nil {
		b.Client = NewBrowserClient(nil)
	}
	b.Pages = b.Pages[:0]

	next, method, form := authURL, http.MethodGet, url.Values(nil)
	for step := 0; step < 12; step++ {
		resp, body, err := b.do(ctx, method, next, form)
		if err != nil {
			return nil, err
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			u, err := url.Parse(next)
			if err != nil {
				return nil, err
			}
			to, err := u.Parse(loc)
			if err != nil {
				return nil, fmt.Errorf("redirect to %q: %w", loc, err)
			}
			if sameEndpoint(to, redirect) {
				return b.response(to, req.Query().Get("state"))
			}
			next, method, form = to.String(), http.MethodGet, nil
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s %s: status %d: %s", method, next, resp.StatusCode, pageText(body))
		}
		f, err := parseForm(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w: %s", method, next, err, pageText(body))
		}
		form = f.values
		switch {
		case f.has("password"):
			b.Pages = append(b.Pages, "login")
			form.Set("username", b.Username)
			form.Set("password", b.Password)
		case f.has("action") || strings.HasSuffix(f.action, "/consent"):
			b.Pages = append(b.Pages, "consent")
			form.Del("action")
			if b.Deny {
				form.Set("action", "deny")
			} else {
				form.Set("action", "allow")
			}
		default:
			return nil, fmt.Errorf("%s: a form that is neither login nor consent (action %q)", next, f.action)
		}
		u, _ := url.Parse(next)
		to, err := u.Parse(f.action)
		if err != nil {
			return nil, fmt.Errorf("form action %q: %w", f.action, err)
		}
		next, method = to.String(), http.MethodPost
	}
	return nil, errors.New("no redirect to the client after 12 steps")
}

func (b *Browser) do(ctx context.Context, method, target string, form url.Values) (*http.Response, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	return resp, string(raw), nil
}

// response checks the authorization response in to.
func (b *Browser) response(to *url.URL, state string) (*AuthorizationResponse, error) {
	q := to.Query()
	for _, k := range []string{"code", "state", "iss", "error"} {
		if len(q[k]) > 1 {
			return nil, fmt.Errorf("authorization response repeats %s: %s", k, to)
		}
	}
	r := &AuthorizationResponse{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss"), Location: to}
	switch {
	case q.Get("error") != "":
		return r, fmt.Errorf("authorization response error %s: %s", q.Get("error"), q.Get("error_description"))
	case r.Code == "":
		return r, fmt.Errorf("authorization response without code: %s", to)
	case r.State != state:
		return r, fmt.Errorf("authorization response state %q, want %q", r.State, state)
	case b.Issuer != "" && r.Iss != b.Issuer:
		return r, fmt.Errorf("authorization response iss %q, want %q", r.Iss, b.Issuer)
	}
	return r, nil
}

// sameEndpoint reports whether u is at redirect's scheme, host and path.
func sameEndpoint(u, redirect *url.URL) bool {
	return strings.EqualFold(u.Scheme, redirect.Scheme) && strings.EqualFold(u.Host, redirect.Host) && u.Path == redirect.Path
}

// form is the one <form> of a page: where it posts and its inputs.
type form struct {
	action string
	names  []string
	values url.Values
}

func (f form) has(name string) bool {
	for _, n := range f.names {
		if n == name {
			return true
		}
	}
	return false
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	fieldRE = regexp.MustCompile(`(?is)<(input|button)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?is)([a-z-]+)\s*=\s*"([^"]*)"`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2])
	}
	return m
}

// parseForm reads the page's first POST form: hidden inputs keep their
// values; other inputs and buttons are only named.
func parseForm(page string) (form, error) {
	m := formRE.FindStringSubmatch(page)
	if m == nil {
		return form{}, errors.New("no form on the page")
	}
	fa := attrs(m[1])
	f := form{action: fa["action"], values: url.Values{}}
	if !strings.EqualFold(fa["method"], "post") {
		return form{}, fmt.Errorf("form method %q, want post", fa["method"])
	}
	for _, in := range fieldRE.FindAllStringSubmatch(m[2], -1) {
		a := attrs(in[2])
		name := a["name"]
		if name == "" {
			continue
		}
		f.names = append(f.names, name)
		if strings.EqualFold(in[1], "input") && strings.EqualFold(a["type"], "hidden") {
			f.values.Set(name, a["value"])
		}
	}
	return f, nil
}

// pageText is a page's visible text, shortened, for error messages.
func pageText(page string) string {
	s := strings.Join(strings.Fields(html.UnescapeString(tagRE.ReplaceAllString(page, " "))), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// ---------------------------------------------------------------------------
// Authorization requests and the token endpoint

// ASMetadata is the part of RFC 8414 authorization server metadata the
// tests use.
type ASMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RegistrationEndpoint  string   `json:"registration_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	GrantTypesSupported   []string `json:"grant_types_supported"`
	CIMDSupported         bool     `json:"client_id_metadata_document_supported"`
	IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
}

// FetchASMetadata reads issuer's /.well-known/oauth-authorization-server
// and checks that it names issuer.
func FetchASMetadata(ctx context.Context, issuer string) (*ASMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("authorization server metadata: status %d", resp.StatusCode)
	}
	var m ASMetadata
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("authorization server metadata: %w", err)
	}
	if m.Issuer != issuer {
		return nil, fmt.Errorf("authorization server metadata names issuer %q, want %q", m.Issuer, issuer)
	}
	return &m, nil
}

// NewPKCE returns an RFC 7636 code verifier and its S256 challenge.
func NewPKCE() (verifier, challenge string) {
	verifier = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// CodeFlow is one client's authorization code grant with PKCE.
type CodeFlow struct {
	Meta         *ASMetadata
	ClientID     string
	ClientSecret string // empty for a public client
	RedirectURI  string
	Resource     string   // RFC 8707 resource; empty omits it
	Scopes       []string // empty omits scope
}

// Run sends the browser through an authorization request and redeems the
// code it brings back.
func (f CodeFlow) Run(ctx context.Context, b *Browser) (*TokenResponse, error) {
	verifier, challenge := NewPKCE()
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {f.ClientID},
		"redirect_uri":          {f.RedirectURI},
		"state":                 {rand.Text()},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
	if f.Resource != "" {
		q.Set("resource", f.Resource)
	}
	if len(f.Scopes) > 0 {
		q.Set("scope", strings.Join(f.Scopes, " "))
	}
	ar, err := b.Authorize(ctx, f.Meta.AuthorizationEndpoint+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {ar.Code},
		"redirect_uri":  {f.RedirectURI},
		"code_verifier": {verifier},
	}
	if f.Resource != "" {
		form.Set("resource", f.Resource)
	}
	tok, err := PostToken(ctx, b.Client, f.Meta.TokenEndpoint, f.ClientID, f.ClientSecret, form)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// TokenResponse is a token endpoint's success response.
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
	RefreshToken    string `json:"refresh_token"`
	Scope           string `json:"scope"`
	IssuedTokenType string `json:"issued_token_type"`
	// Header is the HTTP response's header.
	Header http.Header `json:"-"`
}

// TokenError is a token endpoint's error response.
type TokenError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("token endpoint: %d %s: %s", e.Status, e.Code, e.Description)
}

// PostToken posts form to the token endpoint. A confidential client
// (secret not empty) authenticates with HTTP Basic; a public one sends
// client_id in the form. c nil means http.DefaultClient.
func PostToken(ctx context.Context, c *http.Client, tokenURL, clientID, secret string, form url.Values) (*TokenResponse, error) {
	if c == nil {
		c = http.DefaultClient
	}
	form = cloneValues(form)
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &TokenError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return nil, e
	}
	var tr TokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		return nil, fmt.Errorf("token response: %w: %s", err, raw)
	}
	if tr.AccessToken == "" || !strings.EqualFold(tr.TokenType, "bearer") {
		return nil, fmt.Errorf("token response without a bearer access token: %s", raw)
	}
	tr.Header = resp.Header
	return &tr, nil
}

// ClientCredentials gets a token for a confidential client acting for
// itself.
func ClientCredentials(ctx context.Context, tokenURL, clientID, secret, resource string, scopes ...string) (*TokenResponse, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	return PostToken(ctx, nil, tokenURL, clientID, secret, form)
}

// RFC 8693 token exchange names.
const (
	GrantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// JWTParts returns a compact JWT's header and claims, unverified: the
// tests check what a token says; Mandate's resource server checks that it
// is genuine.
func JWTParts(token string) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("not a compact JWT (%d parts)", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, fmt.Errorf("JWT part %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return nil, nil, fmt.Errorf("JWT part %d: %w", i, err)
		}
	}
	return header, claims, nil
}

// BearerTransport adds "Authorization: Bearer Token" to every request.
type BearerTransport struct {
	Token string
	Base  http.RoundTripper // nil means http.DefaultTransport
}

func (t *BearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.Token)
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

var _ http.RoundTripper = (*BearerTransport)(nil)

// ---------------------------------------------------------------------------
// The conformance suite's authorization server scenarios

// ASConformanceOptions configure RunASConformance.
type ASConformanceOptions struct {
	// Issuer is the authorization server's issuer (--url).
	Issuer string
	// ClientID (and ClientSecret, empty for a public client) is a client
	// registered with http://127.0.0.1:Port/callback as a redirect URI.
	ClientID, ClientSecret string
	// Resource is sent as the RFC 8707 resource; empty omits it.
	Resource string
	// Port is the CLI's callback port.
	Port int
	// Scenario runs one scenario; empty runs all.
	Scenario string
	// Authorize plays the person at the browser: the CLI prints an
	// authorization URL and waits for the authorization response at its
	// callback; Authorize must get it there (follow the redirect).
	Authorize func(ctx context.Context, authURL string) error
	// Timeout bounds the run (default 2 minutes).
	Timeout time.Duration
}

// ASConformanceResult is the outcome of `conformance authorization`.
type ASConformanceResult struct {
	// Checks maps "scenario/check-id" to the check's status; Messages to
	// its errorMessage, when it has one.
	Checks, Messages map[string]string
	// Passed and Failed are the CLI's "Total: N passed, M failed".
	Passed, Failed int
	ExitCode       int
	Raw            string
	// AuthorizeErr is what Authorize returned, if it failed.
	AuthorizeErr error
}

// RunASConformance runs the conformance CLI's `authorization` command,
// which tests an OAuth authorization server (not an MCP server): its
// metadata document and one authorization code grant, which needs a person
// at a browser — Authorize stands in.
func RunASConformance(t testing.TB, o ASConformanceOptions) ASConformanceResult {
	t.Helper()
	dir := t.TempDir()
	args := []string{ConformanceCLI(t), "authorization", "--url", o.Issuer, "-o", dir, "-p", strconv.Itoa(o.Port)}
	for _, f := range []struct{ flag, v string }{
		{"--client-id", o.ClientID}, {"--client-secret", o.ClientSecret}, {"--resource", o.Resource}, {"--scenario", o.Scenario},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Node22(t), args...)
	cmd.Env = nodeEnv(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stderr = &out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: starting conformance CLI: %v", err)
	}
	res := ASConformanceResult{Checks: map[string]string{}, Messages: map[string]string{}}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		authErr error
	)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		out.Write([]byte(line + "\n"))
		if u := strings.TrimSpace(ansiRE.ReplaceAllString(line, "")); o.Authorize != nil &&
			strings.HasPrefix(u, "http") && strings.Contains(u, "response_type=code") {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := o.Authorize(ctx, u); err != nil {
					mu.Lock()
					authErr = errors.Join(authErr, err)
					mu.Unlock()
				}
			}()
		}
	}
	err = cmd.Wait()
	wg.Wait()
	res.AuthorizeErr = authErr
	res.Raw = out.String()
	if ctx.Err() != nil {
		t.Fatalf("e2e: conformance authorization timed out after %v:\n%s", timeout, tail(res.Raw, 16<<10))
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("e2e: conformance authorization: %v\n%s", err, tail(res.Raw, 16<<10))
		}
		res.ExitCode = ee.ExitCode()
	}

	// Each scenario writes <dir>/authorization-server-<scenario>-<time>/checks.json.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	for _, e := range entries {
		m := asResultDirRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "checks.json"))
		if err != nil {
			t.Fatalf("e2e: %v", err)
		}
		var checks []conformanceCheck
		if err := json.Unmarshal(b, &checks); err != nil {
			t.Fatalf("e2e: %s/checks.json: %v", e.Name(), err)
		}
		for _, c := range checks {
			key := m[1] + "/" + c.ID
			res.Checks[key] = c.Status
			if c.ErrorMessage != "" {
				res.Messages[key] = c.ErrorMessage
			}
		}
	}
	total := false
	single := regexp.MustCompile(`^Passed: (\d+)/\d+, (\d+) failed`)
	for _, line := range strings.Split(ansiRE.ReplaceAllString(res.Raw, ""), "\n") {
		if m := totalLineRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			res.Passed, _ = strconv.Atoi(m[1])
			res.Failed, _ = strconv.Atoi(m[2])
			total = true
		} else if m := single.FindStringSubmatch(strings.TrimSpace(line)); m != nil && !total {
			res.Passed, _ = strconv.Atoi(m[1])
			res.Failed, _ = strconv.Atoi(m[2])
		}
	}
	return res
}

var asResultDirRE = regexp.MustCompile(`^authorization-server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$`)
