package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The tests in this file drive a real Gateway over real MCP servers that run
// in process on in-memory transports: the demo server twice (prefixes a and
// b) and an auxiliary server (prefix c) with what the demo lacks —
// completions, resource subscriptions, instructions and upstream paging.

// wire records what Mandate wrote to one upstream.
type wire struct {
	mu   sync.Mutex
	msgs []jsonrpc.Message
}

func (w *wire) add(m jsonrpc.Message) {
	w.mu.Lock()
	w.msgs = append(w.msgs, m)
	w.mu.Unlock()
}

// requests returns the requests and notifications of method, in order.
func (w *wire) requests(method string) []*jsonrpc.Request {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*jsonrpc.Request
	for _, m := range w.msgs {
		if r, ok := m.(*jsonrpc.Request); ok && r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// recordingConn is an upstream connection that records every write.
type recordingConn struct {
	mcp.Connection
	w *wire
}

func (c recordingConn) Write(ctx context.Context, m jsonrpc.Message) error {
	c.w.add(m)
	return c.Connection.Write(ctx, m)
}

// recorder is a Stream that keeps what it is sent.
type recorder struct {
	mu   sync.Mutex
	msgs []jsonrpc.Message
}

func (r *recorder) Send(_ context.Context, m jsonrpc.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) notifications(method string) []*jsonrpc.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*jsonrpc.Request
	for _, m := range r.msgs {
		if n, ok := m.(*jsonrpc.Request); ok && !n.IsCall() && n.Method == method {
			out = append(out, n)
		}
	}
	return out
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// auxServer offers what the demo server does not: completions, resource
// subscriptions, instructions, and a page size of one so that Mandate has to
// follow the upstream's own cursors.
func auxServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "aux", Version: "0"}, &mcp.ServerOptions{
		Instructions: "Use aux for status.",
		PageSize:     1,
		CompletionHandler: func(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			ref := req.Params.Ref
			v := ref.Type + "|" + ref.Name + "|" + ref.URI + "|" + req.Params.Argument.Value
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{v}}}, nil
		},
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(s, &mcp.Tool{Name: "alpha"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return text("alpha"), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "beta"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return text("beta"), nil, nil
	})
	s.AddResource(&mcp.Resource{URI: "aux://status", Name: "status"}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "ok"}}}, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "topic", Arguments: []*mcp.PromptArgument{{Name: "kind"}}}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "topic"}}}}, nil
	})
	return s
}

// upDef describes one test upstream; a nil server is an upstream that can
// never be reached.
type upDef struct {
	id     string
	server *mcp.Server
}

func demoUp(id string) upDef { return upDef{id: id, server: demo.NewServer()} }
func auxUp(id string) upDef  { return upDef{id: id, server: auxServer()} }
func downUp(id string) upDef { return upDef{id: id} }

type fixture struct {
	g       *Gateway
	wires   map[string]*wire
	servers map[string]*mcp.Server
	ups     map[string]*upstream.Upstream
}

var errUnreachable = errors.New("unreachable by design")

// newFixture starts the upstreams (each prefixed with its id) and a gateway
// over them, in the order given.
func newFixture(t *testing.T, pageSize int, defs ...upDef) *fixture {
	t.Helper()
	f := &fixture{wires: map[string]*wire{}, servers: map[string]*mcp.Server{}, ups: map[string]*upstream.Upstream{}}
	var specs []UpstreamSpec
	var ups []*upstream.Upstream
	for _, d := range defs {
		w := &wire{}
		srv := d.server
		connect := func(ctx context.Context) (mcp.Connection, error) {
			if srv == nil {
				return nil, errUnreachable
			}
			ct, st := mcp.NewInMemoryTransports()
			if _, err := srv.Connect(ctx, st, nil); err != nil {
				return nil, err
			}
			conn, err := ct.Connect(ctx)
			if err != nil {
				return nil, err
			}
			return recordingConn{Connection: conn, w: w}, nil
		}
		u := upstream.New(upstream.Options{
			ID:         d.id,
			Connect:    connect,
			Client:     upstream.ClientInfo{Name: "mandate-test", Version: "0"},
			MaxBackoff: 50 * time.Millisecond,
		})
		f.wires[d.id], f.servers[d.id], f.ups[d.id] = w, srv, u
		specs = append(specs, UpstreamSpec{Conn: u, Prefix: d.id, Timeout: 10 * time.Second})
		ups = append(ups, u)
	}
	f.g = New(Options{Upstreams: specs, PageSize: pageSize, Name: "mandate-test", Version: "1.2.3", StartupWait: 5 * time.Second, Policy: policy.AllowAll()})
	for _, u := range ups {
		u.SetHandler(f.g.SharedHandler(u.ID()))
		u.Start()
	}
	t.Cleanup(func() {
		f.g.Close()
		for _, u := range ups {
			u.Close()
		}
	})
	return f
}

func newDefaultFixture(t *testing.T) *fixture {
	return newFixture(t, 2, demoUp("a"), demoUp("b"), auxUp("c"))
}

func rawParams(t *testing.T, params any) json.RawMessage {
	t.Helper()
	switch p := params.(type) {
	case nil:
		return nil
	case string:
		return json.RawMessage(p)
	case json.RawMessage:
		return p
	}
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) handle(t *testing.T, sess *Session, id any, method string, params any, related Stream) *jsonrpc.Response {
	t.Helper()
	jid, err := jsonrpc.MakeID(id)
	if err != nil {
		t.Fatalf("MakeID(%v): %v", id, err)
	}
	return f.g.Handle(t.Context(), sess, &jsonrpc.Request{ID: jid, Method: method, Params: rawParams(t, params)}, related)
}

