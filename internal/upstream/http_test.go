package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// seenRequest is what an upstream server was sent, minus the body.
type seenRequest struct {
	method string
	header http.Header
}

// requestLog wraps an upstream's handler and records every request.
type requestLog struct {
	next http.Handler
	mu   sync.Mutex
	seen []seenRequest
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.seen = append(l.seen, seenRequest{method: r.Method, header: r.Header.Clone()})
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

func (l *requestLog) requests() []seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenRequest(nil), l.seen...)
}

func (l *requestLog) count(method string) int {
	n := 0
	for _, r := range l.requests() {
		if r.method == method {
			n++
		}
	}
	return n
}

// notes is a Handler that records notifications and refuses every
// server-to-client request.
type notes struct {
	mu   sync.Mutex
	list []*jsonrpc.Request
}

func (h *notes) Notify(_ *Session, n *jsonrpc.Request) {
	h.mu.Lock()
	h.list = append(h.list, n)
	h.mu.Unlock()
}

func (h *notes) Request(s *Session, r *jsonrpc.Request) {
	_ = s.Reply(context.Background(), &jsonrpc.Response{ID: r.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "no"}})
}

func (h *notes) of(method string) []*jsonrpc.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*jsonrpc.Request
	for _, n := range h.list {
		if n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

// serve starts handler on a loopback httptest server. The server is closed
// after the test's later cleanups, so upstreams (whose streams it would
// otherwise wait for) are closed first.
func serve(t *testing.T, handler http.Handler) (*httptest.Server, *requestLog) {
	t.Helper()
	log := &requestLog{next: handler}
	srv := httptest.NewServer(log)
	t.Cleanup(srv.Close)
	return srv, log
}

func TestStreamableHTTPUpstream(t *testing.T) {
	server := demo.NewServer()
	srv, reqs := serve(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil))
	h := &notes{}
	u := New(Options{
		ID:         "web",
		HTTP:       &HTTPOptions{URL: srv.URL, Headers: map[string]string{"X-Upstream-Key": "static-credential"}},
		Client:     ClientInfo{Name: "mandate-test", Version: "0"},
		Handler:    h,
		MaxBackoff: 50 * time.Millisecond,
	})
	u.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	s, err := u.Session(ctx)
	if err != nil {
		u.Close()
		t.Fatalf("Session: %v", err)
	}
	if got := echoText(t, ctx, s, "over http"); got != "over http" {
		t.Errorf("echo = %q", got)
	}

	// Progress sent on a call's own POST stream is marked as related to it.
	resp, err := s.Call(ctx, "tools/call", json.RawMessage(`{"name":"slow","arguments":{"ms":150},"_meta":{"progressToken":"p1"}}`), "route-1")
	if err != nil || resp.Error != nil {
		t.Fatalf("slow: %v %v", err, resp.Error)
	}
	eventually(t, "progress", func() bool { return len(h.of("notifications/progress")) > 0 })
	for _, n := range h.of("notifications/progress") {
		if _, ok := n.Extra.(Related); !ok {
			t.Errorf("progress notification has Extra %#v, want Related", n.Extra)
		}
	}

	// A change the server announces while no call is open arrives on the
	// standalone GET stream. The tool is added again until the stream is up.
	for i := 0; len(h.of("notifications/tools/list_changed")) == 0; i++ {
		if i == 100 {
			t.Fatal("no tools/list_changed within 5s")
		}
		mcp.AddTool(server, &mcp.Tool{Name: fmt.Sprint("extra", i)}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		time.Sleep(50 * time.Millisecond)
	}
	if n := h.of("notifications/tools/list_changed")[0]; n.Extra != nil {
		t.Errorf("list_changed carries Extra %#v; it relates to no call", n.Extra)
	}
	if reqs.count(http.MethodGet) == 0 {
		t.Error("no standalone GET stream was opened")
	}

	u.Close()
	var sid string
	for i, r := range reqs.requests() {
		if got := r.header.Get("X-Upstream-Key"); got != "static-credential" {
			t.Errorf("request %d (%s) carries X-Upstream-Key %q", i, r.method, got)
		}
		if i == 0 {
			continue // initialize
		}
		if r.header.Get("Mcp-Session-Id") == "" {
			t.Errorf("request %d (%s) has no Mcp-Session-Id", i, r.method)
		}
		if r.header.Get("Mcp-Protocol-Version") == "" {
			t.Errorf("request %d (%s) has no Mcp-Protocol-Version", i, r.method)
		}
		sid = r.header.Get("Mcp-Session-Id")
	}
	all := reqs.requests()
	if last := all[len(all)-1]; last.method != http.MethodDelete || last.header.Get("Mcp-Session-Id") != sid {
		t.Errorf("last request %s with session %q, want DELETE of session %q", last.method, last.header.Get("Mcp-Session-Id"), sid)
	}
	if n := reqs.count(http.MethodDelete); n != 1 {
		t.Errorf("%d DELETE requests, want 1", n)
	}
	select {
	case <-s.Done():
	default:
		t.Error("session still open after Close")
	}
	if h := u.Health(); h.Status != StatusDown {
		t.Errorf("health after Close = %+v", h)
	}
}

func TestStreamableHTTPSessionExpired(t *testing.T) {
	server := demo.NewServer()
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	var expired sync.Map
	srv, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, gone := expired.Load(r.Header.Get("Mcp-Session-Id")); gone {
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	u := New(Options{ID: "web", HTTP: &HTTPOptions{URL: srv.URL}, MaxBackoff: 50 * time.Millisecond})
	u.Start()
	t.Cleanup(u.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := u.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expired.Store(s.conn.SessionID(), true)

	resp, err := s.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"message":"x"}}`), nil)
	if err == nil && resp.Error == nil {
		t.Fatal("call on an expired session succeeded")
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a 404 did not end the session")
	}
	// The supervisor reconnects with a new session.
	eventually(t, "a new session", func() bool {
		s2, err := u.Session(ctx)
		return err == nil && s2 != s
	})
	s2, _ := u.Session(ctx)
	if got := echoText(t, ctx, s2, "again"); got != "again" {
		t.Errorf("echo after reconnect = %q", got)
	}
	if h := u.Health(); h.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", h.Restarts)
	}
}

func TestLegacySSEUpstream(t *testing.T) {
	srv, reqs := serve(t, mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, nil))
	u := New(Options{
		ID:         "legacy",
		SSE:        &SSEOptions{URL: srv.URL, Headers: map[string]string{"X-Upstream-Key": "sse-credential"}},
		Client:     ClientInfo{Name: "mandate-test", Version: "0"},
		MaxBackoff: 50 * time.Millisecond,
	})
	u.Start()
	t.Cleanup(u.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	s, err := u.Session(ctx)
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	if got := echoText(t, ctx, s, "over sse"); got != "over sse" {
		t.Errorf("echo = %q", got)
	}
	if !s.Init.Has("resources") {
		t.Errorf("init info %+v", s.Init)
	}
	resp, err := s.Call(ctx, "resources/read", json.RawMessage(`{"uri":"demo://readme"}`), nil)
	if err != nil || resp.Error != nil {
		t.Errorf("resources/read: %v %v", err, resp.Error)
	}
	// The event stream outlives the context it was dialled with: the
	// shared session stays up, and so does a dedicated one whose dial
	// context has ended.
	time.Sleep(100 * time.Millisecond)
	if h := u.Health(); h.Status != StatusUp || h.Restarts != 0 {
		t.Errorf("health %+v, want up without restarts", h)
	}
	if got := echoText(t, ctx, s, "still there"); got != "still there" {
		t.Errorf("echo = %q", got)
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	ds, err := u.Dial(dctx, nil)
	dcancel()
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if got := echoText(t, ctx, ds, "dedicated"); got != "dedicated" {
		t.Errorf("echo on a dedicated session = %q", got)
	}
	ds.Close()
	select {
	case <-ds.Done():
	default:
		t.Error("dedicated session still open after Close")
	}
	if reqs.count(http.MethodGet) == 0 || reqs.count(http.MethodPost) < 3 {
		t.Errorf("requests %v, want a GET stream and POSTed messages", reqs.requests())
	}
	for i, r := range reqs.requests() {
		if got := r.header.Get("X-Upstream-Key"); got != "sse-credential" {
			t.Errorf("request %d (%s) carries X-Upstream-Key %q", i, r.method, got)
		}
	}
}
