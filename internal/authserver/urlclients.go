package authserver

import (
	"context"
	"strings"

	"github.com/mandate-mcp/mandate/internal/authserver/cimd"
	"github.com/mandate-mcp/mandate/internal/store"
)

// CIMDClients adapts a Client ID Metadata Document fetcher to the two
// options that need one: ResolveURLClient, which turns a URL client_id into
// an agent, and FetchJWKS, which fetches the jwks_uri such a document may
// name through the same SSRF-guarded HTTP client.
func CIMDClients(f *cimd.Fetcher) (resolve func(context.Context, string) (store.Agent, error), fetchKeys func(context.Context, string) ([]byte, error)) {
	resolve = func(ctx context.Context, clientID string) (store.Agent, error) {
		doc, err := f.Fetch(ctx, clientID)
		if err != nil {
			return store.Agent{}, err
		}
		return agentFromDocument(doc), nil
	}
	fetchKeys = func(ctx context.Context, u string) ([]byte, error) {
		return fetchJWKSWith(ctx, f.Client(), u)
	}
	return resolve, fetchKeys
}

// agentFromDocument is the agent a client metadata document declares. It
// starts untrusted and active; resolveURLClient keeps what an operator
// decided about an agent already known.
func agentFromDocument(doc *cimd.Document) store.Agent {
	var jwks []byte
	if len(doc.JWKS) > 0 {
		jwks = doc.JWKS
	}
	return store.Agent{
		ID:           doc.ClientID,
		Name:         doc.ClientName,
		Registration: store.RegistrationCIMD,
		TrustLevel:   "untrusted",
		Status:       store.AgentActive,
		RedirectURIs: doc.RedirectURIs,
		GrantTypes:   doc.GrantTypes,
		AuthMethod:   doc.TokenEndpointAuthMethod,
		JWKS:         jwks,
		JWKSURL:      doc.JWKSURI,
		Scopes:       strings.Fields(doc.Scope),
		Metadata:     doc.Raw,
	}
}
