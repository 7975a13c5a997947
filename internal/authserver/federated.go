package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mandate-mcp/mandate/internal/authserver/federation"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Federated login: the login page offers "Sign in with <provider>" next to
// the password form when Options.Federation is set. The button posts the
// pending authorization request's id, with the page's CSRF token, to
// federatedStartPath, which hands the id to the provider as the login's
// resume value and sends the browser there; the provider sends it back to
// FederationCallbackPath, which maps the verified identity onto a Mandate
// user, starts the same session a password login starts, and continues to
// the consent page of the resumed request.
const (
	// FederationCallbackPath is where the upstream OpenID provider sends
	// the browser back. The provider given as Options.Federation must have
	// Issuer+FederationCallbackPath as its RedirectURL, registered as such
	// at the provider.
	FederationCallbackPath = "/login/federated/callback"
	federatedStartPath     = "/login/federated"
)

// federationLabel is what the login page's button names the provider: the
// host of its issuer.
func federationLabel(p *federation.Provider) string {
	if u, err := url.Parse(p.Issuer()); err == nil && u.Host != "" {
		return u.Host
	}
	return p.Issuer()
}

// handleFederatedStart begins a federated login for the pending request in
// the form. It is a POST carrying the login page's CSRF token, not a link:
// only the login page this browser was shown can send it to the provider,
// so no other site can start a login in the user's name (with a provider
// that signs in silently, a link would take the browser from a third-party
// page to the consent page in one hop), and link scanners and prefetchers
// cannot start logins.
func (s *Server) handleFederatedStart(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
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
	if _, _, err := s.pending(r.Context(), id); err != nil {
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	authURL, err := s.opts.Federation.StartLogin(w, id)
	if err != nil {
		s.log.Error("authserver: start federated login", "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

const (
	federationFailedTitle   = "Sign-in failed"
	federationFailedMessage = "Signing in with your organisation's account did not succeed. Go back to the application and start again."
)

// handleFederatedCallback finishes a federated login. What went wrong is
// logged for the operator; the browser sees only that the sign-in failed,
// since the provider's answer is no business of whoever holds the browser.
// Each callback counts against the login rate limit: it makes Mandate call
// the provider's token endpoint, and a login cookie can be replayed with
// made-up codes.
func (s *Server) handleFederatedCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	if !s.loginLimit.allow(remoteAddr(r)) {
		s.errorPage(w, http.StatusTooManyRequests, "Too many attempts", "Wait a minute and try again.")
		return
	}
	ctx := r.Context()
	ident, resume, err := s.opts.Federation.FinishLogin(w, r)
	if err != nil {
		s.log.Warn("authserver: federated login failed", "err", err)
		_ = s.loginEvent(ctx, Login{Method: LoginFederated, Remote: remoteAddr(r)})
		if errors.Is(err, federation.ErrLoginState) {
			s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
			return
		}
		s.errorPage(w, http.StatusForbidden, federationFailedTitle, federationFailedMessage)
		return
	}
	ar, _, err := s.pending(ctx, resume)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, staleLinkTitle, staleLinkMessage)
		return
	}
	u, err := s.federatedUser(ctx, ident)
	switch {
	case errors.Is(err, errUserDisabled):
		s.log.Warn("authserver: disabled user refused", "user", u.ID, "issuer", ident.Issuer)
		_ = s.loginEvent(ctx, Login{Method: LoginFederated, User: u, Issuer: ident.Issuer, Remote: remoteAddr(r)})
		s.errorPage(w, http.StatusForbidden, federationFailedTitle, "Your account is disabled in Mandate. Ask your administrator.")
		return
	case err != nil:
		s.log.Error("authserver: federated user", "issuer", ident.Issuer, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	if err := s.loginEvent(ctx, Login{OK: true, Method: LoginFederated, User: u, Issuer: ident.Issuer, Remote: remoteAddr(r)}); err != nil {
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
	http.Redirect(w, r, consentPath+"?id="+url.QueryEscape(ar.ID), http.StatusSeeOther)
}

// errUserDisabled refuses a federated login of a user an operator
// disabled: the provider vouches for who the user is, Mandate decides
// whether they may sign in.
var errUserDisabled = errors.New("user disabled")

// federatedUser returns the Mandate user of a provider-verified identity,
// creating it at the first login. Users are found by (issuer, subject)
// alone, never by email or username: an address or a name that happens to
// match an existing account — a local one, say admin's — must not sign in
// as it. The provider is the source of truth for Email and Groups, so every
// login copies them, and a failure to store them fails the login rather
// than let stale groups pass a policy that the provider's would not. A
// disabled user is returned, without changes, with errUserDisabled.
func (s *Server) federatedUser(ctx context.Context, id *federation.Identity) (store.User, error) {
	u, err := s.store.GetUserBySubject(ctx, id.Issuer, id.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.createFederatedUser(ctx, id)
	case err != nil:
		return store.User{}, fmt.Errorf("look up federated user: %w", err)
	}
	return s.refreshFederatedUser(ctx, u, id)
}

func (s *Server) refreshFederatedUser(ctx context.Context, u store.User, id *federation.Identity) (store.User, error) {
	if u.Disabled {
		return u, errUserDisabled
	}
	u.Email, u.Groups, u.LastLogin = id.Email, slices.Clone(id.Groups), s.now()
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return store.User{}, fmt.Errorf("update federated user %s: %w", u.ID, err)
	}
	return u, nil
}

// usernameTries bounds the usernames tried for a new federated user.
const usernameTries = 12

// createFederatedUser adds the user of an identity seen for the first
// time, under the first free username derived from it. A conflict can also
// mean a concurrent first login of the same identity (two tabs, two
// replicas) created it meanwhile; that user is then used.
func (s *Server) createFederatedUser(ctx context.Context, id *federation.Identity) (store.User, error) {
	base := usernameBase(id)
	now := s.now()
	for n := 1; n <= usernameTries; n++ {
		u := store.User{
			ID:        newID(""),
			Username:  usernameCandidate(base, n),
			Email:     id.Email,
			Groups:    slices.Clone(id.Groups),
			Issuer:    id.Issuer,
			Subject:   id.Subject,
			CreatedAt: now,
			LastLogin: now,
		}
		err := s.store.CreateUser(ctx, u)
		if err == nil {
			s.log.Info("authserver: federated user created", "user", u.ID, "username", u.Username, "issuer", id.Issuer)
			return u, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("create federated user: %w", err)
		}
		if existing, err := s.store.GetUserBySubject(ctx, id.Issuer, id.Subject); err == nil {
			return s.refreshFederatedUser(ctx, existing, id)
		}
	}
	return store.User{}, fmt.Errorf("create federated user: no free username like %q", base)
}

// maxUsername is the longest username, as for local accounts.
const maxUsername = 64

// usernameBase derives a new federated user's username from the email the
// provider vouched for, or else from the subject, keeping to the alphabet
// of local usernames (A-Z a-z 0-9 . _ @ + -, starting with a letter or
// digit) so that every username reads and types the same way.
func usernameBase(id *federation.Identity) string {
	src := strings.ToLower(id.Email)
	if src == "" {
		src = id.Subject
	}
	var b strings.Builder
	for _, r := range src {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._@+-", r):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "._@+-")
	if name == "" {
		name = "user"
	}
	return truncate(name, maxUsername)
}

// usernameCandidate is the n-th username to try: base, then base-2 to
// base-9, then base with a random suffix, each cut to maxUsername.
func usernameCandidate(base string, n int) string {
	var suffix string
	switch {
	case n <= 1:
		return base
	case n < 10:
		suffix = "-" + strconv.Itoa(n)
	default:
		suffix = "-" + newID("")[:8]
	}
	return truncate(base, maxUsername-len(suffix)) + suffix
}

// truncate cuts an ASCII string to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