func (f *fixture) notify(t *testing.T, sess *Session, method string, params any) {
	t.Helper()
	if resp := f.g.Handle(t.Context(), sess, &jsonrpc.Request{Method: method, Params: rawParams(t, params)}, nil); resp != nil {
		t.Fatalf("notification %s answered with %+v", method, resp)
	}
}

// session opens and initializes a session.
func (f *fixture) session(t *testing.T, name string) *Session {
	t.Helper()
	sess := f.g.NewSession(name, "client-"+name)
	sess.Principal = identity.Local()
	resp := f.handle(t, sess, "init", "initialize", map[string]any{
		"protocolVersion": "2025-11-25",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]string{"name": "test", "version": "0"},
	}, nil)
	mustOK(t, resp)
	f.notify(t, sess, "notifications/initialized", nil)
	return sess
}

// caller opens a session and reads every page of tools/list, as clients do
// before calling: Mandate refuses calls of tools a session was not shown.
func (f *fixture) caller(t *testing.T, name string) *Session {
	t.Helper()
	sess := f.session(t, name)
	f.listAll(t, sess, "tools/list", "name")
	return sess
}

func mustOK(t *testing.T, resp *jsonrpc.Response) json.RawMessage {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	if resp.Error != nil {
		t.Fatalf("error response: %v", resp.Error)
	}
	return resp.Result
}

func wantError(t *testing.T, resp *jsonrpc.Response, code int64) *jsonrpc.Error {
	t.Helper()
	if resp == nil {
		t.Fatal("no response")
	}
	if resp.Error == nil {
		t.Fatalf("result %s, want error %d", resp.Result, code)
	}
	var e *jsonrpc.Error
	if !errors.As(resp.Error, &e) {
		t.Fatalf("error %T %v is not a *jsonrpc.Error", resp.Error, resp.Error)
	}
	if e.Code != code {
		t.Fatalf("error %d %q, want code %d", e.Code, e.Message, code)
	}
	return e
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func toolText(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	res := decode[struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}](t, raw)
	if len(res.Content) != 1 {
		t.Fatalf("tool result %s has %d content items", raw, len(res.Content))
	}
	return res.Content[0].Text
}

func TestInitializeNegotiatesVersion(t *testing.T) {
	f := newDefaultFixture(t)
	tests := []struct {
		name   string
		params any
		want   string
	}{
		{"latest", `{"protocolVersion":"2025-11-25","capabilities":{}}`, "2025-11-25"},
		{"older supported", `{"protocolVersion":"2025-06-18","capabilities":{}}`, "2025-06-18"},
		{"oldest supported", `{"protocolVersion":"2024-11-05","capabilities":{}}`, "2024-11-05"},
		{"unknown old", `{"protocolVersion":"1999-01-01","capabilities":{}}`, "2025-11-25"},
		{"unknown future", `{"protocolVersion":"2099-01-01","capabilities":{}}`, "2025-11-25"},
		{"stateless era is not negotiated here", `{"protocolVersion":"2026-07-28","capabilities":{}}`, "2025-11-25"},
		{"missing", `{"capabilities":{}}`, "2025-11-25"},
		{"not a string", `{"protocolVersion":20251125}`, "2025-11-25"},
		{"no params", nil, "2025-11-25"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := f.g.NewSession(fmt.Sprint("s", i), "c")
			sess.Principal = identity.Local()
			res := decode[struct {
				ProtocolVersion string            `json:"protocolVersion"`
				ServerInfo      map[string]string `json:"serverInfo"`
			}](t, mustOK(t, f.handle(t, sess, float64(1), "initialize", tt.params, nil)))
			if res.ProtocolVersion != tt.want {
				t.Errorf("protocolVersion = %q, want %q", res.ProtocolVersion, tt.want)
			}
			if sess.Version() != tt.want {
				t.Errorf("session version = %q, want %q", sess.Version(), tt.want)
			}
			if res.ServerInfo["name"] != "mandate-test" || res.ServerInfo["version"] != "1.2.3" {
				t.Errorf("serverInfo = %v", res.ServerInfo)
			}
		})
	}
}

func TestInitializeInvalidParams(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.g.NewSession("s", "c")
	sess.Principal = identity.Local()
	wantError(t, f.handle(t, sess, float64(1), "initialize", `[1]`, nil), jsonrpc.CodeInvalidParams)
	if sess.Version() != "" {
		t.Errorf("a refused initialize left version %q", sess.Version())
	}
}

func TestSecondInitializeRefused(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	e := wantError(t, f.handle(t, sess, float64(2), "initialize", `{"protocolVersion":"2024-11-05"}`, nil), jsonrpc.CodeInvalidRequest)
	if e.Message != "session already initialized" {
		t.Errorf("message = %q", e.Message)
	}
	if sess.Version() != "2025-11-25" {
		t.Errorf("second initialize changed the version to %q", sess.Version())
	}
}

func TestRequestsBeforeInitializeRefused(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.g.NewSession("s", "c")
	sess.Principal = identity.Local()
	for i, m := range []string{"tools/list", "tools/call", "prompts/get", "resources/read", "resources/subscribe", "completion/complete", "logging/setLevel", "no/such/method"} {
		e := wantError(t, f.handle(t, sess, float64(i), m, `{"name":"a__echo","uri":"mandate://a/demo://readme","level":"info"}`, nil), jsonrpc.CodeInvalidRequest)
		if e.Message != "session not initialized" {
			t.Errorf("%s: message = %q", m, e.Message)
		}
	}
	if got := len(f.wires["a"].requests("tools/call")); got != 0 {
		t.Errorf("%d tools/call reached the upstream before initialize", got)
	}
	mustOK(t, f.handle(t, sess, "p", "ping", nil, nil))
}

