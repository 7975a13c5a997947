package frontend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain lets the test binary double as a stdio MCP server (the demo
// server), so stdio tests run a real child process without a build step.
func TestMain(m *testing.M) {
	if os.Getenv("MANDATE_DEMO_CHILD") == "1" {
		if err := demo.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type testUpstream struct {
	spec gateway.UpstreamSpec
	up   *upstream.Upstream
}

func stdioUpstream(id string, perClient bool) testUpstream {
	u := upstream.New(upstream.Options{
		ID: id,
		Stdio: &upstream.StdioOptions{
			Command: os.Args[0],
			Env:     append(os.Environ(), "MANDATE_DEMO_CHILD=1"),
			Grace:   200 * time.Millisecond,
		},
		Client:     upstream.ClientInfo{Name: "mandate-test", Version: "0"},
		MaxBackoff: 200 * time.Millisecond,
	})
	return testUpstream{spec: gateway.UpstreamSpec{Conn: u, Prefix: id, PerClient: perClient, Timeout: 10 * time.Second}, up: u}
}

func httpUpstream(t *testing.T, id string) testUpstream {
	t.Helper()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, nil))
	t.Cleanup(srv.Close)
	u := upstream.New(upstream.Options{
		ID:     id,
		HTTP:   &upstream.HTTPOptions{URL: srv.URL},
		Client: upstream.ClientInfo{Name: "mandate-test", Version: "0"},
	})
	return testUpstream{spec: gateway.UpstreamSpec{Conn: u, Prefix: id, Timeout: 10 * time.Second}, up: u}
}

type harness struct {
	url string
	gw  *gateway.Gateway
	fe  *frontend.Server
	ups []*upstream.Upstream
}

func startGateway(t *testing.T, opts frontend.Options, ups ...testUpstream) *harness {
	t.Helper()
	var specs []gateway.UpstreamSpec
	for _, u := range ups {
		specs = append(specs, u.spec)
	}
	gw := gateway.New(gateway.Options{Upstreams: specs, Version: "test", StartupWait: 5 * time.Second, Policy: policy.AllowAll()})
	h := &harness{gw: gw}
	for _, u := range ups {
		u.up.SetHandler(gw.SharedHandler(u.up.ID()))
		u.up.Start()
		h.ups = append(h.ups, u.up)
	}
	opts.Gateway = gw
	opts.Listen = "127.0.0.1:0"
	h.fe = frontend.New(opts)
	srv := httptest.NewServer(h.fe.Handler())
	h.url = srv.URL + "/mcp"
	t.Cleanup(func() {
		srv.Close()
		h.fe.Shutdown()
		for _, u := range h.ups {
			u.Close()
		}
	})
	return h
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// toolNames lists the upstream tools, leaving out Mandate's own
// mandate__whoami (which internal/gateway tests).
func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		if tl.Name != "mandate__whoami" {
			names = append(names, tl.Name)
		}
	}
	return names
}

// callText lists the tools, as clients do before calling (Mandate refuses
// calls of tools the session was not shown), and calls one.
func callText(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) string {
	t.Helper()
	for _, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("tools/call %s: error result %+v", name, res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

func TestTwoUpstreamsOneServer(t *testing.T) {
	h := startGateway(t, frontend.Options{}, stdioUpstream("local", false), httpUpstream(t, "remote"))
	cs := connect(t, h.url)
	names := strings.Join(toolNames(t, cs), ",")
	for _, want := range []string{"local__echo", "local__add", "remote__echo", "remote__slow"} {
		if !strings.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %s", want, names)
		}
	}
	if got := callText(t, cs, "local__echo", map[string]any{"message": "from stdio"}); got != "from stdio" {
		t.Errorf("local__echo = %q", got)
	}
	if got := callText(t, cs, "remote__echo", map[string]any{"message": "from http"}); got != "from http" {
		t.Errorf("remote__echo = %q", got)
	}
	// Prompts and resources are aggregated too, with reversible names.
	pr, err := cs.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "remote__greet", Arguments: map[string]string{"name": "Ada"}})
	if err != nil || len(pr.Messages) == 0 {
		t.Fatalf("prompts/get: %v %+v", err, pr)
	}
	rl, err := cs.ListResources(context.Background(), nil)
	if err != nil || len(rl.Resources) != 2 {
		t.Fatalf("resources/list: %v %+v", err, rl)
	}
	for _, r := range rl.Resources {
		rr, err := cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: r.URI})
		if err != nil || len(rr.Contents) == 0 || rr.Contents[0].URI != r.URI {
			t.Fatalf("resources/read %s: %v %+v", r.URI, err, rr)
		}
	}
}

