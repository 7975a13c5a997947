package authserver

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/store"
)

// RFC 8693 token exchange turns a user's access token into a delegated
// token for an agent: sub stays the user, client_id becomes the agent, and
// `act` records the agent as the current actor (any earlier actors of the
// subject token nest inside it). Only the clients in
// Options.TokenExchangeClients may call it — typically a platform that runs
// agents for users — and they must authenticate as confidential clients.
//
// The request:
//
//	subject_token       a Mandate access token of a user (not a
//	                    client_credentials token): typ at+jwt, signed with
//	                    a published key, iss = Issuer, aud ∋ Resource,
//	                    unexpired; subject_token_type access_token
//	actor_token         optional: a Mandate access token held by the agent;
//	                    the agent is its client_id (actor_token_type
//	                    access_token)
//	audience            without actor_token: names the agent by client_id;
//	                    the value Resource itself is accepted and ignored.
//	                    Neither actor_token nor an agent audience: the
//	                    agent is the calling client itself
//	resource            if present, must be Resource (else invalid_target)
//	scope               optional; must lie within the subject token's
//	                    scopes and the agent's ceiling (else invalid_scope);
//	                    default: that intersection
//	requested_token_type  absent or access_token
//
// The result is an access token (no refresh token) with aud [Resource].

// exchangeKey carries the raw request into ValidateTokenExchangeRequest,
// which zitadel calls with its parsed view only: the raw tokens are needed
// for Mandate's stricter verification.
type exchangeKey struct{}

// exchange is one token exchange in progress: the request, and what
// validation decided.
type exchange struct {
	data   *oidc.TokenExchangeRequest
	caller store.Agent

	subject *accessClaims
	agent   store.Agent
}

// TokenExchange hands the request to zitadel's CreateTokenExchangeRequest,
// which parses the tokens and calls the TokenExchangeStorage hooks below
// where Mandate's policy lives, then mints the delegated token itself:
// zitadel's minting cannot write typ at+jwt or the scope claim.
func (o *oauthServer) TokenExchange(ctx context.Context, r *op.ClientRequest[oidc.TokenExchangeRequest]) (*op.Response, error) {
	s, d := o.s, r.Data
	caller := r.Client.(*client).agent
	switch {
	case !slices.Contains(s.opts.TokenExchangeClients, caller.ID) || caller.AuthMethod == authNone:
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not exchange tokens")
	case d.SubjectTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("subject_token_type must be %s", oidc.AccessTokenType)
	case d.ActorToken != "" && d.ActorTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token_type must be %s", oidc.AccessTokenType)
	case d.ActorToken == "" && d.ActorTokenType != "":
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token_type without actor_token")
	case d.RequestedTokenType != "" && d.RequestedTokenType != oidc.AccessTokenType:
		return nil, oidc.ErrInvalidRequest().WithDescription("only access tokens are issued")
	}
	if err := s.checkResource(d.Resource); err != nil {
		return nil, err
	}
	x := &exchange{data: d, caller: caller}
	req, err := op.CreateTokenExchangeRequest(context.WithValue(ctx, exchangeKey{}, x), d, r.Client, s.provider)
	if err != nil {
		return nil, err
	}
	if x.subject == nil {
		return nil, s.serverError("token exchange", errors.New("request was not validated"))
	}
	act := &actorClaim{Subject: x.agent.ID, ClientID: x.agent.ID, Actor: x.subject.Actor}
	access, ttl, err := s.mintAccess(ctx, grant{
		subject:  x.subject.Subject,
		clientID: x.agent.ID,
		scopes:   req.GetScopes(),
		authTime: unixTime(x.subject.AuthTime),
		actor:    act,
	})
	if err != nil {
		return nil, s.serverError("mint access token", err)
	}
	return noStore(&oidc.TokenExchangeResponse{
		AccessToken:     access,
		IssuedTokenType: oidc.AccessTokenType,
		TokenType:       oidc.BearerToken,
		ExpiresIn:       uint64(max(ttl, 0) / time.Second),
		Scopes:          req.GetScopes(),
	}), nil
}

// ValidateTokenExchangeRequest is the policy of token exchange. zitadel has
// already checked the subject token's signature, issuer and expiry; this
// verifies it again with typ and audience, requires it to be a user's, finds
// the agent and narrows the scopes.
func (st *opStorage) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	s := st.s
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return s.serverError("token exchange", errors.New("validation outside Mandate's token exchange"))
	}
	sub, err := s.verifyAccess(ctx, x.data.SubjectToken)
	if err != nil || sub.Subject != req.GetExchangeSubject() {
		return oidc.ErrInvalidRequest().WithDescription("subject_token is invalid").WithParent(err)
	}
	if _, err := s.activeUser(ctx, sub.Subject); err != nil {
		return oidc.ErrInvalidRequest().WithDescription("subject_token does not represent an active user").WithParent(err)
	}
	// A token held by an agent that has since been suspended is not
	// laundered into a fresh one for another agent.
	if _, err := s.agent(ctx, sub.ClientID); err != nil {
		return oidc.ErrInvalidRequest().WithDescription("subject_token was issued to an inactive client").WithParent(err)
	}

	agentID := x.caller.ID
	switch {
	case x.data.ActorToken != "":
		act, err := s.verifyAccess(ctx, x.data.ActorToken)
		if err != nil {
			return oidc.ErrInvalidRequest().WithDescription("actor_token is invalid").WithParent(err)
		}
		agentID = act.ClientID
	default:
		named := ""
		for _, aud := range x.data.Audience {
			if aud == s.resource || aud == named {
				continue
			}
			if named != "" {
				return oidc.ErrInvalidTarget().WithDescription("audience names more than one agent")
			}
			named = aud
		}
		if named != "" {
			agentID = named
		}
	}
	agent, err := s.agent(ctx, agentID)
	if err != nil {
		return oidc.ErrInvalidTarget().WithDescription("the agent is unknown or inactive").WithParent(err)
	}

	var available []string
	for _, sc := range sub.scopes() {
		if slices.Contains(s.allowedScopes(agent), sc) {
			available = append(available, sc)
		}
	}
	scopes, err := s.narrowScopes(req.GetScopes(), available)
	if err != nil {
		return err
	}
	req.SetCurrentScopes(scopes)
	req.SetRequestedTokenType(oidc.AccessTokenType)
	x.subject, x.agent = sub, agent
	return nil
}

// CreateTokenExchangeRequest records the exchange in the log; zitadel
// calls it once the request is validated.
func (st *opStorage) CreateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	if x != nil {
		st.s.log.Info("authserver: token exchange", "caller", x.caller.ID, "agent", x.agent.ID,
			"user", req.GetSubject(), "scopes", req.GetScopes())
	}
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest is not called: Mandate mints the
// exchanged token itself.
func (st *opStorage) GetPrivateClaimsFromTokenExchangeRequest(context.Context, op.TokenExchangeRequest) (map[string]any, error) {
	return nil, errNotMinted
}

// SetUserinfoFromTokenExchangeRequest is not called: no ID tokens are
// issued.
func (st *opStorage) SetUserinfoFromTokenExchangeRequest(context.Context, *oidc.UserInfo, op.TokenExchangeRequest) error {
	return errNotMinted
}
