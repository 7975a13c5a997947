package frontend_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeAuth accepts a fixed set of bearer tokens; it stands in for the
// authn middleware, whose own tests cover token verification.
func fakeAuth(tokens map[string]*identity.Principal) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			p, ok := tokens[tok]
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="x"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(identity.WithPrincipal(r.Context(), p)))
		})
	}
}

var (
	alice = &identity.Principal{Issuer: "test", User: "alice", Agent: "agent-a", Method: identity.MethodAuthorizationCode, Scopes: []string{"mcp:tools"}}
	bob   = &identity.Principal{Issuer: "test", User: "bob", Agent: "agent-a", Method: identity.MethodAuthorizationCode, Scopes: []string{"mcp:tools"}}
	carol = &identity.Principal{Issuer: "test", User: "carol", Agent: "agent-c", Method: identity.MethodAuthorizationCode, Scopes: []string{"mcp:prompts"}}
)

func authOptions() frontend.Options {
	return frontend.Options{
		Authenticate: fakeAuth(map[string]*identity.Principal{"alice-token": alice, "bob-token": bob, "carol-token": carol}),
		RequiredScopes: func(method string) []string {
			if strings.HasPrefix(method, "tools/") {
				return []string{"mcp:tools"}
			}
			return nil
		},
		InsufficientScope: func(w http.ResponseWriter, required []string) {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+strings.Join(required, " ")+`"`)
			http.Error(w, "insufficient scope", http.StatusForbidden)
		},
	}
}

func initBody() string {
	return `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
}

// TestSessionBoundToPrincipal (AT-30): a session id presented with another
// principal's token, or with none, is refused exactly like an unknown one.
func TestSessionBoundToPrincipal(t *testing.T) {
	h := startGateway(t, authOptions(), httpUpstream(t, "remote"))
	resp, body := post(t, h.url, map[string]string{"Authorization": "Bearer alice-token"}, initBody())
	if resp.StatusCode != 200 {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"owner", "alice-token", 200},
		{"same agent, other user", "bob-token", http.StatusNotFound},
		{"other agent", "carol-token", http.StatusForbidden}, // lacks the tools scope: refused before the session is even looked up
		{"no token", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Mcp-Session-Id": sid}
			if tc.token != "" {
				hdr["Authorization"] = "Bearer " + tc.token
			}
			resp, body := post(t, h.url, hdr, list)
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.want)
			}
		})
	}
	// Bob's own session works for bob, and DELETE by alice cannot end it.
	resp, _ = post(t, h.url, map[string]string{"Authorization": "Bearer bob-token"}, initBody())
	bobSID := resp.Header.Get("Mcp-Session-Id")
	req, _ := http.NewRequest(http.MethodDelete, h.url, nil)
	req.Header.Set("Mcp-Session-Id", bobSID)
	req.Header.Set("Authorization", "Bearer alice-token")
	dresp, err := http.DefaultClient.Do(req)
	if err != nil || dresp.StatusCode != http.StatusNotFound {
		t.Fatalf("DELETE of bob's session by alice: %v %v", err, dresp)
	}
	if resp, body := post(t, h.url, map[string]string{"Authorization": "Bearer bob-token", "Mcp-Session-Id": bobSID}, list); resp.StatusCode != 200 {
		t.Fatalf("bob's session after alice's DELETE: %d %s", resp.StatusCode, body)
	}
}

// TestInsufficientScope (AT-21): a token without the scope a method needs
// gets 403 with a challenge naming every scope the operation needs.
func TestInsufficientScope(t *testing.T) {
	h := startGateway(t, authOptions(), httpUpstream(t, "remote"))
	resp, body := post(t, h.url, map[string]string{"Authorization": "Bearer carol-token"}, initBody())
	if resp.StatusCode != 200 {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	resp, _ = post(t, h.url, map[string]string{"Authorization": "Bearer carol-token", "Mcp-Session-Id": sid},
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__echo","arguments":{"message":"x"}}}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="mcp:tools"`) {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestClientTokenNeverReachesUpstream (AT-18): the upstream sees Mandate's
// own configured credentials, never the agent's bearer token, on any
// request of the session (initialize, GET stream, calls, DELETE).
func TestClientTokenNeverReachesUpstream(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	inner := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get("Authorization")+" "+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u := upstream.New(upstream.Options{ID: "remote", HTTP: &upstream.HTTPOptions{URL: srv.URL, Headers: map[string]string{"X-Api-Key": "mandates-own-key"}}})
	h := startGateway(t, authOptions(), testUpstream{spec: gateway.UpstreamSpec{Conn: u, Prefix: "remote", Timeout: 10 * time.Second}, up: u})

	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	hc := &http.Client{Transport: bearer{"alice-token"}}
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: h.url, HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs, "remote__echo", map[string]any{"message": "hi"}); got != "hi" {
		t.Fatalf("echo = %q", got)
	}
	cs.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("upstream saw no request")
	}
	for _, s := range seen {
		if strings.Contains(s, "alice-token") || strings.Contains(s, "Bearer") {
			t.Errorf("upstream request carried the client's credential: %q", s)
		}
		if !strings.HasSuffix(s, "mandates-own-key") {
			t.Errorf("upstream request without Mandate's own key: %q", s)
		}
	}
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