func TestUnknownMethod(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	wantError(t, f.handle(t, sess, float64(1), "tools/destroy", `{}`, nil), jsonrpc.CodeMethodNotFound)
}

func TestCapabilitiesAreTheUnion(t *testing.T) {
	tests := []struct {
		name  string
		defs  func() []upDef
		caps  string
		instr string
	}{
		{
			name:  "demo only",
			defs:  func() []upDef { return []upDef{demoUp("a"), demoUp("b")} },
			caps:  `{"logging":{},"prompts":{"listChanged":true},"resources":{"listChanged":true,"subscribe":false},"tools":{"listChanged":true}}`,
			instr: "",
		},
		{
			name:  "demo and aux",
			defs:  func() []upDef { return []upDef{demoUp("a"), demoUp("b"), auxUp("c")} },
			caps:  `{"completions":{},"logging":{},"prompts":{"listChanged":true},"resources":{"listChanged":true,"subscribe":true},"tools":{"listChanged":true}}`,
			instr: "Use aux for status.",
		},
		{
			name:  "aux first",
			defs:  func() []upDef { return []upDef{auxUp("c"), demoUp("a")} },
			caps:  `{"completions":{},"logging":{},"prompts":{"listChanged":true},"resources":{"listChanged":true,"subscribe":true},"tools":{"listChanged":true}}`,
			instr: "Use aux for status.",
		},
		{
			name:  "two with instructions",
			defs:  func() []upDef { return []upDef{auxUp("c"), auxUp("d")} },
			caps:  `{"completions":{},"logging":{},"prompts":{"listChanged":true},"resources":{"listChanged":true,"subscribe":true},"tools":{"listChanged":true}}`,
			instr: "## c\nUse aux for status.\n\n## d\nUse aux for status.",
		},
		{
			name:  "nothing reachable",
			defs:  func() []upDef { return []upDef{downUp("x")} },
			caps:  `{}`,
			instr: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0, tt.defs()...)
			sess := f.g.NewSession("s", "c")
			sess.Principal = identity.Local()
			res := decode[struct {
				Capabilities json.RawMessage `json:"capabilities"`
				Instructions string          `json:"instructions"`
			}](t, mustOK(t, f.handle(t, sess, float64(1), "initialize", `{"protocolVersion":"2025-11-25"}`, nil)))
			if string(res.Capabilities) != tt.caps {
				t.Errorf("capabilities\n got %s\nwant %s", res.Capabilities, tt.caps)
			}
			if res.Instructions != tt.instr {
				t.Errorf("instructions = %q, want %q", res.Instructions, tt.instr)
			}
		})
	}
}

type listPage struct {
	Tools             []json.RawMessage `json:"tools"`
	Prompts           []json.RawMessage `json:"prompts"`
	Resources         []json.RawMessage `json:"resources"`
	ResourceTemplates []json.RawMessage `json:"resourceTemplates"`
	NextCursor        *string           `json:"nextCursor"`
	Meta              map[string]any    `json:"_meta"`
}

func (p listPage) items() []json.RawMessage {
	return slices.Concat(p.Tools, p.Prompts, p.Resources, p.ResourceTemplates)
}

// listAll walks every page of a list and returns the items' key members.
func (f *fixture) listAll(t *testing.T, sess *Session, method, key string) (keys []string, pages []listPage) {
	t.Helper()
	cursor := ""
	for i := range 100 {
		params := `{}`
		if cursor != "" {
			params = fmt.Sprintf(`{"cursor":%q}`, cursor)
		}
		page := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(1000+i), method, params, nil)))
		pages = append(pages, page)
		for _, it := range page.items() {
			keys = append(keys, decode[map[string]any](t, it)[key].(string))
		}
		if page.NextCursor == nil {
			return keys, pages
		}
		if *page.NextCursor == "" {
			t.Fatal("empty nextCursor")
		}
		cursor = *page.NextCursor
	}
	t.Fatal("list never ended")
	return nil, nil
}

func TestToolsListPagedInConfigOrder(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	names, pages := f.listAll(t, sess, "tools/list", "name")
	want := []string{"mandate__whoami", "a__add", "a__echo", "a__now", "a__slow", "b__add", "b__echo", "b__now", "b__slow", "c__alpha", "c__beta"}
	if !slices.Equal(names, want) {
		t.Errorf("tools\n got %q\nwant %q", names, want)
	}
	if len(pages) != 6 {
		t.Errorf("%d pages, want 6", len(pages))
	}
	for i, p := range pages {
		if n := len(p.Tools); n == 0 || n > 2 {
			t.Errorf("page %d has %d tools, want 1 or 2", i, n)
		}
	}
	// The aux server pages by one, so Mandate had to follow its cursors.
	if n := len(f.wires["c"].requests("tools/list")); n != 2 {
		t.Errorf("aux saw %d tools/list requests, want 2 (one per upstream page)", n)
	}
}