// TestUpstreamErrorStaysResult: an upstream's isError result reaches the
// client as a result, not as a protocol error.
func TestUpstreamErrorStaysResult(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	cs := connect(t, h.url)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "remote__slow", Arguments: map[string]any{"ms": -5}})
	if err != nil {
		t.Fatalf("expected a result, got protocol error %v", err)
	}
	if !res.IsError {
		t.Fatalf("expected isError result, got %+v", res)
	}
}

func childPIDs(t *testing.T) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Field 4 (ppid) follows the parenthesised command name.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) > 2 && fields[1] == strconv.Itoa(me) && fields[0] != "Z" {
			out[pid] = true
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKilledStdioUpstreamIsRestarted(t *testing.T) {
	up := stdioUpstream("local", false)
	h := startGateway(t, frontend.Options{}, up)
	cs := connect(t, h.url)
	if got := callText(t, cs, "local__echo", map[string]any{"message": "before"}); got != "before" {
		t.Fatalf("echo = %q", got)
	}
	pid := up.up.Health().PID
	if pid == 0 {
		t.Fatal("no child pid")
	}
	// A call in flight when the child dies fails with a clear error.
	inflight := make(chan error, 1)
	go func() {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "local__slow", Arguments: map[string]any{"ms": 5000}})
		if err == nil && !res.IsError {
			err = fmt.Errorf("slow call succeeded despite the crash")
		} else {
			err = nil
		}
		inflight <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inflight:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight call did not fail after the crash")
	}
	waitFor(t, "restart", func() bool {
		hl := up.up.Health()
		return hl.Status == upstream.StatusUp && hl.PID != 0 && hl.PID != pid
	})
	if got := callText(t, cs, "local__echo", map[string]any{"message": "after"}); got != "after" {
		t.Fatalf("echo after restart = %q", got)
	}
	if up.up.Health().Restarts < 1 {
		t.Fatalf("restarts = %d", up.up.Health().Restarts)
	}
}

