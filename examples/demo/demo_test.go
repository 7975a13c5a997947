package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connect serves demo.Run on one end of an in-memory pipe and returns a
// client session on the other. Cleanup closes the session and checks that
// Run returns once the client has gone.
func connect(t *testing.T, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	ct, st := mcp.NewInMemoryTransports()

	runErr := make(chan error, 1)
	go func() { runErr <- demo.Run(ctx, st) }()

	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, opts)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		cancel()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		defer cancel()
		if err := cs.Close(); err != nil {
			t.Errorf("close client session: %v", err)
		}
		select {
		case <-runErr:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after the client closed the session")
		}
	})
	return cs
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("got %d content items, want 1", len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want *mcp.TextContent", res.Content[0])
	}
	return tc.Text
}

func TestListTools(t *testing.T) {
	cs := connect(t, nil)
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tools := map[string]*mcp.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	for _, name := range []string{"echo", "add", "now", "slow"} {
		if tools[name] == nil {
			t.Errorf("tool %q is not listed", name)
		}
	}
	if add := tools["add"]; add != nil && add.OutputSchema == nil {
		t.Error("add has no outputSchema")
	}
	if now := tools["now"]; now != nil && (now.Annotations == nil || !now.Annotations.ReadOnlyHint) {
		t.Errorf("now annotations = %+v, want readOnlyHint", now.Annotations)
	}
}

func TestEcho(t *testing.T) {
	cs := connect(t, nil)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{
		Name:      "echo",
		Arguments: map[string]any{"message": "hello, mandate"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("echo failed: %+v", res.Content)
	}
	if got := text(t, res); got != "hello, mandate" {
		t.Errorf("echo = %q, want %q", got, "hello, mandate")
	}
}

func TestAdd(t *testing.T) {
	cs := connect(t, nil)
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{
		Name:      "add",
		Arguments: map[string]any{"a": 2, "b": 3.5},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("add failed: %+v", res.Content)
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Sum float64 `json:"sum"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("structuredContent %s: %v", raw, err)
	}
	if out.Sum != 5.5 {
		t.Errorf("sum = %v, want 5.5", out.Sum)
	}
}

func TestNow(t *testing.T) {
	cs := connect(t, nil)
	before := time.Now()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "now"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := time.Parse(time.RFC3339Nano, text(t, res))
	if err != nil {
		t.Fatal(err)
	}
	if got.Location() != time.UTC {
		t.Errorf("now = %v, want UTC", got)
	}
	if d := got.Sub(before); d < -time.Second || d > time.Minute {
		t.Errorf("now = %v, %v away from the local clock", got, d)
	}
}

func TestSlowProgress(t *testing.T) {
	var (
		mu       sync.Mutex
		progress []float64
	)
	cs := connect(t, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			defer mu.Unlock()
			if req.Params.ProgressToken == "p1" {
				progress = append(progress, req.Params.Progress)
			}
		},
	})
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 350}}
	params.SetProgressToken("p1")
	res, err := cs.CallTool(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "slept 350 ms" {
		t.Errorf("slow = %q", got)
	}

	// Notifications are delivered asynchronously, so the last one may trail
	// the result.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n, last := len(progress), 0.0
		if n > 0 {
			last = progress[n-1]
		}
		mu.Unlock()
		if n >= 2 && last == 350 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress = %v, want at least 2 notifications ending at 350", progress)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSlowNoProgressWithoutToken(t *testing.T) {
	var (
		mu    sync.Mutex
		count int
	)
	cs := connect(t, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			count++
			mu.Unlock()
		},
	})
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 250}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if count != 0 {
		t.Errorf("got %d progress notifications without a progress token", count)
	}
}

// TestSlowCancel checks that cancelling a call stops the sleep on the server:
// once the cancellation has been delivered, progress notifications stop.
func TestSlowCancel(t *testing.T) {
	var (
		mu    sync.Mutex
		count int
	)
	counted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}
	cs := connect(t, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			count++
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 350*time.Millisecond)
	defer cancel()
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": demo.MaxSlowMillis}}
	params.SetProgressToken("c1")
	start := time.Now()
	_, err := cs.CallTool(ctx, params)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled call took %v", d)
	}
	if counted() == 0 {
		t.Error("no progress before the cancellation")
	}

	time.Sleep(200 * time.Millisecond)
	settled := counted()
	time.Sleep(500 * time.Millisecond)
	if n := counted(); n != settled {
		t.Errorf("progress went on after cancellation: %d notifications, then %d", settled, n)
	}

	// The session must still work after a cancelled call.
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "after"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "after" {
		t.Errorf("echo after cancel = %q", got)
	}
}

func TestSlowRejectsTooLong(t *testing.T) {
	cs := connect(t, nil)
	start := time.Now()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": demo.MaxSlowMillis + 1}})
	if err == nil && !res.IsError {
		t.Errorf("slow accepted ms=%d: %+v", demo.MaxSlowMillis+1, res.Content)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("rejected call took %v", d)
	}
}

func TestResources(t *testing.T) {
	cs := connect(t, nil)
	ctx := t.Context()

	list, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Resources) != 1 || list.Resources[0].URI != "demo://readme" {
		t.Errorf("resources = %+v, want demo://readme only", list.Resources)
	}
	templates, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(templates.ResourceTemplates) != 1 || templates.ResourceTemplates[0].URITemplate != "demo://notes/{name}" {
		t.Errorf("templates = %+v, want demo://notes/{name} only", templates.ResourceTemplates)
	}

	for _, tc := range []struct {
		uri, want string
	}{
		{"demo://readme", "# Mandate demo server"},
		{"demo://notes/alice", `Note "alice"`},
		{"demo://notes/bob%20smith", `Note "bob smith"`},
	} {
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: tc.uri})
		if err != nil {
			t.Errorf("read %s: %v", tc.uri, err)
			continue
		}
		if len(res.Contents) != 1 || res.Contents[0].URI != tc.uri || !strings.Contains(res.Contents[0].Text, tc.want) {
			t.Errorf("read %s = %+v, want text containing %q", tc.uri, res.Contents, tc.want)
		}
	}

	for _, uri := range []string{"demo://missing", "demo://notes/"} {
		if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err == nil {
			t.Errorf("read %s succeeded, want an error", uri)
		}
	}
}

func TestGreetPrompt(t *testing.T) {
	cs := connect(t, nil)
	ctx := t.Context()

	list, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Prompts) != 1 || list.Prompts[0].Name != "greet" ||
		len(list.Prompts[0].Arguments) != 1 || list.Prompts[0].Arguments[0].Name != "name" {
		t.Errorf("prompts = %+v, want greet(name)", list.Prompts)
	}

	res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "Ada"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || res.Messages[0].Role != "user" {
		t.Fatalf("messages = %+v, want one user message", res.Messages)
	}
	if tc, ok := res.Messages[0].Content.(*mcp.TextContent); !ok || !strings.Contains(tc.Text, "Ada") {
		t.Errorf("message content = %+v, want text naming Ada", res.Messages[0].Content)
	}

	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet"}); err == nil {
		t.Error("greet without a name succeeded, want an error")
	}
}
