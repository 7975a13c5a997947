package authn

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// WellKnownPath is where RFC 9728 metadata lives, before any resource path.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// ProtectedResourceMetadata is what Mandate publishes about itself as an
// OAuth protected resource (RFC 9728 §2).
type ProtectedResourceMetadata struct {
	// Resource is Mandate's canonical MCP URL, e.g.
	// "https://mandate.example/mcp": exactly the audience tokens must
	// carry, never an upstream's URL (AT-38).
	Resource string
	// AuthorizationServers are the issuers clients may get tokens from;
	// MCP requires at least one.
	AuthorizationServers []string
	// ScopesSupported is the baseline a client should request (usually
	// BaselineScopes()); offline_access is never listed.
	ScopesSupported []string
	// ResourceName is a human-readable name shown by clients. Empty omits it.
	ResourceName string
	// ResourceDocumentation is a URL of documentation for developers.
	// Empty omits it.
	ResourceDocumentation string
}

// prmJSON is the wire form of ProtectedResourceMetadata.
type prmJSON struct {
	Resource              string   `json:"resource"`
	AuthorizationServers  []string `json:"authorization_servers"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	BearerMethods         []string `json:"bearer_methods_supported"`
	ResourceName          string   `json:"resource_name,omitempty"`
	ResourceDocumentation string   `json:"resource_documentation,omitempty"`
}

// MetadataHandler serves m as RFC 9728 JSON on GET and HEAD, with
// "bearer_methods_supported": ["header"] since tokens are accepted in no
// other place. The document is public and holds no secret, so any origin
// may read it (Access-Control-Allow-Origin: *), which browser-based MCP
// clients need for discovery.
func MetadataHandler(m ProtectedResourceMetadata) http.Handler {
	doc := prmJSON{
		Resource:              m.Resource,
		AuthorizationServers:  append([]string{}, m.AuthorizationServers...),
		BearerMethods:         []string{"header"},
		ResourceName:          m.ResourceName,
		ResourceDocumentation: m.ResourceDocumentation,
	}
	for _, s := range m.ScopesSupported {
		if s != offlineAccess {
			doc.ScopesSupported = append(doc.ScopesSupported, s)
		}
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // strings and string slices always marshal
	}
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "public, max-age=300")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = w.Write(body)
			}
		case http.MethodOptions:
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "MCP-Protocol-Version")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// MetadataPaths returns the paths MetadataHandler should be mounted on
// for a resource at resourcePath (e.g. "/mcp"): the root well-known path
// and the path-inserted one (RFC 9728 §3.1), since MCP clients try both.
func MetadataPaths(resourcePath string) []string {
	p := strings.Trim(resourcePath, "/")
	if p == "" {
		return []string{WellKnownPath}
	}
	return []string{WellKnownPath, WellKnownPath + "/" + p}
}

// MetadataURL returns the path-inserted metadata URL of a resource (RFC
// 9728 §3.1): "https://h/mcp" gives
// "https://h/.well-known/oauth-protected-resource/mcp". It is the value of
// Options.ResourceMetadataURL.
func MetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", fmt.Errorf("resource URL: %w", err)
	}
	if u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("resource URL %q: want scheme://host[/path] without query or fragment", resource)
	}
	p := strings.Trim(u.EscapedPath(), "/")
	out := url.URL{Scheme: u.Scheme, Host: u.Host}
	return out.String() + WellKnownPath + strings.TrimSuffix("/"+p, "/"), nil
}