// TestListItemsPassedThrough guards against Mandate dropping or rewriting
// members of list items it does not understand: only the name may change.
func TestListItemsPassedThrough(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	sess := f.session(t, "s")
	page := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(1), "tools/list", nil, nil)))

	us, err := f.ups["a"].Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := us.Call(t.Context(), "tools/list", json.RawMessage(`{}`), nil)
	if err != nil || resp.Error != nil {
		t.Fatalf("upstream tools/list: %v %v", err, resp.Error)
	}
	direct := decode[listPage](t, resp.Result)
	if len(page.Tools) == 0 || !bytes.Equal(page.Tools[0], whoamiTool) {
		t.Fatalf("the list does not start with mandate__whoami: %s", page.Tools)
	}
	page.Tools = page.Tools[1:]
	if len(page.Tools) != len(direct.Tools) {
		t.Fatalf("gateway lists %d tools, upstream %d", len(page.Tools), len(direct.Tools))
	}
	for i := range page.Tools {
		got := decode[map[string]json.RawMessage](t, page.Tools[i])
		orig := decode[map[string]json.RawMessage](t, direct.Tools[i])
		if want := `"a__` + strings.Trim(string(orig["name"]), `"`) + `"`; string(got["name"]) != want {
			t.Errorf("name = %s, want %s", got["name"], want)
		}
		delete(got, "name")
		delete(orig, "name")
		if len(got) != len(orig) {
			t.Errorf("tool %d has members %v, upstream %v", i, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(orig)))
		}
		for k, v := range orig {
			if !bytes.Equal(got[k], v) {
				t.Errorf("tool %d member %s changed:\n got %s\nwant %s", i, k, got[k], v)
			}
		}
	}
}

func TestOtherListsNamespaced(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	tests := []struct {
		method, key string
		want        []string
	}{
		{"prompts/list", "name", []string{"a__greet", "b__greet", "c__topic"}},
		{"resources/list", "uri", []string{"mandate://a/demo://readme", "mandate://b/demo://readme", "mandate://c/aux://status"}},
		{"resources/templates/list", "uriTemplate", []string{"mandate://a/demo://notes/{name}", "mandate://b/demo://notes/{name}"}},
	}
	for _, tt := range tests {
		got, _ := f.listAll(t, sess, tt.method, tt.key)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s\n got %q\nwant %q", tt.method, got, tt.want)
		}
	}
}

func TestListCursorRejected(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	first := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(1), "tools/list", nil, nil)))
	if first.NextCursor == nil {
		t.Fatal("no nextCursor with page size 2")
	}
	good := *first.NextCursor
	b64, mac, _ := strings.Cut(good, ".")
	other := New(Options{}).cursors.encode("tools", 2)
	tests := []struct {
		name, method, cursor string
	}{
		{"tools cursor on prompts", "prompts/list", good},
		{"tools cursor on templates", "resources/templates/list", good},
		{"tampered MAC", "tools/list", b64 + "." + strings.ToUpper(mac)},
		{"forged offset", "tools/list", "dG9vbHM6OA." + mac},
		{"garbage", "tools/list", "not-a-cursor"},
		{"another gateway's key", "tools/list", other},
		{"past the end", "tools/list", f.g.cursors.encode("tools", 12)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wantError(t, f.handle(t, sess, float64(10+i), tt.method, map[string]string{"cursor": tt.cursor}, nil), jsonrpc.CodeInvalidParams)
			if e.Message != "invalid cursor" {
				t.Errorf("message = %q", e.Message)
			}
		})
	}
	// The end of the list is a valid, empty last page.
	end := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(99), "tools/list", map[string]string{"cursor": f.g.cursors.encode("tools", 11)}, nil)))
	if len(end.Tools) != 0 || end.NextCursor != nil || end.Tools == nil {
		t.Errorf("page at the end = %+v, want an empty tools array and no cursor", end)
	}
	wantError(t, f.handle(t, sess, float64(100), "tools/list", `[1]`, nil), jsonrpc.CodeInvalidParams)
}

func TestUnavailableUpstream(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"), downUp("d"))
	eventually(t, "upstream d down", func() bool { return f.ups["d"].Health().Status == upstream.StatusDown })
	sess := f.session(t, "s")
	page := decode[listPage](t, mustOK(t, f.handle(t, sess, float64(1), "tools/list", nil, nil)))
	if len(page.Tools) != 5 {
		t.Errorf("%d tools, want mandate__whoami and the 4 of a", len(page.Tools))
	}
	if got := fmt.Sprint(page.Meta[metaUnavailable]); got != "[d]" {
		t.Errorf("_meta %s = %s, want [d]", metaUnavailable, got)
	}
	// The session was never shown a tool of d; a stateless request, which
	// has no session to be shown one, reaches the upstream.
	wantError(t, f.handle(t, sess, float64(2), "tools/call", `{"name":"d__x","arguments":{}}`, nil), codeDenied)
	e := wantError(t, f.handle(t, f.stateless(t, identity.Local(), nil), float64(3), "tools/call", `{"name":"d__x","arguments":{}}`, nil), jsonrpc.CodeInternalError)
	if e.Message != `upstream "d" is unavailable` {
		t.Errorf("message = %q", e.Message)
	}
}

func TestToolsCallRouted(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.caller(t, "s")
	tests := []struct {
		public, upstream, name, args, want string
	}{
		{"b__echo", "b", "echo", `{"message":"a < b && c"}`, "a < b && c"},
		{"a__echo", "a", "echo", `{ "message" : "hi" }`, "hi"},
		{"c__beta", "c", "beta", `{}`, "beta"},
	}
	for i, tt := range tests {
		t.Run(tt.public, func(t *testing.T) {
			before := map[string]int{}
			for id, w := range f.wires {
				before[id] = len(w.requests("tools/call"))
			}
			params := `{"name":"` + tt.public + `","arguments":` + tt.args + `}`
			res := mustOK(t, f.handle(t, sess, float64(i+1), "tools/call", params, nil))
			if got := toolText(t, res); got != tt.want {
				t.Errorf("text = %q, want %q", got, tt.want)
			}
			for id, w := range f.wires {
				calls := w.requests("tools/call")
				if id != tt.upstream {
					if len(calls) != before[id] {
						t.Errorf("upstream %s also got the call", id)
					}
					continue
				}
				if len(calls) != before[id]+1 {
					t.Fatalf("upstream %s got %d calls, want 1", id, len(calls)-before[id])
				}
				p := decode[map[string]json.RawMessage](t, calls[len(calls)-1].Params)
				if string(p["name"]) != `"`+tt.name+`"` {
					t.Errorf("upstream saw name %s, want %q", p["name"], tt.name)
				}
				if string(p["arguments"]) != tt.args {
					t.Errorf("upstream saw arguments %s, want %s", p["arguments"], tt.args)
				}
			}
		})
	}
	sum := decode[struct {
		StructuredContent map[string]float64 `json:"structuredContent"`
	}](t, mustOK(t, f.handle(t, sess, float64(9), "tools/call", `{"name":"a__add","arguments":{"a":2,"b":40}}`, nil)))
	if sum.StructuredContent["sum"] != 42 {
		t.Errorf("a__add = %v, want sum 42", sum.StructuredContent)
	}
}

