package web_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/authserver"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/users"
	"github.com/mandate-mcp/mandate/internal/web"
)

const (
	pagesPassword = "correct horse battery staple"
	pagesAgent    = "agent-public"
	pagesRedirect = "http://127.0.0.1:9999/callback"
)

var pagesHash = sync.OnceValue(func() string {
	h, err := users.HashPassword(pagesPassword)
	if err != nil {
		panic(err)
	}
	return h
})

// catalogTools is the catalog the consent page offers: one tool of each
// risk, and one whose name is a glob pattern.
var catalogTools = []web.Tool{
	{Upstream: "fs", Name: "read", PublicName: "fs__read", Title: "Read a file", ReadOnly: true},
	{Upstream: "fs", Name: "wipe", PublicName: "fs__wipe", Description: "Deletes <everything>.", Destructive: true},
	{Upstream: "mail", Name: "send*", PublicName: "mail__send_1a2b3c4d"},
}

// pagesEnv is the embedded authorization server and the pages mounted
// together as the gateway mounts them, on one loopback listener.
type pagesEnv struct {
	t         *testing.T
	url       string
	st        *memory.Store
	mandates  *consent.Service
	approvals *consent.Approvals
	clock     *clock // the approvals' clock
}

// clock is a settable time source.
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
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newPagesEnv(t *testing.T) *pagesEnv {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	t0 := time.Now()
	for _, u := range []store.User{
		{ID: "usr_alice", Username: "alice", PasswordHash: pagesHash(), CreatedAt: t0},
		{ID: "usr_bob", Username: "bob", PasswordHash: pagesHash(), CreatedAt: t0},
	} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []store.Agent{
		{ID: pagesAgent, Name: "Public Agent", Registration: store.RegistrationConfig, TrustLevel: "standard",
			Status: store.AgentActive, RedirectURIs: []string{pagesRedirect}, AuthMethod: "none",
			GrantTypes: []string{"authorization_code"}, CreatedAt: t0},
		{ID: "dcr-7", Name: "Self-named", Registration: store.RegistrationDCR, TrustLevel: "untrusted",
			Status: store.AgentActive, AuthMethod: "none", CreatedAt: t0},
	} {
		if err := st.PutAgent(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	sealer, err := authserver.NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	as, err := authserver.New(ctx, authserver.Options{Issuer: issuer, Store: st, Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	mandates := consent.New(st, nil, nil)
	clk := &clock{now: time.Now()}
	approvals := consent.NewApprovals(st, &consent.ApprovalOptions{Now: clk.Now})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	pages, err := web.NewPages(web.PagesOptions{
		Store: st, Mandates: mandates, Approvals: approvals, SessionUser: as.SessionUser, CSRFKey: key, OAuthConsent: as.Handler(),
		Tools: func(context.Context) []web.Tool { return catalogTools },
	})
	if err != nil {
		t.Fatal(err)
	}
	// As the composition root mounts them: the pages take over /consent
	// and hand the authorization server what is not theirs.
	mount := map[string]http.Handler{}
	for _, p := range as.Paths() {
		mount[p] = as.Handler()
	}
	for _, p := range []string{web.ConsentPath, web.AgentsPath, web.RevokePath, web.ApprovalsPath, web.DecideApprovalPath} {
		mount[p] = pages
	}
	mux := http.NewServeMux()
	for p, h := range mount {
		mux.Handle(p, h)
	}
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		as.Close()
	})
	return &pagesEnv{t: t, url: issuer, st: st, mandates: mandates, approvals: approvals, clock: clk}
}

// browser is a cookie-jar client that does not follow redirects.
type browser struct {
	e *pagesEnv
	c *http.Client
}

func (e *pagesEnv) browser() *browser {
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

func (b *browser) do(method, path string, form url.Values, header http.Header) page {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.url+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil, nil) }
func (b *browser) post(path string, form url.Values) page {
	return b.do(http.MethodPost, path, form, nil)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, p page) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf field in page (status %d): %s", p.status, p.body)
	}
	return m[1]
}

