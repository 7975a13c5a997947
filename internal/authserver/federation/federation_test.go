package federation

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	testClientID     = "mandate"
	testClientSecret = "mandate-secret"
	// testRedirect is never dialled: the test browser stops at it.
	testRedirect = "https://mandate.example/oauth/federation/callback"
	testPassword = "verysecure" // the example OP's user password
)

// claimsStorage is the example OP's storage with extra claims added to
// every ID token, as an organisation's provider adds group claims.
type claimsStorage struct {
	*storage.Storage
	extra map[string]any
}

func (s *claimsStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	for k, v := range s.extra {
		ui.AppendClaims(k, v)
	}
	return nil
}

// startOP serves zitadel/oidc's example OpenID provider on 127.0.0.1 with
// Mandate registered as a confidential web client.
func startOP(t *testing.T, extra map[string]any) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer), map[string]*storage.Client{
		testClientID: storage.WebClient(testClientID, testClientSecret, testRedirect),
	})
	srv.Config.Handler = exampleop.SetupServer(issuer, &claimsStorage{Storage: st, extra: extra}, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func newProvider(t *testing.T, issuer string, claims ClaimMap) *Provider {
	t.Helper()
	p, err := New(t.Context(), Options{
		Issuer:       issuer,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		RedirectURL:  testRedirect,
		Claims:       claims,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// browser signs in at the example OP: it follows the redirect to the
// login form, submits it, and stops at Mandate's callback, returning it.
func browser(t *testing.T, authURL string) *url.URL {
	t.Helper()
	c := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), testRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("GET auth URL: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	reqID := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || reqID == "" || !strings.Contains(string(page), `name="password"`) {
		t.Fatalf("expected the login form, got %d at %s", resp.StatusCode, resp.Request.URL)
	}
	login := *resp.Request.URL
	login.RawQuery = ""
	user := "test-user@" + resp.Request.URL.Hostname()
	resp, err = c.PostForm(login.String(), url.Values{"id": {reqID}, "username": {user}, "password": {testPassword}})
	if err != nil {
		t.Fatalf("submit login form: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), testRedirect) {
		t.Fatalf("login ended with %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc
}

// start begins a login and returns the provider URL and the login cookie.
func start(t *testing.T, p *Provider, resume string) (string, *http.Cookie) {
	t.Helper()
	rec := httptest.NewRecorder()
	authURL, err := p.StartLogin(rec, resume)
	if err != nil {
		t.Fatalf("StartLogin: %v", err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("StartLogin set %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/oauth/federation/callback" {
		t.Errorf("login cookie attributes: %+v", c)
	}
	return authURL, c
}

// callback delivers the provider's redirect to FinishLogin with cookies.
func callback(p *Provider, loc *url.URL, cookies ...*http.Cookie) (*Identity, string, *httptest.ResponseRecorder, error) {
	req := httptest.NewRequest(http.MethodGet, loc.String(), nil)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	id, resume, err := p.FinishLogin(rec, req)
	return id, resume, rec, err
}

func TestLoginMapsClaims(t *testing.T) {
	tests := []struct {
		name   string
		extra  map[string]any
		claims ClaimMap
		groups []string
	}{
		{
			name:   "custom groups claim",
			extra:  map[string]any{"roles": []string{"mcp-admins", "developers"}, "groups": []string{"not-these"}},
			claims: ClaimMap{Groups: "roles"},
			groups: []string{"mcp-admins", "developers"},
		},
		{
			name:   "default groups claim",
			extra:  map[string]any{"groups": []string{"everyone"}},
			groups: []string{"everyone"},
		},
		{
			name:   "nested groups claim",
			extra:  map[string]any{"realm_access": map[string]any{"roles": []string{"ops"}}},
			claims: ClaimMap{Groups: "realm_access.roles"},
			groups: []string{"ops"},
		},
		{
			name:   "namespaced claim name with dots",
			extra:  map[string]any{"https://corp.example/groups": "single-group"},
			claims: ClaimMap{Groups: "https://corp.example/groups"},
			groups: []string{"single-group"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startOP(t, tt.extra)
			p := newProvider(t, srv.URL, tt.claims)
			authURL, cookie := start(t, p, "pending-authz-42")
			u, _ := url.Parse(authURL)
			q := u.Query()
			if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
				t.Errorf("auth URL lacks PKCE, nonce or state: %s", authURL)
			}
			id, resume, rec, err := callback(p, browser(t, authURL), cookie)
			if err != nil {
				t.Fatalf("FinishLogin: %v", err)
			}
			want := &Identity{Issuer: srv.URL, Subject: "id1", Email: "test-user@zitadel.ch", Groups: tt.groups, Name: "Test User"}
			if !reflect.DeepEqual(id, want) {
				t.Errorf("identity = %+v\nwant       %+v", id, want)
			}
			if resume != "pending-authz-42" {
				t.Errorf("resume = %q", resume)
			}
			if cleared := rec.Result().Cookies(); len(cleared) != 1 || cleared[0].Name != cookie.Name || cleared[0].MaxAge >= 0 {
				t.Errorf("login cookie not cleared: %+v", cleared)
			}
		})
	}
}

func TestFinishLoginRejectsWrongState(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	loc := browser(t, authURL)
	withState := func(state string) *url.URL {
		u := *loc
		q := u.Query()
		if state == "" {
			q.Del("state")
		} else {
			q.Set("state", state)
		}
		u.RawQuery = q.Encode()
		return &u
	}

	// A second login in the same browser: its cookie must not open
	// under the first login's name.
	_, otherCookie := start(t, p, "")

	cases := map[string]struct {
		loc     *url.URL
		cookies []*http.Cookie
	}{
		"no state":                   {withState(""), []*http.Cookie{cookie}},
		"altered state":              {withState(loc.Query().Get("state") + "x"), []*http.Cookie{cookie}},
		"no cookie":                  {loc, nil},
		"other login's cookie":       {loc, []*http.Cookie{{Name: cookie.Name, Value: otherCookie.Value}}},
		"tampered cookie":            {loc, []*http.Cookie{{Name: cookie.Name, Value: tamper(cookie.Value)}}},
		"cookie of another provider": {loc, []*http.Cookie{{Name: cookie.Name, Value: foreignCookie(t, srv.URL, cookie.Name)}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, _, err := callback(p, tc.loc, tc.cookies...); !errors.Is(err, ErrLoginState) {
				t.Fatalf("FinishLogin = %v, want ErrLoginState", err)
			}
		})
	}
	// None of the refusals spent the code: the genuine callback works.
	if _, _, _, err := callback(p, loc, cookie); err != nil {
		t.Fatalf("genuine callback after refusals: %v", err)
	}
}

// tamper changes one character in the middle of a cookie value.
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

// TestFinishLoginChecksNonce: an ID token whose nonce is not the one this
// login sent is refused, even when state and PKCE verifier are right.
func TestFinishLoginChecksNonce(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	loc := browser(t, authURL)
	var st loginState
	if err := p.open(cookie.Name, cookie.Value, &st); err != nil {
		t.Fatal(err)
	}
	st.Nonce = "another-login"
	forged, err := p.seal(cookie.Name, &st)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = callback(p, loc, &http.Cookie{Name: cookie.Name, Value: forged})
	if !errors.Is(err, ErrVerification) || !errors.Is(err, oidc.ErrNonceInvalid) {
		t.Fatalf("FinishLogin = %v, want ErrVerification for the nonce", err)
	}
}

// foreignCookie seals a login state under another Provider's key.
func foreignCookie(t *testing.T, issuer, name string) string {
	t.Helper()
	other := newProvider(t, issuer, ClaimMap{})
	v, err := other.seal(name, &loginState{State: "x", Expires: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFinishLoginRejectsExpiredLogin(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	loc := browser(t, authURL)
	p.now = func() time.Time { return time.Now().Add(DefaultLoginTTL + time.Second) }
	if _, _, _, err := callback(p, loc, cookie); !errors.Is(err, ErrLoginState) {
		t.Fatalf("FinishLogin = %v, want ErrLoginState", err)
	}
}

// TestFinishLoginRejectsWrongIssuer: a discovery document claiming to be
// issuer B while its endpoints belong to A yields ID tokens from A, which
// a login configured for B must refuse (mix-up).
func TestFinishLoginRejectsWrongIssuer(t *testing.T) {
	honest := startOP(t, nil)
	impostor := httptest.NewUnstartedServer(nil)
	impostorURL := "http://" + impostor.Listener.Addr().String()
	impostor.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		resp, err := http.Get(honest.URL + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		doc["issuer"] = impostorURL
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	impostor.Start()
	t.Cleanup(impostor.Close)

	p := newProvider(t, impostorURL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	_, _, _, err := callback(p, browser(t, authURL), cookie)
	if !errors.Is(err, ErrVerification) || !errors.Is(err, oidc.ErrIssuerInvalid) {
		t.Fatalf("FinishLogin = %v, want ErrVerification for the issuer", err)
	}
}

func TestFinishLoginRejectsMismatchedIssParameter(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	loc := browser(t, authURL)
	q := loc.Query()
	q.Set("iss", "https://other-idp.example")
	loc.RawQuery = q.Encode()
	if _, _, _, err := callback(p, loc, cookie); !errors.Is(err, ErrVerification) {
		t.Fatalf("FinishLogin = %v, want ErrVerification", err)
	}
}

func TestNewRejectsDiscoveryIssuerMismatch(t *testing.T) {
	srv := startOP(t, nil)
	if _, err := New(t.Context(), Options{Issuer: srv.URL + "/", ClientID: testClientID, RedirectURL: testRedirect}); err == nil {
		t.Fatal("New accepted a discovery document for another issuer")
	}
}

// TestFinishLoginRejectsCodeOfAnotherLogin: a code injected into a login
// it was not issued for fails PKCE (and the nonce).
func TestFinishLoginRejectsCodeOfAnotherLogin(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	victimURL, victimCookie := start(t, p, "")
	victimLoc := browser(t, victimURL)
	attackerURL, _ := start(t, p, "")
	attackerLoc := browser(t, attackerURL)

	injected := *victimLoc
	q := injected.Query()
	q.Set("code", attackerLoc.Query().Get("code"))
	injected.RawQuery = q.Encode()
	if _, _, _, err := callback(p, &injected, victimCookie); !errors.Is(err, ErrVerification) {
		t.Fatalf("FinishLogin = %v, want ErrVerification", err)
	}
}

func TestFinishLoginCodeIsSingleUse(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	loc := browser(t, authURL)
	if _, _, _, err := callback(p, loc, cookie); err != nil {
		t.Fatalf("first callback: %v", err)
	}
	if _, _, _, err := callback(p, loc, cookie); !errors.Is(err, ErrVerification) {
		t.Fatalf("replayed callback = %v, want ErrVerification", err)
	}
}

func TestFinishLoginProviderError(t *testing.T) {
	srv := startOP(t, nil)
	p := newProvider(t, srv.URL, ClaimMap{})
	authURL, cookie := start(t, p, "")
	u, _ := url.Parse(authURL)
	loc, _ := url.Parse(testRedirect + "?error=access_denied&error_description=%3Cscript%3E&state=" + url.QueryEscape(u.Query().Get("state")))
	_, _, _, err := callback(p, loc, cookie)
	if !errors.Is(err, ErrProviderError) || !strings.Contains(err.Error(), "access_denied") || strings.Contains(err.Error(), "script") {
		t.Fatalf("FinishLogin = %v, want ErrProviderError naming the code only", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"http issuer not on loopback": {Issuer: "http://idp.example", ClientID: "c", RedirectURL: testRedirect},
		"no issuer":                   {ClientID: "c", RedirectURL: testRedirect},
		"no client id":                {Issuer: "https://idp.example", RedirectURL: testRedirect},
		"relative redirect":           {Issuer: "https://idp.example", ClientID: "c", RedirectURL: "/callback"},
		"short cookie key":            {Issuer: "https://idp.example", ClientID: "c", RedirectURL: testRedirect, CookieKey: []byte("short")},
	} {
		if _, err := New(t.Context(), o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestMapIdentity(t *testing.T) {
	def := ClaimMap{}.withDefaults()
	tests := []struct {
		name   string
		claims string
		m      ClaimMap
		want   *Identity
	}{
		{"all defaults", `{"sub":"u1","email":"a@x","email_verified":true,"groups":["g1","g2"],"name":"A"}`, def,
			&Identity{Issuer: "I", Subject: "u1", Email: "a@x", Groups: []string{"g1", "g2"}, Name: "A"}},
		{"unverified email dropped", `{"sub":"u1","email":"a@x","email_verified":false}`, def,
			&Identity{Issuer: "I", Subject: "u1"}},
		{"email without verification flag kept", `{"sub":"u1","email":"a@x"}`, def,
			&Identity{Issuer: "I", Subject: "u1", Email: "a@x"}},
		{"custom email claim ignores email_verified", `{"sub":"u1","upn":"a@corp","email_verified":false}`, ClaimMap{Email: "upn"}.withDefaults(),
			&Identity{Issuer: "I", Subject: "u1", Email: "a@corp"}},
		{"non-string groups skipped", `{"sub":"u1","groups":["g1",7,null,"",{"x":1}]}`, def,
			&Identity{Issuer: "I", Subject: "u1", Groups: []string{"g1"}}},
		{"groups of wrong type ignored", `{"sub":"u1","groups":{"g":1}}`, def,
			&Identity{Issuer: "I", Subject: "u1"}},
		{"custom user claim", `{"sub":"u1","oid":"object-9"}`, ClaimMap{User: "oid"}.withDefaults(),
			&Identity{Issuer: "I", Subject: "object-9"}},
		{"exact dotted name wins over path", `{"sub":"u1","a.b":["exact"],"a":{"b":["path"]}}`, ClaimMap{Groups: "a.b"}.withDefaults(),
			&Identity{Issuer: "I", Subject: "u1", Groups: []string{"exact"}}},
	}
	for _, tt := range tests {
		var c map[string]any
		if err := json.Unmarshal([]byte(tt.claims), &c); err != nil {
			t.Fatal(err)
		}
		got, err := mapIdentity("I", c, tt.m)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	for _, claims := range []string{`{}`, `{"sub":""}`, `{"sub":7}`} {
		var c map[string]any
		_ = json.Unmarshal([]byte(claims), &c)
		if _, err := mapIdentity("I", c, def); !errors.Is(err, ErrClaims) {
			t.Errorf("%s: err = %v, want ErrClaims", claims, err)
		}
	}
}
