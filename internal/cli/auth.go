package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/authn"
	"github.com/mandate-mcp/mandate/internal/authserver"
	"github.com/mandate-mcp/mandate/internal/authserver/assertion"
	"github.com/mandate-mcp/mandate/internal/authserver/cimd"
	"github.com/mandate-mcp/mandate/internal/authserver/federation"
	"github.com/mandate-mcp/mandate/internal/config"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/gencache"
	"github.com/mandate-mcp/mandate/internal/web"
)

// authParts is what the configured authentication mode adds to the front
// end, and what must be released at shutdown.
type authParts struct {
	front frontend.Options // Authenticate, RequiredScopes, InsufficientScope, Mount
	close func()
}

// setupAuth builds authentication for cfg.Auth.Mode: the embedded
// authorization server plus a resource server trusting it (default),
// trusted external issuers, or nothing at all for `auth: none`.
func setupAuth(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger, console io.Writer, deps pageDeps) (*authParts, error) {
	parts := &authParts{close: func() {}}
	if cfg.Auth.Mode == config.AuthNone {
		log.Warn("AUTHENTICATION IS OFF (auth: none): every request acts as the local user and agent; use this for local experiments only")
		return parts, nil
	}
	resource := cfg.ResourceURL()
	metaURL, err := authn.MetadataURL(resource)
	if err != nil {
		return nil, err
	}
	var issuers []authn.IssuerSpec
	var servers []string
	registerExternal := false
	switch cfg.Auth.Mode {
	case config.AuthExternal:
		registerExternal = true
		for _, is := range cfg.Auth.Issuers {
			jwks := is.JWKSURL
			if jwks == "" {
				if jwks, err = discoverJWKS(ctx, is.Issuer); err != nil {
					return nil, fmt.Errorf("issuer %s: %w", is.Issuer, err)
				}
			}
			aud := is.Audience
			if aud == "" {
				aud = resource
			}
			issuers = append(issuers, authn.IssuerSpec{
				Issuer: is.Issuer, Keys: &authn.RemoteJWKS{URL: jwks}, Audience: aud,
				Claims: claimMap(is.Claims), Method: identity.MethodExternal,
			})
			servers = append(servers, is.Issuer)
		}
	default:
		as, err := embeddedServer(ctx, cfg, st, deps.audit, log)
		if err != nil {
			return nil, err
		}
		parts.close = func() { _ = as.Close() }
		if err := as.EnsureAdmin(ctx, console); err != nil {
			as.Close()
			return nil, fmt.Errorf("bootstrap admin: %w", err)
		}
		issuers = append(issuers, authn.IssuerSpec{Issuer: cfg.Auth.PublicURL, Keys: as, Audience: resource})
		servers = append(servers, cfg.Auth.PublicURL)
		parts.front.Mount = map[string]http.Handler{}
		for _, p := range as.Paths() {
			parts.front.Mount[p] = as.Handler()
		}
		if err := mountPages(parts.front.Mount, cfg, st, as, deps, log); err != nil {
			as.Close()
			return nil, err
		}
	}
	localIssuer := ""
	if cfg.Auth.Mode != config.AuthExternal {
		localIssuer = cfg.Auth.PublicURL
	}
	verifier := authn.NewJWTVerifier(authn.JWTOptions{Issuers: issuers})
	opts := authn.Options{
		Verify:              verifier.Verify,
		ResourceMetadataURL: metaURL,
		Scopes:              authn.BaselineScopes(),
		AgentGate:           agentGate(st, registerExternal, localIssuer, deps.audit.agentRegistered, log),
		Log:                 log,
	}
	if parts.front.Mount == nil {
		parts.front.Mount = map[string]http.Handler{}
	}
	prm := authn.MetadataHandler(authn.ProtectedResourceMetadata{
		Resource: resource, AuthorizationServers: servers, ScopesSupported: authn.BaselineScopes(), ResourceName: "Mandate",
	})
	for _, p := range authn.MetadataPaths("/mcp") {
		parts.front.Mount[p] = prm
	}
	parts.front.Mount[web.AdminAPIPath] = adminAPI(opts, st, deps, localIssuer, log)
	parts.front.Authenticate = authn.Require(opts)
	parts.front.RequiredScopes = authn.RequiredScopes
	parts.front.InsufficientScope = func(w http.ResponseWriter, required []string) {
		authn.WriteInsufficientScope(w, opts, required)
	}
	return parts, nil
}

