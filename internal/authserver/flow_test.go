package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// TestAuthorizationCodeFlow drives the whole flow over HTTP as an MCP client
// and a browser would, and checks the access token as a resource server
// would: against the published JWKS.
func TestAuthorizationCodeFlow(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	verifier, challenge := pkce()

	start := time.Now()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	if loc.Path != loginPath || loc.IsAbs() {
		t.Fatalf("authorize redirected to %s, want the login page", loc)
	}
	lp := b.get(loc.String())
	if lp.status != http.StatusOK || !strings.Contains(lp.body, "Public Agent") {
		t.Fatalf("login page: %d %s", lp.status, lp.body)
	}
	cl := location(t, b.post(loginPath, url.Values{
		"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, lp)}, "username": {testUser}, "password": {testPassword},
	}))
	cp := b.get(cl.String())
	if cp.status != http.StatusOK {
		t.Fatalf("consent page: %d %s", cp.status, cp.body)
	}
	back := location(t, b.post(consentPath, url.Values{
		"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, cp)}, "action": {"allow"},
	}))
	q := back.Query()
	status, tj, hdr := e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {agentRedir},
		"client_id": {publicAgent}, "code_verifier": {verifier}, "resource": {e.url + "/mcp"},
	}, "", "")
	elapsed := time.Since(start)
	t.Logf("authorize+login+consent+token flow took %v (target < 300ms)", elapsed)

	if got := back.Scheme + "://" + back.Host + back.Path; got != agentRedir {
		t.Fatalf("redirected to %s, want %s", got, agentRedir)
	}
	if q.Get("state") != "state-123" || q.Get("iss") != e.url || q.Get("code") == "" {
		t.Fatalf("authorization response %v: want code, state and iss", q)
	}
	if status != http.StatusOK {
		t.Fatalf("token: %d %+v", status, tj)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control %q", hdr.Get("Cache-Control"))
	}
	if tj.TokenType != "Bearer" || tj.RefreshToken == "" || tj.IDToken != "" || tj.ExpiresIn != 300 {
		t.Errorf("token response %+v: want Bearer, a refresh token, no id_token, 300s", tj)
	}
	if tj.Scope != "mcp:tools mcp:prompts" {
		t.Errorf("scope %q", tj.Scope)
	}

	typ, _, c := e.verifyJWT(tj.AccessToken)
	if typ != "at+jwt" {
		t.Errorf("typ %q, want at+jwt", typ)
	}
	if c["iss"] != e.url || c["sub"] != "usr_alice" || c["client_id"] != publicAgent {
		t.Errorf("claims %v", c)
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != e.url+"/mcp" {
		t.Errorf("aud %v, want [%s/mcp]", c["aud"], e.url)
	}
	if !slices.Equal(scopeSet(c["scope"]), []string{"mcp:prompts", "mcp:tools"}) {
		t.Errorf("scope claim %v", c["scope"])
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	if c["jti"] == "" || iat == 0 || exp-iat != 300 {
		t.Errorf("jti %v iat %v exp %v", c["jti"], iat, exp)
	}
	if _, ok := c["act"]; ok {
		t.Errorf("a user's own token carries act: %v", c["act"])
	}

	// The code is spent.
	status, tj, _ = e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {agentRedir},
		"client_id": {publicAgent}, "code_verifier": {verifier},
	}, "", "")
	if status != http.StatusBadRequest || tj.Error != "invalid_grant" {
		t.Errorf("second redemption: %d %+v, want invalid_grant", status, tj)
	}
}

