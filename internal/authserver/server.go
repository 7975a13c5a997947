package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Paths of the endpoints.
const (
	wellKnownAS   = "/.well-known/oauth-authorization-server"
	wellKnownOIDC = "/.well-known/openid-configuration"
	authorizePath = "/authorize"
	tokenPath     = "/oauth/token"
	keysPath      = "/oauth/keys"
	revokePath    = "/oauth/revoke"
	registerPath  = "/register"
	loginPath     = "/login"
	consentPath   = "/consent"
	staticPath    = "/oauth/static/"
)

// noCrypto refuses to encrypt or decrypt. zitadel uses its Crypto for opaque
// bearer tokens and for codes; Mandate issues neither, and with a working
// Crypto zitadel's token checks would also accept any string that decrypts
// to "id:subject" — with an unauthenticated AES-CFB fallback among the
// decrypters it installs by default.
type noCrypto struct{}

var errNoCrypto = errors.New("opaque tokens are not issued")

func (noCrypto) Encrypt(string) (string, error) { return "", errNoCrypto }
func (noCrypto) Decrypt(string) (string, error) { return "", errNoCrypto }

// buildProtocol builds zitadel's provider and the HTTP handlers of the
// protocol endpoints and the metadata.
func (s *Server) buildProtocol() error {
	var key [32]byte
	copy(key[:], randomBytes(32))
	cfg := &op.Config{
		CryptoKey:               key,
		CodeMethodS256:          true,
		AuthMethodPost:          true,
		AuthMethodPrivateKeyJWT: true,
		GrantTypeRefreshToken:   true,
		SupportedScopes:         s.scopes,
	}
	opts := []op.Option{op.WithCrypto(noCrypto{})}
	if strings.HasPrefix(s.issuer, "http://") { // loopback only: checkIssuer
		opts = append(opts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(cfg, &opStorage{s: s}, op.StaticIssuer(s.issuer), opts...)
	if err != nil {
		return fmt.Errorf("oidc provider: %w", err)
	}
	s.provider = provider
	// Only these endpoints are routed; introspection, userinfo, end-session
	// and device authorization stay off.
	endpoints := op.Endpoints{
		Authorization: op.NewEndpoint(authorizePath),
		Token:         op.NewEndpoint(tokenPath),
		Revocation:    op.NewEndpoint(revokePath),
		JwksURI:       op.NewEndpoint(keysPath),
	}
	issuer := op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler
	// zitadel's default CORS policy reflects any origin with credentials;
	// Mandate answers CORS itself, without credentials (publicCORS).
	s.opHTTP = op.RegisterServer(&oauthServer{LegacyServer: op.NewLegacyServer(provider, endpoints), s: s},
		endpoints, op.WithHTTPMiddleware(issuer), op.WithServerCORSOptions(nil))
	s.meta = op.RegisterMetadataServer(&metadataServer{s: s},
		op.WithHTTPMiddleware(issuer), op.WithServerCORSOptions(nil))
	return nil
}

// oauthServer is zitadel's LegacyServer with the grants Mandate serves
// overridden. What stays zitadel's: routing, form decoding, client
// credential parsing, the redirect_uri/scope/response_type checks of
// /authorize, error encoding and error redirects, PKCE verification, token
// exchange's subject-token parsing, revocation and the JWKS.
type oauthServer struct {
	*op.LegacyServer
	s *Server
}

var _ op.ExtendedLegacyServer = (*oauthServer)(nil)

// repeatable are the authorization request parameters that may appear more
// than once (RFC 8707 resource); every other parameter must be single
// (RFC 6749 §3.1), so that a proxy and Mandate cannot read different values.
var repeatable = map[string]bool{"resource": true}

// VerifyAuthRequest finds the client and checks the redirect_uri before
// anything can be redirected to it. Its errors are answered directly,
// never redirected. zitadel's version answers an unknown client with a 500
// and leaves the redirect_uri to a check that matches native clients'
// loopback URIs on any port; this one requires an exact match.
func (o *oauthServer) VerifyAuthRequest(ctx context.Context, r *op.Request[oidc.AuthRequest]) (*op.ClientRequest[oidc.AuthRequest], error) {
	s, d := o.s, r.Data
	for k, v := range r.Form {
		if len(v) > 1 && !repeatable[k] {
			return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("parameter %s is repeated", k)
		}
	}
	if d.ClientID == "" {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("client_id is missing")
	}
	if d.ResponseMode != "" && d.ResponseMode != oidc.ResponseModeQuery {
		// The iss parameter (RFC 9207) is added to the query; a fragment or
		// form_post response would go without it.
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("only response_mode=query is supported")
	}
	a, err := s.agent(ctx, d.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("unknown client").WithParent(err)
	}
	if d.RedirectURI == "" {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is missing")
	}
	if !slices.Contains(a.RedirectURIs, d.RedirectURI) || checkRedirectURI(d.RedirectURI) != nil {
		return nil, oidc.ErrInvalidRequestRedirectURI().WithDescription("redirect_uri is not registered for this client")
	}
	if len(d.Scopes) == 0 {
		// RFC 6749 §3.3 lets the server apply a default; zitadel would
		// refuse an empty scope. The default never includes an explicit
		// scope, even one in the agent's ceiling.
		d.Scopes, _ = s.narrowScopes(nil, s.allowedScopes(a))
	}
	return &op.ClientRequest[oidc.AuthRequest]{Request: r, Client: &client{agent: a, s: s}}, nil
}

// Authorize runs after zitadel validated the redirect_uri, so its errors are
// redirected to the client (with iss, added by the handler). It requires
// PKCE with S256 — zitadel accepts a missing challenge and plain — and an
// RFC 8707 resource, if sent, equal to Mandate's, which zitadel does not
// parse at all.
func (o *oauthServer) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	s, d := o.s, r.Data
	switch {
	case d.RequestParam != "":
		return nil, oidc.ErrRequestNotSupported()
	case d.ResponseType != oidc.ResponseTypeCode:
		return nil, &oidc.Error{ErrorType: "unsupported_response_type", Description: "only response_type=code is supported"}
	case d.CodeChallenge == "" || d.CodeChallengeMethod != oidc.CodeChallengeMethodS256:
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	case !validChallenge(d.CodeChallenge):
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge is not a base64url SHA-256 digest")
	case !validText(d.State) || !validText(d.Nonce):
		return nil, oidc.ErrInvalidRequest().WithDescription("state or nonce is malformed or too long")
	case slices.Contains(d.Prompt, oidc.PromptNone):
		return nil, oidc.ErrInteractionRequired().WithDescription("consent is always asked for")
	}
	if err := s.checkResource(r.Form["resource"]); err != nil {
		return nil, err
	}
	// zitadel keeps openid, profile, email, phone, address and
	// offline_access whatever the client may ask for; Mandate issues only
	// its own scopes.
	d.Scopes = slices.DeleteFunc(slices.Clone(d.Scopes), func(sc string) bool { return !slices.Contains(s.scopes, sc) })
	if len(d.Scopes) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("none of the requested scopes is available to this client")
	}
	req, err := (&opStorage{s: s}).CreateAuthRequest(ctx, d, "")
	if err != nil {
		return nil, s.serverError("create authorization request", err)
	}
	return op.NewRedirect(r.Client.LoginURL(req.GetID())), nil
}