func TestOneUpstreamDownLeavesOthersUsable(t *testing.T) {
	dead := upstream.New(upstream.Options{ID: "dead", Stdio: &upstream.StdioOptions{Command: "/nonexistent/mcp-server"}, MaxBackoff: time.Second})
	h := startGateway(t, frontend.Options{},
		testUpstream{spec: gateway.UpstreamSpec{Conn: dead, Prefix: "dead"}, up: dead},
		httpUpstream(t, "remote"))
	waitFor(t, "dead upstream marked down", func() bool { return dead.Health().Status == upstream.StatusDown })
	cs := connect(t, h.url)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tools) != 5 {
		t.Fatalf("want mandate__whoami and the 4 remote tools, got %d", len(res.Tools))
	}
	un, _ := res.Meta["io.github.mandate-mcp/unavailable"].([]any)
	if len(un) != 1 || un[0] != "dead" {
		t.Fatalf("_meta unavailable = %v", res.Meta)
	}
	if got := callText(t, cs, "remote__echo", map[string]any{"message": "alive"}); got != "alive" {
		t.Fatalf("echo = %q", got)
	}
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "dead__echo", Arguments: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), `upstream "dead" is unavailable`) {
		t.Fatalf("call to the dead upstream: %v", err)
	}
	resp, err := http.Get(strings.TrimSuffix(h.url, "/mcp") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"dead":{"status":"down"`) {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
}

// rawSession speaks Streamable HTTP by hand, to control ids and headers.
type rawSession struct {
	t   *testing.T
	url string
	sid string
}

func post(t *testing.T, url string, headers map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func newRawSession(t *testing.T, url string) *rawSession {
	resp, body := post(t, url, nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	s := &rawSession{t: t, url: url, sid: resp.Header.Get("Mcp-Session-Id")}
	s.call(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s
}

func (s *rawSession) call(body string) (int, []byte) {
	resp, data := post(s.t, s.url, map[string]string{"Mcp-Session-Id": s.sid}, body)
	return resp.StatusCode, sseData(data)
}

// TestSameIDTwoSessions: two clients using the same JSON-RPC id at the same
// time over one shared upstream session each get their own response.
func TestSameIDTwoSessions(t *testing.T) {
	h := startGateway(t, frontend.Options{}, stdioUpstream("local", false))
	a, b := newRawSession(t, h.url), newRawSession(t, h.url)
	for _, s := range []*rawSession{a, b} {
		s.call(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	}
	errs := make(chan error, 100)
	for i := range 25 {
		var wg sync.WaitGroup
		for _, s := range []*rawSession{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := fmt.Sprintf("%s-%d", s.sid[:6], i)
				status, body := s.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"local__echo","arguments":{"message":%q}}}`, msg))
				var r struct {
					ID     int `json:"id"`
					Result struct {
						Content []struct{ Text string } `json:"content"`
					} `json:"result"`
				}
				if err := json.Unmarshal(body, &r); err != nil || status != 200 || r.ID != 7 || len(r.Result.Content) != 1 || r.Result.Content[0].Text != msg {
					errs <- fmt.Errorf("session %s sent %q, got %d %s", s.sid[:6], msg, status, body)
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestIdleSessionReleasesUpstreamProcess: in per-client mode each session
// has its own child; an idle session expires and its child exits, and a
// deleted session is gone (404).
func TestIdleSessionReleasesUpstreamProcess(t *testing.T) {
	up := stdioUpstream("local", true)
	h := startGateway(t, frontend.Options{}, up)
	waitFor(t, "upstream up", func() bool { return up.up.Health().Status == upstream.StatusUp })
	before := len(childPIDs(t))
	s := newRawSession(t, h.url)
	if status, body := s.call(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); status != 200 || !bytes.Contains(body, []byte("local__echo")) {
		t.Fatalf("tools/list: %d %s", status, body)
	}
	if n := len(childPIDs(t)); n != before+1 {
		t.Fatalf("children = %d, want %d (one dedicated process)", n, before+1)
	}
	time.Sleep(20 * time.Millisecond)
	if n := h.gw.ExpireIdle(10 * time.Millisecond); n != 1 {
		t.Fatalf("expired %d sessions, want 1", n)
	}
	waitFor(t, "dedicated child to exit", func() bool { return len(childPIDs(t)) == before })
	if status, _ := s.call(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); status != http.StatusNotFound {
		t.Fatalf("expired session answered %d, want 404", status)
	}

	s2 := newRawSession(t, h.url)
	req, _ := http.NewRequest(http.MethodDelete, h.url, nil)
	req.Header.Set("Mcp-Session-Id", s2.sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", err, resp)
	}
	if status, _ := s2.call(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); status != http.StatusNotFound {
		t.Fatalf("deleted session answered %d, want 404", status)
	}
}

func TestSessionCapPerClient(t *testing.T) {
	h := startGateway(t, frontend.Options{MaxSessionsPerClient: 2}, httpUpstream(t, "remote"))
	newRawSession(t, h.url)
	newRawSession(t, h.url)
	resp, body := post(t, h.url, nil, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third session: %d %s", resp.StatusCode, body)
	}
}

func TestHTTPHygiene(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	s := newRawSession(t, h.url)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	big := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__echo","arguments":{"message":"` + strings.Repeat("x", 10<<20) + `"}}}`
	tests := []struct {
		name       string
		headers    map[string]string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"10 MiB body", map[string]string{"Mcp-Session-Id": s.sid}, big, http.StatusRequestEntityTooLarge, "request body exceeds the limit of 4 MiB"},
		{"evil origin", map[string]string{"Origin": "https://evil.example"}, init, http.StatusForbidden, "invalid Origin"},
		{"rebinding host", map[string]string{"Host": "evil.example"}, init, http.StatusForbidden, "invalid Host"},
		{"loopback origin", map[string]string{"Origin": "http://localhost:6274"}, init, http.StatusOK, `"protocolVersion"`},
		{"bad protocol version", map[string]string{"Mcp-Session-Id": s.sid, "Mcp-Protocol-Version": "1999-01-01"}, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, http.StatusBadRequest, "unsupported protocol version"},
		{"other negotiated version", map[string]string{"Mcp-Session-Id": s.sid, "Mcp-Protocol-Version": "2025-06-18"}, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, http.StatusBadRequest, "does not match"},
		{"missing session", nil, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, http.StatusBadRequest, "missing Mcp-Session-Id"},
		{"unknown session", map[string]string{"Mcp-Session-Id": "nope"}, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, http.StatusNotFound, "session not found"},
		{"batch", map[string]string{"Mcp-Session-Id": s.sid}, `[{"jsonrpc":"2.0","id":2,"method":"ping"}]`, http.StatusBadRequest, "batching"},
		{"garbage", map[string]string{"Mcp-Session-Id": s.sid}, `{not json`, http.StatusBadRequest, "invalid JSON-RPC"},
		{"notification", map[string]string{"Mcp-Session-Id": s.sid}, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99}}`, http.StatusAccepted, ""},
		{"modern header mismatch", map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "remote__echo"},
			`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__slow","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			http.StatusBadRequest, "-32020"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
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
	// The session survived all of that.
	if status, body := s.call(`{"jsonrpc":"2.0","id":5,"method":"ping"}`); status != 200 {
		t.Fatalf("ping after bad input: %d %s", status, body)
	}
}

