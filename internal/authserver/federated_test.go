package authserver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/authserver/federation"
	"github.com/mandate-mcp/mandate/internal/store"
)

// The example provider's registration of Mandate, and its users: idpUser1
// is subject "id1" with email test-user@zitadel.ch, idpUser2 subject "id2"
// with test-user2@zitadel.ch; both have password idpPassword.
const (
	idpClientID     = "mandate"
	idpClientSecret = "mandate-secret"
	idpUser1        = "test-user@127.0.0.1"
	idpUser2        = "test-user2"
	idpPassword     = "verysecure"
	idpEmail1       = "test-user@zitadel.ch"
)

// idp is zitadel's example OpenID provider on 127.0.0.1, standing in for
// the organisation's identity provider.
type idp struct {
	url    string
	claims *idpClaims
}

// idpClaims is the example provider's storage with extra claims in every
// ID token, as an organisation's provider adds group claims; tests change
// them between logins.
type idpClaims struct {
	*storage.Storage
	mu    sync.Mutex
	extra map[string]any
}

func (s *idpClaims) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.extra {
		ui.AppendClaims(k, v)
	}
	return nil
}

func (s *idpClaims) set(name string, v any) {
	s.mu.Lock()
	s.extra[name] = v
	s.mu.Unlock()
}

// startIDP serves the example provider with Mandate registered as a
// confidential web client whose redirect URI is redirect.
func startIDP(t *testing.T, redirect string) *idp {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{
		idpClientID: storage.WebClient(idpClientID, idpClientSecret, redirect),
	})
	claims := &idpClaims{Storage: st, extra: map[string]any{"groups": []string{"developers"}}}
	srv.Config.Handler = exampleop.SetupServer(issuer, claims, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return &idp{url: issuer, claims: claims}
}

// newFederatedEnv starts a provider and a Mandate server whose login page
// offers it, built as the composition root builds it.
func newFederatedEnv(t *testing.T) (*env, *idp) {
	t.Helper()
	var p *idp
	e := newEnv(t, func(o *Options) {
		p = startIDP(t, o.Issuer+FederationCallbackPath)
		o.Federation = newFederation(t, p, o.Issuer, o.Sealer)
	})
	return e, p
}