// TestUnknownTool covers names that do not resolve. A stateless request
// (no interrogation) sees the resolution errors; a session refuses every
// name it was not shown alike, so it cannot tell a hidden tool from a
// missing one.
func TestUnknownTool(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.stateless(t, identity.Local(), nil)
	listed := f.caller(t, "s")
	tests := []struct {
		name, params, msg string
		listedCode        int64 // the answer in a session that listed
	}{
		{"no prefix and no bare upstream", `{"name":"echo"}`, "unknown tool: echo", codeDenied},
		{"unknown prefix", `{"name":"zz__echo"}`, "unknown tool: zz__echo", codeDenied},
		{"missing name", `{"arguments":{}}`, "missing name", codeInvalidParams},
		{"empty name", `{"name":""}`, "missing name", codeInvalidParams},
		{"params not an object", `"a__echo"`, "invalid params", codeInvalidParams},
		{"unlisted name of a known upstream", `{"name":"a__nope"}`, "", codeDenied},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := wantError(t, f.handle(t, sess, float64(i+1), "tools/call", tt.params, nil), jsonrpc.CodeInvalidParams)
			if tt.msg != "" && e.Message != tt.msg {
				t.Errorf("message = %q, want %q", e.Message, tt.msg)
			}
			wantError(t, f.handle(t, listed, float64(i+1), "tools/call", tt.params, nil), tt.listedCode)
		})
	}
	if n := len(f.wires["a"].requests("tools/call")); n != 1 {
		t.Errorf("upstream a got %d calls, want only the a__nope one", n)
	}
}

func TestPromptsGetRouted(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	res := decode[struct {
		Description string `json:"description"`
	}](t, mustOK(t, f.handle(t, sess, float64(1), "prompts/get", `{"name":"b__greet","arguments":{"name":"Ada"}}`, nil)))
	if res.Description != "A greeting for Ada" {
		t.Errorf("description = %q", res.Description)
	}
	if got := f.wires["b"].requests("prompts/get"); len(got) != 1 || !strings.Contains(string(got[0].Params), `"name":"greet"`) {
		t.Errorf("upstream b saw %v", got)
	}
	wantError(t, f.handle(t, sess, float64(2), "prompts/get", `{"name":"greet"}`, nil), jsonrpc.CodeInvalidParams)
}

func progressTokens(t *testing.T, ns []*jsonrpc.Request) []string {
	t.Helper()
	var out []string
	for _, n := range ns {
		out = append(out, string(decode[map[string]json.RawMessage](t, n.Params)["progressToken"]))
	}
	return out
}

func TestProgressKeepsClientToken(t *testing.T) {
	f := newDefaultFixture(t)
	tests := []struct {
		name  string
		token string // raw JSON
	}{
		{"string token", `"tok-\u00e9"`},
		{"number token", `7`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := f.caller(t, fmt.Sprint("s", i))
			stream := &recorder{}
			other := &recorder{}
			sess.SetStandalone(other)
			params := `{"name":"a__slow","arguments":{"ms":250},"_meta":{"progressToken":` + tt.token + `}}`
			res := mustOK(t, f.handle(t, sess, float64(1), "tools/call", params, stream))
			if got := toolText(t, res); got != "slept 250 ms" {
				t.Errorf("result %q", got)
			}
			progress := stream.notifications("notifications/progress")
			if len(progress) < 2 {
				t.Fatalf("%d progress notifications on the request's stream, want at least 2", len(progress))
			}
			for _, tok := range progressTokens(t, progress) {
				if tok != tt.token {
					t.Errorf("progress token %s, want the client's %s", tok, tt.token)
				}
			}
			if other.len() != 0 {
				t.Errorf("the standalone stream got %d messages", other.len())
			}
			calls := f.wires["a"].requests("tools/call")
			sent := decode[struct {
				Meta map[string]json.RawMessage `json:"_meta"`
			}](t, calls[len(calls)-1].Params)
			if tok := string(sent.Meta["progressToken"]); tok == tt.token || !strings.HasPrefix(tok, `"mandate-`) {
				t.Errorf("upstream saw progress token %s, want one Mandate issued", tok)
			}
			f.g.mu.Lock()
			left := len(f.g.tokens)
			f.g.mu.Unlock()
			if left != 0 {
				t.Errorf("%d progress tokens still mapped after the call", left)
			}
		})
	}
}