// embeddedServer builds the embedded authorization server from the config
// and registers the configured agents.
func embeddedServer(ctx context.Context, cfg *config.Config, st store.Store, aud *auditTrail, log *slog.Logger) (*authserver.Server, error) {
	sealer, err := authserver.NewFileSealer(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	o := authserver.Options{
		Events: aud.authEvents(),
		Issuer: cfg.Auth.PublicURL, Resource: cfg.ResourceURL(), Store: st,
		AccessTTL: cfg.Auth.AccessTokenTTL, RefreshTTL: cfg.Auth.RefreshTokenTTL, KeyRotation: cfg.Auth.KeyRotation,
		Sealer:               sealer,
		DCR:                  authserver.DCR{Enabled: cfg.Auth.DCREnabled(), PerMinute: cfg.Auth.DCR.PerMinute},
		TokenExchangeClients: cfg.Auth.TokenExchange.TrustedClients,
		// The admin scope can be issued, but it is left out of /mcp's
		// resource metadata, which MCP clients read to choose what to ask
		// for.
		ScopesSupported: append(authn.BaselineScopes(), web.ScopeAdmin),
		// Only agents pre-registered with mandate:admin in their scopes may
		// ask for it; it is never a default and never self-registered.
		ExplicitScopes: []string{web.ScopeAdmin},
		Log:            log,
	}
	if cfg.Auth.CIMDEnabled() {
		f := cimd.New(&cimd.Options{AllowHosts: cfg.Auth.CIMD.AllowHosts, AllowHTTP: cfg.Auth.CIMD.AllowHTTP,
			Timeout: cfg.Auth.CIMD.Timeout, MaxBytes: cfg.Auth.CIMD.MaxBytes})
		o.ResolveURLClient, o.FetchJWKS = authserver.CIMDClients(f)
	}
	if len(cfg.Auth.IDJAG) > 0 {
		v := &assertion.Validator{Audience: cfg.Auth.PublicURL, Resource: cfg.ResourceURL(), Replay: assertion.NewMemoryReplayCache(100_000)}
		for _, is := range cfg.Auth.IDJAG {
			jwks := is.JWKSURL
			if jwks == "" {
				if jwks, err = discoverJWKS(ctx, is.Issuer); err != nil {
					return nil, fmt.Errorf("id_jag issuer %s: %w", is.Issuer, err)
				}
			}
			v.Issuers = append(v.Issuers, assertion.TrustedIssuer{Issuer: is.Issuer, Keys: &authn.RemoteJWKS{URL: jwks}})
		}
		o.Assertions = v
	}
	if f := cfg.Auth.Federation; f != nil {
		o.Federation, err = federation.New(ctx, federation.Options{
			Issuer: f.Issuer, ClientID: f.ClientID, ClientSecret: f.ClientSecret, Scopes: f.Scopes,
			RedirectURL: strings.TrimSuffix(cfg.Auth.PublicURL, "/") + authserver.FederationCallbackPath,
			Claims:      federation.ClaimMap{User: f.Claims.User, Email: f.Claims.Email, Groups: f.Claims.Groups},
			// Derived from the seal key, so that every replica sharing
			// data_dir's key opens the login cookies of the others.
			CookieKey: sealer.DeriveKey("federation login cookie"),
		})
		if err != nil {
			return nil, fmt.Errorf("auth.federation: %w", err)
		}
	}
	as, err := authserver.New(ctx, o)
	if err != nil {
		return nil, err
	}
	clients := make([]authserver.ConfigClient, 0, len(cfg.Auth.Clients))
	for _, c := range cfg.Auth.Clients {
		clients = append(clients, authserver.ConfigClient{
			ID: c.ID, Name: c.Name, Secret: c.Secret, JWKSURL: c.JWKSURL, JWKS: c.JWKS,
			RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, Scopes: c.Scopes, TrustLevel: c.TrustLevel,
		})
	}
	if err := as.RegisterClients(ctx, clients); err != nil {
		as.Close()
		return nil, err
	}
	return as, nil
}

// adminAPI is the admin JSON API as mounted at web.AdminAPIPath. It sits
// behind the same authentication as /mcp — the same verifier and the same
// agent gate, so a suspended agent cannot administer either — except that
// a request without a token is challenged for web.ScopeAdmin rather than
// the MCP scopes. localIssuer is the embedded server's issuer, "" in
// external mode.
func adminAPI(opts authn.Options, st store.Store, deps pageDeps, localIssuer string, log *slog.Logger) http.Handler {
	opts.Scopes = []string{web.ScopeAdmin}
	// The audit routes verify with the key this process signs with. It is
	// the data directory's key that mandate audit verify uses, except for
	// a memory store without an audit file, whose key is never written
	// down.
	var auditLog *web.AuditLog
	if deps.audit != nil {
		auditLog = &web.AuditLog{Store: st, Keys: []ed25519.PublicKey{deps.audit.public}}
	}
	api := web.NewAdminAPI(web.AdminOptions{
		Store: st, LocalIssuer: localIssuer, Log: log, Mandates: deps.mandates, Approvals: deps.approvalService(st, log),
		RecordChange: deps.audit.recordChange, Audit: auditLog,
		InsufficientScope: func(w http.ResponseWriter, required []string) {
			authn.WriteInsufficientScope(w, opts, required)
		},
	})
	return authn.Require(opts)(api)
}

// registerEvent reports a first-sight registration to record, if any.
func registerEvent(ctx context.Context, record func(context.Context, store.Agent) error, a store.Agent) error {
	if record == nil {
		return nil
	}
	return record(ctx, a)
}

// pageDeps is what the consent pages need of the running gateway.
type pageDeps struct {
	gw       *gateway.Gateway
	mandates *consent.Service
	// approvals is the gateway's approval service; nil means one over the
	// same store, which decides exactly as the gateway's would: approvals
	// live in the store, and deciding one reads no other state.
	approvals *consent.Approvals
	// audit records logins, agent registrations and admin-API changes;
	// nil when audit is off.
	audit *auditTrail
}

// approvalService is the approval service the pages and the admin API
// decide with.
func (d pageDeps) approvalService(st store.Store, log *slog.Logger) *consent.Approvals {
	if d.approvals != nil {
		return d.approvals
	}
	return consent.NewApprovals(st, &consent.ApprovalOptions{Log: log})
}

// mountPages mounts the consent, "my agents" and approvals pages, embedded
// mode only: they sign people in through the embedded server's session. The
// consent page shares /consent with the server's OAuth consent hand-off,
// which it passes every request that names no agent. The CSRF key is
// derived from the same key file as the server's sealer, so every replica
// sharing data_dir accepts the others' forms.
func mountPages(mount map[string]http.Handler, cfg *config.Config, st store.Store, as *authserver.Server, deps pageDeps, log *slog.Logger) error {
	sealer, err := authserver.NewFileSealer(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("open key file: %w", err)
	}
	pages, err := web.NewPages(web.PagesOptions{
		Store: st, Mandates: deps.mandates, Approvals: deps.approvalService(st, log), SessionUser: as.SessionUser,
		Tools: func(ctx context.Context) []web.Tool {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			infos := deps.gw.Tools(ctx)
			tools := make([]web.Tool, len(infos))
			for i, t := range infos {
				tools[i] = web.Tool(t)
			}
			return tools
		},
		CSRFKey:       sealer.DeriveKey("consent pages csrf"),
		SecureCookies: strings.HasPrefix(cfg.Auth.PublicURL, "https://"),
		OAuthConsent:  as.Handler(),
		Log:           log,
	})
	if err != nil {
		return err
	}
	for _, p := range []string{web.ConsentPath, web.AgentsPath, web.RevokePath, web.ApprovalsPath, web.DecideApprovalPath} {
		mount[p] = pages
	}
	return nil
}

func claimMap(c config.ClaimMap) authn.ClaimMap {
	return authn.ClaimMap{User: c.User, Agent: c.Agent, Email: c.Email, Groups: c.Groups, Scopes: c.Scopes}
}

// discoverJWKS reads an issuer's jwks_uri from its discovery document.
func discoverJWKS(ctx context.Context, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+p, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc)
		resp.Body.Close()
		// The metadata must name the issuer it was fetched for.
		if err == nil && resp.StatusCode == http.StatusOK && doc.Issuer == issuer && doc.JWKSURI != "" {
			return doc.JWKSURI, nil
		}
	}
	return "", errors.New("no discovery document names its jwks_uri (set jwks_url)")
}

