package upstream

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// childEnv selects what the test binary does when it is started as a stdio
// upstream by these tests.
const childEnv = "MANDATE_UPSTREAM_TEST_CHILD"

// readyLine is a JSON-RPC notification a child prints once it is set up, so
// a test can wait for it before acting.
const readyLine = `{"jsonrpc":"2.0","method":"notifications/test_ready"}`

// TestMain lets the test binary double as the child process of stdio tests,
// so they exercise real processes, pipes and signals without a build step.
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	switch mode {
	case "demo":
	case "banner":
		// Requirement T-01: servers print banners and debug output on
		// stdout; Mandate must drop such lines and keep the session.
		fmt.Print("hello banner\n")
		fmt.Print("{not json\n")
		fmt.Print(`{"hello":"a JSON object that is not JSON-RPC"}` + "\n")
		fmt.Print("\x1b[32mready\x1b[0m\n\n")
		fmt.Fprintln(os.Stderr, "banner on stderr")
	case "stubborn":
		// Ignores both the closing of stdin and SIGTERM (T-03).
		signal.Ignore(syscall.SIGTERM)
		fmt.Println(readyLine)
		time.Sleep(time.Hour)
		return 0
	case "deaf":
		// Ignores the closing of stdin but dies of SIGTERM.
		fmt.Println(readyLine)
		time.Sleep(time.Hour)
		return 0
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode", mode)
		return 2
	}
	if err := demo.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// stdioChild describes the test binary started in mode. A race-enabled
// binary sleeps a second before exiting unless GORACE says otherwise, which
// would make a cooperative child look like one that ignores stdin.
func stdioChild(mode string, grace time.Duration) *StdioOptions {
	return &StdioOptions{
		Command: os.Args[0],
		Env:     append(os.Environ(), childEnv+"="+mode, "GORACE=atexit_sleep_ms=0"),
		Grace:   grace,
	}
}

// logBuffer is a concurrency-safe sink for a test logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

func testLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
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
