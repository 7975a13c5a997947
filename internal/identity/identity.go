// Package identity says who is asking: the human (if any), the agent, and
// how one delegates to the other. Every later stage — sessions, policy,
// mandates, audit — reads the Principal built here from verified
// credentials, never from what a client says about itself (clientInfo,
// User-Agent, headers, arguments).
package identity

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Method says how a principal was authenticated.
type Method string

// Authentication methods.
const (
	// MethodAuthorizationCode is a human-delegated token from the
	// authorization code flow (user + agent).
	MethodAuthorizationCode Method = "authorization_code"
	// MethodRefreshToken is a token renewed from a human-delegated grant.
	MethodRefreshToken Method = "refresh_token"
	// MethodClientCredentials is an autonomous agent acting for nobody.
	MethodClientCredentials Method = "client_credentials"
	// MethodTokenExchange is a delegated token minted by RFC 8693 token
	// exchange (sub = user, act = agent).
	MethodTokenExchange Method = "token_exchange"
	// MethodJWTBearer is a token from an RFC 7523 assertion (ID-JAG).
	MethodJWTBearer Method = "jwt_bearer"
	// MethodExternal is a token from a trusted external issuer.
	MethodExternal Method = "external"
	// MethodNone is the implicit local principal of `auth: none`.
	MethodNone Method = "none"
)

// Actor is one link of a delegation chain (an RFC 8693 `act` claim).
type Actor struct {
	// Subject is the actor's subject as the issuer names it.
	Subject string `json:"sub"`
	// ClientID is the actor's OAuth client id, when known.
	ClientID string `json:"client_id,omitempty"`
}

// Principal is who is asking.
type Principal struct {
	// Issuer is the issuer of the credential the principal came from.
	Issuer string `json:"iss"`
	// User is the human's subject; empty for an autonomous agent.
	User string `json:"user,omitempty"`
	// Email and Groups come from the user's identity, when known.
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Agent is the OAuth client id of the agent that holds the token: the
	// current actor. It is the only actor that counts for decisions.
	Agent string `json:"agent"`
	// TrustLevel is the agent's trust level as Mandate's agent registry
	// holds it (TrustUntrusted, TrustStandard or TrustTrusted), filled in
	// after the token is verified: a token carries no trust level, and an
	// agent cannot raise its own. Read it through Trust.
	TrustLevel string `json:"trust_level,omitempty"`
	// Chain is the delegation chain from the token's `act` claim, current
	// actor first; earlier actors are kept for the record only.
	Chain []Actor `json:"chain,omitempty"`
	// Scopes are the token's granted scopes.
	Scopes []string `json:"scopes,omitempty"`
	// Method is how the principal was authenticated.
	Method Method `json:"method"`
	// TokenID is the token's jti (never the token itself).
	TokenID string `json:"token_id,omitempty"`
	// Expiry is when the credential stops being valid.
	Expiry time.Time `json:"exp"`
}

// Trust levels of an agent, from least to most trusted. The agent
// registry assigns them: an agent that registered itself (dynamic
// registration, a metadata document) starts untrusted, one an administrator
// pre-registered starts standard.
const (
	TrustUntrusted = "untrusted"
	TrustStandard  = "standard"
	TrustTrusted   = "trusted"
)

// Trust returns the agent's trust level: TrustLevel when it is standard or
// trusted, and untrusted for anything else, an empty or misspelt level
// included. Policies read this value, so a principal built without a
// registry lookup can never gain trust by omission.
func (p *Principal) Trust() string {
	switch p.TrustLevel {
	case TrustStandard, TrustTrusted:
		return p.TrustLevel
	}
	return TrustUntrusted
}

// Delegated reports whether an agent acts for a human.
func (p *Principal) Delegated() bool { return p.User != "" }

// HasScope reports whether the principal was granted scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// MissingScopes returns the scopes of want the principal lacks, in order.
func (p *Principal) MissingScopes(want []string) []string {
	var out []string
	for _, s := range want {
		if !p.HasScope(s) {
			out = append(out, s)
		}
	}
	return out
}

// BindingKey identifies the principal for session binding: a session opened
// by one (issuer, user, agent) must not be used by another, whatever token
// each presents.
func (p *Principal) BindingKey() string {
	return strings.Join([]string{p.Issuer, p.User, p.Agent}, "\x00")
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok && p != nil
}

// Local is the implicit principal of `auth: none` and of the stdio entry:
// one local user and one local agent, so that everything downstream
// (sessions, policy, audit) still has a principal to record. Its agent is
// trusted: it is the operator's own client on the operator's machine.
func Local() *Principal {
	return &Principal{Issuer: "local", User: "local", Agent: "local", Method: MethodNone, TrustLevel: TrustTrusted}
}