// agentGate admits a verified principal only if its agent is registered
// and active and its user, if any, is not disabled: suspending an agent or
// disabling a user denies the very next request, whatever token it holds.
// Agents of trusted external issuers are registered on first sight, at
// the standard trust level. The gate also gives the principal its agent's
// trust level from the registry, the one source policies may believe for
// it: no token claim carries one.
//
// What the gate reads is cached for as long as the store's change
// generation stands, and the generation is read from the store on every
// request, so a suspension or a disabled user written by any process, the
// CLI included, counts on the next request, while a request that changes
// nothing costs that one read. When the generation cannot be read, the
// gate reads the records; when they cannot be read, it refuses.
// First/last-seen times are written at most once a minute per agent; they
// leave the generation alone.
func agentGate(st store.Store, registerExternal bool, local string, registered func(context.Context, store.Agent) error, log *slog.Logger) func(context.Context, *identity.Principal) error {
	var mu sync.Mutex
	touched := map[string]time.Time{}
	cache := gencache.New[gateKey, gateRecords](st, gateCacheSize)
	return func(ctx context.Context, p *identity.Principal) error {
		r, err := cache.Get(ctx, gateKey{agent: p.Agent, issuer: p.Issuer, user: p.User},
			func(ctx context.Context) (gateRecords, error) { return readGate(ctx, st, p, registerExternal, local) })
		if err != nil {
			return fmt.Errorf("%w: %v", authn.ErrUnavailable, err)
		}
		a := r.agent
		switch {
		case !r.agentFound && registerExternal:
			now := time.Now()
			a = store.Agent{ID: p.Agent, Name: p.Agent, Registration: store.RegistrationExternal, Owner: p.Issuer,
				TrustLevel: identity.TrustStandard, Status: store.AgentActive, AuthMethod: "none", CreatedAt: now}
			if err := st.PutAgent(ctx, a); err != nil {
				return fmt.Errorf("%w: register agent: %v", authn.ErrUnavailable, err)
			}
			// An agent the audit log does not know of acts unrecorded:
			// refuse it until its registration is on record.
			if err := registerEvent(ctx, registered, a); err != nil {
				return fmt.Errorf("%w: record agent registration: %v", authn.ErrUnavailable, err)
			}
			log.Info("agent registered on first sight", "agent", p.Agent, "issuer", p.Issuer)
		case !r.agentFound:
			return errors.New("unknown agent")
		}
		if a.Status != store.AgentActive {
			return authn.ErrAgentSuspended
		}
		p.TrustLevel = a.TrustLevel
		// A user of the embedded server must exist; an external user
		// Mandate has no record of is admitted.
		if p.User != "" {
			switch {
			case !r.userFound && p.Issuer == local:
				return errors.New("unknown user")
			case r.user.Disabled:
				return errors.New("user disabled")
			}
		}
		now := time.Now()
		mu.Lock()
		due := now.Sub(touched[p.Agent]) > time.Minute
		if due {
			touched[p.Agent] = now
		}
		mu.Unlock()
		if due {
			if err := st.TouchAgent(ctx, p.Agent, now); err != nil {
				log.Warn("record agent last seen", "agent", p.Agent, "err", err)
			}
		}
		return nil
	}
}