// login signs username in the way a person does: through an agent's
// authorization request, up to the authorization server's own consent
// page. It leaves the browser with the server's session cookie.
func (b *browser) login(username string) {
	t := b.e.t
	t.Helper()
	q := url.Values{
		"response_type": {"code"}, "client_id": {pagesAgent}, "redirect_uri": {pagesRedirect},
		"state": {"s"}, "scope": {"mcp:tools"}, "resource": {b.e.url + "/mcp"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}
	r := b.get("/authorize?" + q.Encode())
	loc, err := url.Parse(r.header.Get("Location"))
	if err != nil || r.status != http.StatusFound && r.status != http.StatusSeeOther {
		t.Fatalf("authorize: %d %s", r.status, r.body)
	}
	lp := b.get(loc.String())
	after := b.post("/login", url.Values{
		"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, lp)}, "username": {username}, "password": {pagesPassword},
	})
	if after.status != http.StatusSeeOther || !strings.HasPrefix(after.header.Get("Location"), "/consent?id=") {
		t.Fatalf("login: %d %s %s", after.status, after.header.Get("Location"), after.body)
	}
}

func wantPageHeaders(t *testing.T, p page) {
	t.Helper()
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'; default-src 'self'",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func consentURL(agent string, tools ...string) string {
	return web.ConsentPath + "?" + url.Values{"agent": {agent}, "tool": tools}.Encode()
}

func TestConsentPageShowsAgentAndTools(t *testing.T) {
	e := newPagesEnv(t)
	b := e.browser()
	b.login("alice")
	p := b.get(consentURL(pagesAgent, "fs__read"))
	if p.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", p.status, p.body)
	}
	wantPageHeaders(t, p)
	for _, want := range []string{
		"Signed in as <strong>alice</strong>",
		"<strong>Public Agent</strong>", `<code id="agent-id">agent-public</code>`,
		"Pre-registered by your Mandate administrator.", `<dd id="trust-level">standard</dd>`,
		`value="fs__read" checked>`, `value="fs__wipe">`, `value="mail__send_1a2b3c4d">`,
		`class="badge read-only"`, `class="badge destructive"`, `class="badge may-modify"`,
		"Deletes &lt;everything&gt;.", `action="/consent?agent=agent-public"`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "name not verified") {
		t.Error("a pre-registered agent's name is marked unverified")
	}

	dcr := b.get(consentURL("dcr-7"))
	for _, want := range []string{"Self-named", "name not verified", "dynamic registration", "untrusted"} {
		if !strings.Contains(dcr.body, want) {
			t.Errorf("DCR agent's consent page lacks %q", want)
		}
	}
	if p := b.get(consentURL("nobody")); p.status != http.StatusNotFound {
		t.Errorf("unknown agent: %d, want 404", p.status)
	}
}

// TestConsentGrantForSessionUserOnly: the mandate is the signed-in user's,
// whatever user the form names.
func TestConsentGrantForSessionUserOnly(t *testing.T) {
	e := newPagesEnv(t)
	b := e.browser()
	b.login("alice")
	form := b.get(consentURL(pagesAgent))
	start := time.Now()
	r := b.post(consentURL(pagesAgent), url.Values{
		"csrf": {csrfOf(t, form)}, "user": {"bob"}, "user_id": {"usr_bob"},
		"tool":         {"fs__read", "mail__send_1a2b3c4d"},
		"arg.fs__read": {"path"}, "kind.fs__read": {"prefix"}, "value.fs__read": {"/srv/reports"},
		"purpose": {"quarterly report"}, "expiry": {"7d"}, "uses": {"limited"}, "uses_n": {"5"},
	})
	if r.status != http.StatusSeeOther {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	wantPageHeaders(t, r)
	ms, err := e.mandates.List(context.Background(), "", "")
	if err != nil || len(ms) != 1 {
		t.Fatalf("mandates %+v, %v; want exactly one", ms, err)
	}
	m := ms[0]
	if m.User != "usr_alice" || m.Agent != pagesAgent || m.Purpose != "quarterly report" || m.UsesLeft != 5 {
		t.Errorf("mandate %+v", m)
	}
	if d := m.ExpiresAt.Sub(start); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour+time.Minute {
		t.Errorf("expires in %v, want 7 days", d)
	}
	if len(m.Grants) != 2 || m.Grants[0].Upstream != "fs" || m.Grants[0].Tool != "read" ||
		len(m.Grants[0].Constraints) != 1 || m.Grants[0].Constraints[0].Prefix != "/srv/reports" ||
		m.Grants[1].Tool != `send\*` || len(m.Grants[1].Constraints) != 0 {
		t.Errorf("grants %+v", m.Grants)
	}
	if !m.Covers("mail", "send*") || m.Covers("mail", "send_all") {
		t.Error("a tool named with a glob character was granted as a wildcard")
	}
	loc := r.header.Get("Location")
	if loc != web.AgentsPath+"?granted="+m.ID {
		t.Errorf("redirected to %q", loc)
	}
	done := b.get(loc)
	if !strings.Contains(done.body, `id="granted"`) || !strings.Contains(done.body, "fs / read; path starts with /srv/reports") {
		t.Errorf("confirmation missing: %s", done.body)
	}
}

func TestConsentGrantRefusesBadForms(t *testing.T) {
	e := newPagesEnv(t)
	b := e.browser()
	b.login("alice")
	csrf := csrfOf(t, b.get(consentURL(pagesAgent)))
	for _, tt := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no tool", url.Values{"expiry": {"24h"}, "uses": {"unlimited"}}, "choose at least one tool"},
		{"unknown tool", url.Values{"tool": {"fs__read", "fs__secret"}, "expiry": {"24h"}}, "no longer offered"},
		{"odd expiry", url.Values{"tool": {"fs__read"}, "expiry": {"100y"}}, "expires"},
		{"zero uses", url.Values{"tool": {"fs__read"}, "expiry": {"1h"}, "uses": {"limited"}, "uses_n": {"0"}}, "number of uses"},
		{"half a constraint", url.Values{"tool": {"fs__read"}, "expiry": {"1h"}, "arg.fs__read": {"path"}}, "both an argument and a value"},
		{"bad pattern", url.Values{"tool": {"fs__read"}, "expiry": {"1h"}, "arg.fs__read": {"path"},
			"kind.fs__read": {"pattern"}, "value.fs__read": {"("}}, "pattern"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.form.Set("csrf", csrf)
			r := b.post(consentURL(pagesAgent), tt.form)
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, tt.want) {
				t.Errorf("%d, want 400 saying %q: %s", r.status, tt.want, r.body)
			}
		})
	}
	if ms, _ := e.mandates.List(context.Background(), "", ""); len(ms) != 0 {
		t.Errorf("%d mandates granted from bad forms", len(ms))
	}
}

