package authn

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/identity"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

const testPRM = "http://127.0.0.1:8787/.well-known/oauth-protected-resource/mcp"

// testOptions are Require's options for the tests: v verifies, the
// baseline is challenged, and refusals are logged to log.
func testOptions(v VerifyFunc, log *bytes.Buffer) Options {
	opts := Options{Verify: v, ResourceMetadataURL: testPRM, Scopes: append(BaselineScopes(), "offline_access")}
	if log != nil {
		opts.Log = slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return opts
}

// serve runs one request through Require(opts) in front of a handler that
// records the principal it was given.
func serve(opts Options, r *http.Request) (*httptest.ResponseRecorder, *identity.Principal) {
	var got *identity.Principal
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = identity.FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	w := httptest.NewRecorder()
	Require(opts)(next).ServeHTTP(w, r)
	return w, got
}

func mcpRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestChallengeFormats pins the three challenges clients parse most.
func TestChallengeFormats(t *testing.T) {
	v := newTestVerifier(t, key(t, jose.RS256, "rsa-1"))
	opts := testOptions(v.Verify, nil)

	w, _ := serve(opts, mcpRequest(""))
	want := `Bearer resource_metadata="` + testPRM + `", scope="mcp:tools mcp:prompts mcp:resources"`
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("missing token: %d %q\nwant 401 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}

	w, _ = serve(opts, mcpRequest("not.a.token"))
	want = `Bearer error="invalid_token", resource_metadata="` + testPRM + `", scope="mcp:tools mcp:prompts mcp:resources"`
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("invalid token: %d %q\nwant 401 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}

	w = httptest.NewRecorder()
	WriteInsufficientScope(w, opts, []string{"mcp:tools", "files:write"})
	want = `Bearer error="insufficient_scope", scope="mcp:tools files:write", resource_metadata="` + testPRM +
		`", error_description="this operation requires scope mcp:tools files:write"`
	if w.Code != http.StatusForbidden || w.Header().Get("WWW-Authenticate") != want {
		t.Errorf("insufficient scope: %d %q\nwant 403 %q", w.Code, w.Header().Get("WWW-Authenticate"), want)
	}
}

const challengesHeader = `# Golden 401/403/503 answers of Require and WriteInsufficientScope: status,
# WWW-Authenticate and body per case. Guards MCP A-02/A-03 (resource_metadata
# and baseline scope on every 401, offline_access never challenged), A-05 and
# AT-23 (a token in the URL or form is refused, not used), A-07 and AT-21 (403
# names every required scope at once), and header injection through quoted
# values. Refresh with -update.
`

func TestChallengesGolden(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	valid := rs.sign(t, claims(nil))
	expired := rs.sign(t, claims(map[string]any{"exp": testNow.Add(-5 * time.Minute).Unix()}))
	gate := func(err error) func(context.Context, *identity.Principal) error {
		return func(context.Context, *identity.Principal) error { return err }
	}
	withOpts := func(f func(*Options)) Options {
		o := testOptions(v.Verify, nil)
		f(&o)
		return o
	}
	req := func(f func(*http.Request)) *http.Request {
		r := mcpRequest(valid)
		f(r)
		return r
	}
	type result struct {
		status int
		header string
		body   string
	}
	run := func(opts Options, r *http.Request) result {
		w, _ := serve(opts, r)
		return result{w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String()}
	}
	insufficient := func(opts Options, scopes ...string) result {
		w := httptest.NewRecorder()
		WriteInsufficientScope(w, opts, scopes)
		return result{w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String()}
	}
	cases := []struct {
		name string
		got  result
	}{
		{"valid token", run(testOptions(v.Verify, nil), mcpRequest(valid))},
		{"no Authorization header", run(testOptions(v.Verify, nil), mcpRequest(""))},
		{"Basic scheme", run(testOptions(v.Verify, nil), req(func(r *http.Request) { r.Header.Set("Authorization", "Basic YTpi") }))},
		{"Bearer without token", run(testOptions(v.Verify, nil), req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }))},
		{"two Authorization headers", run(testOptions(v.Verify, nil), req(func(r *http.Request) { r.Header.Add("Authorization", "Bearer "+valid) }))},
		{"garbage token", run(testOptions(v.Verify, nil), mcpRequest("garbage"))},
		{"expired token", run(testOptions(v.Verify, nil), mcpRequest(expired))},
		{"access_token in query", run(testOptions(v.Verify, nil), req(func(r *http.Request) { r.URL.RawQuery = "access_token=" + valid }))},
		{"access_token in form", run(testOptions(v.Verify, nil), formRequest(valid, "access_token="+valid))},
		{"agent suspended", run(withOpts(func(o *Options) { o.AgentGate = gate(fmt.Errorf("agent-a: %w", ErrAgentSuspended)) }), mcpRequest(valid))},
		{"agent gate refuses", run(withOpts(func(o *Options) { o.AgentGate = gate(errors.New("unknown agent agent-a")) }), mcpRequest(valid))},
		{"agent gate unavailable", run(withOpts(func(o *Options) { o.AgentGate = gate(fmt.Errorf("store: %w", ErrUnavailable)) }), mcpRequest(valid))},
		{"keys unavailable", run(withOpts(func(o *Options) {
			o.Verify = NewJWTVerifier(JWTOptions{Issuers: []IssuerSpec{{Issuer: testIssuer, Keys: errKeySource{errors.New("down")}, Audience: testAudience}},
				Now: v.now}).Verify
		}), mcpRequest(valid))},
		{"no verifier", run(withOpts(func(o *Options) { o.Verify = nil }), mcpRequest(valid))},
		{"no metadata URL, no scopes", run(Options{Verify: v.Verify}, mcpRequest(""))},
		{"insufficient scope", insufficient(testOptions(v.Verify, nil), ScopeTools)},
		{"insufficient scope, all required", insufficient(testOptions(v.Verify, nil), "files:read", "files:write", "offline_access")},
		{"insufficient scope, none named", insufficient(testOptions(v.Verify, nil))},
		{"hostile values quoted", insufficient(Options{ResourceMetadataURL: "https://x.example/\"a\\b\r\nSet-Cookie: x=1\u00e9"}, `a"b`, "c\\d", "files:write")},
	}
	var b strings.Builder
	b.WriteString(challengesHeader)
	for _, c := range cases {
		fmt.Fprintf(&b, "\n-- %s --\n%d\nWWW-Authenticate: %s\n%s", c.name, c.got.status, c.got.header, c.got.body)
		if c.got.body == "" {
			b.WriteString("\n")
		}
	}
	golden(t, "challenges.golden", b.String())
}

func formRequest(headerToken, form string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(form))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if headerToken != "" {
		r.Header.Set("Authorization", "Bearer "+headerToken)
	}
	return r
}

