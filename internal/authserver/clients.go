package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/loopback"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Token endpoint authentication methods an agent may register.
const (
	authNone       = "none"
	authSecretBase = "client_secret_basic"
	authSecretPost = "client_secret_post"
	authPrivateJWT = "private_key_jwt"
)

// errUnknownClient is what every lookup of an agent that cannot be used
// returns — absent, suspended or unresolvable alike — so a caller learns
// nothing about which.
var errUnknownClient = errors.New("unknown or inactive client")

// agent returns the active agent with id. A URL-formatted id is resolved
// through Options.ResolveURLClient (when set) and the result persisted.
func (s *Server) agent(ctx context.Context, id string) (store.Agent, error) {
	var (
		a   store.Agent
		err error
	)
	if isURLClientID(id) && s.opts.ResolveURLClient != nil {
		a, err = s.resolveURLClient(ctx, id)
	} else {
		a, err = s.store.GetAgent(ctx, id)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("authserver: look up agent", "client_id", id, "err", err)
		}
		return store.Agent{}, fmt.Errorf("%w: %v", errUnknownClient, err)
	}
	if a.Status != store.AgentActive {
		return store.Agent{}, fmt.Errorf("%w: status %q", errUnknownClient, a.Status)
	}
	return a, nil
}

// isURLClientID reports whether id is a Client ID Metadata Document URL.
func isURLClientID(id string) bool {
	return strings.HasPrefix(id, "https://") || strings.HasPrefix(id, "http://")
}

