package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Set MANDATE_E2E_UPDATE=1 to rewrite testdata/server-everything-direct.json
// from a fresh run instead of comparing against it.
const updateEnv = "MANDATE_E2E_UPDATE"

const serverEverythingBaseline = "testdata/server-everything-direct.json"

// The Go SDK's conformance everything-server has every fixture the suite
// needs: talking to it directly, every check passes. A faithful gateway in
// front of it must do the same.
func TestHarnessConformanceGoEverythingServerDirect(t *testing.T) {
	t.Parallel()
	url := StartGoEverythingServer(t)
	res := RunConformance(t, url, "active")
	t.Logf("conformance against Go everything-server: %s", res.Summary())
	if res.Failed != 0 || res.ExitCode != 0 {
		for _, k := range res.FailedChecks() {
			t.Errorf("check %s failed: %s", k, res.Messages[k])
		}
		t.Fatalf("want no failures, got %s (exit %d)", res.Summary(), res.ExitCode)
	}
	if res.Passed <= 30 {
		t.Errorf("only %d checks passed, want > 30", res.Passed)
	}
	for k, v := range res.Checks {
		if v != "SUCCESS" {
			t.Errorf("check %s: %s", k, v)
		}
	}
	for _, s := range []string{"server-initialize", "tools-call-simple-text", "server-session-lifecycle", "dns-rebinding-protection"} {
		if _, ok := res.Scenarios[s]; !ok {
			t.Errorf("scenario %s did not run", s)
		}
	}
}

// @modelcontextprotocol/server-everything lacks the suite's fixtures, so many
// checks fail against it; this pins the exact per-check outcome that a later
// test compares a gateway's results with.
func TestHarnessConformanceServerEverythingDirect(t *testing.T) {
	t.Parallel()
	u := StartServerEverythingHTTP(t)
	assertLoopbackOnly(t, u)
	res := RunConformance(t, u, "active")
	t.Logf("conformance against server-everything: %s", res.Summary())
	if os.Getenv(updateEnv) == "1" {
		b, err := json.MarshalIndent(res.Checks, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(serverEverythingBaseline, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", serverEverythingBaseline)
		return
	}
	want := LoadChecks(t, serverEverythingBaseline)
	if d := DiffChecks(res.Checks, want); len(d) > 0 {
		t.Errorf("results differ from %s (%s=1 rewrites it):\n%s", serverEverythingBaseline, updateEnv, strings.Join(d, "\n"))
	}
	if res.Failed == 0 || res.ExitCode != 1 {
		t.Errorf("want failures and exit code 1, got %s, exit %d", res.Summary(), res.ExitCode)
	}
}

// assertLoopbackOnly checks in /proc/net/tcp that the server at u listens on
// 127.0.0.1 only (loopback.mjs pins server-everything there).
func assertLoopbackOnly(t *testing.T, u string) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(pu.Port())
	found := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 || fs[3] != "0A" { // LISTEN
				continue
			}
			addr, p, ok := strings.Cut(fs[1], ":")
			if !ok || p != fmt.Sprintf("%04X", port) {
				continue
			}
			found = true
			if addr != "0100007F" {
				t.Errorf("%s: port %d listens on %s, want 127.0.0.1 (0100007F) only", f, port, addr)
			}
		}
	}
	if !found {
		t.Logf("no LISTEN entry for port %d in /proc/net/tcp*; not checked", port)
	}
}

