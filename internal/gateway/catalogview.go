package gateway

import (
	"context"
	"encoding/json"

	"github.com/mandate-mcp/mandate/internal/catalog"
)

// ToolInfo describes one upstream tool for a person choosing what to grant:
// where it lives, the name agents call it by, and what it says about
// itself. The annotations are the upstream's own claims, shown as hints and
// never trusted for a decision made here.
type ToolInfo struct {
	Upstream    string
	Name        string // the upstream's own name, which mandates match
	PublicName  string // the namespaced name agents see and call
	Title       string
	Description string
	// Destructive and ReadOnly are set only when the upstream set the
	// matching hint explicitly, as for policy decisions (annotationsOf).
	Destructive bool
	ReadOnly    bool
}

// Tools returns every tool of the reachable upstreams, in configuration
// order and then in each upstream's own order, from the shared sessions'
// cached lists. It is the catalog as a whole, not what any principal may
// see: no policy or mandate is applied, so it must only be shown to someone
// deciding what to grant. An upstream that cannot be reached contributes
// nothing.
func (g *Gateway) Tools(ctx context.Context) []ToolInfo {
	ns := g.namespace(ctx, toolsKind)
	var out []ToolInfo
	for _, u := range g.ups {
		items, err := u.list(ctx, nil, toolsKind)
		if err != nil {
			continue
		}
		for _, it := range items {
			var v struct {
				Name        string `json:"name"`
				Title       string `json:"title"`
				Description string `json:"description"`
				Annotations struct {
					Title string `json:"title"`
				} `json:"annotations"`
			}
			if json.Unmarshal(it, &v) != nil || v.Name == "" {
				continue
			}
			title := v.Title
			if title == "" {
				title = v.Annotations.Title
			}
			a := annotationsOf(it)
			out = append(out, ToolInfo{
				Upstream: u.id, Name: v.Name, PublicName: ns.Public(catalog.Ref{Upstream: u.id, Name: v.Name}),
				Title: title, Description: v.Description, Destructive: a.Destructive, ReadOnly: a.ReadOnly,
			})
		}
	}
	return out
}