// TestRequireTokenInURLNotLogged (AT-23): a token in the query string is
// refused, even with a good header token, and neither it nor the query
// string reaches the log.
func TestRequireTokenInURLNotLogged(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	leaked := rs.sign(t, claims(map[string]any{"jti": "leaked"}))
	tests := []struct {
		name string
		req  *http.Request
	}{
		{"query", func() *http.Request {
			r := mcpRequest(rs.sign(t, claims(nil)))
			r.URL.RawQuery = "x=1&access_token=" + url.QueryEscape(leaked)
			return r
		}()},
		{"query, escaped name", func() *http.Request {
			r := mcpRequest("")
			r.URL.RawQuery = "access%5Ftoken=" + leaked
			return r
		}()},
		{"query, no header token", func() *http.Request {
			r := mcpRequest("")
			r.URL.RawQuery = "access_token=" + leaked
			return r
		}()},
		{"form body", formRequest(rs.sign(t, claims(nil)), "access_token="+leaked)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			w, p := serve(testOptions(v.Verify, &log), tc.req)
			if w.Code != http.StatusUnauthorized || p != nil {
				t.Fatalf("status %d, principal %+v; want 401 and no principal", w.Code, p)
			}
			if h := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer error="invalid_request"`) {
				t.Errorf("WWW-Authenticate = %q, want invalid_request", h)
			}
			out := log.String()
			if out == "" {
				t.Fatal("refusal not logged")
			}
			for _, secret := range []string{leaked, leaked[:40], "access_token=", "access%5Ftoken", "x=1"} {
				if strings.Contains(out, secret) {
					t.Errorf("log contains %.50q:\n%s", secret, out)
				}
			}
		})
	}
}

// TestRequireLogsNoToken: refusals of bad tokens log a reason, never the
// token.
func TestRequireLogsNoToken(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	for _, tc := range at17Cases(t) {
		if tc.ok {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			w, _ := serve(testOptions(v.Verify, &log), mcpRequest(tc.token))
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			_, _, sig := splitToken(tc.token)
			for _, part := range []string{tc.token, tc.token[:30], sig} {
				if len(part) > 8 && strings.Contains(log.String(), part) {
					t.Errorf("log contains the token:\n%s", log.String())
				}
			}
			if !strings.Contains(log.String(), "invalid token") {
				t.Errorf("log lacks the reason:\n%s", log.String())
			}
		})
	}
}

// TestRequireAudienceConfusion (AT-17): each refused token gets 401 with
// an invalid_token challenge; the (d) token is admitted.
func TestRequireAudienceConfusion(t *testing.T) {
	v := newTestVerifier(t, key(t, jose.RS256, "rsa-1"))
	for _, tc := range at17Cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			w, p := serve(testOptions(v.Verify, nil), mcpRequest(tc.token))
			if tc.ok {
				if w.Code != http.StatusNoContent || p == nil {
					t.Fatalf("status %d, principal %v; want admitted", w.Code, p)
				}
				return
			}
			h := w.Header().Get("WWW-Authenticate")
			if w.Code != http.StatusUnauthorized || !strings.HasPrefix(h, `Bearer error="invalid_token", resource_metadata=`) || p != nil {
				t.Fatalf("status %d, WWW-Authenticate %q, principal %v; want 401 invalid_token", w.Code, h, p)
			}
		})
	}
}

// TestRequireAgentFromTokenOnly (AT-40): what a client says about itself
// never changes the agent.
func TestRequireAgentFromTokenOnly(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	r := mcpRequest(rs.sign(t, claims(map[string]any{"client_id": "agent-b", "client_name": "Claude Desktop (trusted)"})))
	r.Header.Set("X-Agent-Id", "agent-a")
	r.Header.Set("User-Agent", "agent-a/1.0")
	r.Header.Set("Mcp-Client-Id", "agent-a")
	r.Body = io.NopCloser(strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"agent-a"}}}`))
	w, p := serve(testOptions(v.Verify, nil), r)
	if w.Code != http.StatusNoContent || p == nil {
		t.Fatalf("status %d", w.Code)
	}
	if p.Agent != "agent-b" || len(p.Chain) != 0 {
		t.Fatalf("Agent = %q, Chain = %v; want agent-b from client_id", p.Agent, p.Chain)
	}
}

