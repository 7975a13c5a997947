package frontend_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionEra is the protocol version the subscription tests speak:
// resources/subscribe and unsolicited list_changed notifications belong to
// the session-based era.
const sessionEra = "2025-11-25"

const (
	docURI       = "test://doc"
	publicDocURI = "mandate://subs/test://doc"
)

// liveUpstream is an in-test MCP server that the tests change while Mandate
// is connected to it. The demo server cannot serve here: it supports no
// resource subscriptions and never changes its tools.
type liveUpstream struct {
	server *mcp.Server
	url    string
	// ready is closed once Mandate's standalone GET stream to the server
	// is open: from then on a notification the server sends is delivered
	// rather than dropped for want of a stream.
	ready chan struct{}

	mu           sync.Mutex
	subscribes   []string
	unsubscribes []string
	readyOnce    sync.Once
}

func newLiveUpstream(t *testing.T) *liveUpstream {
	t.Helper()
	u := &liveUpstream{ready: make(chan struct{})}
	u.server = mcp.NewServer(&mcp.Implementation{Name: "live", Version: "0"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, req *mcp.SubscribeRequest) error {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.subscribes = append(u.subscribes, req.Params.URI)
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.unsubscribes = append(u.unsubscribes, req.Params.URI)
			return nil
		},
	})
	u.server.AddResource(&mcp.Resource{URI: docURI, Name: "doc", MIMEType: "text/plain"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "doc"}}}, nil
		})
	addEcho(u.server, "first")
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.server }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w = &flushNotifier{ResponseWriter: w, flushed: func() { u.readyOnce.Do(func() { close(u.ready) }) }}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// addEcho adds a tool that returns its own name.
func addEcho(s *mcp.Server, name string) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: "Returns its name."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
		})
}

// flushNotifier reports the first flush of a GET response: the SDK flushes
// the standalone stream once it can deliver on it.
type flushNotifier struct {
	http.ResponseWriter
	flushed func()
}

func (f *flushNotifier) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
	f.flushed()
}

func (f *flushNotifier) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// start puts the server behind a gateway as the shared upstream "subs" and
// waits until its notifications can flow.
func (u *liveUpstream) start(t *testing.T) *harness {
	t.Helper()
	up := upstream.New(upstream.Options{
		ID:     "subs",
		HTTP:   &upstream.HTTPOptions{URL: u.url},
		Client: upstream.ClientInfo{Name: "mandate-test", Version: "0"},
	})
	h := startGateway(t, frontend.Options{}, testUpstream{spec: gateway.UpstreamSpec{Conn: up, Prefix: "subs", Timeout: 10 * time.Second}, up: up})
	select {
	case <-u.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("Mandate did not open its standalone stream to the upstream")
	}
	return h
}

func (u *liveUpstream) calls() (subscribes, unsubscribes []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.subscribes), slices.Clone(u.unsubscribes)
}

// watcher is a session-era client that records the notifications it gets.
type watcher struct {
	cs          *mcp.ClientSession
	updated     chan string   // URIs of notifications/resources/updated
	listChanged chan struct{} // one per notifications/tools/list_changed
}

func newWatcher(t *testing.T, url string) *watcher {
	t.Helper()
	return newWatcherEra(t, url, sessionEra)
}

// newWatcherEra connects a watcher speaking protocol version era; with
// "2026-07-28" the client opens a subscriptions/listen stream instead of a
// session's GET stream.
func newWatcherEra(t *testing.T, url, era string) *watcher {
	t.Helper()
	w := &watcher{updated: make(chan string, 16), listChanged: make(chan struct{}, 16)}
	c := mcp.NewClient(&mcp.Implementation{Name: "watcher", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			w.updated <- req.Params.URI
		},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			w.listChanged <- struct{}{}
		},
	})
	// Connect returns once the client's standalone stream is open, so
	// nothing sent to it afterwards is lost.
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: era})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	w.cs = cs
	return w
}

func (w *watcher) nextUpdate(t *testing.T) string {
	t.Helper()
	select {
	case uri := <-w.updated:
		return uri
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/resources/updated")
	}
	return ""
}

func (w *watcher) waitListChanged(t *testing.T) {
	t.Helper()
	select {
	case <-w.listChanged:
	case <-time.After(10 * time.Second):
		t.Fatal("no notifications/tools/list_changed")
	}
}

// barrier sends a tools/list_changed, which every session gets, after
// whatever the upstream sent before it. The upstream's notifications are
// relayed in order and each client's stream is ordered, so once a client
// has the barrier it has everything Mandate sent it before.
func barrier(t *testing.T, u *liveUpstream, name string, ws ...*watcher) {
	t.Helper()
	addEcho(u.server, name)
	for _, w := range ws {
		w.waitListChanged(t)
	}
}

func noUpdates(t *testing.T, who string, w *watcher) {
	t.Helper()
	select {
	case uri := <-w.updated:
		t.Errorf("%s got notifications/resources/updated for %s, want none", who, uri)
	default:
	}
}