// gateCacheSize is how many principals' records the agent gate keeps.
const gateCacheSize = 10_000

// gateKey names the records the gate reads for one principal.
type gateKey struct{ agent, issuer, user string }

// gateRecords is what the gate read of the store for one principal; a
// record that does not exist is remembered as such. Cached records are
// shared between requests and must not be modified.
type gateRecords struct {
	agent      store.Agent
	agentFound bool
	user       store.User
	userFound  bool
}

// readGate reads p's agent and, for a delegated principal, its user: by id
// for a user of the embedded server (issuer local), by issuer and subject
// otherwise. Only an error other than ErrNotFound is returned. An unknown
// agent that is not about to be registered makes the user irrelevant.
func readGate(ctx context.Context, st store.Store, p *identity.Principal, registerExternal bool, local string) (gateRecords, error) {
	var r gateRecords
	a, err := st.GetAgent(ctx, p.Agent)
	switch {
	case err == nil:
		r.agent, r.agentFound = a, true
	case !errors.Is(err, store.ErrNotFound):
		return gateRecords{}, err
	case !registerExternal:
		return r, nil
	}
	if p.User == "" {
		return r, nil
	}
	var u store.User
	if p.Issuer == local {
		u, err = st.GetUser(ctx, p.User)
	} else {
		u, err = st.GetUserBySubject(ctx, p.Issuer, p.User)
	}
	switch {
	case err == nil:
		r.user, r.userFound = u, true
	case !errors.Is(err, store.ErrNotFound):
		return gateRecords{}, err
	}
	return r, nil
}
