package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Values of Agent.TrustLevel and Agent.AuthMethod the store accepts. They
// feed authorization decisions, so a value nothing downstream understands is
// refused at the door rather than stored and later misread.
var (
	trustLevels = map[string]bool{"untrusted": true, "standard": true, "trusted": true}
	authMethods = map[string]bool{
		"none": true, "client_secret_basic": true, "client_secret_post": true, "private_key_jwt": true,
	}
)

// Validate reports, as ErrInvalid, why u cannot be stored. A federated user
// needs both Issuer and Subject, and a local user neither: half a pair could
// never be found by GetUserBySubject, yet would still block the pair's
// uniqueness.
func (u User) Validate() error {
	if err := validKey("user id", u.ID); err != nil {
		return err
	}
	if err := validKey("username", u.Username); err != nil {
		return err
	}
	if (u.Issuer == "") != (u.Subject == "") {
		return fmt.Errorf("%w: user issuer and subject must be set together", ErrInvalid)
	}
	if err := validTexts("user", []field{
		{"email", u.Email}, {"password hash", u.PasswordHash}, {"issuer", u.Issuer}, {"subject", u.Subject},
	}); err != nil {
		return err
	}
	if err := validList("user group", u.Groups); err != nil {
		return err
	}
	return ValidateTime("user creation time", u.CreatedAt)
}

// Validate reports, as ErrInvalid, why a cannot be stored. Registration,
// Status, TrustLevel and AuthMethod must be values the contract names, and
// JWKS and Metadata, when present, must be JSON.
func (a Agent) Validate() error {
	if err := validKey("agent id", a.ID); err != nil {
		return err
	}
	switch a.Registration {
	case RegistrationCIMD, RegistrationDCR, RegistrationConfig, RegistrationExternal:
	default:
		return fmt.Errorf("%w: unknown agent registration %q", ErrInvalid, a.Registration)
	}
	if err := ValidateAgentStatus(a.Status); err != nil {
		return err
	}
	if !trustLevels[a.TrustLevel] {
		return fmt.Errorf("%w: unknown agent trust level %q", ErrInvalid, a.TrustLevel)
	}
	if !authMethods[a.AuthMethod] {
		return fmt.Errorf("%w: unknown agent auth method %q", ErrInvalid, a.AuthMethod)
	}
	if err := validTexts("agent", []field{
		{"name", a.Name}, {"owner", a.Owner}, {"secret hash", a.SecretHash}, {"JWKS URL", a.JWKSURL},
	}); err != nil {
		return err
	}
	if err := errors.Join(
		validList("agent redirect URI", a.RedirectURIs),
		validList("agent grant type", a.GrantTypes),
		validList("agent scope", a.Scopes),
	); err != nil {
		return err
	}
	if len(a.JWKS) > 0 && !json.Valid(a.JWKS) {
		return fmt.Errorf("%w: agent JWKS is not valid JSON", ErrInvalid)
	}
	if len(a.Metadata) > 0 && !json.Valid(a.Metadata) {
		return fmt.Errorf("%w: agent metadata is not valid JSON", ErrInvalid)
	}
	return ValidateTime("agent creation time", a.CreatedAt)
}

// ValidateAgentStatus reports, as ErrInvalid, a status other than
// AgentActive or AgentSuspended.
func ValidateAgentStatus(status string) error {
	switch status {
	case AgentActive, AgentSuspended:
		return nil
	default:
		return fmt.Errorf("%w: unknown agent status %q", ErrInvalid, status)
	}
}

// Validate reports, as ErrInvalid, why r cannot be stored.
func (r AuthRequest) Validate() error {
	if err := validKey("authorization request id", r.ID); err != nil {
		return err
	}
	if err := validKey("authorization request client id", r.ClientID); err != nil {
		return err
	}
	if err := validTexts("authorization request", []field{
		{"redirect URI", r.RedirectURI}, {"state", r.State}, {"nonce", r.Nonce},
		{"response type", r.ResponseType}, {"code challenge", r.CodeChallenge},
		{"code challenge method", r.CodeChallengeMethod}, {"user id", r.UserID}, {"code", r.Code},
	}); err != nil {
		return err
	}
	if err := validList("authorization request scope", r.Scopes); err != nil {
		return err
	}
	if err := validList("authorization request resource", r.Resource); err != nil {
		return err
	}
	if err := ValidateTime("authorization request creation time", r.CreatedAt); err != nil {
		return err
	}
	return ValidateTime("authorization request expiry", r.ExpiresAt)
}

// Validate reports, as ErrInvalid, why t cannot be stored. A token without a
// family could not be revoked with its family, so Family is required.
func (t RefreshToken) Validate() error {
	if err := validKey("refresh token id", t.ID); err != nil {
		return err
	}
	if err := validKey("refresh token family", t.Family); err != nil {
		return err
	}
	if err := validKey("refresh token client id", t.ClientID); err != nil {
		return err
	}
	if err := validText("refresh token user id", t.UserID); err != nil {
		return err
	}
	if err := errors.Join(
		validList("refresh token scope", t.Scopes),
		validList("refresh token audience", t.Audience),
		validList("refresh token AMR", t.AMR),
	); err != nil {
		return err
	}
	if err := ValidateTime("refresh token creation time", t.CreatedAt); err != nil {
		return err
	}
	return ValidateTime("refresh token expiry", t.ExpiresAt)
}

// Validate reports, as ErrInvalid, why k cannot be stored. A key retired
// before it stops signing would sign tokens nobody can verify, so RetireAt
// may not precede NotAfter.
func (k SigningKey) Validate() error {
	if err := validKey("signing key id", k.ID); err != nil {
		return err
	}
	if err := validKey("signing key algorithm", k.Algorithm); err != nil {
		return err
	}
	if len(k.Private) == 0 {
		return fmt.Errorf("%w: signing key has no private key", ErrInvalid)
	}
	if err := errors.Join(
		ValidateTime("signing key creation time", k.CreatedAt),
		ValidateTime("signing key end of signing", k.NotAfter),
		ValidateTime("signing key retirement", k.RetireAt),
	); err != nil {
		return err
	}
	if k.RetireAt.Before(k.NotAfter) {
		return fmt.Errorf("%w: signing key retires before it stops signing", ErrInvalid)
	}
	return nil
}

// ValidateTime reports, as ErrInvalid, a zero time where the store needs an
// instant, such as the now of an expiry check: a zero now would treat every
// token as unexpired.
func ValidateTime(what string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: %s is not set", ErrInvalid, what)
	}
	return nil
}

// StorableKey reports whether s could be the key of a stored record: not
// empty, valid UTF-8, no NUL byte. Lookup keys often come straight from a
// client (an authorization code, a username, a client id), so the identity
// lookups answer a key that fails this test with ErrNotFound, before any I/O
// and the same way on every backend, rather than with an error the caller
// might not treat as a refusal.
func StorableKey(s string) bool {
	return s != "" && validText("key", s) == nil
}

func validKey(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	return validText(what, s)
}

// field is a named text field, so validTexts can say which one is wrong.
type field struct{ name, value string }

func validTexts(what string, fields []field) error {
	for _, f := range fields {
		if err := validText(what+" "+f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

func validList(what string, l []string) error {
	for _, s := range l {
		if err := validText(what, s); err != nil {
			return err
		}
	}
	return nil
}
