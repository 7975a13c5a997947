package authn

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// MaxSkew is the most clock skew JWTVerifier tolerates on exp, nbf and iat.
const MaxSkew = 30 * time.Second

// maxActDepth bounds how deeply `act` claims may nest.
const maxActDepth = 8

// JWTOptions configures a JWTVerifier.
type JWTOptions struct {
	// Issuers are the trusted issuers. A token whose iss is none of them
	// is invalid; an issuer listed twice verifies nothing, since which of
	// its two specs applies would be a guess.
	Issuers []IssuerSpec
	// Skew is the clock skew tolerated on exp, nbf and iat. Zero means
	// MaxSkew; larger values are capped at MaxSkew; negative means none.
	Skew time.Duration
	// CacheSize bounds the verified-token cache. Zero means
	// DefaultCacheSize; negative disables the cache.
	CacheSize int
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// IssuerSpec is one trusted issuer and how to read its tokens.
type IssuerSpec struct {
	// Issuer must equal a token's iss exactly (no normalisation).
	Issuer string
	// Keys supplies the issuer's signing keys. Nil makes every token of
	// this issuer unverifiable.
	Keys KeySource
	// Audience is Mandate's canonical resource URL as the issuer names it
	// (RFC 8707), e.g. "https://mandate.example/mcp". A token's aud must
	// contain it. Empty makes every token of this issuer invalid: a token
	// meant for any resource must never be accepted here.
	Audience string
	// Claims names the claims the principal is read from.
	Claims ClaimMap
	// Method is recorded as the principal's Method for tokens without an
	// `act` claim. Empty means MethodClientCredentials when the token has
	// no user and MethodAuthorizationCode otherwise.
	Method identity.Method
}

// ClaimMap names the claims a principal is read from. Each empty field
// takes the default noted.
type ClaimMap struct {
	// User defaults to "sub".
	User string
	// Agent defaults to "client_id", then "azp".
	Agent string
	// Email defaults to "email".
	Email string
	// Groups defaults to "groups" (an array of strings, or one string).
	Groups string
	// Scopes defaults to "scope" (space-separated), then "scp" (an array).
	// A named claim may take either form.
	Scopes string
}

// JWTVerifier verifies JWT access tokens (RFC 9068) from trusted issuers
// and maps them to principals. Build one with NewJWTVerifier; it is safe
// for concurrent use.
type JWTVerifier struct {
	issuers map[string]*issuer
	skew    time.Duration
	now     func() time.Time
	cache   *tokenCache
}

// issuer is an IssuerSpec with its claim names resolved. A non-nil err
// marks a spec that verifies nothing.
type issuer struct {
	spec   IssuerSpec
	user   string
	agent  []string
	email  string
	groups string
	scopes []string
	err    error
}

// Interface guard.
var _ VerifyFunc = (*JWTVerifier)(nil).Verify

// NewJWTVerifier returns a verifier trusting opts.Issuers. Problems with a
// spec (no keys, no audience, listed twice) are not reported here — the
// configuration is validated where it is read — but they make that
// issuer's tokens fail verification, never pass it.
func NewJWTVerifier(opts JWTOptions) *JWTVerifier {
	v := &JWTVerifier{
		issuers: make(map[string]*issuer, len(opts.Issuers)),
		skew:    min(opts.Skew, MaxSkew),
		now:     opts.Now,
		cache:   newTokenCache(opts.CacheSize),
	}
	if opts.Skew == 0 {
		v.skew = MaxSkew
	}
	v.skew = max(v.skew, 0)
	if v.now == nil {
		v.now = time.Now
	}
	for _, spec := range opts.Issuers {
		if _, dup := v.issuers[spec.Issuer]; dup {
			v.issuers[spec.Issuer] = &issuer{spec: spec, err: errors.New("issuer listed twice")}
			continue
		}
		v.issuers[spec.Issuer] = newIssuer(spec)
	}
	return v
}

func newIssuer(spec IssuerSpec) *issuer {
	c := spec.Claims
	is := &issuer{
		spec:   spec,
		user:   or(c.User, "sub"),
		agent:  []string{"client_id", "azp"},
		email:  or(c.Email, "email"),
		groups: or(c.Groups, "groups"),
		scopes: []string{"scope", "scp"},
	}
	if c.Agent != "" {
		is.agent = []string{c.Agent}
	}
	if c.Scopes != "" {
		is.scopes = []string{c.Scopes}
	}
	switch {
	case spec.Issuer == "":
		is.err = errors.New("issuer has no name")
	case spec.Keys == nil:
		is.err = errors.New("issuer has no key source")
	case spec.Audience == "":
		is.err = errors.New("issuer has no audience")
	}
	return is
}

// Verify verifies a JWT access token and returns its principal: the
// signature under one of the issuer's keys with RS256, ES256 or EdDSA; iss
// exactly a trusted issuer; aud containing that issuer's Audience; exp
// present and not passed; nbf and iat not in the future; and an agent.
// Claims are checked before the signature only to refuse cheaply; nothing
// read from them is used unless the signature verifies.
//
// A token verified before is answered from the cache until it expires, so
// a key withdrawn from an issuer's set stops verifying new tokens at once
// but not tokens already seen; access tokens are short-lived.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*identity.Principal, error) {
	if len(token) > maxTokenBytes {
		return nil, invalid("token longer than %d bytes", maxTokenBytes)
	}
	now := v.now()
	var key [sha256.Size]byte
	if v.cache != nil {
		key = sha256.Sum256([]byte(token))
		if p, ok := v.cache.get(key, now); ok {
			return p, nil
		}
	}
	jws, err := parseCompact(token)
	if err != nil {
		return nil, err
	}
	claims, err := decodeObject(jws.payload)
	if err != nil {
		return nil, invalid("claims: %v", err)
	}
	iss, err := stringMember(claims, "iss")
	if err != nil {
		return nil, invalid("%v", err)
	}
	is, ok := v.issuers[iss]
	if !ok || iss == "" {
		return nil, invalid("issuer %.100q not trusted", iss)
	}
	if is.err != nil {
		return nil, fmt.Errorf("%w: issuer %q: %w", ErrUnavailable, iss, is.err)
	}
	exp, err := v.checkTimes(claims, now)
	if err != nil {
		return nil, err
	}
	if err := checkAudience(claims, is.spec.Audience); err != nil {
		return nil, err
	}
	if err := v.verifySignature(ctx, is, jws); err != nil {
		return nil, err
	}
	p, err := is.principal(iss, claims, exp)
	if err != nil {
		return nil, err
	}
	if v.cache != nil {
		v.cache.put(key, p, exp.Add(v.skew), now)
	}
	return p, nil
}