// TestRequireSessionIDGrantsNothing (AT-30): a session id is not a
// credential; each request is verified on its own.
func TestRequireSessionIDGrantsNothing(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	opts := testOptions(v.Verify, nil)
	r := mcpRequest(rs.sign(t, claims(nil)))
	r.Header.Set("Mcp-Session-Id", "alice-session")
	if w, p := serve(opts, r); w.Code != http.StatusNoContent || p.User != "alice" {
		t.Fatalf("alice: status %d", w.Code)
	}
	r = mcpRequest("")
	r.Header.Set("Mcp-Session-Id", "alice-session")
	if w, p := serve(opts, r); w.Code != http.StatusUnauthorized || p != nil {
		t.Fatalf("session id alone: status %d, principal %v; want 401", w.Code, p)
	}
	r = mcpRequest(rs.sign(t, claims(map[string]any{"sub": "bob"})))
	r.Header.Set("Mcp-Session-Id", "alice-session")
	w, p := serve(opts, r)
	if w.Code != http.StatusNoContent || p.User != "bob" {
		t.Fatalf("bob with alice's session id: status %d, principal %+v; want bob", w.Code, p)
	}
}

func TestRequireAdmits(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	token := rs.sign(t, claims(nil))
	for _, header := range []string{"Bearer " + token, "bearer " + token, "BEARER " + token, "Bearer   " + token, " Bearer " + token + " "} {
		t.Run(header[:9], func(t *testing.T) {
			r := mcpRequest("")
			r.Header.Set("Authorization", header)
			w, p := serve(testOptions(v.Verify, nil), r)
			if w.Code != http.StatusNoContent || p == nil || p.Agent != "agent-a" || p.User != "alice" {
				t.Fatalf("status %d, principal %+v", w.Code, p)
			}
		})
	}
}

// TestRequireFormBodyKept: a form body without access_token reaches the
// next handler whole.
func TestRequireFormBodyKept(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	v := newTestVerifier(t, rs)
	var body []byte
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { body, _ = io.ReadAll(r.Body) })
	form := "a=1&b=" + strings.Repeat("x", 100)
	Require(testOptions(v.Verify, nil))(next).ServeHTTP(httptest.NewRecorder(), formRequest(rs.sign(t, claims(nil)), form))
	if string(body) != form {
		t.Fatalf("next handler read %q, want %q", body, form)
	}
}

// TestRequireFailsClosed: a verifier that returns neither a principal nor
// an error, or no verifier at all, admits nobody.
func TestRequireFailsClosed(t *testing.T) {
	tests := []struct {
		name   string
		verify VerifyFunc
	}{
		{"nil verifier", nil},
		{"nil principal", func(context.Context, string) (*identity.Principal, error) { return nil, nil }},
		{"plain error", func(context.Context, string) (*identity.Principal, error) { return nil, errors.New("boom") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, p := serve(testOptions(tc.verify, nil), mcpRequest("x.y.z"))
			if w.Code != http.StatusServiceUnavailable || p != nil {
				t.Fatalf("status %d, principal %v; want 503", w.Code, p)
			}
		})
	}
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}
