package authserver

import (
	"context"
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// metadataServer answers RFC 8414 authorization server metadata and OpenID
// Connect discovery with the same document.
type metadataServer struct {
	op.UnimplementedMetadataServer
	s *Server
}

// metadata extends zitadel's discovery document with the field it lacks:
// RFC 9207's authorization_response_iss_parameter_supported, which MCP
// clients of 2026-07-28 check before they trust an authorization response.
type metadata struct {
	*oidc.DiscoveryConfiguration
	AuthorizationResponseIssParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

func (m *metadataServer) OpenIDConfiguration(ctx context.Context, r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	return m.document(r)
}

func (m *metadataServer) AuthorizationServerMetadata(ctx context.Context, r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	return m.document(r)
}

// document is the metadata of the one issuer served. The issuer has no
// path, so a well-known URL with one names an issuer that is not here
// (RFC 8414 §3.3).
func (m *metadataServer) document(r *op.Request[op.MetadataRequest]) (*op.Response, error) {
	if r.Data.IssuerPath != "" {
		return nil, op.NewStatusError(oidc.ErrInvalidRequest().WithDescription("no such issuer"), http.StatusNotFound)
	}
	s := m.s
	authMethods := []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
	grants := []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials}
	if len(s.opts.TokenExchangeClients) > 0 {
		grants = append(grants, oidc.GrantTypeTokenExchange)
	}
	if s.opts.Assertions != nil {
		grants = append(grants, oidc.GrantTypeBearer)
	}
	doc := &oidc.DiscoveryConfiguration{
		Issuer:                                          s.issuer,
		AuthorizationEndpoint:                           s.issuer + authorizePath,
		TokenEndpoint:                                   s.issuer + tokenPath,
		JwksURI:                                         s.issuer + keysPath,
		RevocationEndpoint:                              s.issuer + revokePath,
		ClientIDMetadataDocumentSupported:               s.opts.ResolveURLClient != nil,
		ScopesSupported:                                 s.scopes,
		ResponseTypesSupported:                          []string{string(oidc.ResponseTypeCode)},
		ResponseModesSupported:                          []string{string(oidc.ResponseModeQuery)},
		GrantTypesSupported:                             grants,
		SubjectTypesSupported:                           []string{"public"},
		IDTokenSigningAlgValuesSupported:                []string{keyAlgorithm},
		TokenEndpointAuthMethodsSupported:               authMethods,
		TokenEndpointAuthSigningAlgValuesSupported:      []string{keyAlgorithm},
		RevocationEndpointAuthMethodsSupported:          authMethods,
		RevocationEndpointAuthSigningAlgValuesSupported: []string{keyAlgorithm},
		CodeChallengeMethodsSupported:                   []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256},
	}
	if s.opts.DCR.Enabled {
		doc.RegistrationEndpoint = s.issuer + registerPath
	}
	return op.NewResponse(metadata{DiscoveryConfiguration: doc, AuthorizationResponseIssParameterSupported: true}), nil
}
