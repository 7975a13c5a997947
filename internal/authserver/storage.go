package authserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/store"
)

// opStorage is the storage zitadel's op package calls into. Token minting
// does not go through it (CreateAccessToken and friends refuse): the
// overrides in server.go mint every token themselves, because op's minting
// writes `typ: JWT`, omits `scope`, reads the wall clock and attaches ID
// tokens. What op does use is the client lookup, client authentication, the
// authorization request records, revocation and the key set.
type opStorage struct {
	s *Server
}

var (
	_ op.Storage              = (*opStorage)(nil)
	_ op.TokenExchangeStorage = (*opStorage)(nil)
)

// errNotMinted answers the op storage methods that would mint tokens.
var errNotMinted = errors.New("authserver: tokens are minted by the authserver, not by op storage")

// authRequest adapts a stored authorization request to op.AuthRequest.
type authRequest struct {
	r store.AuthRequest
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string          { return a.r.ID }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string  { return a.r.Resource }
func (a *authRequest) GetAuthTime() time.Time { return a.r.AuthTime }
func (a *authRequest) GetClientID() string    { return a.r.ClientID }
func (a *authRequest) GetNonce() string       { return a.r.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.r.RedirectURI }
func (a *authRequest) GetScopes() []string    { return a.r.Scopes }
func (a *authRequest) GetState() string       { return a.r.State }
func (a *authRequest) GetSubject() string     { return a.r.UserID }
func (a *authRequest) Done() bool             { return a.r.Done }

func (a *authRequest) GetResponseType() oidc.ResponseType {
	return oidc.ResponseType(a.r.ResponseType)
}

func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseModeQuery }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.r.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{
		Challenge: a.r.CodeChallenge,
		Method:    oidc.CodeChallengeMethod(a.r.CodeChallengeMethod),
	}
}

// CreateAuthRequest stores a validated authorization request.
func (st *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	now := st.s.now()
	r := store.AuthRequest{
		ID:                  newID("ar_"),
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              req.Scopes,
		ResponseType:        string(req.ResponseType),
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod),
		Resource:            []string{st.s.resource},
		CreatedAt:           now,
		ExpiresAt:           now.Add(authRequestTTL),
	}
	if err := st.s.store.PutAuthRequest(ctx, r); err != nil {
		return nil, fmt.Errorf("store authorization request: %w", err)
	}
	return &authRequest{r}, nil
}

// AuthRequestByID returns an unexpired authorization request.
func (st *opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := st.s.liveAuthRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return &authRequest{r}, nil
}

// AuthRequestByCode returns the authorization request a code was issued
// for: consented, unexpired.
func (st *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := st.s.store.GetAuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if !r.Done || r.UserID == "" || !r.ExpiresAt.After(st.s.now()) {
		return nil, errors.New("code expired or not consented")
	}
	return &authRequest{r}, nil
}

// SaveAuthCode attaches code to a request; the consent page issues codes
// itself, so op never calls this in Mandate's flow.
func (st *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	r, err := st.s.store.GetAuthRequest(ctx, id)
	if err != nil {
		return err
	}
	r.Code = code
	return st.s.store.PutAuthRequest(ctx, r)
}

func (st *opStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	return st.s.store.DeleteAuthRequest(ctx, id)
}

func (st *opStorage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return "", time.Time{}, errNotMinted
}

func (st *opStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNotMinted
}

// TokenRequestByRefreshToken refuses: a refresh token is redeemed only by
// the rotating refresh grant, never accepted as a token-exchange subject.
func (st *opStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (st *opStorage) TerminateSession(context.Context, string, string) error { return nil }

// GetRefreshTokenInfo finds a refresh token of clientID for revocation.
func (st *opStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := st.s.store.GetRefreshToken(ctx, tokenHash(token))
	if err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.UserID, rt.ID, nil
}

// RevokeToken revokes the family of a refresh token (tokenOrTokenID is then
// its stored id). Anything else — an access token's jti, an unknown token,
// another client's token — is answered with success, as RFC 7009 §2.2 asks:
// access tokens are short-lived JWTs and are not tracked.
func (st *opStorage) RevokeToken(ctx context.Context, tokenOrTokenID, _, clientID string) *oidc.Error {
	rt, err := st.s.store.GetRefreshToken(ctx, tokenOrTokenID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		st.s.log.Error("authserver: revocation lookup", "err", err)
		return oidc.ErrServerError()
	}
	if rt.ClientID != clientID {
		return nil
	}
	if err := st.s.store.RevokeTokenFamily(ctx, rt.Family, st.s.now()); err != nil {
		st.s.log.Error("authserver: revoke token family", "err", err)
		return oidc.ErrServerError()
	}
	return nil
}

// signingKeyAdapter and publicKey adapt keyring entries to op's key types.
type signingKeyAdapter struct{ k *signingKey }

func (a signingKeyAdapter) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (a signingKeyAdapter) Key() any                                    { return a.k.private }
func (a signingKeyAdapter) ID() string                                  { return a.k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.private.PublicKey }

func (st *opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := st.s.keys.current(ctx)
	if err != nil {
		return nil, err
	}
	return signingKeyAdapter{k}, nil
}

func (st *opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet is the published keys: the JWKS endpoint and op's own token checks.
func (st *opStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := st.s.keys.published(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// GetClientByClientID returns an active agent; see Server.agent.
func (st *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	a, err := st.s.agent(ctx, id)
	if err != nil {
		return nil, err
	}
	return &client{agent: a, s: st.s}, nil
}

// AuthorizeClientIDSecret checks a confidential agent's secret.
func (st *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	a, err := st.s.agent(ctx, id)
	if err != nil {
		return err
	}
	if !isSecretMethod(a.AuthMethod) || !verifySecret(a, secret) {
		return errors.New("invalid client secret")
	}
	return nil
}

func (st *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (st *opStorage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errors.New("userinfo is not served")
}

func (st *opStorage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not served")
}

func (st *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID returns an agent's public key for op's
// private_key_jwt verification.
func (st *opStorage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	a, err := st.s.agent(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return st.s.agentKey(ctx, a, keyID)
}

// ValidateJWTProfileScopes refuses: zitadel's JWT-profile grant would mint
// tokens for any key-holding client outside Mandate's checks, so it is off.
func (st *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

func (st *opStorage) Health(context.Context) error { return nil }

// liveAuthRequest returns a stored authorization request that has not
// expired.
func (s *Server) liveAuthRequest(ctx context.Context, id string) (store.AuthRequest, error) {
	r, err := s.store.GetAuthRequest(ctx, id)
	if err != nil {
		return store.AuthRequest{}, err
	}
	if !r.ExpiresAt.After(s.now()) {
		return store.AuthRequest{}, fmt.Errorf("authorization request %w: expired", store.ErrNotFound)
	}
	return r, nil
}