// validChallenge reports whether c is a base64url (no padding) SHA-256
// digest, the only S256 challenge there is.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for _, ch := range c {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}

// validText bounds state and nonce to something every store backend keeps
// unchanged.
func validText(v string) bool {
	return len(v) <= 2048 && utf8.ValidString(v) && !strings.ContainsRune(v, 0)
}

// checkResource enforces RFC 8707: every resource named must be Mandate's
// canonical MCP URL.
func (s *Server) checkResource(resources []string) error {
	for _, r := range resources {
		if r != s.resource {
			return oidc.ErrInvalidTarget().WithDescription("the only resource served is %s", s.resource)
		}
	}
	return nil
}

// serverError logs err for the operator and returns a server_error that
// tells the client nothing more: zitadel would put err's text into
// error_description.
func (s *Server) serverError(what string, err error) error {
	s.log.Error("authserver: "+what, "err", err)
	return oidc.ErrServerError().WithDescription("internal error").WithParent(err)
}

// invalidClient is an invalid_client answered with 401 (RFC 6749 §5.2);
// the token endpoint handler adds the WWW-Authenticate header.
func invalidClient(desc string, parent error) error {
	return op.NewStatusError(oidc.ErrInvalidClient().WithDescription("%s", desc).WithParent(parent), http.StatusUnauthorized)
}

