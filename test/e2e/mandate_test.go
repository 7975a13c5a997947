package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// startMandate writes config (YAML) to a temp dir, runs `mandate serve`
// with it on a free loopback port and returns the MCP endpoint URL.
func startMandate(t *testing.T, config string) string {
	t.Helper()
	bin := BuildGoBinary(t, "./cmd/mandate")
	dir := t.TempDir()
	path := filepath.Join(dir, "mandate.yaml")
	config = withDefaults(dir, config)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	StartProcess(t, "mandate", exec.Command(bin, "serve", "--config", path, "--listen", addr))
	WaitForListen(t, addr, 30*time.Second)
	return "http://" + addr + "/mcp"
}

// writeConfig writes a config file for `mandate stdio` and returns its path.
func writeConfig(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mandate.yaml")
	config = withDefaults(dir, config)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withDefaults gives a test config its own data_dir and, unless it has an
// auth section, `auth: none`: the proxy tests check MCP behaviour, and the
// conformance suite and the plain SDK clients carry no token.
func withDefaults(dir, config string) string {
	head := "data_dir: " + filepath.Join(dir, "data") + "\n"
	if !strings.Contains(config, "\nauth:") && !strings.HasPrefix(config, "auth:") {
		head += "auth: {mode: none}\n"
	}
	return head + config
}

func requireAllPass(t *testing.T, res Result, direct int) {
	t.Helper()
	t.Logf("conformance through Mandate: %s", res.Summary())
	for _, k := range res.FailedChecks() {
		t.Errorf("check %s failed: %s", k, res.Messages[k])
	}
	if res.Failed != 0 || res.Passed < direct {
		t.Fatalf("want every check to pass (%d direct), got %s", direct, res.Summary())
	}
}

// goEverythingChecks is the number of checks the Go SDK everything-server
// passes directly with the pinned suite (see testdata/baseline.md).
const goEverythingChecks = 73

// TestConformanceThroughMandateGoEverythingServer: Mandate fronting the Go
// SDK everything-server passes every check of the suite, with the server as
// a stdio child and as a Streamable HTTP upstream.
func TestConformanceThroughMandateGoEverythingServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		upstream func(t *testing.T) string // the upstream's transport line
	}{
		{"stdio", func(t *testing.T) string { return fmt.Sprintf("stdio: {command: %q}", GoEverythingServer(t)) }},
		{"http", func(t *testing.T) string { return fmt.Sprintf("http: {url: %q}", StartGoEverythingServer(t)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := startMandate(t, "upstreams:\n  - id: ev\n    prefix: \"\"\n    "+tc.upstream(t)+"\n")
			requireAllPass(t, RunConformance(t, url, "active"), goEverythingChecks)
		})
	}
}

// mandateImproves lists the checks that fail against server-everything
// directly and pass through Mandate, because Mandate (not the upstream)
// owns the HTTP front end: Host/Origin validation and session termination.
var mandateImproves = []string{
	"dns-rebinding-protection/localhost-host-rebinding-rejected",
	"server-session-lifecycle/server-session-terminated-returns-404",
}

// TestConformanceThroughMandateServerEverything: fronting the reference
// TypeScript server, Mandate reproduces the direct per-check results
// exactly, except for the front-end checks it fixes.
func TestConformanceThroughMandateServerEverything(t *testing.T) {
	t.Parallel()
	want := LoadChecks(t, serverEverythingBaseline)
	up := StartServerEverythingHTTP(t)
	url := startMandate(t, fmt.Sprintf(`
upstreams:
  - id: se
    prefix: ""
    http: {url: %q}
`, up))
	res := RunConformance(t, url, "active")
	t.Logf("conformance through Mandate: %s", res.Summary())
	for _, d := range DiffChecks(res.Checks, want) {
		key, _, _ := strings.Cut(d, ":")
		if slices.Contains(mandateImproves, strings.TrimSpace(key)) && res.Checks[strings.TrimSpace(key)] == "SUCCESS" {
			continue
		}
		t.Errorf("differs from direct: %s", d)
	}
	for _, k := range mandateImproves {
		if res.Checks[k] != "SUCCESS" {
			t.Errorf("check %s: %s, want SUCCESS through Mandate", k, res.Checks[k])
		}
	}
}

// twoUpstreams is a config with the Go everything-server and Mandate's own
// demo server, both as stdio children.
func twoUpstreams(t *testing.T) string {
	mandate := BuildGoBinary(t, "./cmd/mandate")
	return fmt.Sprintf(`
upstreams:
  - id: ev
    stdio: {command: %q}
  - id: demo
    stdio: {command: %q, args: ["demo-upstream"]}
`, GoEverythingServer(t), mandate)
}

func checkTwoUpstreams(t *testing.T, r TSResult) {
	t.Helper()
	for _, want := range []string{"ev__test_simple_text", "demo__echo"} {
		if !slices.Contains(r.Tools, want) {
			t.Errorf("tools lack %s: %v", want, r.Tools)
		}
	}
	if got := r.CallText("demo__echo"); got != "through mandate" {
		t.Errorf("demo__echo = %q", got)
	}
	if got := r.CallText("ev__test_simple_text"); !strings.Contains(got, "simple text") {
		t.Errorf("ev__test_simple_text = %q", got)
	}
}

var tsCalls = []string{"--call", "ev__test_simple_text={}", "--call", `demo__echo={"message":"through mandate"}`}

// TestTSClientThroughMandateHTTP: the TypeScript SDK client sees the tools
// of two upstreams through Mandate's HTTP entry and calls one of each.
func TestTSClientThroughMandateHTTP(t *testing.T) {
	t.Parallel()
	url := startMandate(t, twoUpstreams(t))
	checkTwoUpstreams(t, RunTSClient(t, append(tsCalls, "--http", url)...))
}

// TestTSClientThroughMandateStdio: the same through `mandate stdio`, as a
// local client (Claude Desktop, an IDE) would launch it.
func TestTSClientThroughMandateStdio(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, twoUpstreams(t))
	mandate := BuildGoBinary(t, "./cmd/mandate")
	checkTwoUpstreams(t, RunTSClient(t, append(tsCalls, "--stdio", mandate, "stdio", "--config", cfg)...))
}

func goClientCheck(t *testing.T, tr mcp.Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-go-client", Version: "1"}, nil)
	cs, err := c.Connect(ctx, tr, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	for _, want := range []string{"ev__test_simple_text", "demo__echo"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools lack %s: %v", want, names)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "go"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "go" {
		t.Fatalf("demo__echo: %v %+v", err, res)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__test_simple_text", Arguments: map[string]any{}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "simple text") {
		t.Fatalf("ev__test_simple_text: %v %+v", err, res)
	}
}

// TestGoClientThroughMandateHTTP and ...Stdio: the Go SDK client (which
// probes server/discover first) works through both entries.
func TestGoClientThroughMandateHTTP(t *testing.T) {
	t.Parallel()
	url := startMandate(t, twoUpstreams(t))
	goClientCheck(t, &mcp.StreamableClientTransport{Endpoint: url})
}

func TestGoClientThroughMandateStdio(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, twoUpstreams(t))
	cmd := exec.Command(BuildGoBinary(t, "./cmd/mandate"), "stdio", "--config", cfg)
	goClientCheck(t, &mcp.CommandTransport{Command: cmd})
}
