package frontend_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestLegacySSE drives the legacy HTTP+SSE transport with the Go SDK's own
// client for it, in the protocol versions old clients speak: names are
// namespaced as over Streamable HTTP, calls are answered on the event
// stream, and closing the client ends the session, so an old client that
// disconnects leaves nothing behind.
func TestLegacySSE(t *testing.T) {
	for _, version := range []string{"2024-11-05", "2025-11-25"} {
		t.Run(version, func(t *testing.T) {
			h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
			cs := connectSSE(t, h, version)
			if n := h.gw.SessionCount(); n != 1 {
				t.Errorf("SessionCount = %d with one client, want 1", n)
			}
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Errorf("negotiated %s, want %s", got, version)
			}

			names := strings.Join(toolNames(t, cs), ",")
			for _, want := range []string{"remote__echo", "remote__add", "remote__now", "remote__slow"} {
				if !strings.Contains(names, want) {
					t.Errorf("tools/list lacks %s: %s", want, names)
				}
			}
			if got := callText(t, cs, "remote__echo", map[string]any{"message": "over sse"}); got != "over sse" {
				t.Errorf("remote__echo = %q", got)
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "remote__add", Arguments: map[string]any{"a": 2, "b": 3}})
			if err != nil {
				t.Fatalf("remote__add: %v", err)
			}
			if sum, _ := res.StructuredContent.(map[string]any)["sum"].(float64); sum != 5 {
				t.Errorf("remote__add structured content = %v, want sum 5", res.StructuredContent)
			}

			if err := cs.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			waitFor(t, "the session to end after the client closed", func() bool { return h.gw.SessionCount() == 0 })
		})
	}
}

// TestLegacySSEDefaultClient connects with the SDK client's defaults. The
// client first tries server/discover; over HTTP+SSE, which cannot carry the
// stateless 2026-07-28 era, the answer must make it fall back to initialize
// (the SDK's own SSE server advertises only older versions there).
func TestLegacySSEDefaultClient(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	cs := connectSSE(t, h, "")
	if got := callText(t, cs, "remote__echo", map[string]any{"message": "defaults"}); got != "defaults" {
		t.Errorf("remote__echo = %q", got)
	}
}

// connectSSE connects to h's /sse endpoint; version "" leaves the protocol
// version to the client.
func connectSSE(t *testing.T, h *harness, version string) *mcp.ClientSession {
	t.Helper()
	endpoint := strings.TrimSuffix(h.url, "/mcp") + "/sse"
	c := mcp.NewClient(&mcp.Implementation{Name: "legacy-client", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.SSEClientTransport{Endpoint: endpoint}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect over SSE: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestLegacySSEHygiene: the legacy endpoints get the same Host and Origin
// checks as /mcp (T-11), and a message for a session that does not exist is
// refused rather than delivered anywhere.
func TestLegacySSEHygiene(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	base := strings.TrimSuffix(h.url, "/mcp")
	ping := `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	tests := []struct {
		name       string
		method     string
		path       string
		headers    map[string]string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"evil origin on /sse", http.MethodGet, "/sse", map[string]string{"Origin": "https://evil.example"}, "", http.StatusForbidden, "invalid Origin"},
		{"rebinding host on /sse", http.MethodGet, "/sse", map[string]string{"Host": "evil.example"}, "", http.StatusForbidden, "invalid Host"},
		{"evil origin on /message", http.MethodPost, "/message?sessionId=nope", map[string]string{"Origin": "https://evil.example"}, ping, http.StatusForbidden, "invalid Origin"},
		{"unknown session", http.MethodPost, "/message?sessionId=nope", nil, ping, http.StatusNotFound, "session not found"},
		{"no session", http.MethodPost, "/message", nil, ping, http.StatusNotFound, "session not found"},
		{"POST to /sse", http.MethodPost, "/sse", nil, ping, http.StatusMethodNotAllowed, ""},
		{"GET on /message", http.MethodGet, "/message?sessionId=nope", nil, "", http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			for k, v := range tc.headers {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("got %d %.200s, want %d containing %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	if n := h.gw.SessionCount(); n != 0 {
		t.Errorf("refused requests left %d sessions", n)
	}
}
