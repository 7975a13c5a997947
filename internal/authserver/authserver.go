// Package authserver is Mandate's embedded OAuth 2.1 authorization server.
// It gives every agent (MCP client) an identity of its own — registered by
// configuration, by RFC 7591 dynamic registration or by a Client ID Metadata
// Document URL — and makes every human log in and consent before an agent
// acts for them. Agents then call /mcp with the access tokens issued here:
// RS256 JWTs (RFC 9068, typ at+jwt) whose only audience is Mandate's
// canonical MCP URL.
//
// The protocol machinery (request parsing, client authentication, redirect
// URI checks, error encoding, RFC 8414/OpenID metadata routing, JWKS) is
// github.com/zitadel/oidc/v3/pkg/op; this package supplies the storage,
// the policy and the pieces that library lacks or gets wrong for Mandate
// (see the comments at each override in server.go). Login and consent are
// server-rendered pages, and nothing here trusts what a client says about
// itself beyond what it registered.
//
// Handler serves, on Mandate's single listener, the paths listed by Paths:
//
//	/.well-known/oauth-authorization-server   RFC 8414 metadata
//	/.well-known/openid-configuration         OpenID Connect discovery
//	/authorize                                authorization endpoint (code + PKCE S256 only)
//	/oauth/token                              token endpoint
//	/oauth/keys                               JWKS
//	/oauth/revoke                             RFC 7009 revocation
//	/register                                 RFC 7591 dynamic client registration
//	/login, /consent                          the human's pages
//	/login/federated, /login/federated/callback
//	                                          sign-in through the upstream OpenID
//	                                          provider, when Options.Federation is set
//	/oauth/static/                            the pages' stylesheet
package authserver

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/authserver/assertion"
	"github.com/mandate-mcp/mandate/internal/authserver/federation"
	"github.com/mandate-mcp/mandate/internal/loopback"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/users"
)

// AuthStore is the slice of the storage contract the authorization server
// uses: its users, its agents and its own OAuth state.
type AuthStore interface {
	CreateUser(ctx context.Context, u store.User) error
	UpdateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByUsername(ctx context.Context, username string) (store.User, error)
	GetUserBySubject(ctx context.Context, issuer, subject string) (store.User, error)
	CountUsers(ctx context.Context) (int, error)

	PutAgent(ctx context.Context, a store.Agent) error
	GetAgent(ctx context.Context, id string) (store.Agent, error)

	PutAuthRequest(ctx context.Context, r store.AuthRequest) error
	GetAuthRequest(ctx context.Context, id string) (store.AuthRequest, error)
	GetAuthRequestByCode(ctx context.Context, code string) (store.AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error
	DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error)

	PutRefreshToken(ctx context.Context, t store.RefreshToken) error
	GetRefreshToken(ctx context.Context, id string) (store.RefreshToken, error)
	UseRefreshToken(ctx context.Context, id string, now time.Time) (store.RefreshToken, error)
	RevokeTokenFamily(ctx context.Context, family string, now time.Time) error

	PutSigningKey(ctx context.Context, k store.SigningKey) error
	ListSigningKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error)
	DeleteSigningKey(ctx context.Context, id string) error
}

var _ AuthStore = store.Store(nil)

// DCR configures RFC 7591 dynamic client registration at /register.
type DCR struct {
	// Enabled switches registration on; when false /register answers 403
	// and the metadata names no registration_endpoint.
	Enabled bool
	// PerMinute caps registrations per remote address; zero or less means
	// 10. The address is the TCP peer: behind a reverse proxy every client
	// shares the proxy's budget.
	PerMinute int
}

