package web_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-mcp/mandate/internal/authn"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/web"
)

const (
	localIssuer    = "https://mandate.example"
	externalIssuer = "https://idp.example"
	audience       = "https://mandate.example/mcp"
	metadataURL    = "https://mandate.example/.well-known/oauth-protected-resource/mcp"

	// secretHash is a confidential agent's stored secret hash and
	// passwordHash a local user's; no response may show either.
	secretHash   = "$argon2id$v=19$m=1024,t=1,p=1$U0VDUkVULVNBTFQ$U0VDUkVULUtFWS1tdXN0LW5vdC1iZS1zaG93bg"
	passwordHash = "$argon2id$v=19$m=19456,t=2,p=1$UEFTU1dPUkQtU0FMVA$UEFTU1dPUkQtS0VZLW11c3Qtbm90LWJlLXNob3du"

	cimdAgent = "https://agent.example.com/client.json"
)

// signingKeys are the test issuers' keys, made once: every test signs
// with them through a real authn.JWTVerifier.
var signingKeys = sync.OnceValue(func() map[string]*ecdsa.PrivateKey {
	keys := map[string]*ecdsa.PrivateKey{}
	for _, iss := range []string{localIssuer, externalIssuer} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		keys[iss] = k
	}
	return keys
})

// token is an access token of issuer iss for sub, held by agent, with
// scope; sub == agent makes it a client_credentials token (an agent
// acting for nobody).
func token(t *testing.T, iss, sub, agent, scope string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signingKeys()[iss]},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", iss))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": iss, "aud": audience, "sub": sub, "client_id": agent, "scope": scope,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": sub + "/" + agent + "/" + scope,
	})
	if err != nil {
		t.Fatal(err)
	}
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

// syncBuffer collects log output written from the handler's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	st  store.Store
	h   http.Handler
	log *syncBuffer
}

// newEnv builds the admin API the way the gateway mounts it: behind
// authn.Require with a real JWT verifier trusting a local and an external
// issuer, and an agent gate that refuses suspended agents. The store holds:
//
//	root   local admin                 (id u-root)
//	bob    local user, not an admin    (id u-bob)
//	eve    local admin, disabled       (id u-eve)
//	ext    federated admin of externalIssuer, subject ext-sub
//	agents ci-bot (confidential), the CIMD URL, console, dcr-1, robot
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the admin API's options changed by edit.
func newEnvWith(t *testing.T, edit func(*web.AdminOptions)) *env {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	for _, u := range []store.User{
		{ID: "u-root", Username: "root", Groups: []string{"ops", "admin"}, PasswordHash: passwordHash, CreatedAt: t0},
		{ID: "u-bob", Username: "bob", Email: "bob@example.com", Groups: []string{"ops"}, PasswordHash: passwordHash, CreatedAt: t0},
		{ID: "u-eve", Username: "eve", Groups: []string{"admin"}, PasswordHash: passwordHash, Disabled: true, CreatedAt: t0},
		{ID: "u-ext", Username: "ext", Groups: []string{"admin"}, Issuer: externalIssuer, Subject: "ext-sub", CreatedAt: t0},
	} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []store.Agent{
		{ID: "ci-bot", Name: "CI bot", Registration: store.RegistrationConfig, TrustLevel: "trusted", Status: store.AgentActive,
			GrantTypes: []string{"client_credentials"}, AuthMethod: "client_secret_basic", SecretHash: secretHash, CreatedAt: t0},
		{ID: cimdAgent, Name: "Example agent", Registration: store.RegistrationCIMD, TrustLevel: "standard",
			Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0},
		{ID: "console", Name: "Admin console", Registration: store.RegistrationConfig, TrustLevel: "trusted",
			Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0},
		{ID: "dcr-1", Registration: store.RegistrationDCR, TrustLevel: "untrusted", Status: store.AgentActive,
			AuthMethod: "client_secret_basic", SecretHash: secretHash, CreatedAt: t0},
		{ID: "robot", Registration: store.RegistrationConfig, TrustLevel: "standard", Status: store.AgentActive,
			GrantTypes: []string{"client_credentials"}, AuthMethod: "private_key_jwt", CreatedAt: t0},
	} {
		if err := st.PutAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}

	var specs []authn.IssuerSpec
	for iss, k := range signingKeys() {
		keys := &authn.StaticKeys{Set: jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: k.Public(), KeyID: iss, Algorithm: string(jose.ES256), Use: "sig"},
		}}}
		specs = append(specs, authn.IssuerSpec{Issuer: iss, Keys: keys, Audience: audience})
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	opts := authn.Options{
		Verify:              authn.NewJWTVerifier(authn.JWTOptions{Issuers: specs, CacheSize: -1}).Verify,
		ResourceMetadataURL: metadataURL,
		Scopes:              []string{web.ScopeAdmin},
		AgentGate: func(ctx context.Context, p *identity.Principal) error {
			a, err := st.GetAgent(ctx, p.Agent)
			if err != nil {
				return err
			}
			if a.Status != store.AgentActive {
				return authn.ErrAgentSuspended
			}
			return nil
		},
		Log: log,
	}
	o := web.AdminOptions{
		Store: st, LocalIssuer: localIssuer, Log: log,
		Mandates: consent.New(st, nil, nil), Approvals: consent.NewApprovals(st, nil),
		InsufficientScope: func(w http.ResponseWriter, required []string) {
			authn.WriteInsufficientScope(w, opts, required)
		},
	}
	if edit != nil {
		edit(&o)
	}
	return &env{st: st, h: authn.Require(opts)(web.NewAdminAPI(o)), log: logs}
}

