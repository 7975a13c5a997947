package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/mandate-mcp/mandate/internal/authserver/assertion"
)

// AssertionValidator checks an identity assertion authorization grant
// (ID-JAG, RFC 7523 JWT-bearer) presented by an authenticated client;
// *assertion.Validator is the implementation. Its errors all mean
// invalid_grant.
type AssertionValidator interface {
	Validate(ctx context.Context, assertion, authenticatedClientID string) (*assertion.Grant, error)
}

var _ AssertionValidator = (*assertion.Validator)(nil)

// JWTProfile serves the RFC 7523 JWT-bearer grant for ID-JAGs only, and
// only when Options.Assertions is set. zitadel's own JWT-profile grant would
// mint a token for any client that signs a JWT about itself, outside every
// check here, so it is never used; and zitadel routes this grant without
// authenticating the client, which X-04 requires, so that is done here.
//
// The assertion's (iss, sub) must name a user Mandate already knows (a
// federated login created it, or an operator did): an identity provider's
// word alone does not create accounts. The token is the user's, held by the
// client, and never outlives the assertion.
func (o *oauthServer) JWTProfile(ctx context.Context, r *op.Request[oidc.JWTProfileGrantRequest]) (*op.Response, error) {
	s := o.s
	if s.opts.Assertions == nil {
		return nil, oidc.ErrUnsupportedGrantType().WithDescription("grant type not supported")
	}
	if err := s.checkResource(r.Form["resource"]); err != nil {
		return nil, err
	}
	cc, err := clientCredentials(r.Header, r.Form)
	if err != nil {
		return nil, err
	}
	c, err := o.VerifyClient(ctx, &op.Request[op.ClientCredentials]{
		Method: r.Method, URL: r.URL, Header: r.Header, Form: r.Form, PostForm: r.PostForm, Data: cc,
	})
	if err != nil {
		return nil, err
	}
	a := c.(*client).agent
	if a.AuthMethod == authNone || !slices.Contains(s.grantTypes(a), oidc.GrantTypeBearer) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("client may not use this grant")
	}
	g, err := s.opts.Assertions.Validate(ctx, r.Data.Assertion, a.ID)
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("assertion refused").WithParent(err)
	}
	u, err := s.store.GetUserBySubject(ctx, g.Issuer, g.Subject)
	if err != nil || u.Disabled {
		return nil, oidc.ErrInvalidGrant().WithDescription("assertion refused").
			WithParent(errors.Join(err, errors.New("no active user for the assertion's subject")))
	}
	available := s.allowedScopes(a)
	if g.Scopes != nil {
		available = slices.DeleteFunc(available, func(sc string) bool { return !slices.Contains(g.Scopes, sc) })
	}
	scopes, err := s.narrowScopes(r.Data.Scope, available)
	if err != nil {
		return nil, err
	}
	access, ttl, err := s.mintAccess(ctx, grant{subject: u.ID, clientID: a.ID, scopes: scopes, notAfter: g.Expiry})
	if err != nil {
		return nil, s.serverError("mint access token", err)
	}
	return noStore(tokenResponse(access, ttl, "", scopes)), nil
}

// clientCredentials reads a token request's client authentication — HTTP
// Basic, form secret or client assertion, exactly one — as zitadel does
// for the grants it authenticates itself.
func clientCredentials(header http.Header, form url.Values) (*op.ClientCredentials, error) {
	cc := &op.ClientCredentials{
		ClientID:            form.Get("client_id"),
		ClientSecret:        form.Get("client_secret"),
		ClientAssertion:     form.Get("client_assertion"),
		ClientAssertionType: form.Get("client_assertion_type"),
	}
	multiple := oidc.ErrInvalidRequest().WithDescription("client authentication must not use more than one method")
	if cc.ClientAssertion != "" && cc.ClientSecret != "" {
		return nil, multiple
	}
	if id, secret, ok := (&http.Request{Header: header}).BasicAuth(); ok {
		if cc.ClientAssertion != "" || cc.ClientSecret != "" {
			return nil, multiple
		}
		var err1, err2 error
		cc.ClientID, err1 = url.QueryUnescape(id)
		cc.ClientSecret, err2 = url.QueryUnescape(secret)
		if err := errors.Join(err1, err2); err != nil {
			return nil, invalidClient("invalid basic auth header", err)
		}
	}
	if cc.ClientAssertion != "" && cc.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion {
		return nil, oidc.ErrInvalidRequest().WithDescription("unsupported client_assertion_type")
	}
	if cc.ClientID == "" && cc.ClientAssertion == "" {
		return nil, invalidClient("client authentication required", nil)
	}
	return cc, nil
}
