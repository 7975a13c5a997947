// Package federation signs humans in through an upstream OpenID Connect
// provider — the organisation's own identity provider — so that Mandate's
// authorization server never holds a password. It runs the authorization
// code flow with PKCE and a nonce, verifies the ID token (issuer, audience,
// nonce, signature, expiry), and maps the provider's claims onto an
// Identity through a configurable claim map.
//
// The browser carries the login's state between the two legs in a cookie
// sealed with AES-GCM: the state parameter alone proves nothing, the cookie
// ties the callback to the browser that started the login (login CSRF), and
// the PKCE verifier and nonce it holds tie the code to that login.
package federation

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/mandate-mcp/mandate/internal/loopback"
)

// Errors for two audiences: the browser is shown a generic "sign-in
// failed"; the wrapped reason is for the log.
var (
	// ErrLoginState means the callback does not belong to a login this
	// browser started here: no state, no cookie, a cookie for another
	// state, a tampered or expired cookie. Start the login again.
	ErrLoginState = errors.New("unknown or expired login")
	// ErrProviderError means the provider answered the authorization
	// request with an error (the user declined, the client is not
	// allowed, ...). Its error code is in the wrapped message; its
	// free-text description is not, since anyone can put text there.
	ErrProviderError = errors.New("identity provider refused the login")
	// ErrVerification means the code exchange or the ID token failed:
	// wrong issuer, audience, nonce or signature, expired token, or a
	// code that does not match the PKCE verifier.
	ErrVerification = errors.New("identity provider response not verified")
	// ErrClaims means the verified claims lack what an Identity needs.
	ErrClaims = errors.New("identity claims unusable")
)

// Defaults of Options.
const (
	DefaultLoginTTL = 10 * time.Minute
	// cookiePrefix starts the name of every login cookie; the rest is
	// derived from the state, so concurrent logins in one browser (two
	// tabs) each keep their own.
	cookiePrefix = "mandate_login_"
)

// defaultScopes are requested when Options.Scopes is nil.
var defaultScopes = []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile}

// signingAlgorithms are the ID token algorithms accepted: asymmetric only,
// since an HMAC-signed ID token would be keyed with the client secret.
var signingAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// ClaimMap names the provider's claims that fill an Identity. Providers
// disagree: Entra ID puts groups in "groups" as object ids, Okta in a claim
// named by the admin, Keycloak under "realm_access.roles". A name containing
// dots that is not itself a claim is followed as a path into nested objects.
type ClaimMap struct {
	// User is the claim that identifies the user. Zero means "sub", the
	// only claim OpenID Connect promises is stable and never reassigned;
	// choose another only if the provider guarantees the same.
	User string
	// Email is the email address claim. Zero means "email". With the
	// default, an address the provider marks email_verified=false is
	// dropped.
	Email string
	// Groups is the group membership claim: an array of strings, or one
	// string for one group. Zero means "groups".
	Groups string
	// Name is the display name claim. Zero means "name".
	Name string
}

func (m ClaimMap) withDefaults() ClaimMap {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return ClaimMap{User: def(m.User, "sub"), Email: def(m.Email, "email"), Groups: def(m.Groups, "groups"), Name: def(m.Name, "name")}
}

// Options configure a Provider.
type Options struct {
	// Issuer is the provider's issuer URL, compared exactly with its
	// discovery document and every ID token. It must be https, or http on
	// a loopback host for development.
	Issuer string
	// ClientID and ClientSecret are Mandate's registration at the
	// provider. An empty secret makes Mandate a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// Scopes are requested from the provider; "openid" is added if
	// missing. Nil means openid, email and profile.
	Scopes []string
	// RedirectURL is Mandate's callback URL as registered at the provider.
	// Its path scopes the login cookie, and an https URL makes it Secure.
	RedirectURL string
	// Claims maps the provider's claims onto an Identity.
	Claims ClaimMap
	// HTTPClient talks to the provider (discovery, keys, token and userinfo
	// endpoints). Nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// CookieKey seals login cookies; at least 32 bytes. Nil means a random
	// key per Provider, so a login started before a restart, or on another
	// replica, fails with ErrLoginState and has to be started again.
	CookieKey []byte
	// LoginTTL is how long a started login may take. Zero means
	// DefaultLoginTTL.
	LoginTTL time.Duration
}

// Identity is a human as the provider vouched for them.
type Identity struct {
	// Issuer is the provider's issuer; with Subject it names the user
	// uniquely.
	Issuer  string
	Subject string
	// Email is empty when the provider sent none or marked it unverified.
	Email  string
	Groups []string
	Name   string
}