// The TypeScript SDK client works against the Go everything-server over
// Streamable HTTP and over stdio.
func TestHarnessTSClient(t *testing.T) {
	t.Parallel()
	const simpleText = "This is a simple text response for testing."
	check := func(t *testing.T, r TSResult) {
		t.Helper()
		if len(r.Tools) < 10 || !slices.Contains(r.Tools, "test_simple_text") {
			t.Errorf("tools = %v, want test_simple_text among >= 10", r.Tools)
		}
		if got := r.CallText("test_simple_text"); got != simpleText {
			t.Errorf("test_simple_text returned %q, want %q", got, simpleText)
		}
		var errRes struct {
			IsError bool `json:"isError"`
		}
		if err := json.Unmarshal(r.Calls["test_error_handling"], &errRes); err != nil || !errRes.IsError {
			t.Errorf("test_error_handling = %s, want isError:true", r.Calls["test_error_handling"])
		}
		if r.ExitCode != 2 || r.CallError("no_such_tool") == nil {
			t.Errorf("no_such_tool: exit %d, result %s; want exit 2 and an error", r.ExitCode, r.Calls["no_such_tool"])
		}
	}
	calls := []string{"--call", "test_simple_text", "--call", "test_error_handling={}", "--call", `no_such_tool={"x":1}`}

	t.Run("http", func(t *testing.T) {
		t.Parallel()
		u := StartGoEverythingServer(t)
		r := RunTSClient(t, append(calls, "--http", u)...)
		if r.Server["name"] != "mcp-conformance-test-server" {
			t.Errorf("server = %v", r.Server)
		}
		check(t, r)
	})
	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		r := RunTSClient(t, append(calls, "--stdio", GoEverythingServer(t))...)
		check(t, r)
	})
	t.Run("server-everything-stdio", func(t *testing.T) {
		t.Parallel()
		args := append([]string{"--call", `echo={"message":"hi"}`, "--stdio"}, ServerEverythingStdioCommand(t)...)
		r := RunTSClient(t, args...)
		if !slices.Contains(r.Tools, "echo") {
			t.Errorf("tools = %v, want echo", r.Tools)
		}
		if got := r.CallText("echo"); got != "Echo: hi" {
			t.Errorf("echo returned %q", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		if _, err := RunTSClientE(t, "--http", "http://127.0.0.1:"+strconv.Itoa(FreePort(t))+"/mcp"); err == nil {
			t.Error("connecting to a closed port succeeded")
		}
	})
}

// ConformanceOptions.Headers and tsclient --header reach the server: a
// bearer-token check in front of the Go everything-server refuses the CLI
// without them and lets every check through with them.
func TestHarnessHeaders(t *testing.T) {
	t.Parallel()
	upstream, err := url.Parse(StartGoEverythingServer(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u := srv.URL + "/mcp"

	bad := RunConformanceWith(t, u, ConformanceOptions{Scenario: "tools-call-simple-text"})
	if bad.Failed == 0 {
		t.Errorf("without the token: %s, want failures", bad.Summary())
	}
	good := RunConformanceWith(t, u, ConformanceOptions{
		Scenario: "tools-call-simple-text",
		Headers:  map[string]string{"Authorization": "Bearer s3cret"},
	})
	if good.Failed != 0 || good.Passed == 0 {
		t.Errorf("with the token: %s, want all passed; failed: %v", good.Summary(), good.FailedChecks())
	}

	if _, err := RunTSClientE(t, "--http", u); err == nil {
		t.Error("tsclient without the token succeeded")
	}
	r := RunTSClient(t, "--header", "Authorization: Bearer s3cret", "--call", "test_simple_text", "--http", u)
	if !slices.Contains(r.Tools, "test_simple_text") || r.CallText("test_simple_text") == "" {
		t.Errorf("tsclient with the token: %+v", r)
	}
}

// ParseConformance handles a scenario that threw (empty result directory:
// the CLI counts one synthetic failure) and repeated check ids.
func TestParseConformance(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, checks string) {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if checks != "" {
			if err := os.WriteFile(filepath.Join(d, "checks.json"), []byte(checks), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("server-ping-2026-01-01T00-00-00-000Z", `[{"id":"ping","status":"FAILURE","errorMessage":"old run"}]`)
	write("server-ping-2026-01-01T00-00-01-000Z", `[{"id":"ping","status":"SUCCESS"},{"id":"wire-schema-valid","status":"SUCCESS"}]`)
	write("server-tools-list-2026-01-01T00-00-02-000Z", `[{"id":"tools-list","status":"WARNING"},{"id":"x","status":"FAILURE","errorMessage":"boom"},{"id":"x","status":"SUCCESS"}]`)
	write("server-server-sse-polling-2026-01-01T00-00-03-000Z", "")
	raw := strings.Join([]string{
		"Running active suite (3 scenarios) against http://127.0.0.1:1/mcp",
		"Failed to run scenario server-sse-polling: Error: boom",
		"",
		"=== SUMMARY ===",
		"✓ ping: 2 passed, 0 failed",
		"✗ tools-list: 1 passed, 1 failed",
		"✗ server-sse-polling: 0 passed, 1 failed",
		"",
		"Total: 3 passed, 2 failed",
	}, "\n")
	res, err := ParseConformance(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ping/ping":                             "SUCCESS",
		"ping/wire-schema-valid":                "SUCCESS",
		"tools-list/tools-list":                 "WARNING",
		"tools-list/x":                          "FAILURE",
		"tools-list/x#2":                        "SUCCESS",
		"server-sse-polling/server-sse-polling": "FAILURE",
	}
	if d := DiffChecks(res.Checks, want); d != nil {
		t.Errorf("checks differ:\n%s", strings.Join(d, "\n"))
	}
	if res.Passed != 3 || res.Failed != 2 || len(res.Scenarios) != 3 {
		t.Errorf("got %s", res.Summary())
	}
	if res.Messages["tools-list/x"] != "boom" {
		t.Errorf("messages = %v", res.Messages)
	}

	// --scenario output has no summary section.
	one := t.TempDir()
	d := filepath.Join(one, "server-tools-call-image-2026-11-27T13-46-49-719Z")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "checks.json"), []byte(`[{"id":"tools-call-image","status":"FAILURE","errorMessage":"No image content found"},{"id":"wire-schema-valid","status":"SUCCESS"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	single := "Running client scenario 'tools-call-image' against server: http://127.0.0.1:1/mcp\n" +
		"Results saved to " + d + "\nChecks:\n\x1b[90mx\x1b[0m [tools-call-image ] \x1b[31mFAILURE\x1b[0m Tool returns image content\n\n" +
		"Test Results:\nPassed: 1/2, 1 failed, 0 warnings\n\n=== Failed Checks ===\n"
	res, err = ParseConformance(single, one)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed != 1 || res.Failed != 1 || res.Checks["tools-call-image/tools-call-image"] != "FAILURE" {
		t.Errorf("single scenario: %s %v", res.Summary(), res.Checks)
	}

	if _, err := ParseConformance("Total: 9 passed, 0 failed\n", dir); err == nil {
		t.Error("a Total line without the summary header parsed")
	}
	if _, err := ParseConformance(strings.Replace(raw, "Total: 3 passed", "Total: 4 passed", 1), dir); err == nil {
		t.Error("a summary that disagrees with checks.json parsed")
	}
}