func TestConsentCSRF(t *testing.T) {
	e := newPagesEnv(t)
	b := e.browser()
	b.login("alice")
	valid := csrfOf(t, b.get(consentURL(pagesAgent)))
	otherAgent := csrfOf(t, b.get(consentURL("dcr-7")))
	// The agents page has a form (and so a token) once there is a mandate.
	if _, err := e.mandates.Grant(context.Background(), consent.Spec{User: "usr_alice", Agent: "dcr-7", Uses: 1,
		Grants: []consent.Grant{{Upstream: "*", Tool: "*"}}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	revokeToken := csrfOf(t, b.get(web.AgentsPath))
	grant := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "tool": {"fs__read"}, "expiry": {"1h"}, "uses": {"unlimited"}}
	}
	_, mac, _ := strings.Cut(valid, ".")

	// A second browser, signed in as bob, holds its own cookie and tokens.
	bob := e.browser()
	bob.login("bob")
	bobToken := csrfOf(t, bob.get(consentURL(pagesAgent)))

	for _, tt := range []struct {
		name   string
		b      *browser
		form   url.Values
		header http.Header
	}{
		{"missing", b, grant(""), nil},
		{"wrong", b, grant("9999999999." + strings.Repeat("A", len(mac))), nil},
		{"tampered expiry", b, grant("9999999999." + mac), nil},
		{"another agent's form", b, grant(otherAgent), nil},
		{"the revoke form's", b, grant(revokeToken), nil},
		{"another user's", b, grant(bobToken), nil},
		{"cross-site", b, grant(valid), http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"foreign origin", b, grant(valid), http.Header{"Origin": {"https://evil.example"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.b.do(http.MethodPost, consentURL(pagesAgent), tt.form, tt.header)
			if r.status != http.StatusForbidden {
				t.Errorf("%d, want 403: %s", r.status, r.body)
			}
		})
	}
	if ms, _ := e.mandates.List(context.Background(), "", pagesAgent); len(ms) != 0 {
		t.Fatalf("%d mandates granted without a valid token", len(ms))
	}
	if r := b.post(consentURL(pagesAgent), grant(valid)); r.status != http.StatusSeeOther {
		t.Errorf("the valid token was refused: %d %s", r.status, r.body)
	}
}

func TestRevokeOnlyOwnMandates(t *testing.T) {
	e := newPagesEnv(t)
	ctx := context.Background()
	grant := func(user, agent string) consent.Mandate {
		m, err := e.mandates.Grant(ctx, consent.Spec{User: user, Agent: agent, Uses: consent.Unlimited,
			Grants: []consent.Grant{{Upstream: "fs", Tool: "read"}}, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	own, own2, bobs := grant("usr_alice", pagesAgent), grant("usr_alice", "dcr-7"), grant("usr_bob", pagesAgent)

	b := e.browser()
	b.login("alice")
	list := b.get(web.AgentsPath)
	if list.status != http.StatusOK {
		t.Fatalf("agents page: %d %s", list.status, list.body)
	}
	wantPageHeaders(t, list)
	for _, want := range []string{own.ID, own2.ID, "Public Agent", "Self-named", "fs / read", "unlimited", `badge active`} {
		if !strings.Contains(list.body, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
	if strings.Contains(list.body, bobs.ID) {
		t.Error("agents page shows another user's mandate")
	}
	csrf := csrfOf(t, list)

	for _, id := range []string{bobs.ID, "mnd_nonexistent", ""} {
		if r := b.post(web.RevokePath, url.Values{"csrf": {csrf}, "mandate": {id}}); r.status != http.StatusNotFound {
			t.Errorf("revoke %q: %d, want 404", id, r.status)
		}
	}
	if m, _ := e.mandates.Get(ctx, bobs.ID); !m.RevokedAt.IsZero() {
		t.Fatal("alice revoked bob's mandate")
	}
	if r := b.post(web.RevokePath, url.Values{"mandate": {own.ID}}); r.status != http.StatusForbidden {
		t.Errorf("revoke without CSRF token: %d, want 403", r.status)
	}
	r := b.post(web.RevokePath, url.Values{"csrf": {csrf}, "mandate": {own.ID}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != web.AgentsPath+"?revoked="+own.ID {
		t.Fatalf("revoke own: %d %s", r.status, r.header.Get("Location"))
	}
	m, _ := e.mandates.Get(ctx, own.ID)
	if m.RevokedAt.IsZero() || m.RevokedBy != "user:usr_alice" {
		t.Errorf("revoked %v by %q", m.RevokedAt, m.RevokedBy)
	}
	after := b.get(r.header.Get("Location"))
	if !strings.Contains(after.body, `id="revoked"`) || !strings.Contains(after.body, "badge revoked") {
		t.Errorf("revocation not shown: %s", after.body)
	}
}

// TestPagesNeedSession: without the authorization server's session, no page
// shows or changes anything.
func TestPagesNeedSession(t *testing.T) {
	e := newPagesEnv(t)
	m, err := e.mandates.Grant(context.Background(), consent.Spec{User: "usr_alice", Agent: pagesAgent,
		Uses: consent.Unlimited, Grants: []consent.Grant{{Upstream: "*", Tool: "*"}}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	// A forged session cookie is no session.
	u, _ := url.Parse(e.url)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "mandate_session", Value: "forged"}})
	apr, err := e.approvals.Request(context.Background(), &identity.Principal{User: "usr_alice", Agent: pagesAgent},
		"fs", "wipe", map[string]any{"path": "/srv"}, "v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []page{
		b.get(consentURL(pagesAgent)),
		b.get(web.AgentsPath),
		b.get(web.ApprovalsPath),
		b.post(consentURL(pagesAgent), url.Values{"user": {"alice"}, "tool": {"fs__read"}, "expiry": {"1h"}}),
		b.post(web.RevokePath, url.Values{"mandate": {m.ID}}),
		b.post(web.DecideApprovalPath, url.Values{"approval": {apr.ID}, "decision": {"approve"}}),
	} {
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "Sign in through your agent first") {
			t.Errorf("%d, want 403 and the sign-in advice: %s", p.status, p.body)
		}
		if strings.Contains(p.body, m.ID) || strings.Contains(p.body, "fs__read") || strings.Contains(p.body, apr.ID) {
			t.Error("a page without a session shows data")
		}
		wantPageHeaders(t, p)
	}
	ms, _ := e.mandates.List(context.Background(), "", "")
	if len(ms) != 1 || !ms[0].RevokedAt.IsZero() {
		t.Errorf("mandates changed without a session: %+v", ms)
	}
	if a, _ := e.approvals.Get(context.Background(), apr.ID); a.Status != store.ApprovalPending {
		t.Errorf("approval decided without a session: %s", a.Status)
	}
}

// TestOAuthConsentStillServed: /consent without an agent is the
// authorization server's page.
func TestOAuthConsentStillServed(t *testing.T) {
	e := newPagesEnv(t)
	p := e.browser().get("/consent?id=unknown")
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "This sign-in link is no longer valid") {
		t.Errorf("%d %s", p.status, p.body)
	}
}

func TestNewPagesRefusesMissingParts(t *testing.T) {
	st := memory.New()
	for name, o := range map[string]web.PagesOptions{
		"no store":     {Mandates: consent.New(st, nil, nil), CSRFKey: make([]byte, 32)},
		"no mandates":  {Store: st, CSRFKey: make([]byte, 32)},
		"short key":    {Store: st, Mandates: consent.New(st, nil, nil), CSRFKey: make([]byte, 16)},
		"no CSRF key ": {Store: st, Mandates: consent.New(st, nil, nil)},
	} {
		if _, err := web.NewPages(o); err == nil {
			t.Errorf("%s: NewPages succeeded", name)
		}
	}
}