// TestAuthorizeRefusals covers requests /authorize must refuse: those that
// may not be redirected (unknown client, unregistered redirect_uri) answer
// 400 directly; the others go back to the client with error and iss.
func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	tests := []struct {
		name      string
		edit      func(url.Values)
		redirect  bool   // the error goes back to the client
		wantError string // error parameter or JSON error
	}{
		{"pkce missing", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, true, "invalid_request"},
		{"pkce plain", func(v url.Values) { v.Set("code_challenge_method", "plain") }, true, "invalid_request"},
		{"pkce method missing", func(v url.Values) { v.Del("code_challenge_method") }, true, "invalid_request"},
		{"pkce unknown method", func(v url.Values) { v.Set("code_challenge_method", "S512") }, true, "invalid_request"},
		{"resource mismatch", func(v url.Values) { v.Set("resource", "https://other.example/mcp") }, true, "invalid_target"},
		{"resource trailing slash", func(v url.Values) { v.Set("resource", e.url+"/mcp/") }, true, "invalid_target"},
		{"no usable scope", func(v url.Values) { v.Set("scope", "admin openid") }, true, "invalid_scope"},
		{"prompt none", func(v url.Values) { v.Set("prompt", "none") }, true, "interaction_required"},
		{"wrong redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9998/callback") }, false, "invalid_request"},
		{"redirect_uri prefix", func(v url.Values) { v.Set("redirect_uri", agentRedir+"/x") }, false, "invalid_request"},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nobody") }, false, "invalid_request"},
		{"fragment response mode", func(v url.Values) { v.Set("response_mode", "fragment") }, false, "invalid_request"},
		{"repeated parameter", func(v url.Values) { v.Add("state", "second") }, false, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := e.authParams(challenge)
			tt.edit(v)
			p := e.browser().get("/authorize?" + v.Encode())
			if !tt.redirect {
				if p.status != http.StatusBadRequest || p.header.Get("Location") != "" {
					t.Fatalf("got %d Location %q, want 400 without redirect", p.status, p.header.Get("Location"))
				}
				var body struct{ Error string }
				if err := json.Unmarshal([]byte(p.body), &body); err != nil || body.Error != tt.wantError {
					t.Fatalf("body %s, want error %s", p.body, tt.wantError)
				}
				return
			}
			loc := location(t, p)
			q := loc.Query()
			if !strings.HasPrefix(loc.String(), agentRedir) || q.Get("error") != tt.wantError ||
				q.Get("iss") != e.url || q.Get("state") != "state-123" || q.Has("code") {
				t.Fatalf("redirect %s, want error=%s with state and iss", loc, tt.wantError)
			}
		})
	}
	if n, err := e.store.DeleteExpiredAuthRequests(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("refused requests were stored: %d (%v)", n, err)
	}
}

func TestConsentDeny(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	b := e.browser()
	cp, id := b.login(e.authParams(challenge))
	back := location(t, b.post(consentPath, url.Values{"id": {id}, "csrf": {csrfOf(t, cp)}, "action": {"deny"}}))
	q := back.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "state-123" || q.Get("iss") != e.url || q.Has("code") {
		t.Fatalf("deny redirect %s", back)
	}
	if _, err := e.store.GetAuthRequest(context.Background(), id); err == nil {
		t.Error("denied request still stored")
	}
}

// TestConsentPage checks what the human sees: who asks, where the answer
// goes (the redirect host, prominently), how the agent registered, what it
// asks for.
func TestConsentPage(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	cp, _ := e.browser().login(e.authParams(challenge))
	for _, want := range []string{
		"Public Agent", publicAgent, `id="redirect-host">127.0.0.1:9999<`, "Pre-registered by your Mandate administrator",
		"mcp:tools", "mcp:prompts", `value="allow"`, `value="deny"`, "your own computer", "Signed in as <strong>alice",
	} {
		if !strings.Contains(cp.body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(cp.body, "mcp:resources") {
		t.Error("consent page lists a scope that was not requested")
	}
}

// TestPagesRefuseFraming checks the anti-framing and cookie attributes of
// every page (AT-22).
func TestPagesRefuseFraming(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	b := e.browser()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	pages := map[string]page{"login": b.get(loc.String()), "error": b.get(loginPath + "?id=nope")}
	cp, _ := b.login(e.authParams(challenge))
	pages["consent"] = cp
	for name, p := range pages {
		if got := p.header.Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") ||
			!strings.Contains(got, "default-src 'self'") {
			t.Errorf("%s: CSP %q", name, got)
		}
		if p.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", name, p.header.Get("X-Frame-Options"))
		}
	}
	css := b.get(staticPath + "mandate.css")
	if css.status != http.StatusOK || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %q", css.status, css.header.Get("Content-Type"))
	}
	cookies := pages["login"].header.Values("Set-Cookie")
	if len(cookies) == 0 {
		t.Fatal("login page set no CSRF cookie")
	}
	for _, c := range cookies {
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") {
			t.Errorf("cookie %q lacks HttpOnly or SameSite=Lax", c)
		}
	}
}

