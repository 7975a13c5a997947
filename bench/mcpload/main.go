// Command mcpload measures an MCP server, or a gateway in front of one, over
// Streamable HTTP.
//
// In load mode (the default) it opens -sessions client sessions, calls one
// tool in a closed loop from each of them, and reports the calls completed in
// the measured window, their exact latency percentiles, and, given -pid or
// -pids, the CPU time and peak resident memory of the target processes. In
// idle mode (-idle N) it opens N sessions, makes no calls, and reports how much
// the target's resident memory grew per session.
//
// Every phase is bounded in time: the warmup and window by -warmup and
// -duration, each connect and call by -timeout, and closing by a fixed limit.
//
// `mcpload issuer` is a minimal external token issuer on a loopback address
// (see issuer.go). It signs the access token that -token-file presents, so
// that load can also be measured through a gateway that authenticates
// every request and decides it with its policy.
//
// Examples:
//
//	mcpload -url http://127.0.0.1:8787/mcp -sessions 16 -duration 10s -pid 4242
//	mcpload -url http://127.0.0.1:8787/mcp -tool add -args '{"a":1,"b":2}' -json
//	mcpload -url http://127.0.0.1:8787/mcp -idle 2000 -pid 4242
//	mcpload -url https://gw.example/mcp -header 'Authorization=Bearer s3cret'
//	mcpload issuer -listen 127.0.0.1:9000 -out token.jwt -sub u1 -client-id agent -aud http://127.0.0.1:8787/mcp
//	mcpload -url http://127.0.0.1:8787/mcp -token-file token.jwt
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line.
type config struct {
	url      string
	sessions int
	duration time.Duration
	warmup   time.Duration
	tool     string
	args     json.RawMessage
	pids     []int
	json     bool
	headers  http.Header
	idle     int
	settle   time.Duration
	timeout  time.Duration
	protocol string
	sse      bool
	parallel int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "issuer" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runIssuerCommand(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpload:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the selected mode and returns the process exit status: 0 when
// every session opened and every call succeeded, 1 when the report shows
// failures (it is still printed), 2 for usage errors, 130 when interrupted.
func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	var (
		rep interface{ printText(io.Writer) }
		ok  bool
		err error
	)
	if cfg.idle > 0 {
		var r *idleReport
		r, err = runIdle(ctx, cfg)
		rep, ok = r, r != nil && r.Failed == 0
	} else {
		var r *loadReport
		r, err = runLoad(ctx, cfg)
		rep, ok = r, r != nil && r.Calls > 0 && r.Errors == 0
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "mcpload: interrupted")
		return 130
	}
	if err != nil {
		fmt.Fprintln(stderr, "mcpload:", err)
		return 1
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "mcpload:", err)
			return 1
		}
	} else {
		rep.printText(stdout)
	}
	if !ok {
		return 1
	}
	return 0
}

func parseFlags(args []string, output io.Writer) (*config, error) {
	cfg := &config{headers: http.Header{}}
	fs := flag.NewFlagSet("mcpload", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.url, "url", "", "Streamable HTTP endpoint of the target, e.g. http://127.0.0.1:8787/mcp (required)")
	fs.IntVar(&cfg.sessions, "sessions", 1, "concurrent client sessions, each calling in a closed loop")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of the measured window")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "load applied before the window, not counted")
	fs.StringVar(&cfg.tool, "tool", "echo", "tool to call")
	argsFlag := fs.String("args", `{"message":"hello"}`, "tool arguments, a JSON object")
	pid := fs.Int("pid", 0, "PID of the target process, for its CPU time and memory")
	pids := fs.String("pids", "", "comma-separated PIDs whose CPU time and memory are summed (with -pid)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object instead of text")
	fs.Func("header", "`K=V` header added to every request (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("want K=V, got %q", s)
		}
		cfg.headers.Add(k, v)
		return nil
	})
	tokenFile := fs.String("token-file", "", "file holding a bearer token, sent as Authorization: Bearer (kept off the command line)")
	fs.IntVar(&cfg.idle, "idle", 0, "idle mode: open this many sessions, make no calls, report RSS per session")
	fs.DurationVar(&cfg.settle, "settle", 2*time.Second, "idle mode: wait this long after opening before reading RSS")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "bound on each connect and each call")
	fs.StringVar(&cfg.protocol, "protocol", "2025-11-25",
		"protocol version offered in initialize; empty lets the SDK try server/discover (2026-07-28) first")
	fs.BoolVar(&cfg.sse, "sse", true, "open the standalone SSE stream (HTTP GET) of each session, as SDK clients do")
	fs.IntVar(&cfg.parallel, "connect-parallel", 32, "sessions initialised at the same time")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mcpload -url URL [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	u, err := url.Parse(cfg.url)
	switch {
	case cfg.url == "":
		return nil, errors.New("-url is required")
	case err != nil:
		return nil, fmt.Errorf("-url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return nil, fmt.Errorf("-url %q: want an http or https URL", cfg.url)
	case cfg.sessions < 1:
		return nil, errors.New("-sessions must be at least 1")
	case cfg.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case cfg.warmup < 0, cfg.settle < 0:
		return nil, errors.New("-warmup and -settle must not be negative")
	case cfg.timeout <= 0:
		return nil, errors.New("-timeout must be positive")
	case cfg.idle < 0:
		return nil, errors.New("-idle must not be negative")
	case cfg.parallel < 1:
		return nil, errors.New("-connect-parallel must be at least 1")
	case cfg.tool == "" && cfg.idle == 0:
		return nil, errors.New("-tool must not be empty")
	}

	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			return nil, fmt.Errorf("-token-file %s: want one token on one line", *tokenFile)
		}
		cfg.headers.Set("Authorization", "Bearer "+tok)
	}

	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*argsFlag), &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("-args %q: want a JSON object", *argsFlag)
	}
	cfg.args = json.RawMessage(*argsFlag)

	if *pid != 0 {
		cfg.pids = append(cfg.pids, *pid)
	}
	for _, s := range strings.Split(*pids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("-pids: %q is not a PID", s)
		}
		cfg.pids = append(cfg.pids, n)
	}
	for _, p := range cfg.pids {
		if p <= 0 {
			return nil, fmt.Errorf("invalid PID %d", p)
		}
	}
	return cfg, nil
}