// request describes one call of the API.
type request struct {
	method, path string // path relative to /admin/api/
	token        string
	contentType  string
	body         string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t *testing.T, req request) response {
	t.Helper()
	r := httptest.NewRequest(req.method, web.AdminAPIPath+req.path, strings.NewReader(req.body))
	if req.body == "" {
		r.Body = http.NoBody
		r.ContentLength = 0
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.contentType != "" {
		r.Header.Set("Content-Type", req.contentType)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return response{status: w.Code, header: w.Result().Header, body: body}
}

// decode returns the response body as a JSON object.
func (r response) decode(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// noSecrets fails if a response shows a stored hash or any part of it.
func noSecrets(t *testing.T, r response) {
	t.Helper()
	for _, s := range []string{secretHash, passwordHash, "argon2", "U0VDUkVU", "UEFTU1dPUkQ"} {
		if bytes.Contains(r.body, []byte(s)) {
			t.Fatalf("response shows %q:\n%s", s, r.body)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	tok := func(iss, sub, agent, scope string) func(*testing.T) string {
		return func(t *testing.T) string { return token(t, iss, sub, agent, scope) }
	}
	var (
		admin        = tok(localIssuer, "u-root", "console", web.ScopeAdmin)
		adminAndMCP  = tok(localIssuer, "u-root", "console", "mcp:tools "+web.ScopeAdmin)
		adminNoScope = tok(localIssuer, "u-root", "console", "mcp:tools mcp:prompts mcp:resources")
		nonAdmin     = tok(localIssuer, "u-bob", "console", web.ScopeAdmin)
		disabled     = tok(localIssuer, "u-eve", "console", web.ScopeAdmin)
		unknownUser  = tok(localIssuer, "u-nobody", "console", web.ScopeAdmin)
		autonomous   = tok(localIssuer, "robot", "robot", web.ScopeAdmin)
		federated    = tok(externalIssuer, "ext-sub", "console", web.ScopeAdmin)
		// An external issuer's subject that happens to equal a local
		// user's id is not that user.
		confused = tok(externalIssuer, "u-root", "console", web.ScopeAdmin)
	)
	escapedCIMD := url.PathEscape(cimdAgent)

	tests := []struct {
		name       string
		req        request
		token      func(*testing.T) string
		wantStatus int
		// check, if set, inspects the response and the store after it.
		check func(t *testing.T, e *env, r response)
		// wantError is the exact "error" of a refusal's body.
		wantError string
	}{
		{
			name: "list agents", req: request{method: "GET", path: "agents"}, token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				var body struct{ Agents []web.AgentView }
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, a := range body.Agents {
					ids = append(ids, a.ID)
				}
				if want := []string{"ci-bot", "console", "dcr-1", cimdAgent, "robot"}; !slices.Equal(ids, want) {
					t.Errorf("agent ids %q, want %q", ids, want)
				}
				if s := body.Agents[0].SecretHash; s == nil || *s != web.Redacted {
					t.Errorf("ci-bot secret_hash %v, want %q", s, web.Redacted)
				}
			},
		},
		{
			name: "show agent", req: request{method: "GET", path: "agents/ci-bot"}, token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				m := r.decode(t)
				if m["id"] != "ci-bot" || m["status"] != "active" || m["secret_hash"] != web.Redacted || m["name"] != "CI bot" {
					t.Errorf("agent %v", m)
				}
			},
		},
		{
			name: "show agent whose id is a URL, path-escaped", req: request{method: "GET", path: "agents/" + escapedCIMD},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				if m := r.decode(t); m["id"] != cimdAgent || m["secret_hash"] != nil {
					t.Errorf("agent %v", m)
				}
			},
		},
		{
			name: "show agent has the representation of agents show", req: request{method: "GET", path: "agents/dcr-1"},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				a, _ := e.st.GetAgent(context.Background(), "dcr-1")
				want, _ := json.Marshal(web.ViewAgent(a))
				if got := bytes.TrimSpace(r.body); !bytes.Equal(got, want) {
					t.Errorf("body\n%s\nwant\n%s", got, want)
				}
			},
		},
		{
			name: "suspend agent with an empty body", req: request{method: "POST", path: "agents/ci-bot/suspend"},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				wantAgentStatus(t, e, r, "ci-bot", store.AgentSuspended)
				wantLogged(t, e, `"action":"agent.suspend"`, `"target":"ci-bot"`, `"from":"active"`, `"to":"suspended"`,
					`"username":"root"`, `"user_id":"u-root"`, `"agent":"console"`)
			},
		},
		{
			name:  "suspend agent whose id is a URL",
			req:   request{method: "POST", path: "agents/" + escapedCIMD + "/suspend", contentType: "application/json", body: "{}"},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) { wantAgentStatus(t, e, r, cimdAgent, store.AgentSuspended) },
		},
		{
			name:  "resume agent with a JSON body",
			req:   request{method: "POST", path: "agents/ci-bot/resume", contentType: "application/json; charset=utf-8", body: "{}"},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				wantAgentStatus(t, e, r, "ci-bot", store.AgentActive)
				wantLogged(t, e, `"action":"agent.resume"`, `"from":"active"`, `"to":"active"`)
			},
		},
		{
			name: "list users", req: request{method: "GET", path: "users"}, token: adminAndMCP, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				var body struct{ Users []web.UserView }
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, u := range body.Users {
					names = append(names, u.Username)
				}
				if want := []string{"bob", "eve", "ext", "root"}; !slices.Equal(names, want) {
					t.Errorf("usernames %q, want %q", names, want)
				}
				if p := body.Users[0].PasswordHash; p == nil || *p != web.Redacted {
					t.Errorf("bob's password_hash %v, want %q", p, web.Redacted)
				}
				if p := body.Users[2].PasswordHash; p != nil {
					t.Errorf("federated user's password_hash %q, want null", *p)
				}
			},
		},
		{
			name: "disable user", req: request{method: "POST", path: "users/bob/disable"}, token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				wantUserDisabled(t, e, r, "bob", true)
				wantLogged(t, e, `"action":"user.disable"`, `"target":"bob"`, `"from":"enabled"`, `"to":"disabled"`, `"username":"root"`)
			},
		},
		{
			name: "enable user", req: request{method: "POST", path: "users/eve/enable", contentType: "application/json"},
			token: admin, wantStatus: 200,
			check: func(t *testing.T, e *env, r response) {
				wantUserDisabled(t, e, r, "eve", false)
				wantLogged(t, e, `"action":"user.enable"`, `"target":"eve"`, `"from":"disabled"`, `"to":"enabled"`)
			},
		},
		{
			name: "federated admin of an external issuer", req: request{method: "GET", path: "users"}, token: federated,
			wantStatus: 200,
		},

		{name: "no token", req: request{method: "GET", path: "agents"}, wantStatus: 401,
			check: func(t *testing.T, e *env, r response) {
				if c := r.header.Get("WWW-Authenticate"); !strings.Contains(c, `scope="`+web.ScopeAdmin+`"`) {
					t.Errorf("challenge %q does not ask for %s", c, web.ScopeAdmin)
				}
			}},
		{name: "non-admin user", req: request{method: "GET", path: "agents"}, token: nonAdmin, wantStatus: 403,
			wantError: "not an administrator"},
		{name: "non-admin user cannot suspend", req: request{method: "POST", path: "agents/ci-bot/suspend"}, token: nonAdmin,
			wantStatus: 403, wantError: "not an administrator",
			check: func(t *testing.T, e *env, r response) { wantStoredStatus(t, e, "ci-bot", store.AgentActive) }},
		{name: "user not in the store", req: request{method: "GET", path: "agents"}, token: unknownUser, wantStatus: 403,
			wantError: "not an administrator"},
		{name: "external subject equal to a local user id", req: request{method: "GET", path: "agents"}, token: confused,
			wantStatus: 403, wantError: "not an administrator"},
		{name: "disabled admin", req: request{method: "POST", path: "users/eve/enable"}, token: disabled, wantStatus: 403,
			wantError: "account disabled",
			check: func(t *testing.T, e *env, r response) {
				if u, _ := e.st.GetUserByUsername(context.Background(), "eve"); !u.Disabled {
					t.Error("a disabled admin enabled herself")
				}
			}},
		{name: "admin without the admin scope", req: request{method: "GET", path: "agents"}, token: adminNoScope,
			wantStatus: 403, wantError: "insufficient_scope",
			check: func(t *testing.T, e *env, r response) {
				want := `Bearer error="insufficient_scope", scope="mandate:admin", resource_metadata="` + metadataURL + `"`
				if c := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(c, want) {
					t.Errorf("challenge %q, want it to start %q", c, want)
				}
			}},
		{name: "client_credentials principal", req: request{method: "GET", path: "agents"}, token: autonomous,
			wantStatus: 403, wantError: "the admin API is for people, not for agents acting on their own"},
		{name: "client_credentials principal cannot suspend", req: request{method: "POST", path: "agents/ci-bot/suspend"},
			token: autonomous, wantStatus: 403,
			check: func(t *testing.T, e *env, r response) { wantStoredStatus(t, e, "ci-bot", store.AgentActive) }},

		{name: "unknown agent", req: request{method: "GET", path: "agents/nobody"}, token: admin, wantStatus: 404,
			wantError: "no such agent"},
		{name: "suspend unknown agent", req: request{method: "POST", path: "agents/nobody/suspend"}, token: admin,
			wantStatus: 404, wantError: "no such agent"},
		{name: "disable unknown user", req: request{method: "POST", path: "users/nobody/disable"}, token: admin,
			wantStatus: 404, wantError: "no such user"},
		{name: "unknown endpoint", req: request{method: "GET", path: "secrets"}, token: admin, wantStatus: 404,
			wantError: "no such endpoint"},
		{name: "unknown endpoint is not revealed to a non-admin", req: request{method: "GET", path: "secrets"},
			token: nonAdmin, wantStatus: 403, wantError: "not an administrator"},
		{name: "unescaped URL id is not an agent", req: request{method: "GET", path: "agents/" + cimdAgent}, token: admin,
			check: func(t *testing.T, e *env, r response) {
				if r.status == 200 {
					t.Errorf("an unescaped URL id found an agent: %s", r.body)
				}
			}},

		{name: "GET on a POST route", req: request{method: "GET", path: "agents/ci-bot/suspend"}, token: admin,
			wantStatus: 405, wantError: "method not allowed",
			check: func(t *testing.T, e *env, r response) {
				if got := r.header.Get("Allow"); got != "POST" {
					t.Errorf("Allow %q, want POST", got)
				}
				wantStoredStatus(t, e, "ci-bot", store.AgentActive)
			}},
		{name: "POST on a GET route", req: request{method: "POST", path: "agents"}, token: admin, wantStatus: 405,
			check: func(t *testing.T, e *env, r response) {
				if got := r.header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q, want GET, HEAD", got)
				}
			}},
		{name: "DELETE on a user route", req: request{method: "DELETE", path: "users/bob/disable"}, token: admin,
			wantStatus: 405},

		{name: "form content type refused",
			req:   request{method: "POST", path: "agents/ci-bot/suspend", contentType: "application/x-www-form-urlencoded", body: "x=1"},
			token: admin, wantStatus: 415, wantError: "Content-Type must be application/json",
			check: func(t *testing.T, e *env, r response) { wantStoredStatus(t, e, "ci-bot", store.AgentActive) }},
		{name: "empty form refused",
			req:   request{method: "POST", path: "users/bob/disable", contentType: "application/x-www-form-urlencoded"},
			token: admin, wantStatus: 415,
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
		{name: "multipart form refused",
			req:   request{method: "POST", path: "users/bob/disable", contentType: "multipart/form-data; boundary=x", body: "--x--"},
			token: admin, wantStatus: 415,
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
		{name: "text/plain refused",
			req:   request{method: "POST", path: "users/bob/disable", contentType: "text/plain", body: `{}`},
			token: admin, wantStatus: 415,
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
		{name: "body without a content type refused",
			req:   request{method: "POST", path: "users/bob/disable", body: `{}`},
			token: admin, wantStatus: 415,
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
		{name: "JSON content type with a body that is not JSON",
			req:   request{method: "POST", path: "users/bob/disable", contentType: "application/json", body: `x=1`},
			token: admin, wantStatus: 400, wantError: "body is not JSON",
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
		{name: "body too large",
			req: request{method: "POST", path: "users/bob/disable", contentType: "application/json",
				body: `"` + strings.Repeat("x", 70000) + `"`},
			token: admin, wantStatus: 413,
			check: func(t *testing.T, e *env, r response) { wantUserStillEnabled(t, e, "bob") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			req := tt.req
			if tt.token != nil {
				req.token = tt.token(t)
			}
			r := e.do(t, req)
			if tt.wantStatus != 0 && r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if tt.wantError != "" {
				if got := r.decode(t)["error"]; got != tt.wantError {
					t.Errorf("error %q, want %q", got, tt.wantError)
				}
			}
			noSecrets(t, r)
			if strings.Contains(e.log.String(), "argon2") {
				t.Errorf("the log shows a hash:\n%s", e.log.String())
			}
			if tt.check != nil {
				tt.check(t, e, r)
			}
		})
	}
}

func wantAgentStatus(t *testing.T, e *env, r response, id, status string) {
	t.Helper()
	if m := r.decode(t); m["id"] != id || m["status"] != status {
		t.Errorf("answered %v, want agent %s %s", m, id, status)
	}
	wantStoredStatus(t, e, id, status)
}

func wantStoredStatus(t *testing.T, e *env, id, status string) {
	t.Helper()
	if a, err := e.st.GetAgent(context.Background(), id); err != nil || a.Status != status {
		t.Errorf("stored agent %s: status %q (%v), want %q", id, a.Status, err, status)
	}
}

func wantUserDisabled(t *testing.T, e *env, r response, username string, disabled bool) {
	t.Helper()
	if m := r.decode(t); m["username"] != username || m["disabled"] != disabled || m["password_hash"] != web.Redacted {
		t.Errorf("answered %v, want user %s disabled=%v", m, username, disabled)
	}
	if u, err := e.st.GetUserByUsername(context.Background(), username); err != nil || u.Disabled != disabled {
		t.Errorf("stored user %s: disabled %v (%v), want %v", username, u.Disabled, err, disabled)
	}
}

func wantUserStillEnabled(t *testing.T, e *env, username string) {
	t.Helper()
	if u, err := e.st.GetUserByUsername(context.Background(), username); err != nil || u.Disabled {
		t.Errorf("user %s disabled (%v) by a refused request", username, err)
	}
}

func wantLogged(t *testing.T, e *env, fragments ...string) {
	t.Helper()
	for line := range strings.Lines(e.log.String()) {
		if !strings.Contains(line, `"msg":"admin change"`) {
			continue
		}
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(line, f)
		}
		if ok {
			return
		}
	}
	t.Errorf("no admin change logged with %q:\n%s", fragments, e.log.String())
}

// TestAdminAPIReadsTheUserEveryRequest checks that an administrator who is
// disabled, or leaves the admin group, loses the API at the next request,
// whatever token they still hold.
func TestAdminAPIReadsTheUserEveryRequest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tok := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	get := request{method: "GET", path: "agents", token: tok}
	if r := e.do(t, get); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	u, _ := e.st.GetUser(ctx, "u-root")
	u.Groups = []string{"ops"}
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, get); r.status != 403 {
		t.Fatalf("after leaving the group: %d %s", r.status, r.body)
	}
	u.Groups, u.Disabled = []string{"admin"}, true
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, get); r.status != 403 {
		t.Fatalf("after being disabled: %d %s", r.status, r.body)
	}
}