// Provider is one upstream OpenID provider. It is safe for concurrent use.
type Provider struct {
	rp         rp.RelyingParty
	issuer     string
	claims     ClaimMap
	aead       cipher.AEAD
	cookiePath string
	secure     bool
	ttl        time.Duration
	now        func() time.Time // tests set a fake clock
}

// New discovers the provider at opts.Issuer and returns a Provider for it.
// Discovery fails unless the document's issuer equals opts.Issuer exactly.
func New(ctx context.Context, opts Options) (*Provider, error) {
	iss, err := url.Parse(opts.Issuer)
	if err != nil || iss.Host == "" || !(iss.Scheme == "https" || iss.Scheme == "http" && loopback.Host(iss.Hostname())) {
		return nil, fmt.Errorf("federation: issuer %q must be an https URL", opts.Issuer)
	}
	if opts.ClientID == "" {
		return nil, errors.New("federation: client id missing")
	}
	redirect, err := url.Parse(opts.RedirectURL)
	if err != nil || !redirect.IsAbs() || redirect.Host == "" {
		return nil, fmt.Errorf("federation: redirect URL %q is not absolute", opts.RedirectURL)
	}
	key := opts.CookieKey
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	} else if len(key) < 32 {
		return nil, errors.New("federation: cookie key shorter than 32 bytes")
	}
	derived := sha256.Sum256(append([]byte("mandate federation login cookie\x00"), key...))
	block, err := aes.NewCipher(derived[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	scopes := opts.Scopes
	if scopes == nil {
		scopes = defaultScopes
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	relying, err := rp.NewRelyingPartyOIDC(ctx, opts.Issuer, opts.ClientID, opts.ClientSecret, opts.RedirectURL, slices.Clone(scopes),
		rp.WithHTTPClient(hc),
		rp.WithVerifierOpts(
			rp.WithNonce(nonceFromContext),
			rp.WithSupportedSigningAlgorithms(signingAlgorithms...),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("federation: discover %s: %w", opts.Issuer, err)
	}
	ttl := opts.LoginTTL
	if ttl <= 0 {
		ttl = DefaultLoginTTL
	}
	path := redirect.EscapedPath()
	if path == "" {
		path = "/"
	}
	return &Provider{
		rp:         relying,
		issuer:     opts.Issuer,
		claims:     opts.Claims.withDefaults(),
		aead:       aead,
		cookiePath: path,
		secure:     redirect.Scheme == "https",
		ttl:        ttl,
		now:        time.Now,
	}, nil
}

// Issuer returns the provider's issuer.
func (p *Provider) Issuer() string { return p.issuer }

// loginState is what the login cookie carries between the two legs.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Resume   string `json:"r,omitempty"`
	Expires  int64  `json:"e"`
}

// StartLogin begins a login: it sets the login cookie on w and returns the
// provider URL to redirect the browser to. resume is handed back by
// FinishLogin untouched — typically the id of the pending authorization
// request to continue once the user is known; it is sealed, so the browser
// can neither read nor change it.
func (p *Provider) StartLogin(w http.ResponseWriter, resume string) (string, error) {
	st := loginState{
		State:    randomString(),
		Nonce:    randomString(),
		Verifier: randomString(),
		Resume:   resume,
		Expires:  p.now().Add(p.ttl).Unix(),
	}
	name := cookieName(st.State)
	value, err := p.seal(name, &st)
	if err != nil {
		return "", err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     p.cookiePath,
		MaxAge:   int(p.ttl / time.Second),
		Secure:   p.secure,
		HttpOnly: true,
		// Lax: the callback is a top-level GET navigation from the
		// provider's site, which Lax cookies accompany.
		SameSite: http.SameSiteLaxMode,
	})
	return rp.AuthURL(st.State, p.rp,
		rp.WithCodeChallenge(oidc.NewSHACodeChallenge(st.Verifier)),
		rp.AuthURLOpt(rp.WithURLParam("nonce", st.Nonce)),
	), nil
}

// FinishLogin handles the provider's redirect back to RedirectURL: it
// checks the state against this browser's login cookie, exchanges the code
// with the PKCE verifier, verifies the ID token, and returns the identity
// and the resume value given to StartLogin. The login cookie is cleared
// whatever the outcome, so a callback cannot be replayed.
func (p *Provider) FinishLogin(w http.ResponseWriter, r *http.Request) (*Identity, string, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		return nil, "", fmt.Errorf("%w: no state in callback", ErrLoginState)
	}
	name := cookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, "", fmt.Errorf("%w: no login cookie for this state", ErrLoginState)
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: p.cookiePath, MaxAge: -1, Secure: p.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	var st loginState
	if err := p.open(name, c.Value, &st); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrLoginState, err)
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return nil, "", fmt.Errorf("%w: state does not match the login cookie", ErrLoginState)
	}
	if p.now().Unix() >= st.Expires {
		return nil, "", fmt.Errorf("%w: login expired", ErrLoginState)
	}
	// RFC 9207: a provider that names itself in the response must name
	// the issuer this login went to (mix-up defence).
	if iss := q.Get("iss"); iss != "" && iss != p.issuer {
		return nil, "", fmt.Errorf("%w: response iss %q is not %q", ErrVerification, iss, p.issuer)
	}
	if code := q.Get("error"); code != "" {
		return nil, "", fmt.Errorf("%w: %.64q", ErrProviderError, code)
	}
	code := q.Get("code")
	if code == "" {
		return nil, "", fmt.Errorf("%w: no code in callback", ErrVerification)
	}
	ctx := context.WithValue(r.Context(), nonceKey{}, st.Nonce)
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, p.rp, rp.WithCodeVerifier(st.Verifier))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrVerification, err)
	}
	id, err := p.identity(ctx, tokens)
	if err != nil {
		return nil, "", err
	}
	return id, st.Resume, nil
}

