package store

import (
	"context"
	"time"
)

// Lists and byte fields of the identity records read back as nil when they
// were stored empty or nil: the store does not tell the two apart. Lookups
// by a key no record can carry (empty, invalid UTF-8, a NUL byte) give
// ErrNotFound, as keys often come straight from a client.

// User is a human who can log in: a local account (Issuer "") with an
// argon2id password hash, or a federated identity (Issuer and Subject from
// an upstream OpenID Connect provider, no password).
type User struct {
	// ID is Mandate's stable user id; it is the `sub` of tokens Mandate issues.
	ID       string
	Username string // unique; the login name of local users
	Email    string
	Groups   []string
	// PasswordHash is a PHC-format argon2id hash; empty for federated users.
	PasswordHash string
	// Issuer and Subject identify a federated user at its provider; the
	// pair is unique when Issuer is not empty. Both are set or neither.
	Issuer    string
	Subject   string
	Disabled  bool
	CreatedAt time.Time
	LastLogin time.Time // zero until the first login
}

// UserStore keeps humans.
type UserStore interface {
	// CreateUser adds u; ErrConflict when the ID, the username or the
	// (issuer, subject) pair is taken.
	CreateUser(ctx context.Context, u User) error
	// UpdateUser replaces the user with u.ID; ErrNotFound when absent,
	// ErrConflict when another user holds the username or identity.
	UpdateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	GetUserBySubject(ctx context.Context, issuer, subject string) (User, error)
	// ListUsers returns every user ordered by username, bytewise.
	ListUsers(ctx context.Context) ([]User, error)
	CountUsers(ctx context.Context) (int, error)
}

// Agent registration kinds.
const (
	RegistrationCIMD   = "cimd"   // a Client ID Metadata Document URL
	RegistrationDCR    = "dcr"    // RFC 7591 dynamic registration
	RegistrationConfig = "config" // pre-registered in the config file
	// RegistrationExternal is an agent first seen in a token of a trusted
	// external issuer (auth mode external); its issuer registered it.
	RegistrationExternal = "external"
)

// Agent statuses.
const (
	AgentActive    = "active"
	AgentSuspended = "suspended"
)

// Agent is an agent's identity: an OAuth client. Agents are first-class
// because every decision and audit record names one.
type Agent struct {
	// ID is the OAuth client_id (for CIMD, the metadata document URL).
	ID           string
	Name         string
	Registration string // RegistrationCIMD, RegistrationDCR or RegistrationConfig
	// Owner is the user who registered or owns the agent ("" if none).
	Owner      string
	TrustLevel string // "untrusted", "standard" or "trusted"
	Status     string // AgentActive or AgentSuspended
	// RedirectURIs are matched exactly (no patterns).
	RedirectURIs []string
	GrantTypes   []string
	// AuthMethod is the token endpoint auth method: "none",
	// "client_secret_basic", "client_secret_post" or "private_key_jwt".
	AuthMethod string
	// SecretHash is a PHC-format hash of a confidential client's secret.
	SecretHash string
	// JWKS (a JSON Web Key Set) or JWKSURL hold a private_key_jwt client's
	// public keys.
	JWKS    []byte
	JWKSURL string
	// Scopes is the agent's ceiling: scopes it may ever be granted.
	Scopes []string
	// Metadata is the raw registration or CIMD document, as JSON.
	Metadata  []byte
	CreatedAt time.Time
	FirstSeen time.Time // zero until the agent first presents a token
	LastSeen  time.Time
}

// AgentStore keeps agents.
type AgentStore interface {
	// PutAgent creates or replaces the agent with a.ID, every field
	// included, FirstSeen and LastSeen too.
	PutAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents returns every agent ordered by ID, bytewise.
	ListAgents(ctx context.Context) ([]Agent, error)
	// SetAgentStatus sets AgentActive or AgentSuspended; ErrNotFound when
	// absent, ErrInvalid for another status.
	SetAgentStatus(ctx context.Context, id, status string) error
	// TouchAgent records that the agent was seen at at: FirstSeen is set
	// once, LastSeen moves forward only; ErrNotFound when absent.
	TouchAgent(ctx context.Context, id string, at time.Time) error
}

// AuthRequest is an authorization request between /authorize and the token
// exchange of its code. Short-lived, but stored so that any replica can
// complete it.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	State               string
	Nonce               string
	Scopes              []string
	ResponseType        string
	CodeChallenge       string
	CodeChallengeMethod string
	// Resource is the RFC 8707 resource the client asked for.
	Resource []string
	// UserID is set once the user has logged in and consented.
	UserID   string
	AuthTime time.Time
	Done     bool
	// Code is the authorization code, once issued (unique).
	Code      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RefreshToken is one refresh token of a token family. Tokens rotate on
// every use; presenting a used token revokes its whole family (reuse
// detection), because it means the token was stolen.
type RefreshToken struct {
	// ID is a hash of the token; the token itself is never stored.
	ID        string
	Family    string
	ClientID  string
	UserID    string
	Scopes    []string
	Audience  []string
	AuthTime  time.Time
	AMR       []string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until rotated
	RevokedAt time.Time // zero unless revoked
}

// SigningKey is a key the authorization server signs tokens with. A key
// stops signing at NotAfter and stays published until RetireAt, so tokens
// it signed keep verifying until they expire.
type SigningKey struct {
	ID        string
	Algorithm string
	// Private is the private key, sealed by the authorization server; the
	// store treats it as opaque bytes.
	Private   []byte
	CreatedAt time.Time
	NotAfter  time.Time
	RetireAt  time.Time
}

// OAuthStore keeps the embedded authorization server's state.
type OAuthStore interface {
	// PutAuthRequest creates or replaces the request with r.ID;
	// ErrConflict when another request holds r.Code.
	PutAuthRequest(ctx context.Context, r AuthRequest) error
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// GetAuthRequestByCode finds the request holding code; the empty code,
	// which every request has until one is issued, is never found.
	GetAuthRequestByCode(ctx context.Context, code string) (AuthRequest, error)
	// DeleteAuthRequest gives ErrNotFound when there was nothing to
	// delete, so of two callers redeeming one code only one succeeds.
	DeleteAuthRequest(ctx context.Context, id string) error
	// DeleteExpiredAuthRequests removes requests expired at now (ExpiresAt
	// not after now) and returns how many it removed.
	DeleteExpiredAuthRequests(ctx context.Context, now time.Time) (int, error)

	PutRefreshToken(ctx context.Context, t RefreshToken) error // ErrConflict if t.ID exists
	GetRefreshToken(ctx context.Context, id string) (RefreshToken, error)
	// UseRefreshToken atomically marks an unused, unrevoked, unexpired token
	// used and returns it. A token already used or revoked gives
	// ErrConflict (the caller then revokes the family), even once expired;
	// an expired one ErrNotFound. A token expires at its ExpiresAt.
	UseRefreshToken(ctx context.Context, id string, now time.Time) (RefreshToken, error)
	// RevokeTokenFamily revokes every token of family; tokens revoked
	// before keep their first revocation time. An unknown family is a
	// no-op, an empty one ErrInvalid.
	RevokeTokenFamily(ctx context.Context, family string, now time.Time) error

	// PutSigningKey creates or replaces the key with k.ID.
	PutSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys returns keys not yet retired at now (RetireAt after
	// now), newest CreatedAt first, then by ID.
	ListSigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error)
	// DeleteSigningKey gives ErrNotFound when absent.
	DeleteSigningKey(ctx context.Context, id string) error
}
