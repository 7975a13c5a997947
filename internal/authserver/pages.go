package authserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mandate-mcp/mandate/internal/loopback"
	"github.com/mandate-mcp/mandate/internal/store"
)

//go:embed templates
var templatesFS embed.FS

func parsePages() (*template.Template, error) {
	return template.ParseFS(templatesFS, "templates/*.html")
}

// routes is the mux behind Handler. zitadel's handler gets only the paths
// Mandate serves: its health, discovery and callback routes stay unrouted.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	meta := publicCORS(s.meta)
	mux.Handle(wellKnownAS, meta)
	mux.Handle(wellKnownOIDC, meta)
	mux.Handle(authorizePath, noCache(withIss(s.issuer, s.opHTTP)))
	mux.Handle(tokenPath, publicCORS(basicChallenge(s.opHTTP)))
	mux.Handle(keysPath, publicCORS(s.opHTTP))
	mux.Handle(revokePath, publicCORS(basicChallenge(s.opHTTP)))
	mux.Handle(registerPath, publicCORS(http.HandlerFunc(s.handleRegister)))
	mux.HandleFunc(loginPath, s.handleLogin)
	mux.HandleFunc(consentPath, s.handleConsent)
	if s.opts.Federation != nil {
		mux.HandleFunc(federatedStartPath, s.handleFederatedStart)
		mux.HandleFunc(FederationCallbackPath, s.handleFederatedCallback)
	}
	static, err := fs.Sub(templatesFS, "templates")
	if err != nil {
		panic(err) // the embedded directory exists by construction
	}
	mux.Handle("GET "+staticPath+"mandate.css", http.StripPrefix(staticPath, http.FileServerFS(static)))
	return mux
}

// securityHeaders sets the headers every response of the server carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// No page of the authorization server may be framed: a framed
		// consent page could be clickjacked into "Allow".
		h.Set("Content-Security-Policy", "frame-ancestors 'none'; default-src 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// The pages' URLs carry authorization request ids.
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func noCache(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// publicCORS lets browser-based MCP clients read the metadata, keys and
// token responses from any origin, without credentials: these endpoints
// authenticate by what the request carries, never by cookies.
func publicCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
				w.Header().Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// basicChallenge adds the WWW-Authenticate header RFC 6749 §5.2 asks for
// on a 401 from the token endpoint; zitadel's error writer has no way to
// set it.
func basicChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&challengeWriter{ResponseWriter: w}, r)
	})
}

type challengeWriter struct{ http.ResponseWriter }

