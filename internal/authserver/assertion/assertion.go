// Package assertion validates RFC 7523 JWT-bearer grants carrying an
// Identity Assertion JWT Authorization Grant (ID-JAG): the enterprise
// identity provider, having checked the user's sign-in and its own policy,
// vouches that this user may let this client reach Mandate (MCP
// enterprise-managed authorization, X-01…X-04).
//
// Mandate's authorization server trusts an ID-JAG only when everything
// binds it to this exchange: a trusted issuer signed it with an asymmetric
// key, it is typed as an ID-JAG (so no other JWT the issuer signs can be
// replayed as one), it names Mandate as audience and resource, it was issued
// to the very client presenting it, it is fresh, and it is used once
// (AT-60). Every failure is invalid_grant.
package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Wire constants of the grant.
const (
	// GrantType is the token request's grant_type for an assertion grant.
	GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenType is the typ header an ID-JAG must carry, exactly.
	TokenType = "oauth-id-jag+jwt"
	// MaxSkew is how far in the future iat and nbf may lie, for clocks
	// that disagree a little.
	MaxSkew = 30 * time.Second
	// maxAssertionBytes bounds the work done on an assertion before its
	// signature is known to be good; real ID-JAGs are around a kilobyte.
	maxAssertionBytes = 16 << 10
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
	minRSABits = 2048
)

// Errors for two audiences: the client is told invalid_grant and nothing
// more; the wrapped reason, which names claims but never quotes the
// assertion, is for the log.
var (
	// ErrInvalidGrant is wrapped by every error Validate returns.
	ErrInvalidGrant = errors.New("invalid_grant")
	// ErrReplay is what a ReplayCache returns (wrapped) for an assertion
	// id it has seen before; Validate wraps it in ErrInvalidGrant too.
	ErrReplay = errors.New("assertion already used")
)

