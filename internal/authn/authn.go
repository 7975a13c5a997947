// Package authn is Mandate's OAuth 2.1 resource-server side: it turns the
// bearer token of an inbound HTTP request into an *identity.Principal, or
// answers 401/403 with the WWW-Authenticate challenge that tells a client
// where to get a better one (RFC 6750, RFC 9728).
//
// Identity comes only from what a trusted issuer signed. Nothing a client
// says about itself — clientInfo, User-Agent, X-* headers, unsigned claims —
// reaches a Principal, and every failure to prove a token valid denies.
package authn

import (
	"context"
	"errors"
	"fmt"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// VerifyFunc turns a bearer token into the principal it proves. It returns
// an error wrapping ErrInvalidToken when the token proves nothing, and one
// wrapping ErrUnavailable when validity could not be decided (no keys could
// be fetched); either way the request is denied. The principal returned is
// the caller's to keep and modify.
type VerifyFunc func(ctx context.Context, token string) (*identity.Principal, error)

// Errors for two audiences: the wrapped reason is for logs, the sentinel
// decides what the client is told.
var (
	// ErrInvalidToken means the token is malformed, forged, expired, meant
	// for another resource or issued by an untrusted issuer. The client
	// sees only error="invalid_token".
	ErrInvalidToken = errors.New("invalid token")
	// ErrUnavailable means validity could not be decided, for example
	// because an issuer's keys could not be fetched. It denies with 503 so
	// that clients retry rather than discard a good token.
	ErrUnavailable = errors.New("authentication unavailable")
	// ErrAgentSuspended is what an Options.AgentGate returns (wrapped) for
	// an agent an operator suspended; the client is told "agent suspended".
	ErrAgentSuspended = errors.New("agent suspended")
)

// invalid returns an error wrapping ErrInvalidToken with a reason for the
// log. Reasons name claims and header fields, never the token.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}