// VerifyClient authenticates the client of a token or revocation request.
// zitadel's version routes every client_credentials request to a
// secret-only check, so private_key_jwt agents could not use that grant;
// this one picks the method from what the agent registered, verifies
// client assertions against the agent's own keys (audience: the issuer or
// the token endpoint) and refuses a replayed assertion.
func (o *oauthServer) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	s, cc := o.s, r.Data
	if cc.ClientAssertion != "" {
		return s.verifyClientAssertion(ctx, cc)
	}
	a, err := s.agent(ctx, cc.ClientID)
	if err != nil {
		return nil, invalidClient("client authentication failed", err)
	}
	switch {
	case a.AuthMethod == authNone || a.AuthMethod == "":
		if cc.ClientSecret != "" {
			return nil, invalidClient("client authentication failed", errors.New("secret sent by a public client"))
		}
	case isSecretMethod(a.AuthMethod):
		if !verifySecret(a, cc.ClientSecret) {
			return nil, invalidClient("client authentication failed", errors.New("wrong client secret"))
		}
	default:
		return nil, invalidClient("client authentication failed", fmt.Errorf("client uses %s", a.AuthMethod))
	}
	return &client{agent: a, s: s}, nil
}

func (s *Server) verifyClientAssertion(ctx context.Context, cc *op.ClientCredentials) (op.Client, error) {
	storage := &opStorage{s: s}
	req, err := op.VerifyJWTAssertion(ctx, cc.ClientAssertion, op.NewJWTProfileVerifier(storage, s.issuer, time.Hour, time.Second))
	if errors.Is(err, oidc.ErrAudience) {
		req, err = op.VerifyJWTAssertion(ctx, cc.ClientAssertion, op.NewJWTProfileVerifier(storage, s.issuer+tokenPath, time.Hour, time.Second))
	}
	if err != nil {
		return nil, invalidClient("client assertion invalid", err)
	}
	if cc.ClientID != "" && cc.ClientID != req.Issuer {
		return nil, invalidClient("client assertion invalid", errors.New("client_id differs from the assertion's issuer"))
	}
	a, err := s.agent(ctx, req.Issuer)
	if err != nil || a.AuthMethod != authPrivateJWT {
		return nil, invalidClient("client assertion invalid", errors.Join(err, errors.New("client does not use private_key_jwt")))
	}
	if req.JWTID == "" {
		return nil, invalidClient("client assertion must carry jti", nil)
	}
	if err := s.clientAssertions.Use(ctx, "client\x00"+a.ID+"\x00"+req.JWTID, req.ExpiresAt.AsTime()); err != nil {
		return nil, invalidClient("client assertion already used", err)
	}
	return &client{agent: a, s: s}, nil
}