// TestAdminAPISuspendedAgentDenied checks that suspending an agent through
// the API makes that agent's next request fail, here at the same
// authentication gate (the gateway-wide check is in internal/cli).
func TestAdminAPISuspendedAgentDenied(t *testing.T) {
	e := newEnv(t)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	viaDCR := token(t, localIssuer, "u-root", "dcr-1", web.ScopeAdmin)
	if r := e.do(t, request{method: "GET", path: "agents", token: viaDCR}); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	if r := e.do(t, request{method: "POST", path: "agents/dcr-1/suspend", token: admin}); r.status != 200 {
		t.Fatalf("suspend: %d %s", r.status, r.body)
	}
	r := e.do(t, request{method: "GET", path: "agents", token: viaDCR})
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), "agent suspended") {
		t.Fatalf("after: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
}

// failingStore is a store whose user lookups fail, as a lost database
// connection would.
type failingStore struct{ store.Store }

func (failingStore) GetUser(context.Context, string) (store.User, error) {
	return store.User{}, errors.New("connection refused")
}

func (failingStore) GetUserBySubject(context.Context, string, string) (store.User, error) {
	return store.User{}, errors.New("connection refused")
}

// TestAdminAPIFailsClosed checks each way the API could fail to prove an
// administrator — no authentication in front of it, no store, a store that
// cannot be read — and that each refuses, without the internal reason.
func TestAdminAPIFailsClosed(t *testing.T) {
	admin := &identity.Principal{Issuer: localIssuer, User: "u-root", Agent: "console",
		Method: identity.MethodAuthorizationCode, Scopes: []string{web.ScopeAdmin}}
	tests := []struct {
		name       string
		opts       web.AdminOptions
		principal  *identity.Principal
		wantStatus int
	}{
		{"no authentication in front", web.AdminOptions{Store: newEnv(t).st, LocalIssuer: localIssuer}, nil, 401},
		{"no store", web.AdminOptions{LocalIssuer: localIssuer}, admin, 503},
		{"store failing", web.AdminOptions{Store: failingStore{newEnv(t).st}, LocalIssuer: localIssuer}, admin, 503},
		{"auth none principal", web.AdminOptions{Store: newEnv(t).st, LocalIssuer: localIssuer}, identity.Local(), 403},
		{"no local issuer: local token not trusted as a user id",
			web.AdminOptions{Store: newEnv(t).st}, admin, 403},
		{"agent acting for nobody, however its method is labelled", web.AdminOptions{Store: newEnv(t).st, LocalIssuer: localIssuer},
			&identity.Principal{Issuer: localIssuer, Agent: "robot", Method: identity.MethodAuthorizationCode,
				Scopes: []string{web.ScopeAdmin}}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := web.NewAdminAPI(tt.opts)
			for _, method := range []string{"GET", "POST"} {
				path := web.AdminAPIPath + "agents"
				if method == "POST" {
					path += "/ci-bot/suspend"
				}
				r := httptest.NewRequest(method, path, nil)
				if tt.principal != nil {
					r = r.WithContext(identity.WithPrincipal(r.Context(), tt.principal))
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != tt.wantStatus {
					t.Errorf("%s: status %d, want %d; body %s", method, w.Code, tt.wantStatus, w.Body)
				}
				if strings.Contains(w.Body.String(), "connection refused") {
					t.Errorf("%s: the body shows the internal error: %s", method, w.Body)
				}
			}
		})
	}
}

// TestAdminAPIInsufficientScopeDefault checks the challenge written when
// no InsufficientScope is configured.
func TestAdminAPIInsufficientScopeDefault(t *testing.T) {
	h := web.NewAdminAPI(web.AdminOptions{Store: newEnv(t).st, LocalIssuer: localIssuer})
	r := httptest.NewRequest("GET", web.AdminAPIPath+"agents", nil)
	r = r.WithContext(identity.WithPrincipal(r.Context(), &identity.Principal{Issuer: localIssuer, User: "u-root",
		Agent: "console", Method: identity.MethodAuthorizationCode, Scopes: []string{"mcp:tools"}}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 403 || w.Header().Get("WWW-Authenticate") != `Bearer error="insufficient_scope", scope="mandate:admin"` {
		t.Errorf("%d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
}