func (w *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mandate"`)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *challengeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// render writes a page; a template failure becomes a plain 500.
func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("authserver: render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, "error", struct{ Title, Message string }{title, message})
}

const (
	staleLinkTitle   = "This sign-in link is no longer valid"
	staleLinkMessage = "It has expired or was already used. Go back to the application and start again."
	loginPerMinute   = 30
	maxFormBytes     = 16 << 10
)

// Cookie names; with an https issuer they carry the __Host- prefix, which
// the browser honours only for Secure, host-only, Path=/ cookies, so no
// sibling subdomain can plant them.
func (s *Server) cookieName(base string) string {
	if s.secure {
		return "__Host-" + base
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName(name),
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(s.cookieName(name))
	if err != nil {
		return ""
	}
	return c.Value
}

// sealJSON and openJSON carry small records through the browser, sealed so
// that it can neither read nor forge them.
func (s *Server) sealJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sealed, err := s.opts.Sealer.Seal(b)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (s *Server) openJSON(value string, v any) error {
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return errUnsealable
	}
	b, err := s.opts.Sealer.Open(sealed)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// CSRF protection is a double submit bound by the sealer: the browser holds
// a random HttpOnly cookie, and each form carries a sealed token naming the
// form's purpose, the authorization request and a hash of that cookie. A
// page on another site can make the browser send the cookie but can neither
// read it nor mint a token that matches it.
const csrfCookie = "mandate_csrf"

type csrfToken struct {
	Purpose string `json:"p"`
	Request string `json:"r"`
	Cookie  string `json:"c"`
	Expiry  int64  `json:"e"`
}

func (s *Server) csrfFor(w http.ResponseWriter, r *http.Request, purpose, id string) (string, error) {
	c := s.cookie(r, csrfCookie)
	if len(c) < 32 {
		c = randomToken()
		s.setCookie(w, csrfCookie, c, 0)
	}
	return s.sealJSON(csrfToken{Purpose: purpose, Request: id, Cookie: hashHex(c), Expiry: s.now().Add(authRequestTTL).Unix()})
}

func (s *Server) csrfOK(r *http.Request, purpose, id string) bool {
	c := s.cookie(r, csrfCookie)
	var t csrfToken
	if c == "" || s.openJSON(r.PostForm.Get("csrf"), &t) != nil {
		return false
	}
	return t.Purpose == purpose && t.Request == id && t.Expiry > s.now().Unix() &&
		subtle.ConstantTimeCompare([]byte(t.Cookie), []byte(hashHex(c))) == 1
}

func hashHex(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// A session records a login so later authorizations in the same browser go
// straight to consent. Consent itself is asked every time.
const sessionCookie = "mandate_session"

type session struct {
	User   string `json:"u"`
	Expiry int64  `json:"e"`
}

// sessionUser returns the active user of the browser's session, if any.
func (s *Server) sessionUser(ctx context.Context, r *http.Request) (store.User, bool) {
	var sess session
	if v := s.cookie(r, sessionCookie); v == "" || s.openJSON(v, &sess) != nil || sess.Expiry <= s.now().Unix() {
		return store.User{}, false
	}
	u, err := s.activeUser(ctx, sess.User)
	return u, err == nil
}

func (s *Server) startSession(w http.ResponseWriter, u store.User) error {
	v, err := s.sealJSON(session{User: u.ID, Expiry: s.now().Add(sessionTTL).Unix()})
	if err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, v, sessionTTL)
	return nil
}

// pending returns an authorization request still waiting for the user, and
// its agent.
func (s *Server) pending(ctx context.Context, id string) (store.AuthRequest, store.Agent, error) {
	if id == "" {
		return store.AuthRequest{}, store.Agent{}, errors.New("no authorization request id")
	}
	ar, err := s.liveAuthRequest(ctx, id)
	if err != nil {
		return store.AuthRequest{}, store.Agent{}, err
	}
	if ar.Done {
		return store.AuthRequest{}, store.Agent{}, errors.New("authorization request already decided")
	}
	a, err := s.agent(ctx, ar.ClientID)
	if err != nil {
		return store.AuthRequest{}, store.Agent{}, err
	}
	return ar, a, nil
}

type loginPage struct {
	ID, CSRF, ClientName, Username, Error string
	Federation                            string // the provider's button label; empty without one
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.loginForm(w, r)
	case http.MethodPost:
		s.loginSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
	}
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	ar, a, err := s.pending(ctx, id)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	if u, ok := s.sessionUser(ctx, r); ok {
		if err := s.bindUser(ctx, ar, u); err != nil {
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
			return
		}
		http.Redirect(w, r, consentPath+"?id="+url.QueryEscape(id), http.StatusSeeOther)
		return
	}
	s.showLogin(w, r, http.StatusOK, loginPage{ID: id, ClientName: displayName(a)})
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, p loginPage) {
	csrf, err := s.csrfFor(w, r, "login", p.ID)
	if err != nil {
		s.log.Error("authserver: csrf token", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	p.CSRF, p.Federation = csrf, s.fedLabel
	s.render(w, status, "login", p)
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	id := r.PostForm.Get("id")
	if !s.csrfOK(r, "login", id) {
		s.errorPage(w, http.StatusForbidden, "Request refused", "The form expired or did not come from this page. Go back, reload and try again.")
		return
	}
	if !s.loginLimit.allow(remoteAddr(r)) {
		s.errorPage(w, http.StatusTooManyRequests, "Too many attempts", "Wait a minute and try again.")
		return
	}
	ar, a, err := s.pending(ctx, id)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	username := r.PostForm.Get("username")
	u, ok := s.authenticate(ctx, username, r.PostForm.Get("password"))
	if !ok {
		_ = s.loginEvent(ctx, Login{Method: LoginPassword, Username: username, Remote: remoteAddr(r)})
		s.showLogin(w, r, http.StatusUnauthorized, loginPage{
			ID: id, ClientName: displayName(a), Username: username, Error: "Wrong username or password.",
		})
		return
	}
	if err := s.loginEvent(ctx, Login{OK: true, Method: LoginPassword, User: u, Username: username, Remote: remoteAddr(r)}); err != nil {
		s.errorPage(w, http.StatusServiceUnavailable, "Sign-in unavailable", "Mandate could not record the sign-in. Try again later.")
		return
	}
	if err := s.bindUser(ctx, ar, u); err != nil {
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	if err := s.startSession(w, u); err != nil {
		s.log.Error("authserver: start session", "err", err)
	}
	u.LastLogin = s.now()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		s.log.Warn("authserver: record last login", "user", u.ID, "err", err)
	}
	http.Redirect(w, r, consentPath+"?id="+url.QueryEscape(id), http.StatusSeeOther)
}

// authenticate checks a local user's password. An unknown, federated or
// disabled user costs the same hash as a wrong password, so timing tells
// nothing about which usernames exist.
func (s *Server) authenticate(ctx context.Context, username, password string) (store.User, bool) {
	u, err := s.store.GetUserByUsername(ctx, username)
	if err != nil || u.PasswordHash == "" {
		verifyPassword(dummyHash(), password)
		return store.User{}, false
	}
	if !verifyPassword(u.PasswordHash, password) || u.Disabled {
		return store.User{}, false
	}
	return u, true
}

// bindUser records who is deciding an authorization request. The request
// is not consented yet: no code exists until the consent page's Allow.
func (s *Server) bindUser(ctx context.Context, ar store.AuthRequest, u store.User) error {
	ar.UserID, ar.AuthTime = u.ID, s.now()
	if err := s.store.PutAuthRequest(ctx, ar); err != nil {
		s.log.Error("authserver: bind user to authorization request", "err", err)
		return err
	}
	return nil
}

type consentPage struct {
	ID, CSRF, Username                              string
	ClientName, ClientID, Registration, RedirectURI string
	RedirectHost                                    string
	NameUnverified, Loopback                        bool
	Scopes                                          []scopeLine
}

type scopeLine struct{ Name, Description string }

var scopeDescriptions = map[string]string{
	"mcp:tools":     "— see and call the tools of the MCP servers behind Mandate",
	"mcp:prompts":   "— see and use their prompts",
	"mcp:resources": "— see and read their resources",
}

func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.consentForm(w, r)
	case http.MethodPost:
		s.consentSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
	}
}

// decider returns the pending request and agent if the browser's session
// is the user who logged in for it.
func (s *Server) decider(ctx context.Context, r *http.Request, id string) (store.AuthRequest, store.Agent, store.User, error) {
	ar, a, err := s.pending(ctx, id)
	if err != nil {
		return ar, a, store.User{}, err
	}
	u, ok := s.sessionUser(ctx, r)
	if !ok || ar.UserID == "" || u.ID != ar.UserID {
		return ar, a, u, errNotSignedIn
	}
	return ar, a, u, nil
}

var errNotSignedIn = errors.New("not signed in for this request")

func (s *Server) consentForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	ar, a, u, err := s.decider(ctx, r, id)
	switch {
	case errors.Is(err, errNotSignedIn):
		http.Redirect(w, r, loginPath+"?id="+url.QueryEscape(id), http.StatusSeeOther)
		return
	case err != nil:
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	csrf, err := s.csrfFor(w, r, "consent", id)
	if err != nil {
		s.log.Error("authserver: csrf token", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	p := consentPage{
		ID: id, CSRF: csrf, Username: u.Username,
		ClientName: displayName(a), ClientID: a.ID, Registration: registrationText(a),
		NameUnverified: a.Registration != store.RegistrationConfig,
		RedirectURI:    ar.RedirectURI,
	}
	if ru, err := url.Parse(ar.RedirectURI); err == nil {
		p.RedirectHost = ru.Host
		if ru.Scheme != "https" && ru.Scheme != "http" {
			p.RedirectHost = ru.Scheme + "://" + ru.Host
		}
		p.Loopback = loopback.Host(ru.Hostname())
	}
	for _, sc := range ar.Scopes {
		p.Scopes = append(p.Scopes, scopeLine{Name: sc, Description: scopeDescriptions[sc]})
	}
	s.render(w, http.StatusOK, "consent", p)
}

func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	id := r.PostForm.Get("id")
	if !s.csrfOK(r, "consent", id) {
		s.errorPage(w, http.StatusForbidden, "Request refused", "The form expired or did not come from this page. Go back, reload and try again.")
		return
	}
	ar, a, u, err := s.decider(ctx, r, id)
	switch {
	case errors.Is(err, errNotSignedIn):
		s.errorPage(w, http.StatusForbidden, "Request refused", "Sign in again to decide on this request.")
		return
	case err != nil:
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	params := url.Values{}
	switch r.PostForm.Get("action") {
	case "deny":
		if err := s.store.DeleteAuthRequest(ctx, ar.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("authserver: delete denied authorization request", "err", err)
		}
		s.log.Info("authserver: consent denied", "user", u.ID, "client_id", a.ID)
		params.Set("error", "access_denied")
		params.Set("error_description", "the user denied the request")
	case "allow":
		ar.Code, ar.Done, ar.ExpiresAt = randomToken(), true, s.now().Add(codeTTL)
		if err := s.store.PutAuthRequest(ctx, ar); err != nil {
			s.log.Error("authserver: issue authorization code", "err", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
			return
		}
		s.log.Info("authserver: consent given", "user", u.ID, "client_id", a.ID, "scopes", ar.Scopes)
		params.Set("code", ar.Code)
	default:
		s.errorPage(w, http.StatusBadRequest, "Bad request", "Choose Allow or Deny.")
		return
	}
	if ar.State != "" {
		params.Set("state", ar.State)
	}
	params.Set("iss", s.issuer)
	http.Redirect(w, r, withParams(ar.RedirectURI, params), http.StatusSeeOther)
}

// withParams adds params to the query of the (registered, absolute)
// redirect URI, keeping the query it already has.
func withParams(redirectURI string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// displayName is the agent's name, or its client id when it gave none.
func displayName(a store.Agent) string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}

func registrationText(a store.Agent) string {
	switch a.Registration {
	case store.RegistrationConfig:
		return "Pre-registered by your Mandate administrator."
	case store.RegistrationCIMD:
		return "Identified by the metadata document at its client ID URL; its name comes from that document."
	case store.RegistrationDCR:
		return "Registered itself with Mandate (dynamic registration); its name is its own claim."
	default:
		return fmt.Sprintf("Unknown (%s).", a.Registration)
	}
}

// remoteAddr is the TCP peer's address, the key of the rate limits.
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