// TestProgressTokensAreSessionScoped guards requirement U-03: two clients
// that pick the same progress token on one shared upstream session each see
// only their own progress.
func TestProgressTokensAreSessionScoped(t *testing.T) {
	f := newDefaultFixture(t)
	s1, s2 := f.caller(t, "s1"), f.caller(t, "s2")
	r1, r2 := &recorder{}, &recorder{}
	var wg sync.WaitGroup
	for _, c := range []struct {
		sess *Session
		rec  *recorder
		ms   int
	}{{s1, r1, 250}, {s2, r2, 350}} {
		wg.Go(func() {
			params := fmt.Sprintf(`{"name":"a__slow","arguments":{"ms":%d},"_meta":{"progressToken":"same"}}`, c.ms)
			mustOK(t, f.handle(t, c.sess, float64(1), "tools/call", params, c.rec))
		})
	}
	wg.Wait()
	for _, c := range []struct {
		rec   *recorder
		total float64
	}{{r1, 250}, {r2, 350}} {
		ns := c.rec.notifications("notifications/progress")
		if len(ns) == 0 {
			t.Fatalf("no progress for the %v ms call", c.total)
		}
		for _, n := range ns {
			p := decode[struct {
				Token string  `json:"progressToken"`
				Total float64 `json:"total"`
			}](t, n.Params)
			if p.Token != "same" || p.Total != c.total {
				t.Errorf("stream of the %v ms call got progress %s", c.total, n.Params)
			}
		}
	}
}

func TestCancelledByClient(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.caller(t, "s")
	done := make(chan *jsonrpc.Response, 1)
	start := time.Now()
	go func() {
		done <- f.handle(t, sess, float64(42), "tools/call", `{"name":"a__slow","arguments":{"ms":5000}}`, &recorder{})
	}()
	eventually(t, "the call to reach the upstream", func() bool { return len(f.wires["a"].requests("tools/call")) == 1 })

	// A string id "42" is another request: it must not cancel this one, and
	// it may be used while 42 is in flight.
	f.notify(t, sess, "notifications/cancelled", `{"requestId":"42"}`)
	mustOK(t, f.handle(t, sess, "42", "ping", nil, nil))
	e := wantError(t, f.handle(t, sess, float64(42), "ping", nil, nil), jsonrpc.CodeInvalidRequest)
	if e.Message != "request id already in use" {
		t.Errorf("duplicate id: message = %q", e.Message)
	}
	select {
	case resp := <-done:
		t.Fatalf("call ended before it was cancelled: %+v", resp)
	case <-time.After(50 * time.Millisecond):
	}

	f.notify(t, sess, "notifications/cancelled", `{"requestId":42,"reason":"user"}`)
	select {
	case resp := <-done:
		if resp != nil {
			t.Errorf("a cancelled request was answered: %+v", resp)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("cancel did not end the call")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cancel took %v", d)
	}
	upID := f.wires["a"].requests("tools/call")[0].ID.Raw()
	eventually(t, "notifications/cancelled upstream", func() bool { return len(f.wires["a"].requests("notifications/cancelled")) == 1 })
	c := decode[struct {
		RequestID any `json:"requestId"`
	}](t, f.wires["a"].requests("notifications/cancelled")[0].Params)
	if fmt.Sprint(c.RequestID) != fmt.Sprint(upID) {
		t.Errorf("upstream told to cancel %v, want its own id %v", c.RequestID, upID)
	}
	if sess.busy() != 0 {
		t.Errorf("%d requests still in flight", sess.busy())
	}
}

func TestCancelUnknownRequestIgnored(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	for _, p := range []string{`{"requestId":999}`, `{}`, `{"requestId":{"x":1}}`, `not json`, `{"requestId":null}`} {
		f.notify(t, sess, "notifications/cancelled", p)
	}
	mustOK(t, f.handle(t, sess, float64(1), "ping", nil, nil))
}

func TestSessionCloseCancelsInFlight(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.caller(t, "s")
	done := make(chan *jsonrpc.Response, 1)
	go func() {
		done <- f.handle(t, sess, float64(1), "tools/call", `{"name":"b__slow","arguments":{"ms":5000}}`, nil)
	}()
	eventually(t, "the call to reach the upstream", func() bool { return len(f.wires["b"].requests("tools/call")) == 1 })
	n := f.g.SessionCount()
	sess.Close()
	select {
	case resp := <-done:
		if resp != nil {
			t.Errorf("call on a closed session answered %+v", resp)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not end the call")
	}
	if f.g.SessionCount() != n-1 {
		t.Errorf("SessionCount = %d, want %d", f.g.SessionCount(), n-1)
	}
	select {
	case <-sess.Done():
	default:
		t.Error("Done not closed")
	}
}

func TestResourcesRead(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	tests := []struct {
		name, uri, upstream, upstreamURI, text string
	}{
		{"static", "mandate://a/demo://readme", "a", "demo://readme", "# Mandate demo server"},
		{"from a template", "mandate://b/demo://notes/alice", "b", "demo://notes/alice", `Note "alice"`},
		{"aux", "mandate://c/aux://status", "c", "aux://status", "ok"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decode[struct {
				Contents []struct {
					URI  string `json:"uri"`
					Text string `json:"text"`
				} `json:"contents"`
			}](t, mustOK(t, f.handle(t, sess, float64(i+1), "resources/read", map[string]string{"uri": tt.uri}, nil)))
			if len(res.Contents) != 1 {
				t.Fatalf("%d contents", len(res.Contents))
			}
			if res.Contents[0].URI != tt.uri {
				t.Errorf("contents uri = %q, want the public %q", res.Contents[0].URI, tt.uri)
			}
			if !strings.Contains(res.Contents[0].Text, tt.text) {
				t.Errorf("text = %q, want it to contain %q", res.Contents[0].Text, tt.text)
			}
			reads := f.wires[tt.upstream].requests("resources/read")
			if len(reads) == 0 || decode[map[string]string](t, reads[len(reads)-1].Params)["uri"] != tt.upstreamURI {
				t.Errorf("upstream %s did not see uri %q", tt.upstream, tt.upstreamURI)
			}
		})
	}
	for i, bad := range []string{`{"uri":"mandate://zz/demo://readme"}`, `{"uri":"demo://readme"}`, `{}`, `{"uri":""}`, `[]`} {
		wantError(t, f.handle(t, sess, float64(100+i), "resources/read", bad, nil), jsonrpc.CodeInvalidParams)
	}
	// An upstream's own error (an unknown note) is passed on.
	resp := f.handle(t, sess, float64(200), "resources/read", `{"uri":"mandate://a/demo://notes/a/b"}`, nil)
	if resp.Error == nil {
		t.Errorf("reading a missing resource succeeded: %s", resp.Result)
	}
}

func (f *fixture) upstreamSubs(id string) map[string]int {
	u := f.g.byID[id]
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]int{}
	for k, v := range u.subs {
		out[k] = v
	}
	return out
}