// TestModernStateless: a 2026-07-28 client works without a session, using
// server/discover and per-request metadata.
func TestModernStateless(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	hdr := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
	resp, body := post(t, h.url, hdr, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"supportedVersions":["2026-07-28"`)) || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Fatalf("discover: %d %s", resp.StatusCode, body)
	}
	hdr = map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "remote__echo"}
	resp, body = post(t, h.url, hdr, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__echo","arguments":{"message":"stateless"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"text":"stateless"`)) {
		t.Fatalf("stateless call: %d %s", resp.StatusCode, body)
	}
	hdr = map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
	resp, body = post(t, h.url, hdr, `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("clientCapabilities")) {
		t.Fatalf("missing capabilities: %d %s", resp.StatusCode, body)
	}
	// The Go SDK client (which tries server/discover first) works end to end.
	cs := connect(t, h.url)
	if got := callText(t, cs, "remote__echo", map[string]any{"message": "sdk"}); got != "sdk" {
		t.Fatalf("echo = %q", got)
	}
}

// TestToolsListGolden pins tools/list through Mandate; the golden file
// guards against dropped or rewritten fields (fidelity, requirement F-*).
func TestToolsListGolden(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	s := newRawSession(t, h.url)
	_, body := s.call(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "demo-tools-list.golden.json")
	if *update {
		os.WriteFile(golden, append(pretty.Bytes(), '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(pretty.String()) != strings.TrimSpace(string(want)) {
		t.Fatalf("tools/list changed; run with -update if intended.\ngot:\n%s", pretty.String())
	}
}

// TestToolsListMatchesUpstream compares tools/list through Mandate with the
// upstream's own answer, tool by tool and field by field; only the name may
// differ, by the prefix. It guards against the typed-struct re-encoding that
// drops fields such as execution or _meta.
func TestToolsListMatchesUpstream(t *testing.T) {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, nil))
	t.Cleanup(srv.Close)
	direct := newRawSession(t, srv.URL)
	_, directBody := direct.call(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)

	u := upstream.New(upstream.Options{ID: "remote", HTTP: &upstream.HTTPOptions{URL: srv.URL}})
	h := startGateway(t, frontend.Options{}, testUpstream{spec: gateway.UpstreamSpec{Conn: u, Prefix: "remote"}, up: u})
	through := newRawSession(t, h.url)
	_, throughBody := through.call(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)

	type list struct {
		Result struct {
			Tools []map[string]json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	var d, m list
	if err := json.Unmarshal(sseData(directBody), &d); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(throughBody, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Result.Tools) == 0 || string(m.Result.Tools[0]["name"]) != `"mandate__whoami"` {
		t.Fatalf("the list does not start with mandate__whoami: %s", throughBody)
	}
	m.Result.Tools = m.Result.Tools[1:]
	if len(d.Result.Tools) == 0 || len(d.Result.Tools) != len(m.Result.Tools) {
		t.Fatalf("direct %d tools, through Mandate %d", len(d.Result.Tools), len(m.Result.Tools))
	}
	for i, dt := range d.Result.Tools {
		mt := m.Result.Tools[i]
		var dn, mn string
		json.Unmarshal(dt["name"], &dn)
		json.Unmarshal(mt["name"], &mn)
		if mn != "remote__"+dn {
			t.Errorf("tool %d: name %q through Mandate, %q direct", i, mn, dn)
		}
		if len(dt) != len(mt) {
			t.Errorf("tool %s: %d fields direct, %d through Mandate", dn, len(dt), len(mt))
		}
		for k, dv := range dt {
			if k == "name" {
				continue
			}
			if !bytes.Equal(dv, mt[k]) {
				t.Errorf("tool %s field %s: direct %s, through Mandate %s", dn, k, dv, mt[k])
			}
		}
	}
}

// sseData returns the last data payload of an SSE body, or body itself when
// it is plain JSON.
func sseData(body []byte) []byte {
	var last []byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			last = d
		}
	}
	if last == nil {
		return body
	}
	return last
}
