package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

func echoText(t *testing.T, ctx context.Context, s *Session, msg string) string {
	t.Helper()
	params, _ := json.Marshal(map[string]any{"name": "echo", "arguments": map[string]string{"message": msg}})
	resp, err := s.Call(ctx, "tools/call", params, nil)
	if err != nil {
		t.Fatalf("tools/call: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("tools/call: %v", resp.Error)
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil || len(res.Content) != 1 {
		t.Fatalf("tools/call result %s", resp.Result)
	}
	return res.Content[0].Text
}

// TestStdioBannerDropped covers requirement T-01: a server that prints a
// banner and other non-JSON-RPC lines on stdout before it speaks MCP is
// still usable, and each such line is logged and dropped.
func TestStdioBannerDropped(t *testing.T) {
	log, buf := testLogger()
	u := New(Options{
		ID:         "banner",
		Stdio:      stdioChild("banner", 200*time.Millisecond),
		Client:     ClientInfo{Name: "mandate-test", Version: "0"},
		Log:        log,
		MaxBackoff: 50 * time.Millisecond,
	})
	u.Start()
	t.Cleanup(u.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	s, err := u.Session(ctx)
	if err != nil {
		t.Fatalf("Session: %v\n%s", err, buf)
	}
	if got := echoText(t, ctx, s, "after the banner"); got != "after the banner" {
		t.Errorf("echo = %q", got)
	}
	if s.Init.ProtocolVersion == "" || !s.Init.Has("tools") {
		t.Errorf("init info %+v", s.Init)
	}
	h := u.Health()
	if h.Status != StatusUp || h.PID == 0 || h.Restarts != 0 {
		t.Errorf("health %+v, want up with a pid and no restarts", h)
	}
	if err := syscall.Kill(h.PID, 0); err != nil {
		t.Errorf("child %d is not running: %v", h.PID, err)
	}
	if n := buf.count("not a JSON-RPC message; dropped"); n != 4 {
		t.Errorf("%d dropped lines logged, want 4:\n%s", n, buf)
	}
	eventually(t, "the child's stderr in the log", func() bool { return strings.Contains(buf.String(), "banner on stderr") })
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
}

// TestStdioCloseEscalates covers requirement T-03: Close closes stdin, waits
// Grace, sends SIGTERM, waits Grace again and then kills, so even a child
// that ignores both is gone within about twice Grace.
func TestStdioCloseEscalates(t *testing.T) {
	const grace = 200 * time.Millisecond
	tests := []struct {
		mode     string
		min, max time.Duration
		signal   syscall.Signal // 0: exited by itself
	}{
		{"demo", 0, grace, 0},
		{"deaf", grace, 2*grace - 20*time.Millisecond, syscall.SIGTERM},
		{"stubborn", 2 * grace, 2*grace + time.Second, syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			log, buf := testLogger()
			c, err := dialStdio(t.Context(), *stdioChild(tt.mode, grace), log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			// Wait until the child is running, so that the timing measures
			// Close and not the start of the process.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if tt.mode == "demo" {
				id, _ := jsonrpc.MakeID(float64(1))
				if err := c.Write(ctx, &jsonrpc.Request{ID: id, Method: "ping"}); err != nil {
					t.Fatal(err)
				}
				if m, err := c.Read(ctx); err != nil {
					t.Fatalf("no answer to ping: %v %v\n%s", m, err, buf)
				}
			} else {
				m, err := c.Read(ctx)
				if r, ok := m.(*jsonrpc.Request); err != nil || !ok || r.Method != "notifications/test_ready" {
					t.Fatalf("child not ready: %v %v\n%s", m, err, buf)
				}
			}
			pid := c.cmd.Process.Pid

			start := time.Now()
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			took := time.Since(start)
			if took < tt.min || took > tt.max+500*time.Millisecond {
				t.Errorf("Close took %v, want between %v and %v", took, tt.min, tt.max)
			}
			select {
			case <-c.exited:
			default:
				t.Fatal("Close returned before the child exited")
			}
			ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case tt.signal == 0 && ws.Signaled():
				t.Errorf("child was killed by %v, want a clean exit", ws.Signal())
			case tt.signal != 0 && (!ws.Signaled() || ws.Signal() != tt.signal):
				t.Errorf("child ended with %v, want %v", ws, tt.signal)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("child %d still exists after Close: %v", pid, err)
			}

			again := time.Now()
			_ = c.Close()
			if d := time.Since(again); d > 50*time.Millisecond {
				t.Errorf("second Close took %v", d)
			}
			if err := c.Write(t.Context(), &jsonrpc.Request{Method: "x"}); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestStdioChildExitsAtOnce(t *testing.T) {
	u := New(Options{ID: "x", Stdio: stdioChild("no-such-mode", 100*time.Millisecond)})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := u.Dial(ctx, nil); err == nil {
		t.Fatal("Dial to a child that exits succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial took %v to notice the child exited", d)
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("z", 10000) // longer than the reader's buffer
	tests := []struct {
		in   string
		want []string
	}{
		{"a\nb\n", []string{"a", "b"}},
		{"a\r\nb\r\n", []string{"a", "b"}},
		{"a\n\nb", []string{"a", "", "b"}},
		{long + "\n" + long + "\r\n", []string{long, long}},
		{"", nil},
	}
	for _, tt := range tests {
		br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
		var got []string
		for {
			line, err := readLine(br)
			if err != nil && len(line) == 0 {
				if !errors.Is(err, io.EOF) {
					t.Errorf("readLine(%.20q): %v", tt.in, err)
				}
				break
			}
			got = append(got, string(line))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("readLine(%.20q) lines = %.40q, want %.40q", tt.in, got, tt.want)
		}
	}
}