// TestSubscribeRefcounted guards the shared-session subscription count: the
// upstream is subscribed once however many clients subscribe, and
// unsubscribed only when the last of them leaves (by unsubscribing or by
// closing its session).
func TestSubscribeRefcounted(t *testing.T) {
	f := newDefaultFixture(t)
	s1, s2, s3 := f.session(t, "s1"), f.session(t, "s2"), f.session(t, "s3")
	const public, uri = "mandate://c/aux://status", "aux://status"
	w := f.wires["c"]
	count := func() (int, int) {
		return len(w.requests("resources/subscribe")), len(w.requests("resources/unsubscribe"))
	}
	step := func(sess *Session, method string, wantSub, wantUnsub, wantRefs int) {
		t.Helper()
		mustOK(t, f.handle(t, sess, method+sess.ID, method, map[string]string{"uri": public}, nil))
		sub, unsub := count()
		if sub != wantSub || unsub != wantUnsub {
			t.Errorf("after %s by %s: upstream saw %d subscribe, %d unsubscribe; want %d, %d", method, sess.ID, sub, unsub, wantSub, wantUnsub)
		}
		if got := f.upstreamSubs("c")[uri]; got != wantRefs {
			t.Errorf("after %s by %s: refcount %d, want %d", method, sess.ID, got, wantRefs)
		}
	}
	step(s1, "resources/subscribe", 1, 0, 1)
	step(s1, "resources/subscribe", 1, 0, 1) // a repeat does not count twice
	step(s2, "resources/subscribe", 1, 0, 2)
	step(s3, "resources/unsubscribe", 1, 0, 2) // never subscribed
	step(s1, "resources/unsubscribe", 1, 0, 1)
	step(s1, "resources/unsubscribe", 1, 0, 1)
	step(s2, "resources/unsubscribe", 1, 1, 0)
	if _, ok := f.upstreamSubs("c")[uri]; ok {
		t.Error("refcount entry left behind")
	}
	if got := decode[map[string]string](t, w.requests("resources/subscribe")[0].Params)["uri"]; got != uri {
		t.Errorf("upstream subscribed to %q, want %q", got, uri)
	}

	step(s3, "resources/subscribe", 2, 1, 1)
	s3.Close()
	eventually(t, "unsubscribe on close", func() bool { _, u := count(); return u == 2 })
	if got := f.upstreamSubs("c")[uri]; got != 0 {
		t.Errorf("refcount %d after the last subscriber closed", got)
	}
}

func TestSubscribeRefusedUpstreamLeavesNoCount(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	resp := f.handle(t, sess, float64(1), "resources/subscribe", `{"uri":"mandate://a/demo://readme"}`, nil)
	if resp.Error == nil {
		t.Fatal("the demo server cannot subscribe, yet subscribe succeeded")
	}
	if subs := f.upstreamSubs("a"); len(subs) != 0 {
		t.Errorf("refcounts %v after a refused subscribe", subs)
	}
	sess.mu.Lock()
	n := len(sess.subs)
	sess.mu.Unlock()
	if n != 0 {
		t.Errorf("session keeps %d subscriptions after a refused subscribe", n)
	}
	wantError(t, f.handle(t, sess, float64(2), "resources/subscribe", `{}`, nil), jsonrpc.CodeInvalidParams)
	wantError(t, f.handle(t, sess, float64(3), "resources/unsubscribe", `{"uri":"nowhere"}`, nil), jsonrpc.CodeInvalidParams)
}

func TestResourceUpdatedGoesToSubscribers(t *testing.T) {
	f := newDefaultFixture(t)
	s1, s2 := f.session(t, "s1"), f.session(t, "s2")
	r1, r2 := &recorder{}, &recorder{}
	s1.SetStandalone(r1)
	s2.SetStandalone(r2)
	mustOK(t, f.handle(t, s1, float64(1), "resources/subscribe", `{"uri":"mandate://c/aux://status"}`, nil))
	if err := f.servers["c"].ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "aux://status"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resources/updated", func() bool { return len(r1.notifications("notifications/resources/updated")) == 1 })
	n := r1.notifications("notifications/resources/updated")[0]
	if got := decode[map[string]string](t, n.Params)["uri"]; got != "mandate://c/aux://status" {
		t.Errorf("updated uri = %q, want the public URI", got)
	}
	time.Sleep(20 * time.Millisecond)
	if got := r2.notifications("notifications/resources/updated"); len(got) != 0 {
		t.Errorf("a session that did not subscribe got %d updates", len(got))
	}
}

