package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/mandate-mcp/mandate/internal/store"
)

// accessTokenType is the JWT typ of access tokens (RFC 9068 §2.1). A
// resource server that checks it cannot be handed an ID token or a client
// assertion signed by the same key.
const accessTokenType = "at+jwt"

// actorClaim is an RFC 8693 `act` claim: the current actor, with any prior
// actors nested inside it.
type actorClaim struct {
	Subject  string      `json:"sub"`
	ClientID string      `json:"client_id,omitempty"`
	Actor    *actorClaim `json:"act,omitempty"`
}

// accessClaims are the claims of a Mandate access token (RFC 9068 §2.2).
type accessClaims struct {
	Issuer   string      `json:"iss"`
	Subject  string      `json:"sub"`
	Audience audience    `json:"aud"`
	ClientID string      `json:"client_id"`
	Scope    string      `json:"scope,omitempty"`
	JWTID    string      `json:"jti"`
	IssuedAt int64       `json:"iat"`
	Expiry   int64       `json:"exp"`
	AuthTime int64       `json:"auth_time,omitempty"`
	Actor    *actorClaim `json:"act,omitempty"`
}

// audience reads `aud` as a string or an array; Mandate writes an array.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// grant is what an access token says: who it is about, which agent holds
// it, what it may do, and who acts.
type grant struct {
	subject  string // the user; the client id for client_credentials
	clientID string // the agent holding the token
	scopes   []string
	authTime time.Time // when the user logged in; zero for no user
	actor    *actorClaim
	notAfter time.Time // if set, the token expires no later
}

// mintAccess signs an access token for g with the current key and
// returns it with its lifetime.
func (s *Server) mintAccess(ctx context.Context, g grant) (string, time.Duration, error) {
	key, err := s.keys.current(ctx)
	if err != nil {
		return "", 0, err
	}
	now := s.now()
	claims := accessClaims{
		Issuer:   s.issuer,
		Subject:  g.subject,
		Audience: audience{s.resource},
		ClientID: g.clientID,
		Scope:    strings.Join(g.scopes, " "),
		JWTID:    newID(""),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(s.opts.AccessTTL).Unix(),
		Actor:    g.actor,
	}
	if !g.notAfter.IsZero() && g.notAfter.Unix() < claims.Expiry {
		claims.Expiry = g.notAfter.Unix()
	}
	if !g.authTime.IsZero() {
		claims.AuthTime = g.authTime.Unix()
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", 0, fmt.Errorf("encode access token: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.private, KeyID: key.id}},
		(&jose.SignerOptions{}).WithType(accessTokenType),
	)
	if err != nil {
		return "", 0, fmt.Errorf("access token signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", 0, fmt.Errorf("sign access token: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", 0, fmt.Errorf("serialize access token: %w", err)
	}
	return token, time.Duration(claims.Expiry-now.Unix()) * time.Second, nil
}

// errTokenInvalid is why a presented token was refused; the reason wrapped
// in it is for the log only.
var errTokenInvalid = errors.New("token invalid")

// verifyAccess checks that token is an access token this server issued for
// its resource and that it has not expired: typ, signature with a published
// key, iss, aud and exp. It is used for the tokens presented to token
// exchange; zitadel's own check skips typ and aud and runs on the wall clock.
func (s *Server) verifyAccess(ctx context.Context, token string) (*accessClaims, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTokenInvalid, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", errTokenInvalid, len(jws.Signatures))
	}
	hdr := jws.Signatures[0].Protected
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, accessTokenType) &&
		!strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, fmt.Errorf("%w: typ %q", errTokenInvalid, typ)
	}
	key, err := s.keys.lookup(ctx, hdr.KeyID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errTokenInvalid, err)
	}
	payload, err := jws.Verify(&key.private.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", errTokenInvalid, err)
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", errTokenInvalid, err)
	}
	now := s.now().Unix()
	switch {
	case c.Issuer != s.issuer:
		return nil, fmt.Errorf("%w: iss %q", errTokenInvalid, c.Issuer)
	case !slices.Contains(c.Audience, s.resource):
		return nil, fmt.Errorf("%w: aud %q", errTokenInvalid, c.Audience)
	case c.Expiry <= now:
		return nil, fmt.Errorf("%w: expired", errTokenInvalid)
	case c.IssuedAt > now+60:
		return nil, fmt.Errorf("%w: issued in the future", errTokenInvalid)
	case c.Subject == "" || c.ClientID == "" || c.JWTID == "":
		return nil, fmt.Errorf("%w: sub, client_id or jti missing", errTokenInvalid)
	}
	return &c, nil
}

// scopes returns the token's scope claim as a list.
func (c *accessClaims) scopes() []string { return strings.Fields(c.Scope) }

// issueRefresh stores rt under the hash of a fresh token and returns the
// token.
func (s *Server) issueRefresh(ctx context.Context, rt store.RefreshToken) (string, error) {
	token := randomToken()
	rt.ID = tokenHash(token)
	rt.CreatedAt = s.now()
	if err := s.store.PutRefreshToken(ctx, rt); err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return token, nil
}

// tokenResponse is the token endpoint's success body. No id_token: Mandate
// issues tokens for its MCP endpoint, not identities for relying parties.
func tokenResponse(access string, ttl time.Duration, refresh string, scopes []string) *oidc.AccessTokenResponse {
	return &oidc.AccessTokenResponse{
		AccessToken:  access,
		TokenType:    oidc.BearerToken,
		RefreshToken: refresh,
		ExpiresIn:    uint64(max(ttl, 0) / time.Second),
		Scope:        scopes,
	}
}

// unixTime is the time of a NumericDate claim; zero stays the zero time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}
