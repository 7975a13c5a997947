package gateway

import (
	"context"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// annotatedServer offers one tool of each kind of risk hint.
func annotatedServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "annotated", Version: "0"}, nil)
	noop := func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{}, nil, nil
	}
	yes, no := true, false
	mcp.AddTool(s, &mcp.Tool{Name: "read", Title: "Read a file", Description: "Reads.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, noop)
	mcp.AddTool(s, &mcp.Tool{Name: "wipe", Description: "Deletes everything.",
		Annotations: &mcp.ToolAnnotations{Title: "Wipe", DestructiveHint: &yes}}, noop)
	mcp.AddTool(s, &mcp.Tool{Name: "note", Annotations: &mcp.ToolAnnotations{DestructiveHint: &no}}, noop)
	mcp.AddTool(s, &mcp.Tool{Name: "plain"}, noop)
	return s
}

func TestToolsCatalogView(t *testing.T) {
	f := newFixture(t, 0, upDef{id: "fs", server: annotatedServer()}, auxUp("c"), downUp("d"))
	got := f.g.Tools(context.Background())
	want := []ToolInfo{
		{Upstream: "fs", Name: "note", PublicName: "fs__note"},
		{Upstream: "fs", Name: "plain", PublicName: "fs__plain"},
		{Upstream: "fs", Name: "read", PublicName: "fs__read", Title: "Read a file", Description: "Reads.", ReadOnly: true},
		{Upstream: "fs", Name: "wipe", PublicName: "fs__wipe", Title: "Wipe", Description: "Deletes everything.", Destructive: true},
		{Upstream: "c", Name: "alpha", PublicName: "c__alpha"},
		{Upstream: "c", Name: "beta", PublicName: "c__beta"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Tools\n got %+v\nwant %+v", got, want)
	}
}
