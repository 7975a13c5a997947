package config

import (
	"strings"
	"time"
)

// Auth modes.
const (
	// AuthEmbedded runs Mandate's own OAuth 2.1 authorization server (the
	// default).
	AuthEmbedded = "embedded"
	// AuthExternal trusts tokens from configured external issuers
	// (Keycloak, Okta, Entra, Auth0) instead.
	AuthExternal = "external"
	// AuthNone disables authentication: one implicit local user and agent.
	// Refused on a non-loopback listener.
	AuthNone = "none"
)

// Defaults of the auth section, applied by ApplyDefaults.
const (
	DefaultAccessTokenTTL  = 5 * time.Minute
	DefaultRefreshTokenTTL = 720 * time.Hour
	DefaultKeyRotation     = 720 * time.Hour
	DefaultDCRPerMinute    = 10
	DefaultCIMDTimeout     = 5 * time.Second
	DefaultCIMDMaxBytes    = 64 << 10
)

// OAuth grant types a pre-registered client may be given.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// Trust levels of a client.
const (
	TrustUntrusted = "untrusted"
	TrustStandard  = "standard"
	TrustTrusted   = "trusted"
)

// Default claim names of a ClaimMap.
const (
	DefaultClaimUser   = "sub"
	DefaultClaimAgent  = "client_id"
	DefaultClaimEmail  = "email"
	DefaultClaimGroups = "groups"
	DefaultClaimScopes = "scope"
)

// Auth configures who may use Mandate and how they prove it.
type Auth struct {
	// Mode is AuthEmbedded (default), AuthExternal or AuthNone.
	Mode string `yaml:"mode"`
	// PublicURL is Mandate's externally visible base URL
	// (scheme://host[:port], no path). It is the issuer of the embedded
	// server and the base of the canonical resource URL PublicURL+"/mcp"
	// that tokens must name as audience. Default: "http://" + listen.
	PublicURL string `yaml:"public_url"`
	// AccessTokenTTL is the lifetime of issued access tokens (default 5m).
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL is the lifetime of refresh tokens (default 720h).
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// KeyRotation is how long a signing key signs before the next one takes
	// over (default 720h); old keys stay published until their tokens expire.
	KeyRotation time.Duration `yaml:"key_rotation"`
	// DCR configures RFC 7591 dynamic client registration.
	DCR DCR `yaml:"dcr"`
	// CIMD configures Client ID Metadata Documents (URL client ids).
	CIMD CIMD `yaml:"cimd"`
	// Clients are pre-registered agents.
	Clients []Client `yaml:"clients"`
	// Issuers are the trusted external issuers of AuthExternal mode.
	Issuers []Issuer `yaml:"issuers"`
	// Federation, if set, lets humans log in to the embedded server with an
	// upstream OpenID Connect provider.
	Federation *Federation `yaml:"federation"`
	// TokenExchange configures RFC 8693 token exchange.
	TokenExchange TokenExchange `yaml:"token_exchange"`
	// IDJAG lists identity providers whose identity assertion grants
	// (RFC 7523 JWT-bearer, enterprise-managed authorization) are accepted.
	IDJAG []Issuer `yaml:"id_jag"`
}

// DCR configures dynamic client registration.
type DCR struct {
	// Enabled defaults to true; set false to switch registration off.
	Enabled *bool `yaml:"enabled"`
	// PerMinute caps registrations per client address (default 10).
	PerMinute int `yaml:"per_minute"`
}

// CIMD configures URL-formatted client ids.
type CIMD struct {
	// Enabled defaults to true.
	Enabled *bool `yaml:"enabled"`
	// AllowHosts lists host names that may resolve to private, loopback or
	// link-local addresses (for tests and internal agents); all others
	// must be public.
	AllowHosts []string `yaml:"allow_hosts"`
	// AllowHTTP permits http:// document URLs for AllowHosts only (tests).
	AllowHTTP bool `yaml:"allow_http"`
	// Timeout bounds one fetch (default 5s); MaxBytes one document
	// (default 64 KiB).
	Timeout  time.Duration `yaml:"timeout"`
	MaxBytes int64         `yaml:"max_bytes"`
}