// identity maps the verified ID token's claims — completed from the
// userinfo endpoint when the ID token lacks a mapped claim — onto an
// Identity. A userinfo failure fails the login: an identity missing its
// groups could slip past a policy that denies by group.
func (p *Provider) identity(ctx context.Context, tokens *oidc.Tokens[*oidc.IDTokenClaims]) (*Identity, error) {
	idc := tokens.IDTokenClaims
	claims := idc.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	missing := false
	for _, name := range []string{p.claims.User, p.claims.Email, p.claims.Groups, p.claims.Name} {
		if _, ok := lookup(claims, name); !ok {
			missing = true
		}
	}
	if missing && tokens.Token != nil && tokens.AccessToken != "" && p.rp.UserinfoEndpoint() != "" {
		info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, idc.Subject, p.rp)
		if err != nil {
			return nil, fmt.Errorf("%w: userinfo: %w", ErrVerification, err)
		}
		merged := make(map[string]any, len(info.Claims)+len(claims))
		for k, v := range info.Claims {
			merged[k] = v
		}
		for k, v := range claims {
			merged[k] = v
		}
		claims = merged
	}
	return mapIdentity(p.issuer, claims, p.claims)
}

// mapIdentity applies the claim map. The user claim must be a non-empty
// string; the others are optional, and ignored when of the wrong type.
func mapIdentity(issuer string, claims map[string]any, m ClaimMap) (*Identity, error) {
	v, _ := lookup(claims, m.User)
	user, _ := v.(string)
	if user == "" {
		return nil, fmt.Errorf("%w: user claim %q missing or not a string", ErrClaims, m.User)
	}
	id := &Identity{Issuer: issuer, Subject: user}
	if v, ok := lookup(claims, m.Email); ok {
		id.Email, _ = v.(string)
		if m.Email == "email" {
			if verified, ok := claims["email_verified"].(bool); ok && !verified {
				id.Email = ""
			}
		}
	}
	if v, ok := lookup(claims, m.Name); ok {
		id.Name, _ = v.(string)
	}
	if v, ok := lookup(claims, m.Groups); ok {
		switch g := v.(type) {
		case string:
			if g != "" {
				id.Groups = []string{g}
			}
		case []any:
			for _, e := range g {
				if s, ok := e.(string); ok && s != "" {
					id.Groups = append(id.Groups, s)
				}
			}
		case []string:
			id.Groups = slices.Clone(g)
		}
	}
	return id, nil
}

// lookup finds claim name, or, when no claim has that name and it contains
// dots, follows it as a path through nested objects.
func lookup(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

type nonceKey struct{}

// nonceFromContext gives the ID token verifier the nonce of the login being
// finished. Outside FinishLogin it is empty, which no issued ID token
// matches, since every login sends one.
func nonceFromContext(ctx context.Context) string {
	n, _ := ctx.Value(nonceKey{}).(string)
	return n
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookieName derives the login cookie's name from its state.
func cookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return cookiePrefix + hex.EncodeToString(sum[:8])
}

// seal encrypts st for the cookie named name; the name is authenticated
// too, so a cookie cannot be replayed under another login's name.
func (p *Provider) seal(name string, st *loginState) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, p.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(p.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (p *Provider) open(name, value string, st *loginState) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < p.aead.NonceSize() {
		return errors.New("malformed login cookie")
	}
	ns := p.aead.NonceSize()
	plain, err := p.aead.Open(nil, raw[:ns], raw[ns:], []byte(name))
	if err != nil {
		return errors.New("login cookie does not open")
	}
	if err := json.Unmarshal(plain, st); err != nil {
		return errors.New("malformed login state")
	}
	return nil
}
