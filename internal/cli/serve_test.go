package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/cli"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveRun is one "mandate serve" running in this process.
type serveRun struct {
	base   string // http://127.0.0.1:port
	stderr *syncBuffer
	done   chan struct{} // closed when Main has returned
	code   int           // Main's exit code, once done is closed
	// interrupted is set once SIGINT was sent; see interrupt.
	interrupted bool
}

var servingURL = regexp.MustCompile(`msg="mandate serving" url=(http://127\.0\.0\.1:\d+)/mcp`)

// startServe runs cli.Main serve on 127.0.0.1:0 and learns the port from
// the log line announcing the endpoint, so no port is guessed.
func startServe(t *testing.T, args ...string) *serveRun {
	t.Helper()
	r := &serveRun{stderr: &syncBuffer{}, done: make(chan struct{})}
	args = append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)
	go func() {
		defer close(r.done)
		r.code = cli.Main(args, nil, io.Discard, r.stderr)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
			return
		default:
		}
		if !r.interrupted {
			r.interrupt(t)
		}
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop after SIGINT")
		}
	})
	waitFor(t, "the serving log line", func() bool {
		select {
		case <-r.done:
			t.Fatalf("serve exited with %d before serving:\n%s", r.code, r.stderr.String())
		default:
		}
		m := servingURL.FindStringSubmatch(r.stderr.String())
		if m == nil {
			return false
		}
		r.base = m[1]
		return true
	})
	return r
}

// interrupt sends SIGINT to this very process, to stop r. That is safe
// only while cli.Main is running: its signal.NotifyContext has then taken
// SIGINT over from the default action (which would end the test binary),
// and Main cannot return before the signal has been delivered to it,
// because delivery is what cancels its context. Once Main has returned,
// the same signal would end the test binary, so each run is interrupted at
// most once; and tests in this package never run Main in parallel, since
// every running Main would see the signal.
func (r *serveRun) interrupt(t *testing.T) {
	t.Helper()
	r.interrupted = true
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

type readiness struct {
	Status    string `json:"status"`
	Upstreams map[string]struct {
		Status string `json:"status"`
		PID    int    `json:"pid"`
	} `json:"upstreams"`
}

// connectHTTP connects the Go SDK client over Streamable HTTP. version ""
// lets the client pick (the stateless 2026-07-28 era); progress, if not nil,
// receives a value for each progress notification.
func connectHTTP(t *testing.T, url, version string, progress chan<- string) *mcp.ClientSession {
	t.Helper()
	opts := &mcp.ClientOptions{}
	if progress != nil {
		opts.ProgressNotificationHandler = func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			select {
			case progress <- req.Params.Message:
			default:
			}
		}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, opts)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect (version %q): %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names
}

func resultText(res *mcp.CallToolResult, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) != 1 {
		return "", fmt.Errorf("unexpected result %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return "", fmt.Errorf("content is %T", res.Content[0])
	}
	return tc.Text, nil
}

// TestServeGracefulShutdown runs "mandate serve" with the default SQLite
// store and a stdio upstream, uses it from clients of both protocol eras,
// and interrupts it with calls in flight: the calls must complete, Main
// must return 0, the upstream process must be gone, and the store must
// hold what the run recorded.
func TestServeGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	s := startServe(t, "--config", writeConfig(t, dir, demoUpstream), "--data-dir", dataDir)

	if code, body := httpGet(t, s.base+"/healthz"); code != http.StatusOK || string(body) != `{"status":"ok"}` {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	var ready readiness
	waitFor(t, "/readyz to report the demo upstream up", func() bool {
		code, body := httpGet(t, s.base+"/readyz")
		ready = readiness{}
		_ = json.Unmarshal(body, &ready)
		return code == http.StatusOK && ready.Status == "ready" && ready.Upstreams["demo"].Status == "up"
	})
	pid := ready.Upstreams["demo"].PID
	if pid == 0 || !slices.Contains(liveChildren(t), pid) {
		t.Fatalf("readyz names upstream pid %d; children of the test: %v", pid, liveChildren(t))
	}

	eras := []struct {
		name, version string
	}{{"session era", "2025-11-25"}, {"stateless era", ""}}
	type outcome struct {
		era  string
		text string
		err  error
	}
	results := make(chan outcome, len(eras))
	for i, era := range eras {
		progress := make(chan string, 1)
		cs := connectHTTP(t, s.base+"/mcp", era.version, progress)
		if got, want := toolNames(t, cs), []string{"demo__add", "demo__echo", "demo__now", "demo__slow", "mandate__whoami"}; !slices.Equal(got, want) {
			t.Fatalf("%s: tools/list = %v, want %v", era.name, got, want)
		}
		text, err := resultText(cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": era.name}}))
		if err != nil || text != era.name {
			t.Fatalf("%s: demo__echo = %q, %v", era.name, text, err)
		}
		params := &mcp.CallToolParams{Name: "demo__slow", Arguments: map[string]any{"ms": 1500}}
		params.SetProgressToken("slow-" + strconv.Itoa(i))
		go func() {
			text, err := resultText(cs.CallTool(context.Background(), params))
			results <- outcome{era.name, text, err}
		}()
		// The first progress notification proves the call reached the
		// upstream before the interrupt.
		select {
		case <-progress:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no progress from demo__slow", era.name)
		}
	}

	s.interrupt(t)
	noReuse := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	waitFor(t, "the listener to close", func() bool {
		resp, err := noReuse.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	for range eras {
		select {
		case r := <-results:
			if r.err != nil || r.text != "slept 1500 ms" {
				t.Errorf("%s: in-flight demo__slow = %q, %v; want it to complete", r.era, r.text, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight calls did not complete")
		}
	}
	select {
	case <-s.done:
		if s.code != 0 {
			t.Fatalf("serve exited with %d, want 0:\n%s", s.code, s.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after SIGINT")
	}
	if !strings.Contains(s.stderr.String(), "draining in-flight calls") {
		t.Errorf("no drain in the log:\n%s", s.stderr.String())
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upstream process %d still exists after serve returned (stat: %v)", pid, err)
	}
	if kids := liveChildren(t); len(kids) > 0 {
		t.Errorf("live children after serve returned: %v", kids)
	}

	checkStore(t, filepath.Join(dataDir, "mandate.db"))
}

// checkStore opens the SQLite file a serve run left behind: the upstream's
// health history ends with its orderly stop, and the tools catalog it
// advertised is stored under its own (unprefixed) names.
func checkStore(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("store file: %v", err)
	}
	ctx := t.Context()
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	latest, err := st.LatestHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := latest["demo"]; h.Status != store.HealthDown || h.Detail != "stopped" {
		t.Errorf("latest health of demo = %+v, want down/stopped", h)
	}
	history, err := st.HealthHistory(ctx, "demo", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(history, func(ev store.HealthEvent) bool { return ev.Status == store.HealthUp }) {
		t.Errorf("health history of demo has no %q event: %+v", store.HealthUp, history)
	}

	snap, err := st.GetCatalog(ctx, "demo", store.KindTools)
	if err != nil {
		t.Fatalf("tools catalog of demo: %v", err)
	}
	if snap.Hash != store.CatalogHash(snap.Body) {
		t.Errorf("catalog hash %s does not match its body", snap.Hash)
	}
	var tools []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(snap.Body, &tools); err != nil {
		t.Fatalf("catalog body: %v\n%s", err, snap.Body)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if want := []string{"add", "echo", "now", "slow"}; !slices.Equal(names, want) {
		t.Errorf("stored tool names = %v, want %v", names, want)
	}
}
