package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/mandate-mcp/mandate/internal/authn"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i + 1)
	}
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		samples  []time.Duration
		perMille int
		want     time.Duration
	}{
		{[]time.Duration{7}, 500, 7},
		{[]time.Duration{7}, 999, 7},
		{[]time.Duration{1, 2}, 500, 1},
		{[]time.Duration{1, 2, 3}, 500, 2},
		{hundred, 500, 50},
		{hundred, 990, 99},
		{hundred, 999, 100},
		{thousand, 990, 990},
		{thousand, 999, 999},
	} {
		if got := percentile(tc.samples, tc.perMille); got != tc.want {
			t.Errorf("percentile(%d samples, %d‰) = %d, want %d", len(tc.samples), tc.perMille, got, tc.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	if got := summarise(nil); got != (latencies{}) {
		t.Errorf("summarise(nil) = %+v", got)
	}
	got := summarise([]time.Duration{4, 1, 3, 2})
	want := latencies{N: 4, Mean: 2, P50: 2, P99: 4, P999: 4, Max: 4}
	if got != want {
		t.Errorf("summarise = %+v, want %+v", got, want)
	}
}

func TestParseStatTicks(t *testing.T) {
	// Field 2 of a real /proc/PID/stat line, with a command name that holds
	// spaces and a ')' to defeat naive splitting.
	stat := "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 123 456 789\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 325 {
		t.Errorf("ticks = %d, want 325", got)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 1"} {
		if _, err := parseStatTicks([]byte(bad)); err == nil {
			t.Errorf("parseStatTicks(%q) succeeded", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tmandate\nVmPeak:\t  900 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t9\n"
	got, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if got != (memory{HWM: 20480, RSS: 10240}) {
		t.Errorf("memory = %+v", got)
	}
	if _, err := parseStatus([]byte("Name:\tzombie\nState:\tZ\n")); err == nil {
		t.Error("parseStatus of a zombie succeeded")
	}
}

func TestProcSelf(t *testing.T) {
	pids := []int{os.Getpid()}
	if _, err := cpuSeconds(pids); err != nil {
		t.Fatal(err)
	}
	m, err := readMemory(pids)
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("memory = %+v", m)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{
		"-url", "http://127.0.0.1:1/mcp", "-sessions", "4", "-pid", "10", "-pids", "11, 12",
		"-header", "Authorization=Bearer a=b", "-header", "X-Extra=1", "-header", "X-Extra=2",
	}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.sessions != 4 || cfg.tool != "echo" || string(cfg.args) != `{"message":"hello"}` {
		t.Errorf("cfg = %+v", cfg)
	}
	if got := joinInts(cfg.pids); got != "10,11,12" {
		t.Errorf("pids = %s", got)
	}
	if got := cfg.headers.Get("Authorization"); got != "Bearer a=b" {
		t.Errorf("Authorization = %q", got)
	}
	if got := cfg.headers.Values("X-Extra"); len(got) != 2 {
		t.Errorf("X-Extra = %q", got)
	}

	for _, args := range [][]string{
		{},
		{"-url", "127.0.0.1:1"},
		{"-url", "http://127.0.0.1:1/mcp", "-args", "[1]"},
		{"-url", "http://127.0.0.1:1/mcp", "-args", "null"},
		{"-url", "http://127.0.0.1:1/mcp", "-sessions", "0"},
		{"-url", "http://127.0.0.1:1/mcp", "-header", "novalue"},
		{"-url", "http://127.0.0.1:1/mcp", "-pids", "1,x"},
		{"-url", "http://127.0.0.1:1/mcp", "extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) succeeded", args)
		}
	}
}

// newTarget serves the demo server over Streamable HTTP on loopback and
// counts the requests that carry the header X-Bench: 1.
func newTarget(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var tagged atomic.Int64
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Bench") == "1" {
			tagged.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", &tagged
}

func TestRunLoad(t *testing.T) {
	url, tagged := newTarget(t)
	cfg, err := parseFlags([]string{
		"-url", url, "-sessions", "3", "-warmup", "100ms", "-duration", "400ms",
		"-pid", "0", "-pids", "", "-header", "X-Bench=1", "-json",
	}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.pids = []int{os.Getpid()}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), cfg, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep loadReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Calls == 0 || rep.Errors != 0 || rep.P50Ms <= 0 || rep.P50Ms > rep.P99Ms || rep.P99Ms > rep.P999Ms || rep.P999Ms > rep.MaxMs {
		t.Errorf("report = %+v", rep)
	}
	if rep.CPUS == nil || rep.CPUUsPerCall == nil || rep.PeakRSSKiB == nil {
		t.Errorf("report lacks target figures: %+v", rep)
	}
	if tagged.Load() < int64(rep.Calls) {
		t.Errorf("%d requests carried the header, want at least %d", tagged.Load(), rep.Calls)
	}
}

func TestRunLoadToolErrors(t *testing.T) {
	url, _ := newTarget(t)
	cfg, err := parseFlags([]string{
		"-url", url, "-tool", "slow", "-args", `{"ms":-5}`, "-warmup", "0s", "-duration", "200ms",
	}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), cfg, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "isError") {
		t.Errorf("report does not show the tool error:\n%s", out.String())
	}
}

func TestRunIdle(t *testing.T) {
	url, _ := newTarget(t)
	cfg, err := parseFlags([]string{"-url", url, "-idle", "20", "-settle", "50ms", "-json"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.pids = []int{os.Getpid()}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), cfg, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep idleReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if rep.Opened != 20 || rep.Failed != 0 || rep.KiBPerSession == nil || rep.RSSAfterKiB == nil {
		t.Errorf("report = %s", out.String())
	}
}

func TestRunUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/mcp"
	srv.Close()
	cfg, err := parseFlags([]string{"-url", url, "-sessions", "4", "-timeout", "2s"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), cfg, &out, &errOut); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "open session") {
		t.Errorf("stderr = %q", errOut.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v against a closed port", d)
	}
}

// TestIssuerTokenVerifies: a token of `mcpload issuer` passes Mandate's own
// verifier for external issuers, fetching the key set from the issuer, and
// names the delegated principal the benchmark's mandate is granted to.
func TestIssuerTokenVerifies(t *testing.T) {
	out := filepath.Join(t.TempDir(), "token.jwt")
	cfg, err := parseIssuerFlags([]string{"-listen", "127.0.0.1:0", "-out", out, "-sub", "user-1",
		"-client-id", "bench-agent", "-aud", "http://127.0.0.1:8787/mcp", "-ttl", "1m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- runIssuer(ctx, cfg, pw) }()
	url, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	url = strings.TrimSpace(url)
	tok, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(url + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	err = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if err != nil || meta.Issuer != url || meta.JWKSURI != url+"/jwks" {
		t.Fatalf("metadata %+v, %v", meta, err)
	}

	v := authn.NewJWTVerifier(authn.JWTOptions{Issuers: []authn.IssuerSpec{{
		Issuer: url, Keys: &authn.RemoteJWKS{URL: meta.JWKSURI}, Audience: "http://127.0.0.1:8787/mcp",
		Method: identity.MethodExternal,
	}}})
	p, err := v.Verify(t.Context(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.User != "user-1" || p.Agent != "bench-agent" || !p.Delegated() || !p.HasScope("mcp:tools") {
		t.Fatalf("principal %+v", p)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runIssuer: %v", err)
	}
}

func TestIssuerFlags(t *testing.T) {
	base := []string{"-out", "t", "-sub", "u", "-client-id", "a", "-aud", "http://127.0.0.1:1/mcp"}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"missing subject", []string{"-out", "t", "-client-id", "a", "-aud", "x"}},
		{"non-loopback listener", append([]string{"-listen", "0.0.0.0:0"}, base...)},
		{"host name listener", append([]string{"-listen", "localhost:0"}, base...)},
		{"zero ttl", append([]string{"-ttl", "0s"}, base...)},
	} {
		if _, err := parseIssuerFlags(tc.args, io.Discard); err == nil {
			t.Errorf("%s: parseIssuerFlags(%q) succeeded", tc.name, tc.args)
		}
	}
	if _, err := parseIssuerFlags(base, io.Discard); err != nil {
		t.Errorf("parseIssuerFlags(%q): %v", base, err)
	}
}

func TestTokenFileSetsBearer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("abc.def.ghi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"-url", "http://127.0.0.1:1/mcp", "-token-file", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.headers.Get("Authorization"); got != "Bearer abc.def.ghi" {
		t.Errorf("Authorization = %q", got)
	}
	if err := os.WriteFile(path, []byte("two tokens\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseFlags([]string{"-url", "http://127.0.0.1:1/mcp", "-token-file", path}, io.Discard); err == nil {
		t.Error("a token file holding two words was accepted")
	}
}