// verifySignature verifies jws under the issuer's keys, refreshing them
// once if the token names a key id the set does not hold (rotation).
func (v *JWTVerifier) verifySignature(ctx context.Context, is *issuer, jws *compactJWS) error {
	set, err := is.spec.Keys.Keys(ctx)
	if err != nil {
		return unavailable(is.spec.Issuer, err)
	}
	err = jws.verify(set)
	if !errors.Is(err, errNoKey) {
		return err
	}
	r, ok := is.spec.Keys.(KeyRefresher)
	if !ok {
		return invalid("no key with kid %.80q", jws.kid)
	}
	if set, err = r.Refresh(ctx); err != nil {
		return unavailable(is.spec.Issuer, err)
	}
	if err = jws.verify(set); errors.Is(err, errNoKey) {
		return invalid("no key with kid %.80q", jws.kid)
	}
	return err
}

func unavailable(iss string, err error) error {
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("issuer %q: %w", iss, err)
	}
	return fmt.Errorf("%w: issuer %q keys: %w", ErrUnavailable, iss, err)
}

// checkTimes checks exp, nbf and iat against now with the tolerated skew
// and returns exp.
func (v *JWTVerifier) checkTimes(claims map[string]json.RawMessage, now time.Time) (time.Time, error) {
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return time.Time{}, err
	case !ok:
		return time.Time{}, invalid("no exp")
	case !now.Before(exp.Add(v.skew)):
		return time.Time{}, invalid("expired at %s", exp.UTC().Format(time.RFC3339))
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return time.Time{}, err
		}
		if ok && t.After(now.Add(v.skew)) {
			return time.Time{}, invalid("%s %s is in the future", name, t.UTC().Format(time.RFC3339))
		}
	}
	return exp, nil
}