// Client is a pre-registered agent.
type Client struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Secret makes the client confidential (client_secret_basic/post). Use
	// ${env:…} or ${file:…}.
	Secret string `yaml:"secret"`
	// JWKSURL or JWKS (inline JSON) hold the keys of a private_key_jwt client.
	JWKSURL      string   `yaml:"jwks_url"`
	JWKS         string   `yaml:"jwks"`
	RedirectURIs []string `yaml:"redirect_uris"`
	// GrantTypes defaults to [authorization_code, refresh_token].
	GrantTypes []string `yaml:"grant_types"`
	// Scopes is the client's ceiling (default: every supported scope).
	Scopes []string `yaml:"scopes"`
	// TrustLevel is untrusted, standard (default) or trusted.
	TrustLevel string `yaml:"trust_level"`
}

// Issuer is a trusted external token issuer.
type Issuer struct {
	Issuer string `yaml:"issuer"`
	// JWKSURL is where its keys are; default: from its discovery document.
	JWKSURL string `yaml:"jwks_url"`
	// Audience the tokens must carry (default: the canonical resource URL).
	Audience string   `yaml:"audience"`
	Claims   ClaimMap `yaml:"claims"`
}

// ClaimMap names the token claims Mandate reads. Empty fields take the
// defaults noted, which ApplyDefaults writes in. The two defaults with a
// fallback keep it: an Agent of "client_id" also reads "azp" when the token
// has no client_id, and a Scopes of "scope" also reads the "scp" array when
// the token has no scope, because providers disagree on those names.
type ClaimMap struct {
	User   string `yaml:"user"`   // default "sub"
	Agent  string `yaml:"agent"`  // default "client_id", then "azp"
	Email  string `yaml:"email"`  // default "email"
	Groups string `yaml:"groups"` // default "groups"
	Scopes string `yaml:"scopes"` // default "scope" (space-separated) or "scp" (array)
}

// Federation is an upstream OpenID Connect provider for human login.
type Federation struct {
	Issuer       string   `yaml:"issuer"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"` // default [openid, email, profile]
	Claims       ClaimMap `yaml:"claims"`
}

// TokenExchange configures RFC 8693 token exchange.
type TokenExchange struct {
	// TrustedClients may exchange a user's token for a delegated token
	// (sub = user, act = agent) on behalf of an agent.
	TrustedClients []string `yaml:"trusted_clients"`
}

// ResourceURL is the canonical URL of Mandate's MCP endpoint: the audience
// every token presented to Mandate must name (RFC 8707), so that a token
// minted for another resource is never accepted here.
func (c *Config) ResourceURL() string {
	return strings.TrimSuffix(c.Auth.PublicURL, "/") + "/mcp"
}

// embedded reports whether Mandate runs its own authorization server; an
// Auth built in code without a mode gets the default, embedded.
func (a Auth) embedded() bool {
	return a.Mode == AuthEmbedded || a.Mode == ""
}

// DCREnabled reports whether the embedded authorization server accepts
// dynamic client registration: in embedded mode, unless switched off. In
// the other modes there is no server to register with, so it is false
// whatever dcr.enabled says.
func (a Auth) DCREnabled() bool {
	return a.embedded() && (a.DCR.Enabled == nil || *a.DCR.Enabled)
}

// CIMDEnabled reports whether the embedded authorization server accepts URL
// client ids (Client ID Metadata Documents); like DCREnabled, only in
// embedded mode and unless switched off.
func (a Auth) CIMDEnabled() bool {
	return a.embedded() && (a.CIMD.Enabled == nil || *a.CIMD.Enabled)
}