// CodeExchange redeems an authorization code. zitadel's version checks PKCE
// only for public clients or when a verifier is sent, ignores RFC 8707 and
// mints through op (typ JWT, no scope claim, an unasked-for ID token); this
// one always requires the S256 verifier and mints Mandate's token.
func (o *oauthServer) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	s, d := o.s, r.Data
	if err := s.checkResource(r.Form["resource"]); err != nil {
		return nil, err
	}
	ar, err := s.store.GetAuthRequestByCode(ctx, d.Code)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
		}
		return nil, s.serverError("look up code", err)
	}
	switch {
	case !ar.Done || ar.UserID == "" || !ar.ExpiresAt.After(s.now()):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	case ar.ClientID != r.Client.GetID():
		return nil, oidc.ErrInvalidGrant().WithDescription("code was issued to another client")
	case d.RedirectURI != ar.RedirectURI:
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	case ar.CodeChallengeMethod != string(oidc.CodeChallengeMethodS256):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	}
	if err := op.AuthorizeCodeChallenge(d.CodeVerifier, &oidc.CodeChallenge{
		Challenge: ar.CodeChallenge, Method: oidc.CodeChallengeMethodS256,
	}); err != nil {
		return nil, err
	}
	// A code is redeemed once: of two concurrent redemptions only one
	// deletes the request.
	if err := s.store.DeleteAuthRequest(ctx, ar.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
		}
		return nil, s.serverError("redeem code", err)
	}
	if _, err := s.activeUser(ctx, ar.UserID); err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("the user can no longer sign in").WithParent(err)
	}
	access, ttl, err := s.mintAccess(ctx, grant{subject: ar.UserID, clientID: ar.ClientID, scopes: ar.Scopes, authTime: ar.AuthTime})
	if err != nil {
		return nil, s.serverError("mint access token", err)
	}
	var refresh string
	if slices.Contains(r.Client.GrantTypes(), oidc.GrantTypeRefreshToken) {
		refresh, err = s.issueRefresh(ctx, store.RefreshToken{
			Family:    newID("rtf_"),
			ClientID:  ar.ClientID,
			UserID:    ar.UserID,
			Scopes:    ar.Scopes,
			Audience:  []string{s.resource},
			AuthTime:  ar.AuthTime,
			AMR:       []string{"pwd"},
			ExpiresAt: s.now().Add(s.opts.RefreshTTL),
		})
		if err != nil {
			return nil, s.serverError("issue refresh token", err)
		}
	}
	return noStore(tokenResponse(access, ttl, refresh, ar.Scopes)), nil
}

// RefreshToken rotates a refresh token. zitadel's version has no reuse
// detection; this one spends the token atomically (store.UseRefreshToken)
// and answers a token presented twice by revoking its whole family — the
// thief's copy and the rightful client's alike — since one of them stole it.
func (o *oauthServer) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	s, d := o.s, r.Data
	if err := s.checkResource(r.Form["resource"]); err != nil {
		return nil, err
	}
	id := tokenHash(d.RefreshToken)
	rt, err := s.store.GetRefreshToken(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
		}
		return nil, s.serverError("look up refresh token", err)
	}
	if !rt.UsedAt.IsZero() || !rt.RevokedAt.IsZero() || rt.ClientID != r.Client.GetID() {
		return nil, s.revokeFamily(ctx, rt, "refresh token reused or presented by another client")
	}
	scopes := rt.Scopes
	if len(d.Scopes) > 0 {
		for _, sc := range d.Scopes {
			if !slices.Contains(rt.Scopes, sc) {
				return nil, oidc.ErrInvalidScope().WithDescription("scope exceeds the original grant")
			}
		}
		scopes = slices.Compact(slices.Clone(d.Scopes))
	}
	if _, err := s.activeUser(ctx, rt.UserID); err != nil {
		return nil, s.revokeFamily(ctx, rt, "user can no longer sign in")
	}
	used, err := s.store.UseRefreshToken(ctx, id, s.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, s.revokeFamily(ctx, rt, "refresh token reused")
	case errors.Is(err, store.ErrNotFound):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
	case err != nil:
		return nil, s.serverError("spend refresh token", err)
	}
	access, ttl, err := s.mintAccess(ctx, grant{subject: used.UserID, clientID: used.ClientID, scopes: scopes, authTime: used.AuthTime})
	if err != nil {
		return nil, s.serverError("mint access token", err)
	}
	next := used
	next.UsedAt, next.RevokedAt = time.Time{}, time.Time{}
	refresh, err := s.issueRefresh(ctx, next)
	if err != nil {
		return nil, s.serverError("issue refresh token", err)
	}
	return noStore(tokenResponse(access, ttl, refresh, scopes)), nil
}