// TestHTTPSCookies checks that an https issuer's cookies are Secure and
// carry the __Host- prefix.
func TestHTTPSCookies(t *testing.T) {
	s := &Server{secure: true, opts: Options{}}
	w := httptest.NewRecorder()
	s.setCookie(w, csrfCookie, "v", 0)
	c := w.Header().Get("Set-Cookie")
	for _, want := range []string{"__Host-mandate_csrf=v", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %q", c, want)
		}
	}
	if strings.Contains(c, "Domain") {
		t.Errorf("cookie %q has a Domain", c)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()

	t.Run("login without token", func(t *testing.T) {
		b := e.browser()
		loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
		b.get(loc.String())
		p := b.post(loginPath, url.Values{"id": {loc.Query().Get("id")}, "username": {testUser}, "password": {testPassword}})
		if p.status != http.StatusForbidden {
			t.Fatalf("got %d, want 403", p.status)
		}
	})
	t.Run("login with another browser's token", func(t *testing.T) {
		victim, attacker := e.browser(), e.browser()
		loc := location(t, victim.get("/authorize?"+e.authParams(challenge).Encode()))
		victim.get(loc.String())
		id := loc.Query().Get("id")
		// The attacker's own page gives a token bound to the attacker's
		// cookie; the victim's browser cannot use it.
		stolen := csrfOf(t, attacker.get(loc.String()))
		p := victim.post(loginPath, url.Values{"id": {id}, "csrf": {stolen}, "username": {testUser}, "password": {testPassword}})
		if p.status != http.StatusForbidden {
			t.Fatalf("got %d, want 403", p.status)
		}
	})
	t.Run("login token for another request", func(t *testing.T) {
		b := e.browser()
		loc1 := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
		loc2 := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
		tok := csrfOf(t, b.get(loc1.String()))
		p := b.post(loginPath, url.Values{"id": {loc2.Query().Get("id")}, "csrf": {tok}, "username": {testUser}, "password": {testPassword}})
		if p.status != http.StatusForbidden {
			t.Fatalf("got %d, want 403", p.status)
		}
	})
	t.Run("consent without token", func(t *testing.T) {
		b := e.browser()
		_, id := b.login(e.authParams(challenge))
		p := b.post(consentPath, url.Values{"id": {id}, "action": {"allow"}})
		if p.status != http.StatusForbidden {
			t.Fatalf("got %d, want 403", p.status)
		}
	})
	t.Run("consent with login token", func(t *testing.T) {
		b := e.browser()
		loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
		loginTok := csrfOf(t, b.get(loc.String()))
		id := loc.Query().Get("id")
		location(t, b.post(loginPath, url.Values{"id": {id}, "csrf": {loginTok}, "username": {testUser}, "password": {testPassword}}))
		p := b.post(consentPath, url.Values{"id": {id}, "csrf": {loginTok}, "action": {"allow"}})
		if p.status != http.StatusForbidden {
			t.Fatalf("got %d, want 403", p.status)
		}
	})
	t.Run("consent from a browser not signed in", func(t *testing.T) {
		victim, attacker := e.browser(), e.browser()
		_, id := victim.login(e.authParams(challenge))
		// The attacker knows the request id and has a valid token of its
		// own, but no session for the user who signed in.
		loc := location(t, attacker.get("/authorize?"+e.authParams(challenge).Encode()))
		csrfOf(t, attacker.get(loc.String()))
		p := attacker.get(consentPath + "?id=" + id)
		if l := location(t, p); l.Path != loginPath {
			t.Fatalf("consent page for a stranger redirected to %s", l)
		}
		if ar, _ := e.store.GetAuthRequest(context.Background(), id); ar.Done {
			t.Fatal("request consented")
		}
	})
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	b := e.browser()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	lp := b.get(loc.String())
	p := b.post(loginPath, url.Values{"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, lp)}, "username": {testUser}, "password": {"wrong"}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong username or password") {
		t.Fatalf("got %d", p.status)
	}
	p = b.post(loginPath, url.Values{"id": {loc.Query().Get("id")}, "csrf": {csrfOf(t, p)}, "username": {"mallory"}, "password": {"x"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("unknown user: got %d", p.status)
	}
}

// TestSessionSkipsLogin: a second authorization in the same browser goes
// straight to consent, which is still asked.
func TestSessionSkipsLogin(t *testing.T) {
	e := newEnv(t, nil)
	_, challenge := pkce()
	b := e.browser()
	b.authorize(e.authParams(challenge))
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	next := location(t, b.get(loc.String()))
	if next.Path != consentPath {
		t.Fatalf("second authorization went to %s, want consent", next)
	}
}

func TestCodeExchangeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	redeem := func(edit func(url.Values)) (int, tokenJSON) {
		verifier, challenge := pkce()
		back := e.browser().authorize(e.authParams(challenge))
		form := url.Values{
			"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
			"client_id": {publicAgent}, "code_verifier": {verifier},
		}
		edit(form)
		status, tj, _ := e.token(form, "", "")
		return status, tj
	}
	tests := []struct {
		name string
		edit func(url.Values)
		want string
	}{
		{"wrong verifier", func(v url.Values) { v.Set("code_verifier", randomToken()) }, "invalid_grant"},
		{"no verifier", func(v url.Values) { v.Del("code_verifier") }, "invalid_request"},
		{"wrong redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9999/other") }, "invalid_grant"},
		{"resource mismatch", func(v url.Values) { v.Set("resource", "https://other.example/mcp") }, "invalid_target"},
		{"unknown code", func(v url.Values) { v.Set("code", randomToken()) }, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, tj := redeem(tt.edit)
			if status != http.StatusBadRequest || tj.Error != tt.want {
				t.Fatalf("got %d %+v, want %s", status, tj, tt.want)
			}
		})
	}
	t.Run("another client", func(t *testing.T) {
		verifier, challenge := pkce()
		back := e.browser().authorize(e.authParams(challenge))
		status, tj, _ := e.token(url.Values{
			"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
			"code_verifier": {verifier},
		}, secretAgent, agentSecret)
		if tj.Error != "invalid_grant" {
			t.Fatalf("code redeemed by another client: %d %+v", status, tj)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		verifier, challenge := pkce()
		back := e.browser().authorize(e.authParams(challenge))
		e.clock.Advance(2 * codeTTL)
		defer e.clock.Advance(-2 * codeTTL)
		status, tj, _ := e.token(url.Values{
			"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {agentRedir},
			"client_id": {publicAgent}, "code_verifier": {verifier},
		}, "", "")
		if status != http.StatusBadRequest || tj.Error != "invalid_grant" {
			t.Fatalf("got %d %+v", status, tj)
		}
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newEnv(t, nil)
	first := e.codeFlow()
	refresh := func(rt string, extra url.Values) (int, tokenJSON) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicAgent}}
		for k, v := range extra {
			form[k] = v
		}
		status, tj, _ := e.token(form, "", "")
		return status, tj
	}

	status, second := refresh(first.RefreshToken, url.Values{"scope": {"mcp:tools"}})
	if status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("rotation: %d %+v", status, second)
	}
	if _, _, c := e.verifyJWT(second.AccessToken); c["scope"] != "mcp:tools" || c["sub"] != "usr_alice" {
		t.Errorf("narrowed token claims %v", c)
	}
	if status, tj := refresh(second.RefreshToken, url.Values{"scope": {"mcp:resources"}}); tj.Error != "invalid_scope" {
		t.Fatalf("widening: %d %+v", status, tj)
	}

	// Replaying the first token means it was stolen: the whole family dies,
	// including the token it was rotated to.
	if status, tj := refresh(first.RefreshToken, nil); status != http.StatusBadRequest || tj.Error != "invalid_grant" {
		t.Fatalf("reuse: %d %+v", status, tj)
	}
	if status, tj := refresh(second.RefreshToken, nil); status != http.StatusBadRequest || tj.Error != "invalid_grant" {
		t.Fatalf("rotated-to token after reuse: %d %+v, want invalid_grant", status, tj)
	}
	rt, err := e.store.GetRefreshToken(context.Background(), tokenHash(second.RefreshToken))
	if err != nil || rt.RevokedAt.IsZero() {
		t.Fatalf("rotated-to token not revoked: %+v %v", rt, err)
	}
}