func TestListChangedInvalidatesAndFansOut(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"), demoUp("b"))
	s1, s2 := f.session(t, "s1"), f.session(t, "s2")
	r1, r2 := &recorder{}, &recorder{}
	s1.SetStandalone(r1)
	s2.SetStandalone(r2)
	if !s1.SetStandalone(nil) || !s1.SetStandalone(r1) || s1.SetStandalone(&recorder{}) {
		t.Error("SetStandalone does not refuse a second stream")
	}
	names, _ := f.listAll(t, s1, "tools/list", "name")
	if slices.Contains(names, "b__extra") {
		t.Fatal("extra listed before it was added")
	}
	mcp.AddTool(f.servers["b"], &mcp.Tool{Name: "extra"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "extra"}}}, nil, nil
	})
	for _, r := range []*recorder{r1, r2} {
		eventually(t, "tools/list_changed", func() bool { return len(r.notifications("notifications/tools/list_changed")) > 0 })
	}
	names, _ = f.listAll(t, s2, "tools/list", "name")
	if !slices.Contains(names, "b__extra") {
		t.Errorf("tools after list_changed = %q, want b__extra", names)
	}
	if got := toolText(t, mustOK(t, f.handle(t, s2, float64(5), "tools/call", `{"name":"b__extra"}`, nil))); got != "extra" {
		t.Errorf("b__extra = %q", got)
	}
}

func TestComplete(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	tests := []struct {
		name   string
		params string
		want   string // the aux server echoes type|name|uri|value
		code   int64
	}{
		{
			name:   "prompt ref",
			params: `{"ref":{"type":"ref/prompt","name":"c__topic"},"argument":{"name":"kind","value":"x"}}`,
			want:   "ref/prompt|topic||x",
		},
		{
			name:   "resource ref",
			params: `{"ref":{"type":"ref/resource","uri":"mandate://c/aux://status"},"argument":{"name":"n","value":"y"}}`,
			want:   "ref/resource||aux://status|y",
		},
		{name: "unknown ref type", params: `{"ref":{"type":"ref/tool","name":"c__alpha"},"argument":{"name":"n","value":""}}`, code: jsonrpc.CodeInvalidParams},
		{name: "no ref", params: `{"argument":{"name":"n","value":""}}`, code: jsonrpc.CodeInvalidParams},
		{name: "unknown prompt", params: `{"ref":{"type":"ref/prompt","name":"zz__topic"},"argument":{"name":"n","value":""}}`, code: jsonrpc.CodeInvalidParams},
		{name: "unknown resource", params: `{"ref":{"type":"ref/resource","uri":"mandate://zz/x"},"argument":{"name":"n","value":""}}`, code: jsonrpc.CodeInvalidParams},
		{name: "params not an object", params: `[]`, code: jsonrpc.CodeInvalidParams},
		{name: "upstream without completions", params: `{"ref":{"type":"ref/prompt","name":"a__greet"},"argument":{"name":"name","value":"A"}}`, code: jsonrpc.CodeMethodNotFound},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := f.handle(t, sess, float64(i+1), "completion/complete", tt.params, nil)
			if tt.code != 0 {
				wantError(t, resp, tt.code)
				return
			}
			res := decode[struct {
				Completion struct {
					Values []string `json:"values"`
				} `json:"completion"`
			}](t, mustOK(t, resp))
			if len(res.Completion.Values) != 1 || res.Completion.Values[0] != tt.want {
				t.Errorf("values = %q, want [%q]", res.Completion.Values, tt.want)
			}
		})
	}
}

func TestSetLevel(t *testing.T) {
	f := newDefaultFixture(t)
	sess := f.session(t, "s")
	tests := []struct {
		params string
		ok     bool
	}{
		{`{"level":"warning"}`, true},
		{`{"level":"debug"}`, true},
		{`{"level":"loud"}`, false},
		{`{"level":"WARNING"}`, false},
		{`{"level":3}`, false},
		{`{}`, false},
		{`[]`, false},
	}
	for i, tt := range tests {
		t.Run(tt.params, func(t *testing.T) {
			before := len(f.wires["a"].requests("logging/setLevel"))
			resp := f.handle(t, sess, float64(i+1), "logging/setLevel", tt.params, nil)
			after := len(f.wires["a"].requests("logging/setLevel"))
			if !tt.ok {
				e := wantError(t, resp, jsonrpc.CodeInvalidParams)
				if e.Message != "invalid log level" {
					t.Errorf("message = %q", e.Message)
				}
				if after != before {
					t.Error("an invalid level reached the upstream")
				}
				return
			}
			if string(mustOK(t, resp)) != `{}` {
				t.Errorf("result %s", resp.Result)
			}
			for id, w := range f.wires {
				sent := w.requests("logging/setLevel")
				if len(sent) == 0 || string(sent[len(sent)-1].Params) != tt.params {
					t.Errorf("upstream %s did not get %s", id, tt.params)
				}
			}
			sess.mu.Lock()
			level := sess.logLevel
			sess.mu.Unlock()
			if want := decode[map[string]string](t, json.RawMessage(tt.params))["level"]; level != want {
				t.Errorf("session level %q, want %q", level, want)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	sess := f.g.NewEphemeral("c")
	sess.Principal = identity.Local()
	res := decode[struct {
		Supported []string        `json:"supportedVersions"`
		Caps      json.RawMessage `json:"capabilities"`
		Scope     string          `json:"cacheScope"`
	}](t, mustOK(t, f.handle(t, sess, float64(1), "server/discover", nil, nil)))
	if !slices.Equal(res.Supported, []string{"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}) {
		t.Errorf("supportedVersions = %q", res.Supported)
	}
	if res.Scope != "private" || !bytes.Contains(res.Caps, []byte(`"tools"`)) {
		t.Errorf("discover = %+v", res)
	}
}