// TestResourceSubscriptionFanOut: two clients subscribed to one resource
// share one upstream subscription (U-06); an update reaches exactly the
// subscribed clients, under the public URI they subscribed to; and the
// upstream subscription ends with its last subscriber.
func TestResourceSubscriptionFanOut(t *testing.T) {
	up := newLiveUpstream(t)
	h := up.start(t)
	a, b, c := newWatcher(t, h.url), newWatcher(t, h.url), newWatcher(t, h.url)
	ctx := context.Background()

	if caps := a.cs.InitializeResult().Capabilities; caps.Resources == nil || !caps.Resources.Subscribe {
		t.Fatalf("Mandate does not offer resources.subscribe: %+v", caps.Resources)
	}
	res, err := a.cs.ListResources(ctx, nil)
	if err != nil || len(res.Resources) != 1 || res.Resources[0].URI != publicDocURI {
		t.Fatalf("resources/list = %+v, %v; want only %s", res, err, publicDocURI)
	}

	for _, w := range []*watcher{a, b} {
		if err := w.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: publicDocURI}); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	if subs, _ := up.calls(); !slices.Equal(subs, []string{docURI}) {
		t.Fatalf("upstream subscribes = %v, want exactly one for %s", subs, docURI)
	}

	if err := up.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]*watcher{"a": a, "b": b} {
		if got := w.nextUpdate(t); got != publicDocURI {
			t.Errorf("%s: updated %s, want the public URI %s", name, got, publicDocURI)
		}
	}
	barrier(t, up, "barrier1", a, b, c)
	noUpdates(t, "the client that did not subscribe", c)
	noUpdates(t, "a (a second time)", a)
	noUpdates(t, "b (a second time)", b)

	if err := a.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: publicDocURI}); err != nil {
		t.Fatalf("unsubscribe a: %v", err)
	}
	if _, unsubs := up.calls(); len(unsubs) != 0 {
		t.Fatalf("upstream unsubscribed %v while b is still subscribed", unsubs)
	}
	if err := b.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: publicDocURI}); err != nil {
		t.Fatalf("unsubscribe b: %v", err)
	}
	if _, unsubs := up.calls(); !slices.Equal(unsubs, []string{docURI}) {
		t.Fatalf("upstream unsubscribes = %v, want exactly one for %s", unsubs, docURI)
	}

	// Nobody is subscribed now: an update the upstream still sends reaches
	// no one.
	if err := up.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: docURI}); err != nil {
		t.Fatal(err)
	}
	barrier(t, up, "barrier2", a, b, c)
	for name, w := range map[string]*watcher{"a": a, "b": b, "c": c} {
		noUpdates(t, name+" after unsubscribing", w)
	}
}

// TestResourceSubscriptionReleasedOnClose: a client that goes away without
// unsubscribing releases its share of the upstream subscription, so the
// upstream does not go on working for nobody.
func TestResourceSubscriptionReleasedOnClose(t *testing.T) {
	up := newLiveUpstream(t)
	h := up.start(t)
	a, b := newWatcher(t, h.url), newWatcher(t, h.url)
	ctx := context.Background()
	for _, w := range []*watcher{a, b} {
		if err := w.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: publicDocURI}); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
	a.cs.Close()
	waitFor(t, "a's session to end", func() bool { return h.gw.SessionCount() == 1 })
	if _, unsubs := up.calls(); len(unsubs) != 0 {
		t.Fatalf("upstream unsubscribed %v while b is still subscribed", unsubs)
	}
	b.cs.Close()
	waitFor(t, "the upstream unsubscribe", func() bool {
		_, unsubs := up.calls()
		return slices.Equal(unsubs, []string{docURI})
	})
}

// TestToolsListChanged: a tool added upstream is announced to every
// connected client, and the next tools/list and tools/call see it although
// the gateway had cached the old list; a removed tool is gone the same way.
func TestToolsListChanged(t *testing.T) {
	up := newLiveUpstream(t)
	h := up.start(t)
	clients := []*watcher{newWatcher(t, h.url), newWatcher(t, h.url)}
	for _, w := range clients {
		if got := strings.Join(toolNames(t, w.cs), ","); got != "subs__first" {
			t.Fatalf("tools/list = %s, want subs__first", got)
		}
	}

	addEcho(up.server, "added")
	for _, w := range clients {
		w.waitListChanged(t)
		if got := strings.Join(toolNames(t, w.cs), ","); got != "subs__added,subs__first" {
			t.Errorf("tools/list after the change = %s, want subs__added,subs__first", got)
		}
		if got := callText(t, w.cs, "subs__added", nil); got != "added" {
			t.Errorf("subs__added = %q", got)
		}
	}

	up.server.RemoveTools("added")
	for _, w := range clients {
		w.waitListChanged(t)
		if got := strings.Join(toolNames(t, w.cs), ","); got != "subs__first" {
			t.Errorf("tools/list after the removal = %s, want subs__first", got)
		}
		_, err := w.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "subs__added"})
		if err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Errorf("call to the removed tool: %v, want unknown tool", err)
		}
	}
}

// TestToolsListChangedStateless: a 2026-07-28 client, which has no session
// and no GET stream, hears about list changes on its subscriptions/listen
// stream, and only about the kinds it asked for.
func TestToolsListChangedStateless(t *testing.T) {
	up := newLiveUpstream(t)
	h := up.start(t)
	modern := newWatcherEra(t, h.url, "2026-07-28")
	legacy := newWatcher(t, h.url)
	waitFor(t, "the listen stream to be registered", func() bool { return h.gw.SessionCount() == 2 })
	addEcho(up.server, "added")
	modern.waitListChanged(t)
	legacy.waitListChanged(t)
	if got := strings.Join(toolNames(t, modern.cs), ","); got != "subs__added,subs__first" {
		t.Errorf("tools/list after the change = %s", got)
	}
	modern.cs.Close()
	waitFor(t, "the listen stream to end", func() bool { return h.gw.SessionCount() == 1 })
}