// TestRefreshByAnotherClientRevokes: a refresh token presented by another
// registered client has leaked, so its family is revoked.
func TestRefreshByAnotherClientRevokes(t *testing.T) {
	e := newEnv(t, nil)
	must(t, e.store.PutAgent(context.Background(), store.Agent{
		ID: "agent-other", Registration: store.RegistrationConfig, TrustLevel: "standard", Status: store.AgentActive,
		RedirectURIs: []string{agentRedir}, AuthMethod: authNone, GrantTypes: []string{"authorization_code", "refresh_token"},
		CreatedAt: time.Now(),
	}))
	tj := e.codeFlow()
	status, got, _ := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tj.RefreshToken}, "client_id": {"agent-other"}}, "", "")
	if status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("got %d %+v", status, got)
	}
	status, got, _ = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tj.RefreshToken}, "client_id": {publicAgent}}, "", "")
	if status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("family survived a leak: %d %+v", status, got)
	}
}

func TestRevocation(t *testing.T) {
	e := newEnv(t, nil)
	tj := e.codeFlow()
	resp, err := http.PostForm(e.url+revokePath, url.Values{"token": {tj.RefreshToken}, "client_id": {publicAgent}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	status, got, _ := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tj.RefreshToken}, "client_id": {publicAgent}}, "", "")
	if status != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("revoked token refreshed: %d %+v", status, got)
	}
	// An access token or junk is answered with success (RFC 7009 §2.2).
	resp, err = http.PostForm(e.url+revokePath, url.Values{"token": {tj.AccessToken}, "client_id": {publicAgent}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke access token: %d", resp.StatusCode)
	}
}

func TestSuspendedAgentRefused(t *testing.T) {
	e := newEnv(t, nil)
	must(t, e.store.SetAgentStatus(context.Background(), publicAgent, store.AgentSuspended))
	_, challenge := pkce()
	if p := e.browser().get("/authorize?" + e.authParams(challenge).Encode()); p.status != http.StatusBadRequest {
		t.Fatalf("suspended agent: %d", p.status)
	}
}