// Options configures a Server. Store, Issuer and Sealer are required; every
// other zero value takes the default its comment names.
type Options struct {
	// Issuer is Mandate's public base URL (scheme://host[:port], no path),
	// e.g. https://mandate.example.com. It must be https, except that plain
	// http is accepted for a loopback host (127.0.0.0/8, ::1, localhost).
	Issuer string
	// Resource is the canonical MCP URL, the only audience tokens are issued
	// for and the only accepted RFC 8707 resource. Default Issuer+"/mcp".
	Resource string
	// Store keeps users, agents and OAuth state.
	Store AuthStore
	// AccessTTL is the access-token lifetime (default 5m).
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh-token family, counted from
	// the login: rotation does not extend it (default 720h).
	RefreshTTL time.Duration
	// KeyRotation is how long a signing key signs before a new one takes
	// over (default 720h). A retired key stays published for AccessTTL more.
	KeyRotation time.Duration
	// Sealer encrypts private keys at rest and the pages' cookies and CSRF
	// tokens; see NewFileSealer.
	Sealer Sealer
	// DCR configures dynamic client registration (default off).
	DCR DCR
	// ScopesSupported are the scopes agents may ask for (default
	// mcp:tools mcp:prompts mcp:resources). Anything else is dropped from
	// requests.
	ScopesSupported []string
	// ExplicitScopes are supported scopes that are never granted by default
	// and that self-registered agents (DCR, CIMD) can never hold: only an
	// agent pre-registered with the scope in its ceiling may ask for it,
	// and a human must still consent. mandate:admin is one.
	ExplicitScopes []string
	// TokenExchangeClients are the client ids allowed to use RFC 8693 token
	// exchange (default none: the grant is off).
	TokenExchangeClients []string
	// ResolveURLClient, if set, resolves a URL-formatted client_id (a Client
	// ID Metadata Document) to an agent; the result is persisted, keeping
	// an operator's suspension and the first-seen times of an agent already
	// known. Nil switches CIMD off and the metadata says so.
	ResolveURLClient func(ctx context.Context, clientID string) (store.Agent, error)
	// FetchJWKS, if set, fetches a private_key_jwt agent's JWKSURL; it must
	// guard against SSRF. Nil means a plain HTTP fetch (5s, 64 KiB) that is
	// used only for pre-registered agents, whose URL an operator wrote; other
	// agents must then carry their keys inline.
	FetchJWKS func(ctx context.Context, url string) ([]byte, error)
	// Assertions, if set, validates identity assertion grants (ID-JAG,
	// enterprise-managed authorization) at the token endpoint's JWT-bearer
	// grant; nil switches that grant off.
	Assertions AssertionValidator
	// Federation, if set, lets humans sign in through the organisation's
	// OpenID provider as well as with a local password: the login page
	// offers "Sign in with <issuer host>". Its RedirectURL must be
	// Issuer+FederationCallbackPath, and its CookieKey shared by every
	// replica (FileSealer.DeriveKey). A user is created at their first
	// federated login, and their email and groups follow the provider's at
	// every login. Nil means local accounts only.
	Federation *federation.Provider
	// Events, if set, hears of sign-ins and of agents stored for the first
	// time, for the audit log; see Events for what its errors refuse. Nil
	// tells nobody.
	Events Events
	// Log receives the server's own diagnostics (default: discarded).
	// zitadel/oidc logs through slog's default logger regardless.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Defaults for zero Options fields.
const (
	DefaultAccessTTL   = 5 * time.Minute
	DefaultRefreshTTL  = 720 * time.Hour
	DefaultKeyRotation = 720 * time.Hour
	defaultDCRPerMin   = 10
)

// defaultScopes are the scopes supported when Options.ScopesSupported is
// empty.
var defaultScopes = []string{"mcp:tools", "mcp:prompts", "mcp:resources"}

// Lifetimes of the short-lived browser-side state.
const (
	authRequestTTL = 10 * time.Minute // from /authorize to consent
	codeTTL        = time.Minute      // from consent to the code's redemption
	sessionTTL     = 8 * time.Hour    // a login, reused by later authorizations
	janitorEvery   = 5 * time.Minute
)

// Server is the embedded authorization server.
type Server struct {
	opts     Options
	store    AuthStore
	log      *slog.Logger
	now      func() time.Time
	issuer   string
	resource string
	scopes   []string
	secure   bool // https issuer: Secure, __Host- cookies

	keys     *keyring
	provider *op.Provider
	opHTTP   http.Handler
	meta     http.Handler
	handler  http.Handler
	pages    *template.Template
	fedLabel string // the login page's name for Options.Federation

	dcrLimit         *limiter
	loginLimit       *limiter
	clientAssertions *assertion.MemoryReplayCache // jti of private_key_jwt client assertions
	jwks             *jwksCache

	stop     context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// New builds the server and makes sure a signing key exists (the first
// start creates one). Close stops its background cleanup.
func New(ctx context.Context, opts Options) (*Server, error) {
	if err := applyDefaults(&opts); err != nil {
		return nil, err
	}
	s := &Server{
		opts:             opts,
		store:            opts.Store,
		log:              opts.Log,
		now:              opts.Now,
		issuer:           opts.Issuer,
		resource:         opts.Resource,
		scopes:           opts.ScopesSupported,
		secure:           strings.HasPrefix(opts.Issuer, "https://"),
		dcrLimit:         newLimiter(opts.DCR.PerMinute, opts.Now),
		loginLimit:       newLimiter(loginPerMinute, opts.Now),
		clientAssertions: assertion.NewMemoryReplayCache(0),
		jwks:             newJWKSCache(opts.Now),
	}
	s.keys = &keyring{
		store: opts.Store, sealer: opts.Sealer, now: opts.Now, log: opts.Log,
		rotation: opts.KeyRotation, grace: opts.AccessTTL,
	}
	if _, err := s.keys.current(ctx); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s.pages = pages
	if opts.Federation != nil {
		s.fedLabel = federationLabel(opts.Federation)
	}
	if err := s.buildProtocol(); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	s.handler = securityHeaders(s.routes())

	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.done = cancel, make(chan struct{})
	go s.janitor(jctx)
	return s, nil
}

func applyDefaults(o *Options) error {
	if o.Store == nil {
		return errors.New("authserver: no store")
	}
	if o.Sealer == nil {
		return errors.New("authserver: no sealer")
	}
	issuer, err := checkIssuer(o.Issuer)
	if err != nil {
		return fmt.Errorf("authserver: issuer %q: %w", o.Issuer, err)
	}
	o.Issuer = issuer
	if o.Resource == "" {
		o.Resource = o.Issuer + "/mcp"
	}
	if u, err := url.Parse(o.Resource); err != nil || !u.IsAbs() || u.Fragment != "" {
		return fmt.Errorf("authserver: resource %q is not an absolute URL", o.Resource)
	}
	if o.AccessTTL <= 0 {
		o.AccessTTL = DefaultAccessTTL
	}
	if o.RefreshTTL <= 0 {
		o.RefreshTTL = DefaultRefreshTTL
	}
	if o.KeyRotation <= 0 {
		o.KeyRotation = DefaultKeyRotation
	}
	if o.DCR.PerMinute <= 0 {
		o.DCR.PerMinute = defaultDCRPerMin
	}
	if len(o.ScopesSupported) == 0 {
		o.ScopesSupported = defaultScopes
	}
	o.ScopesSupported = slices.Clone(o.ScopesSupported)
	o.TokenExchangeClients = slices.Clone(o.TokenExchangeClients)
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// checkIssuer returns the issuer without a trailing slash, or why it cannot
// be one: OAuth 2.1 wants https, and http is tolerated only where nothing
// crosses a network (loopback), which is also the only case where zitadel's
// insecure option is switched on.
func checkIssuer(issuer string) (string, error) {
	issuer = strings.TrimSuffix(issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "", errors.New("not an absolute URL")
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("must be scheme://host[:port] with no path, query or user")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback.Host(u.Hostname()) {
			return "", errors.New("http is allowed only for a loopback host")
		}
	default:
		return "", fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	return issuer, nil
}

// Handler serves every path in Paths; anything else is a 404.
func (s *Server) Handler() http.Handler { return s.handler }

// Paths lists the path patterns Handler serves, for a composition root that
// mounts them one by one on a shared mux.
func (s *Server) Paths() []string {
	paths := []string{
		wellKnownAS, wellKnownOIDC, authorizePath, tokenPath, keysPath, revokePath,
		registerPath, loginPath, consentPath, staticPath,
	}
	if s.opts.Federation != nil {
		paths = append(paths, federatedStartPath, FederationCallbackPath)
	}
	return paths
}

// Close stops the background cleanup. It does not close the store.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		s.stop()
		<-s.done
	})
	return nil
}

// janitor deletes expired authorization requests, so abandoned logins do not
// pile up in the store.
func (s *Server) janitor(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.store.DeleteExpiredAuthRequests(ctx, s.now()); err != nil {
				s.log.Warn("authserver: delete expired authorization requests", "err", err)
			} else if n > 0 {
				s.log.Debug("authserver: deleted expired authorization requests", "count", n)
			}
		}
	}
}

// EnsureAdmin gives a fresh installation its first account, as
// users.EnsureAdmin does: with no user in the store it creates "admin", in
// the group "admin", and prints its random password to w, the only time it
// is ever shown. With any user present it does nothing.
func (s *Server) EnsureAdmin(ctx context.Context, w io.Writer) error {
	if _, err := users.EnsureAdmin(ctx, s.store, w); err != nil {
		return fmt.Errorf("ensure admin: %w", err)
	}
	return nil
}