// algorithms are the signature algorithms an ID-JAG may use: asymmetric
// only, so that nothing Mandate holds can mint one.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// KeySource supplies the public keys that sign one issuer's assertions. The
// set returned is shared: callers must not modify it. internal/authn's
// StaticKeys (a configured set) and RemoteJWKS (a jwks_uri, cached and
// rotation-aware) satisfy it.
type KeySource interface {
	Keys(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// KeyRefresher is a KeySource that can look again when an assertion names
// a key id it does not hold, which is how key rotation is noticed.
type KeyRefresher interface {
	KeySource
	Refresh(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// TrustedIssuer is an identity provider whose ID-JAGs Mandate accepts.
type TrustedIssuer struct {
	// Issuer is the iss value, compared exactly.
	Issuer string
	// Keys supplies the issuer's signing keys.
	Keys KeySource
}

// ReplayCache remembers assertion ids so that each is used once. Use
// records key until exp and returns an error wrapping ErrReplay when key is
// already recorded; any other error also refuses the assertion. A
// store-backed implementation shares the record between replicas.
type ReplayCache interface {
	Use(ctx context.Context, key string, exp time.Time) error
}

// Validator checks ID-JAG assertions. Its fields are read-only once
// Validate is first called; it is then safe for concurrent use.
type Validator struct {
	// Issuers are the trusted identity providers. None means every
	// assertion is refused.
	Issuers []TrustedIssuer
	// Audience is Mandate's authorization server issuer identifier, the
	// only aud accepted. Empty refuses everything.
	Audience string
	// Resource is Mandate's canonical resource URL (RFC 9728), the only
	// resource accepted. Empty refuses everything.
	Resource string
	// Replay records used assertion ids. Nil refuses everything: a
	// validator that cannot tell a replay must not accept anything.
	Replay ReplayCache
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Grant is what a valid ID-JAG authorizes: this subject of this issuer,
// through this client, for these scopes, until Expiry.
type Grant struct {
	Issuer   string
	Subject  string
	ClientID string
	JTI      string
	// Scopes are the scope claim's values; nil when it is absent, in which
	// case the server applies its default.
	Scopes []string
	// Expiry is the assertion's exp; tokens issued for it should not
	// outlive it by policy.
	Expiry time.Time
	// Email is the email claim, when the issuer included one.
	Email string
}

// claims are the ID-JAG claims Mandate reads. Times are float64 so
// that a JSON string where a NumericDate belongs fails to decode.
type claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Resource  json.RawMessage `json:"resource"`
	ClientID  string          `json:"client_id"`
	ID        string          `json:"jti"`
	Expiry    *float64        `json:"exp"`
	IssuedAt  *float64        `json:"iat"`
	NotBefore *float64        `json:"nbf"`
	Scope     string          `json:"scope"`
	Email     string          `json:"email"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidGrant, fmt.Sprintf(format, args...))
}

// Validate checks assertion, presented by the client authenticated as
// authenticatedClientID, and returns the grant it carries. The assertion's
// id is spent only once every other check has passed, so a forged or
// misdirected copy cannot use up a genuine assertion's id.
func (v *Validator) Validate(ctx context.Context, assertion, authenticatedClientID string) (*Grant, error) {
	switch {
	case v.Replay == nil:
		return nil, invalid("no replay cache configured")
	case v.Audience == "" || v.Resource == "":
		return nil, invalid("validator has no audience or resource")
	case authenticatedClientID == "":
		return nil, invalid("no authenticated client")
	case len(assertion) > maxAssertionBytes:
		return nil, invalid("assertion larger than %d bytes", maxAssertionBytes)
	}
	jws, err := jose.ParseSignedCompact(assertion, algorithms)
	if err != nil {
		return nil, invalid("parse: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("want exactly one signature")
	}
	header := jws.Signatures[0].Protected
	if typ, _ := header.ExtraHeaders[jose.HeaderType].(string); typ != TokenType {
		return nil, invalid("typ %q is not %s", typ, TokenType)
	}

	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, invalid("claims are not a JSON object")
	}
	issuer, ok := v.issuer(unverified.Issuer)
	if !ok {
		return nil, invalid("issuer %q is not trusted", unverified.Issuer)
	}
	payload, err := verify(ctx, jws, header, issuer)
	if err != nil {
		return nil, err
	}

	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("claims: %v", err)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if err := v.check(&c, issuer.Issuer, authenticatedClientID, now); err != nil {
		return nil, err
	}
	exp := numericDate(*c.Expiry)
	if err := v.Replay.Use(ctx, replayKey(c.Issuer, c.ID), exp); err != nil {
		return nil, fmt.Errorf("%w: jti: %w", ErrInvalidGrant, err)
	}
	var scopes []string
	if s := strings.Fields(c.Scope); len(s) > 0 {
		scopes = s
	}
	return &Grant{
		Issuer:   c.Issuer,
		Subject:  c.Subject,
		ClientID: c.ClientID,
		JTI:      c.ID,
		Scopes:   scopes,
		Expiry:   exp,
		Email:    c.Email,
	}, nil
}

func (v *Validator) issuer(iss string) (TrustedIssuer, bool) {
	if iss == "" {
		return TrustedIssuer{}, false
	}
	for _, ti := range v.Issuers {
		if ti.Issuer == iss && ti.Keys != nil {
			return ti, true
		}
	}
	return TrustedIssuer{}, false
}

// check applies the claim rules of and RFC 7523 §3.
func (v *Validator) check(c *claims, issuer, clientID string, now time.Time) error {
	switch {
	case c.Issuer != issuer:
		return invalid("iss changed between parse and verify")
	case c.Subject == "":
		return invalid("sub missing")
	case c.ID == "":
		return invalid("jti missing")
	case c.Expiry == nil:
		return invalid("exp missing")
	case c.IssuedAt == nil:
		return invalid("iat missing")
	}
	if aud, err := single(c.Audience); err != nil || aud != v.Audience {
		return invalid("aud is not exactly %q", v.Audience)
	}
	var res string
	if err := json.Unmarshal(c.Resource, &res); err != nil || res != v.Resource {
		return invalid("resource is not %q", v.Resource)
	}
	if c.ClientID == "" {
		return invalid("client_id missing")
	}
	if c.ClientID != clientID {
		return invalid("client_id does not match the authenticated client")
	}
	for name, t := range map[string]*float64{"exp": c.Expiry, "iat": c.IssuedAt, "nbf": c.NotBefore} {
		if t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0 || *t > 1e11) {
			return invalid("%s is not a date", name)
		}
	}
	if !now.Before(numericDate(*c.Expiry)) {
		return invalid("expired")
	}
	if numericDate(*c.IssuedAt).After(now.Add(MaxSkew)) {
		return invalid("iat in the future")
	}
	if c.NotBefore != nil && numericDate(*c.NotBefore).After(now.Add(MaxSkew)) {
		return invalid("not yet valid (nbf)")
	}
	return nil
}

// single returns a claim that is one string, or a JSON array holding
// exactly one string. More than one audience would let the same assertion
// be presented to several servers, each with its own replay record.
func single(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) != 1 {
		return "", errors.New("not a single string")
	}
	return list[0], nil
}

func numericDate(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// replayKey names an assertion id within its issuer's namespace, hashed so
// that a store keeps a fixed-size key whatever the issuer put in jti.
func replayKey(iss, jti string) string {
	sum := sha256.Sum256([]byte(iss + "\x00" + jti))
	return hex.EncodeToString(sum[:])
}

// verify checks the signature against the issuer's keys and returns the
// payload. A key id the set does not hold triggers one refresh when the
// source can refresh.
func verify(ctx context.Context, jws *jose.JSONWebSignature, header jose.Header, issuer TrustedIssuer) ([]byte, error) {
	set, err := issuer.Keys.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer keys: %w", ErrInvalidGrant, err)
	}
	keys := candidates(set, header)
	if len(keys) == 0 && header.KeyID != "" {
		if r, ok := issuer.Keys.(KeyRefresher); ok {
			if set, err = r.Refresh(ctx); err != nil {
				return nil, fmt.Errorf("%w: issuer keys: %w", ErrInvalidGrant, err)
			}
			keys = candidates(set, header)
		}
	}
	if len(keys) == 0 {
		return nil, invalid("no key of the issuer matches kid %q and alg %s", header.KeyID, header.Algorithm)
	}
	for _, k := range keys {
		if payload, err := jws.Verify(k); err == nil {
			return payload, nil
		}
	}
	return nil, invalid("signature does not verify")
}

// candidates are the asymmetric public signing keys of set that may have
// made a signature with header's kid and alg. A header without kid is
// tried against every key.
func candidates(set *jose.JSONWebKeySet, header jose.Header) []any {
	if set == nil {
		return nil
	}
	var out []any
	for _, k := range set.Keys {
		if (header.KeyID != "" && k.KeyID != header.KeyID) || (k.Use != "" && k.Use != "sig") ||
			(k.Algorithm != "" && k.Algorithm != header.Algorithm) {
			continue
		}
		pub := k.Public()
		switch key := pub.Key.(type) {
		case *rsa.PublicKey:
			if header.Algorithm == string(jose.RS256) && key.N.BitLen() >= minRSABits {
				out = append(out, key)
			}
		case *ecdsa.PublicKey:
			if header.Algorithm == string(jose.ES256) {
				out = append(out, key)
			}
		case ed25519.PublicKey:
			if header.Algorithm == string(jose.EdDSA) {
				out = append(out, key)
			}
		}
	}
	return out
}
