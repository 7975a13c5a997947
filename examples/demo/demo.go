// Package demo is a small MCP server, built on the Go SDK alone, with one of
// each kind of feature a gateway has to carry: plain and structured tool
// results, a tool annotation, progress notifications and cancellation, a
// static resource, a resource template and a prompt.
//
// It exists so that Mandate can be tried, tested and benchmarked without
// installing a third-party MCP server; the mandate binary serves it on stdio
// from a hidden subcommand. It keeps no state between calls, so any number of
// sessions can share one [mcp.Server].
package demo

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MaxSlowMillis bounds the duration of one call to the slow tool, so that a
// caller cannot park a server goroutine for longer than ten seconds.
const MaxSlowMillis = 10000

// progressInterval is how often the slow tool reports progress when the
// caller asked for it.
const progressInterval = 100 * time.Millisecond

const (
	readmeURI     = "demo://readme"
	notesTemplate = "demo://notes/{name}"
	notesPrefix   = "demo://notes/"
)

const readmeText = `# Mandate demo server

Tools: echo, add, now, slow.
Resources: demo://readme, demo://notes/{name}.
Prompts: greet.
`

// NewServer returns a server with the demo tools, resources and prompt
// registered. Each call returns an independent server.
func NewServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mandate-demo", Version: "0.1.0"}, nil)

	mcp.AddTool(s, &mcp.Tool{
		Name:        "echo",
		Description: "Returns its message argument unchanged.",
	}, echo)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "add",
		Description: "Adds two numbers and returns the sum as structured content.",
	}, add)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "now",
		Description: "Returns the current UTC time in RFC 3339 format.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, now)
	mcp.AddTool(s, &mcp.Tool{
		Name: "slow",
		Description: fmt.Sprintf("Sleeps for ms milliseconds (at most %d), reporting progress when the "+
			"request carries a progress token. Cancelling the request stops it.", MaxSlowMillis),
		// The schema is written out so that it carries the bounds; the
		// handler enforces them again for callers that skip validation.
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"ms": map[string]any{
					"type":        "integer",
					"minimum":     0,
					"maximum":     MaxSlowMillis,
					"description": "how long to sleep, in milliseconds",
				},
			},
			"required":             []string{"ms"},
			"additionalProperties": false,
		},
	}, slow)

	s.AddResource(&mcp.Resource{
		URI:         readmeURI,
		Name:        "readme",
		Description: "What this server offers.",
		MIMEType:    "text/markdown",
	}, readme)
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: notesTemplate,
		Name:        "notes",
		Description: "A generated note for any name.",
		MIMEType:    "text/plain",
	}, note)

	s.AddPrompt(&mcp.Prompt{
		Name:        "greet",
		Description: "Asks the model to greet someone by name.",
		Arguments: []*mcp.PromptArgument{
			{Name: "name", Description: "who to greet", Required: true},
		},
	}, greet)
	return s
}

// Run serves a fresh demo server on t until the client disconnects or ctx is
// cancelled.
func Run(ctx context.Context, t mcp.Transport) error {
	return NewServer().Run(ctx, t)
}

type echoIn struct {
	Message string `json:"message" jsonschema:"the text to return"`
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
}

type addIn struct {
	A float64 `json:"a" jsonschema:"the first addend"`
	B float64 `json:"b" jsonschema:"the second addend"`
}

type addOut struct {
	Sum float64 `json:"sum" jsonschema:"a plus b"`
}

func add(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
	return nil, addOut{Sum: in.A + in.B}, nil
}

func now(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
	t := time.Now().UTC().Format(time.RFC3339Nano)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: t}}}, nil, nil
}

type slowIn struct {
	Ms int `json:"ms"`
}

// slow returns ctx.Err() when the request is cancelled, so the SDK drops the
// call instead of reporting a completed sleep.
func slow(ctx context.Context, req *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, any, error) {
	ms := min(max(in.Ms, 0), MaxSlowMillis)
	total := time.Duration(ms) * time.Millisecond
	token := req.Params.GetProgressToken()

	start := time.Now()
	done := time.NewTimer(total)
	defer done.Stop()
	var tick <-chan time.Time
	if token != nil {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-tick:
			elapsed := min(time.Since(start), total)
			notifyProgress(ctx, req, token, elapsed, total)
		case <-done.C:
			if token != nil {
				notifyProgress(ctx, req, token, total, total)
			}
			text := fmt.Sprintf("slept %d ms", ms)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		}
	}
}

// notifyProgress ignores delivery errors: progress is advisory, and a client
// that went away is noticed through ctx.
func notifyProgress(ctx context.Context, req *mcp.CallToolRequest, token any, elapsed, total time.Duration) {
	_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
		ProgressToken: token,
		Progress:      float64(elapsed.Milliseconds()),
		Total:         float64(total.Milliseconds()),
		Message:       fmt.Sprintf("%d of %d ms", elapsed.Milliseconds(), total.Milliseconds()),
	})
}

func readme(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: req.Params.URI, MIMEType: "text/markdown", Text: readmeText},
	}}, nil
}

func note(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	raw, ok := strings.CutPrefix(uri, notesPrefix)
	if !ok || raw == "" || strings.Contains(raw, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	name, err := url.PathUnescape(raw)
	if err != nil {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: uri, MIMEType: "text/plain", Text: fmt.Sprintf("Note %q: nothing to report.", name)},
	}}, nil
}

func greet(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	name := req.Params.Arguments["name"]
	if name == "" {
		return nil, fmt.Errorf("greet: argument %q is required", "name")
	}
	return &mcp.GetPromptResult{
		Description: "A greeting for " + name,
		Messages: []*mcp.PromptMessage{{
			Role:    "user",
			Content: &mcp.TextContent{Text: fmt.Sprintf("Please greet %s warmly, in one sentence.", name)},
		}},
	}, nil
}