func newFederation(t *testing.T, p *idp, issuer string, sealer Sealer) *federation.Provider {
	t.Helper()
	fed, err := federation.New(t.Context(), federation.Options{
		Issuer: p.url, ClientID: idpClientID, ClientSecret: idpClientSecret,
		RedirectURL: issuer + FederationCallbackPath,
		CookieKey:   sealer.(*FileSealer).DeriveKey("federation login cookie"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return fed
}

// fedStart opens the login page of a new authorization request and clicks
// "Sign in with …"; it returns the request id and the provider URL the
// browser is sent to.
func (b *browser) fedStart(p *idp, params url.Values) (string, *url.URL) {
	t := b.e.t
	t.Helper()
	loc := location(t, b.get("/authorize?"+params.Encode()))
	id := loc.Query().Get("id")
	lp := b.get(loc.String())
	host := strings.TrimPrefix(p.url, "http://")
	if lp.status != http.StatusOK || !strings.Contains(lp.body, `action="/login/federated"`) ||
		!strings.Contains(lp.body, "Sign in with "+host) || !strings.Contains(lp.body, `name="password"`) {
		t.Fatalf("login page lacks the provider's button or the password form: %d %s", lp.status, lp.body)
	}
	authURL := location(t, b.post(federatedStartPath, url.Values{"id": {id}, "csrf": {csrfOf(t, lp)}}))
	if !strings.HasPrefix(authURL.String(), p.url+"/") {
		t.Fatalf("sign-in button went to %s, want the provider", authURL)
	}
	return id, authURL
}

// idpLogin signs in at the provider as user and returns the provider's
// redirect back to Mandate's callback, not yet followed.
func (b *browser) idpLogin(authURL *url.URL, user string) *url.URL {
	t := b.e.t
	t.Helper()
	c := &http.Client{Jar: b.c.Jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.e.url+"/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL.String())
	if err != nil {
		t.Fatal(err)
	}
	form := readPage(t, resp)
	reqID := resp.Request.URL.Query().Get("authRequestID")
	if form.status != http.StatusOK || reqID == "" || !strings.Contains(form.body, `name="password"`) {
		t.Fatalf("expected the provider's login form, got %d at %s", form.status, resp.Request.URL)
	}
	login := *resp.Request.URL
	login.RawQuery = ""
	resp, err = c.PostForm(login.String(), url.Values{"id": {reqID}, "username": {user}, "password": {idpPassword}})
	if err != nil {
		t.Fatal(err)
	}
	back := location(t, readPage(t, resp))
	if back.Path != FederationCallbackPath || !strings.HasPrefix(back.String(), b.e.url) {
		t.Fatalf("provider redirected to %s, want Mandate's callback", back)
	}
	return back
}

// fedLogin runs the browser from /authorize through the provider to
// Mandate's consent page and returns it with the request id.
func (b *browser) fedLogin(p *idp, params url.Values, user string) (page, string) {
	t := b.e.t
	t.Helper()
	id, authURL := b.fedStart(p, params)
	next := location(t, b.get(b.idpLogin(authURL, user).String()))
	if next.Path != consentPath || next.Query().Get("id") != id {
		t.Fatalf("callback redirected to %s, want the consent page of %s", next, id)
	}
	cp := b.get(next.String())
	if cp.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", cp.status, cp.body)
	}
	return cp, id
}

// fedToken runs an MCP agent's authorization code + PKCE flow in which the
// human signs in through the provider as user, and returns the verified
// access token's claims.
func (e *env) fedToken(b *browser, p *idp, user string) map[string]any {
	e.t.Helper()
	verifier, challenge := pkce()
	cp, id := b.fedLogin(p, e.authParams(challenge), user)
	back := location(e.t, b.post(consentPath, url.Values{"id": {id}, "csrf": {csrfOf(e.t, cp)}, "action": {"allow"}}))
	status, tj, _ := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
		"client_id": {publicAgent}, "code_verifier": {verifier}, "resource": {e.url + "/mcp"},
	}, "", "")
	if status != http.StatusOK {
		e.t.Fatalf("code exchange: %d %+v", status, tj)
	}
	_, _, claims := e.verifyJWT(tj.AccessToken)
	return claims
}

func (e *env) userBySubject(issuer, subject string) store.User {
	e.t.Helper()
	u, err := e.store.GetUserBySubject(context.Background(), issuer, subject)
	if err != nil {
		e.t.Fatalf("user (%s, %s): %v", issuer, subject, err)
	}
	return u
}

func (e *env) userCount() int {
	e.t.Helper()
	n, err := e.store.CountUsers(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestFederatedLogin: a human signs in through the provider during an MCP
// agent's authorization; the access token names the Mandate user created
// for them, and a later login reuses that user with the provider's current
// groups.
func TestFederatedLogin(t *testing.T) {
	e, p := newFederatedEnv(t)
	before := e.userCount()

	b := e.browser()
	claims := e.fedToken(b, p, idpUser1)
	u := e.userBySubject(p.url, "id1")
	if claims["sub"] != u.ID || claims["client_id"] != publicAgent || claims["iss"] != e.url {
		t.Errorf("token claims %v, want sub %s", claims, u.ID)
	}
	if !hexID.MatchString(u.ID) || u.Username != idpEmail1 || u.Email != idpEmail1 ||
		!slices.Equal(u.Groups, []string{"developers"}) || u.Issuer != p.url || u.Subject != "id1" ||
		u.PasswordHash != "" || u.Disabled || !u.LastLogin.Equal(e.clock.Now().Truncate(store.TimePrecision)) {
		t.Errorf("created user %+v", u)
	}
	if e.userCount() != before+1 {
		t.Errorf("%d users, want %d", e.userCount(), before+1)
	}

	// The login started a session: the next authorization in this browser
	// goes straight to consent.
	_, challenge := pkce()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	if next := location(t, b.get(loc.String())); next.Path != consentPath {
		t.Errorf("second authorization in the same browser went to %s, want consent", next)
	}

	// The next login, in another browser, finds the same user and takes
	// the groups the provider names now.
	p.claims.set("groups", []string{"ops", "sre"})
	e.clock.Advance(time.Hour)
	claims = e.fedToken(e.browser(), p, idpUser1)
	again := e.userBySubject(p.url, "id1")
	if claims["sub"] != u.ID || again.ID != u.ID || e.userCount() != before+1 {
		t.Fatalf("second login: sub %v, user %s, %d users; want %s and %d users", claims["sub"], again.ID, e.userCount(), u.ID, before+1)
	}
	if !slices.Equal(again.Groups, []string{"ops", "sre"}) || again.Username != u.Username || !again.LastLogin.Equal(e.clock.Now().Truncate(store.TimePrecision)) {
		t.Errorf("after the second login: %+v", again)
	}

	// Another person at the provider is another Mandate user.
	claims = e.fedToken(e.browser(), p, idpUser2)
	other := e.userBySubject(p.url, "id2")
	if claims["sub"] != other.ID || other.ID == u.ID || other.Username != "test-user2@zitadel.ch" {
		t.Errorf("second person: sub %v, user %+v", claims["sub"], other)
	}

	// A federated user has no password to sign in with.
	_, challenge = pkce()
	nb := e.browser()
	loc = location(t, nb.get("/authorize?"+e.authParams(challenge).Encode()))
	lp := nb.get(loc.String())
	if got := nb.post(loginPath, url.Values{"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, lp)}, "username": {idpEmail1}, "password": {""}}); got.status != http.StatusUnauthorized {
		t.Errorf("password login of a federated user: %d, want 401", got.status)
	}
}

// TestFederatedLoginRefusesDisabledUser: the provider vouches for who the
// user is; an operator who disabled them in Mandate still has the last
// word, and the refused login changes nothing.
func TestFederatedLoginRefusesDisabledUser(t *testing.T) {
	e, p := newFederatedEnv(t)
	first := e.browser()
	e.fedToken(first, p, idpUser1)
	u := e.userBySubject(p.url, "id1")
	u.Disabled = true
	must(t, e.store.UpdateUser(context.Background(), u))
	p.claims.set("groups", []string{"admins"})
	e.clock.Advance(time.Hour)

	b := e.browser()
	_, challenge := pkce()
	id, authURL := b.fedStart(p, e.authParams(challenge))
	got := b.get(b.idpLogin(authURL, idpUser1).String())
	if got.status != http.StatusForbidden || !strings.Contains(got.body, "disabled") {
		t.Fatalf("callback for a disabled user: %d %s", got.status, got.body)
	}
	assertNoSession(t, got)
	if ar, _ := e.store.GetAuthRequest(context.Background(), id); ar.UserID != "" {
		t.Error("the refused user was bound to the authorization request")
	}
	if after := e.userBySubject(p.url, "id1"); !slices.Equal(after.Groups, u.Groups) || !after.LastLogin.Equal(u.LastLogin) {
		t.Errorf("refused login changed the user: %+v", after)
	}
	if next := location(t, b.get(consentPath+"?id="+id)); next.Path != loginPath {
		t.Errorf("consent after a refused login went to %s, want the login page", next)
	}
	// The session the user had before being disabled is no good either.
	loc := location(t, first.get("/authorize?"+e.authParams(challenge).Encode()))
	if lp := first.get(loc.String()); lp.status != http.StatusOK || !strings.Contains(lp.body, `name="password"`) {
		t.Errorf("disabled user's old session skipped the login page: %d", lp.status)
	}
}

func assertNoSession(t *testing.T, p page) {
	t.Helper()
	for _, c := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(c, sessionCookie+"=") {
			t.Errorf("a session cookie was set: %s", c)
		}
	}
}

// TestFederatedCallbackRefusals: callbacks that do not finish a login this
// browser started here, or that the provider refused, show a generic page
// naming nothing the provider said, and sign nobody in.
func TestFederatedCallbackRefusals(t *testing.T) {
	e, p := newFederatedEnv(t)
	const detail = "provider-secret-detail"
	withQuery := func(u *url.URL, edit func(url.Values)) *url.URL {
		c := *u
		q := c.Query()
		edit(q)
		c.RawQuery = q.Encode()
		return &c
	}
	tests := []struct {
		name string
		// deliver sends the callback somehow and returns Mandate's answer.
		deliver func(b *browser, authURL, back *url.URL) page
		status  int
	}{
		{"tampered state", func(b *browser, _, back *url.URL) page {
			return b.get(withQuery(back, func(q url.Values) { q.Set("state", q.Get("state")+"x") }).String())
		}, http.StatusBadRequest},
		{"no state", func(b *browser, _, back *url.URL) page {
			return b.get(withQuery(back, func(q url.Values) { q.Del("state") }).String())
		}, http.StatusBadRequest},
		{"another browser", func(_ *browser, _, back *url.URL) page {
			return e.browser().get(back.String())
		}, http.StatusBadRequest},
		{"tampered login cookie", func(b *browser, _, back *url.URL) page {
			return rawCallback(t, back, b.c.Jar.Cookies(back), func(v string) string { return tamper(v) })
		}, http.StatusBadRequest},
		{"replayed callback", func(b *browser, _, back *url.URL) page {
			cookies := b.c.Jar.Cookies(back)
			first := b.get(back.String())
			if first.status != http.StatusSeeOther {
				t.Fatalf("genuine callback: %d %s", first.status, first.body)
			}
			// The browser's cookie is gone; a copy kept by an attacker
			// still meets a spent code.
			return rawCallback(t, back, cookies, nil)
		}, http.StatusForbidden},
		{"provider refused", func(b *browser, authURL, _ *url.URL) page {
			return b.get(e.url + FederationCallbackPath + "?" + url.Values{
				"error": {"access_denied"}, "error_description": {detail}, "state": {authURL.Query().Get("state")},
			}.Encode())
		}, http.StatusForbidden},
		{"wrong iss", func(b *browser, _, back *url.URL) page {
			return b.get(withQuery(back, func(q url.Values) { q.Set("iss", "https://"+detail+".example") }).String())
		}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			_, challenge := pkce()
			id, authURL := b.fedStart(p, e.authParams(challenge))
			back := b.idpLogin(authURL, idpUser1)
			got := tt.deliver(b, authURL, back)
			if got.status != tt.status {
				t.Errorf("status %d, want %d: %s", got.status, tt.status, got.body)
			}
			for _, leak := range []string{detail, "access_denied", "state", "nonce", "issuer", p.url} {
				if strings.Contains(got.body, leak) {
					t.Errorf("error page names %q: %s", leak, got.body)
				}
			}
			if tt.name != "replayed callback" {
				assertNoSession(t, got)
				if ar, _ := e.store.GetAuthRequest(context.Background(), id); ar.UserID != "" {
					t.Error("a user was bound to the authorization request")
				}
			}
		})
	}
}

// rawCallback delivers the callback from a browser holding cookies,
// each value passed through edit when it is set.
func rawCallback(t *testing.T, back *url.URL, cookies []*http.Cookie, edit func(string) string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, back.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cookies {
		v := c.Value
		if strings.HasPrefix(c.Name, "mandate_login_") {
			found = true
			if edit != nil {
				v = edit(v)
			}
		}
		req.AddCookie(&http.Cookie{Name: c.Name, Value: v})
	}
	if !found {
		t.Fatal("the browser holds no login cookie for the callback")
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readPage(t, resp)
}

// tamper changes one character in the middle of a value.
func tamper(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestFederatedStartRefusals: only the login page this browser was shown
// can send it to the provider, and only for a request still pending.
func TestFederatedStartRefusals(t *testing.T) {
	e, _ := newFederatedEnv(t)
	_, challenge := pkce()
	b := e.browser()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	id := loc.Query().Get("id")
	csrf := csrfOf(t, b.get(loc.String()))
	other := e.browser()
	otherLoc := location(t, other.get("/authorize?"+e.authParams(challenge).Encode()))
	otherCSRF := csrfOf(t, other.get(otherLoc.String()))

	tests := []struct {
		name   string
		b      *browser
		form   url.Values
		status int
	}{
		{"no token", b, url.Values{"id": {id}}, http.StatusForbidden},
		{"another browser's token", b, url.Values{"id": {id}, "csrf": {otherCSRF}}, http.StatusForbidden},
		{"token of another request", other, url.Values{"id": {id}, "csrf": {otherCSRF}}, http.StatusForbidden},
		{"unknown request", b, url.Values{"id": {"ar_nope"}, "csrf": {csrf}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.post(federatedStartPath, tt.form)
			if got.status != tt.status {
				t.Errorf("status %d, want %d", got.status, tt.status)
			}
			for _, c := range got.header.Values("Set-Cookie") {
				if strings.HasPrefix(c, "mandate_login_") {
					t.Errorf("a refused start set a login cookie: %s", c)
				}
			}
		})
	}
	if got := b.get(federatedStartPath + "?id=" + id); got.status != http.StatusMethodNotAllowed {
		t.Errorf("GET start: %d, want 405", got.status)
	}

	// A request decided meanwhile cannot be resumed.
	must(t, e.store.DeleteAuthRequest(context.Background(), id))
	if got := b.post(federatedStartPath, url.Values{"id": {id}, "csrf": {csrf}}); got.status != http.StatusBadRequest {
		t.Errorf("start for a gone request: %d, want 400", got.status)
	}
}

// TestFederatedLoginKeepsLocalAccount: a local account whose username is
// the federated user's email is not signed in to; the federated user gets
// an account of their own, under another name.
func TestFederatedLoginKeepsLocalAccount(t *testing.T) {
	e, p := newFederatedEnv(t)
	ctx := context.Background()
	local := store.User{ID: "usr_local", Username: idpEmail1, Email: idpEmail1, PasswordHash: userHash, Groups: []string{"admins"}, CreatedAt: time.Now()}
	must(t, e.store.CreateUser(ctx, local))
	claims := e.fedToken(e.browser(), p, idpUser1)
	u := e.userBySubject(p.url, "id1")
	if claims["sub"] == local.ID || u.ID == local.ID || u.Username != idpEmail1+"-2" {
		t.Fatalf("federated login: sub %v, user %+v", claims["sub"], u)
	}
	after, err := e.store.GetUser(ctx, local.ID)
	if err != nil || after.Issuer != "" || !slices.Equal(after.Groups, local.Groups) || after.PasswordHash != local.PasswordHash {
		t.Errorf("local account changed: %+v (%v)", after, err)
	}
}

// TestFederatedFirstLoginRace: concurrent first logins of one identity (two
// tabs, two replicas) end with one user.
func TestFederatedFirstLoginRace(t *testing.T) {
	e, p := newFederatedEnv(t)
	before := e.userCount()
	id := &federation.Identity{Issuer: p.url, Subject: "racer", Email: "racer@example.com", Groups: []string{"g"}}
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			u, err := e.srv.federatedUser(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			ids[i] = u.ID
		})
	}
	wg.Wait()
	if ids[0] == "" || slices.ContainsFunc(ids, func(s string) bool { return s != ids[0] }) {
		t.Errorf("concurrent first logins gave users %v", ids)
	}
	if e.userCount() != before+1 {
		t.Errorf("%d users, want %d", e.userCount(), before+1)
	}
}

// TestFederatedLoginOnAnotherReplica: a login started on one replica
// finishes on another that shares the store and the seal key, as behind a
// load balancer.
func TestFederatedLoginOnAnotherReplica(t *testing.T) {
	e, p := newFederatedEnv(t)
	replica, err := New(context.Background(), Options{
		Issuer: e.url, Store: e.store, Sealer: e.srv.opts.Sealer, Now: e.clock.Now,
		Federation: newFederation(t, p, e.url, e.srv.opts.Sealer),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	b := e.browser()
	_, challenge := pkce()
	id, authURL := b.fedStart(p, e.authParams(challenge))
	back := b.idpLogin(authURL, idpUser1)
	req := httptest.NewRequest(http.MethodGet, back.String(), nil)
	for _, c := range b.c.Jar.Cookies(back) {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	replica.Handler().ServeHTTP(rec, req)
	if loc := rec.Header().Get("Location"); rec.Code != http.StatusSeeOther || loc != consentPath+"?id="+id {
		t.Fatalf("replica's callback: %d Location %q: %s", rec.Code, loc, rec.Body)
	}
}

// TestFederationOff: without a provider the login page offers none and its
// paths are neither listed nor served.
func TestFederationOff(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range e.srv.Paths() {
		if strings.HasPrefix(path, federatedStartPath) {
			t.Errorf("Paths lists %s", path)
		}
	}
	_, challenge := pkce()
	b := e.browser()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	lp := b.get(loc.String())
	if strings.Contains(lp.body, "Sign in with") || strings.Contains(lp.body, federatedStartPath) {
		t.Error("login page offers a provider")
	}
	for _, path := range []string{federatedStartPath, FederationCallbackPath} {
		if got := b.post(path, url.Values{"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, lp)}}); got.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, got.status)
		}
	}

	on, _ := newFederatedEnv(t)
	paths := on.srv.Paths()
	if !slices.Contains(paths, federatedStartPath) || !slices.Contains(paths, FederationCallbackPath) {
		t.Errorf("Paths %v lacks the federated login's", paths)
	}
}

// usernamePattern is the rule for local usernames (internal/users), which
// derived usernames keep to.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

func TestUsernameBase(t *testing.T) {
	long := strings.Repeat("a", 70) + "@example.com"
	tests := []struct {
		email, subject, want string
	}{
		{"Alice@Example.COM", "s", "alice@example.com"},
		{"", "00u1ab2cd3EF4gh5", "00u1ab2cd3EF4gh5"},
		{"", "3f1c2a9e-7b4d-4e8a-9c1f-0a2b3c4d5e6f", "3f1c2a9e-7b4d-4e8a-9c1f-0a2b3c4d5e6f"},
		{"o'brien@example.com", "s", "o-brien@example.com"},
		{"", "auth0|12345", "auth0-12345"},
		{"", "ÄÖÜ", "user"},
		{".hidden@example.com", "s", "hidden@example.com"},
		{"", "https://idp.example/users/7", "https---idp.example-users-7"},
		{long, "s", strings.Repeat("a", 64)},
	}
	for _, tt := range tests {
		got := usernameBase(&federation.Identity{Email: tt.email, Subject: tt.subject})
		if got != tt.want || !usernamePattern.MatchString(got) {
			t.Errorf("usernameBase(%q, %q) = %q, want %q", tt.email, tt.subject, got, tt.want)
		}
	}
	base := strings.Repeat("b", 64)
	seen := map[string]bool{}
	for n := 1; n <= usernameTries; n++ {
		c := usernameCandidate(base, n)
		if !usernamePattern.MatchString(c) || seen[c] {
			t.Errorf("candidate %d: %q is invalid or repeated", n, c)
		}
		seen[c] = true
	}
	if got := usernameCandidate("alice", 2); got != "alice-2" {
		t.Errorf("second candidate %q", got)
	}
}

func TestFileSealerDeriveKey(t *testing.T) {
	dir := t.TempDir()
	a, err := NewFileSealer(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewFileSealer(dir) // another replica, same key file
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewFileSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := a.DeriveKey("federation login cookie")
	if len(k) != 32 || !bytes.Equal(k, b.DeriveKey("federation login cookie")) {
		t.Fatalf("replicas derive %x and %x", k, b.DeriveKey("federation login cookie"))
	}
	if bytes.Equal(k, a.DeriveKey("something else")) || bytes.Equal(k, other.DeriveKey("federation login cookie")) || bytes.Equal(k, a.key) {
		t.Error("derived key shared across purposes, key files or with the seal key")
	}
}