// revokeFamily revokes rt's family and returns the invalid_grant to answer.
func (s *Server) revokeFamily(ctx context.Context, rt store.RefreshToken, why string) error {
	s.log.Warn("authserver: revoking refresh token family", "reason", why, "client_id", rt.ClientID, "user", rt.UserID)
	if err := s.store.RevokeTokenFamily(ctx, rt.Family, s.now()); err != nil {
		return s.serverError("revoke refresh token family", err)
	}
	return oidc.ErrInvalidGrant().WithDescription("invalid refresh token")
}

// ClientCredentialsExchange issues an agent a token for itself: sub is the
// client id and no user is involved. zitadel has already refused public
// clients and clients without the grant.
func (o *oauthServer) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	s := o.s
	if err := s.checkResource(r.Form["resource"]); err != nil {
		return nil, err
	}
	a := r.Client.(*client).agent
	scopes, err := s.narrowScopes(r.Data.Scope, s.allowedScopes(a))
	if err != nil {
		return nil, err
	}
	access, ttl, err := s.mintAccess(ctx, grant{subject: a.ID, clientID: a.ID, scopes: scopes})
	if err != nil {
		return nil, s.serverError("mint access token", err)
	}
	return noStore(tokenResponse(access, ttl, "", scopes)), nil
}

// narrowScopes is narrowScopes for this server: a request that names no
// scope gets the available ones minus the explicit scopes, which must
// always be asked for by name.
func (s *Server) narrowScopes(requested, available []string) ([]string, error) {
	if len(requested) == 0 {
		available = slices.DeleteFunc(slices.Clone(available), func(sc string) bool { return slices.Contains(s.opts.ExplicitScopes, sc) })
	}
	return narrowScopes(requested, available)
}

// narrowScopes returns requested if every scope in it is available, or all
// available scopes when none is requested.
func narrowScopes(requested, available []string) ([]string, error) {
	if len(requested) == 0 {
		if len(available) == 0 {
			return nil, oidc.ErrInvalidScope().WithDescription("no scope is available to this client")
		}
		return available, nil
	}
	for _, sc := range requested {
		if !slices.Contains(available, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not available to this client", sc)
		}
	}
	return slices.Compact(slices.Clone(requested)), nil
}

// activeUser returns the user with id if it exists and is not disabled.
func (s *Server) activeUser(ctx context.Context, id string) (store.User, error) {
	u, err := s.store.GetUser(ctx, id)
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		return store.User{}, errors.New("user disabled")
	}
	return u, nil
}

// noStore wraps a token response with the Cache-Control RFC 6749 §5.1
// requires.
func noStore(data any) *op.Response {
	resp := op.NewResponse(data)
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("Pragma", "no-cache")
	return resp
}

// withIss adds the RFC 9207 iss parameter to every redirect this handler
// sends to a client (absolute Location), success or error. zitadel builds
// error redirects without it, so the header is rewritten on the way out.
func withIss(issuer string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&issWriter{ResponseWriter: w, iss: issuer}, r)
	})
}

type issWriter struct {
	http.ResponseWriter
	iss string
}

func (w *issWriter) WriteHeader(code int) {
	if code >= 300 && code < 400 {
		if loc := w.Header().Get("Location"); loc != "" {
			w.Header().Set("Location", addIss(loc, w.iss))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *issWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// addIss adds iss to the query of an absolute URL that lacks it; relative
// redirects (to the login page) are Mandate's own and left alone.
func addIss(loc, iss string) string {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() {
		return loc
	}
	q := u.Query()
	if q.Has("iss") {
		return loc
	}
	q.Set("iss", iss)
	u.RawQuery = q.Encode()
	return u.String()
}