// resolveURLClient resolves a CIMD client id and persists the result. What
// an operator decided about an agent already known — its status, owner and
// trust level — and when it was first seen survive re-resolution: a
// suspended agent cannot lift its suspension by republishing its document.
func (s *Server) resolveURLClient(ctx context.Context, id string) (store.Agent, error) {
	a, err := s.opts.ResolveURLClient(ctx, id)
	if err != nil {
		return store.Agent{}, fmt.Errorf("resolve client metadata document: %w", err)
	}
	if a.ID != id {
		return store.Agent{}, fmt.Errorf("client metadata document names client_id %q, not its URL", a.ID)
	}
	a.Registration = store.RegistrationCIMD
	// A document is the agent's own claim: it cannot reach explicit scopes.
	a.Scopes = s.selfRegisteredScopes(a.Scopes)
	if a.Status == "" {
		a.Status = store.AgentActive
	}
	if a.TrustLevel == "" {
		a.TrustLevel = "untrusted"
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	old, err := s.store.GetAgent(ctx, id)
	known := err == nil
	switch {
	case known:
		a.Status, a.Owner, a.TrustLevel = old.Status, old.Owner, old.TrustLevel
		a.CreatedAt, a.FirstSeen, a.LastSeen = old.CreatedAt, old.FirstSeen, old.LastSeen
	case !errors.Is(err, store.ErrNotFound):
		return store.Agent{}, err
	}
	if err := s.store.PutAgent(ctx, a); err != nil {
		return store.Agent{}, fmt.Errorf("persist resolved agent: %w", err)
	}
	if !known {
		if err := s.agentRegistered(ctx, a); err != nil {
			return store.Agent{}, fmt.Errorf("record resolved agent: %w", err)
		}
	}
	return a, nil
}

// grantTypes returns what the agent may use at the token endpoint. Token
// exchange is never registered by an agent: Options.TokenExchangeClients
// alone grants it.
func (s *Server) grantTypes(a store.Agent) []oidc.GrantType {
	grants := a.GrantTypes
	if len(grants) == 0 {
		grants = []string{string(oidc.GrantTypeCode)}
	}
	out := make([]oidc.GrantType, 0, len(grants)+1)
	for _, g := range grants {
		if g != string(oidc.GrantTypeTokenExchange) {
			out = append(out, oidc.GrantType(g))
		}
	}
	if slices.Contains(s.opts.TokenExchangeClients, a.ID) {
		out = append(out, oidc.GrantTypeTokenExchange)
	}
	return out
}

// allowedScopes is the agent's ceiling within the supported scopes.
func (s *Server) allowedScopes(a store.Agent) []string {
	if len(a.Scopes) == 0 {
		return s.defaultScopes()
	}
	var out []string
	for _, sc := range s.scopes {
		if slices.Contains(a.Scopes, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// client adapts an agent to zitadel's op.Client.
type client struct {
	agent store.Agent
	s     *Server
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.agent.ID }
func (c *client) RedirectURIs() []string           { return c.agent.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }

// ApplicationType is web unless the agent registered a private-use-scheme
// redirect URI (a native app's, e.g. cursor://…), which zitadel accepts only
// from native clients. zitadel also lets a native client's loopback redirect
// URI match on any port (RFC 8252 §7.3); Mandate does not, because
// VerifyAuthRequest has already required an exact match before zitadel's
// check runs. A web client's http redirect URI is accepted by zitadel only
// for the code flow, the only flow Mandate serves, and http is registrable
// only for loopback hosts.
func (c *client) ApplicationType() op.ApplicationType {
	for _, r := range c.agent.RedirectURIs {
		if u, err := url.Parse(r); err == nil && u.Scheme != "https" && u.Scheme != "http" {
			return op.ApplicationTypeNative
		}
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.agent.AuthMethod == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethod(c.agent.AuthMethod)
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType { return c.s.grantTypes(c.agent) }

func (c *client) LoginURL(id string) string { return loginPath + "?id=" + url.QueryEscape(id) }

func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return 0 }
func (c *client) DevMode() bool                        { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed is zitadel's filter of requested scopes: a supported scope
// within the agent's ceiling.
func (c *client) IsScopeAllowed(scope string) bool {
	return slices.Contains(c.s.allowedScopes(c.agent), scope)
}

// verifySecret checks a confidential agent's secret against its stored hash.
func verifySecret(a store.Agent, secret string) bool {
	if a.SecretHash == "" || secret == "" {
		return false
	}
	return verifyPassword(a.SecretHash, secret)
}

// isSecretMethod reports whether m authenticates with a client secret.
func isSecretMethod(m string) bool { return m == authSecretBase || m == authSecretPost }

// agentKey returns the agent's public key with kid (or its only signing key
// when kid is empty) for verifying a private_key_jwt client assertion.
func (s *Server) agentKey(ctx context.Context, a store.Agent, kid string) (*jose.JSONWebKey, error) {
	if a.AuthMethod != authPrivateJWT {
		return nil, errors.New("client does not authenticate with private_key_jwt")
	}
	set, err := s.agentKeySet(ctx, a)
	if err != nil {
		return nil, err
	}
	var candidates []jose.JSONWebKey
	if kid != "" {
		candidates = set.Key(kid)
	} else {
		candidates = set.Keys
	}
	var found []jose.JSONWebKey
	for _, k := range candidates {
		if k.Use == "" || k.Use == "sig" {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d matching keys for kid %q", len(found), kid)
	}
	pub := found[0].Public()
	if !pub.Valid() {
		return nil, errors.New("not a usable public key")
	}
	return &pub, nil
}

func (s *Server) agentKeySet(ctx context.Context, a store.Agent) (*jose.JSONWebKeySet, error) {
	raw := a.JWKS
	if len(raw) == 0 {
		if a.JWKSURL == "" {
			return nil, errors.New("client has no keys")
		}
		fetch := s.opts.FetchJWKS
		if fetch == nil {
			if a.Registration != store.RegistrationConfig {
				return nil, errors.New("jwks_uri of a self-registered client is not fetched without an SSRF-guarded fetcher")
			}
			fetch = fetchJWKS
		}
		var err error
		if raw, err = s.jwks.get(ctx, a.JWKSURL, fetch); err != nil {
			return nil, fmt.Errorf("fetch client keys: %w", err)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("client keys: %w", err)
	}
	return &set, nil
}

// jwksCache keeps fetched client key sets for a few minutes, so a busy
// private_key_jwt agent does not cost a fetch per token.
type jwksCache struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]jwksEntry
}

type jwksEntry struct {
	raw     []byte
	fetched time.Time
}

const jwksCacheTTL = 5 * time.Minute

func newJWKSCache(now func() time.Time) *jwksCache {
	return &jwksCache{now: now, entries: map[string]jwksEntry{}}
}

func (c *jwksCache) get(ctx context.Context, u string, fetch func(context.Context, string) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	e, ok := c.entries[u]
	c.mu.Unlock()
	if ok && c.now().Sub(e.fetched) < jwksCacheTTL {
		return e.raw, nil
	}
	raw, err := fetch(ctx, u)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[u] = jwksEntry{raw: raw, fetched: c.now()}
	c.mu.Unlock()
	return raw, nil
}

// fetchJWKS is the default fetcher for operator-written JWKS URLs.
func fetchJWKS(ctx context.Context, u string) ([]byte, error) {
	return fetchJWKSWith(ctx, http.DefaultClient, u)
}

// maxJWKSBytes bounds a fetched client key set.
const maxJWKSBytes = 64 << 10

func fetchJWKSWith(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxJWKSBytes {
		return nil, errors.New("key set larger than 64 KiB")
	}
	return raw, nil
}

// checkRedirectURI applies the rules for a redirect URI an agent may
// register and use (OAuth 2.1 §2.3.1, RFC 8252 §7): https; http only on a
// loopback host; or a native app's private-use scheme, except schemes a
// browser would execute or read locally. No fragment, no credentials.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case !u.IsAbs():
		return errors.New("not an absolute URL")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("has a fragment")
	case u.User != nil:
		return errors.New("has credentials")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return errors.New("has no host")
		}
	case "http":
		if !loopback.Host(u.Hostname()) {
			return errors.New("http is allowed only for a loopback host")
		}
	case "javascript", "data", "vbscript", "file", "about", "blob", "filesystem", "ftp", "ws", "wss":
		return fmt.Errorf("scheme %q is not allowed", u.Scheme)
	}
	return nil
}

// defaultScopes are the supported scopes minus the explicit ones: what an
// agent gets when nobody named its scopes.
func (s *Server) defaultScopes() []string {
	return slices.DeleteFunc(slices.Clone(s.scopes), func(sc string) bool { return slices.Contains(s.opts.ExplicitScopes, sc) })
}

// selfRegisteredScopes is the ceiling of an agent that registered itself
// (DCR, CIMD): what it asked for within the default scopes, or the default
// scopes when it asked for nothing. It can never reach an explicit scope.
func (s *Server) selfRegisteredScopes(requested []string) []string {
	def := s.defaultScopes()
	if len(requested) == 0 {
		return def
	}
	var out []string
	for _, sc := range requested {
		if slices.Contains(def, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}