// numericDate reads an RFC 7519 NumericDate: a JSON number of seconds
// since the epoch, possibly fractional. A quoted number is not one.
func numericDate(claims map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok || isNull(raw) {
		return time.Time{}, false, nil
	}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false, invalid("%s is not a number", name)
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	// Beyond 1e11 s (year 5138) the value is nonsense, and converting it
	// to int64 nanoseconds would overflow.
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false, invalid("%s is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// checkAudience checks that aud — a string or an array of strings —
// contains want exactly (RFC 7519 §4.1.3, RFC 8707).
func checkAudience(claims map[string]json.RawMessage, want string) error {
	raw, ok := claims["aud"]
	if !ok || isNull(raw) {
		return invalid("no aud")
	}
	var auds []string
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid("aud: %v", err)
		}
		auds = []string{s}
	case '[':
		if err := json.Unmarshal(raw, &auds); err != nil {
			return invalid("aud: %v", err)
		}
	default:
		return invalid("aud is neither a string nor an array")
	}
	for _, a := range auds {
		if a == want {
			return nil
		}
	}
	return invalid("aud does not contain %q", want)
}

// principal maps verified claims to a principal.
func (is *issuer) principal(iss string, claims map[string]json.RawMessage, exp time.Time) (*identity.Principal, error) {
	p := &identity.Principal{Issuer: iss, Expiry: exp}
	var clientID string
	for _, name := range is.agent {
		s, err := stringMember(claims, name)
		if err != nil {
			return nil, invalid("%v", err)
		}
		if s != "" {
			clientID = s
			break
		}
	}
	user, err := stringMember(claims, is.user)
	if err != nil {
		return nil, invalid("%v", err)
	}
	chain, err := actChain(claims["act"])
	if err != nil {
		return nil, err
	}
	switch {
	case len(chain) > 0:
		// RFC 8693 §4.1: the outermost act is the current actor, the
		// one holding the token; nested ones acted before it.
		p.Chain = chain
		p.Agent = or(chain[0].ClientID, chain[0].Subject)
		p.Method = identity.MethodTokenExchange
	default:
		p.Agent = clientID
		p.Method = is.spec.Method
	}
	if p.Agent == "" {
		return nil, invalid("no agent: none of %s", strings.Join(is.agent, ", "))
	}
	// A client_credentials token names the client as its subject: that
	// agent acts for nobody.
	if user != clientID && user != p.Agent {
		p.User = user
	}
	if p.Method == "" {
		p.Method = identity.MethodAuthorizationCode
		if p.User == "" {
			p.Method = identity.MethodClientCredentials
		}
	}
	if p.Email, err = stringMember(claims, is.email); err != nil {
		return nil, invalid("%v", err)
	}
	if p.Groups, err = stringList(claims, is.groups, false); err != nil {
		return nil, err
	}
	for _, name := range is.scopes {
		if _, ok := claims[name]; !ok {
			continue
		}
		if p.Scopes, err = stringList(claims, name, true); err != nil {
			return nil, err
		}
		break
	}
	if p.TokenID, err = stringMember(claims, "jti"); err != nil {
		return nil, invalid("%v", err)
	}
	return p, nil
}

// actChain reads an RFC 8693 `act` claim, current actor first.
func actChain(raw json.RawMessage) ([]identity.Actor, error) {
	var chain []identity.Actor
	for raw != nil && !isNull(raw) {
		if len(chain) == maxActDepth {
			return nil, invalid("act nested deeper than %d", maxActDepth)
		}
		m, err := decodeObject(raw)
		if err != nil {
			return nil, invalid("act: %v", err)
		}
		var a identity.Actor
		if a.Subject, err = stringMember(m, "sub"); err != nil {
			return nil, invalid("act: %v", err)
		}
		if a.ClientID, err = stringMember(m, "client_id"); err != nil {
			return nil, invalid("act: %v", err)
		}
		if a.Subject == "" && a.ClientID == "" {
			return nil, invalid("act names no actor")
		}
		chain = append(chain, a)
		raw = m["act"]
	}
	return chain, nil
}

// stringList reads a claim holding an array of strings or one string;
// with split, the string is a space-separated list (the OAuth scope
// form). Empty items and repeats are dropped.
func stringList(claims map[string]json.RawMessage, name string, split bool) ([]string, error) {
	raw, ok := claims[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var items []string
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("%s: %v", name, err)
		}
		if split {
			items = strings.Fields(s)
		} else {
			items = []string{s}
		}
	case '[':
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, invalid("%s: %v", name, err)
		}
	default:
		return nil, invalid("%s is neither a string nor an array", name)
	}
	out := items[:0]
	for _, s := range items {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
