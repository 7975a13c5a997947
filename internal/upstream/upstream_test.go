package upstream

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/examples/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// healthLog records OnHealth transitions.
type healthLog struct {
	mu     sync.Mutex
	states []string
}

func (h *healthLog) record(status, _ string) {
	h.mu.Lock()
	h.states = append(h.states, status)
	h.mu.Unlock()
}

func (h *healthLog) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.states)
}

// TestMissingCommandFailsFast guards "callers never wait on a server that is
// known down": a command that cannot start puts the upstream down, and
// Session then fails at once with ErrUnavailable.
func TestMissingCommandFailsFast(t *testing.T) {
	hl := &healthLog{}
	u := New(Options{
		ID:         "missing",
		Stdio:      &StdioOptions{Command: "/nonexistent/mandate-test-no-such-server"},
		MaxBackoff: 50 * time.Millisecond,
		OnHealth:   hl.record,
	})
	if h := u.Health(); h.Status != StatusStarting {
		t.Errorf("health before Start = %+v, want starting", h)
	}
	u.Start()
	t.Cleanup(u.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	start := time.Now()
	_, err := u.Session(ctx)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Session = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Session took %v to fail", d)
	}
	h := u.Health()
	if h.Status != StatusDown || h.Detail != "connect failed" || h.PID != 0 {
		t.Errorf("health = %+v, want down, connect failed", h)
	}
	start = time.Now()
	if _, err := u.Session(ctx); !errors.Is(err, ErrUnavailable) || time.Since(start) > 20*time.Millisecond {
		t.Errorf("second Session = %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
	if _, err := u.Dial(ctx, nil); err == nil || !strings.Contains(err.Error(), "mandate-test-no-such-server") {
		t.Errorf("Dial = %v, want the start error", err)
	}
	// OnHealth runs after the state is published, so it may lag Session.
	deadline := time.Now().Add(2 * time.Second)
	for len(hl.get()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := hl.get(); len(got) == 0 || got[0] != StatusDown {
		t.Errorf("health transitions %v, want down first", got)
	}
}

func TestSessionWaitsWhileStarting(t *testing.T) {
	release := make(chan struct{})
	u := New(Options{
		ID: "slow",
		Connect: func(ctx context.Context) (mcp.Connection, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("not today")
		},
	})
	u.Start()
	t.Cleanup(func() {
		close(release)
		u.Close()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := u.Session(ctx)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Errorf("Session = %v, want ErrUnavailable after the deadline", err)
	}
	if h := u.Health(); h.Status != StatusStarting {
		t.Errorf("health = %+v, want starting", h)
	}
}

func TestNoTransport(t *testing.T) {
	u := New(Options{ID: "none"})
	if _, err := u.Dial(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "no transport") {
		t.Errorf("Dial = %v", err)
	}
}

// TestBackoffRespectsMaxBackoff checks the delays between failed connects:
// they double from 100ms but never exceed MaxBackoff, including a
// MaxBackoff below the first delay.
func TestBackoffRespectsMaxBackoff(t *testing.T) {
	const slack = 80 * time.Millisecond
	tests := []struct {
		max  time.Duration
		want []time.Duration // expected gaps between attempts
	}{
		{20 * time.Millisecond, []time.Duration{20, 20, 20, 20, 20}},
		{250 * time.Millisecond, []time.Duration{100, 200, 250}},
	}
	for _, tt := range tests {
		t.Run(tt.max.String(), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var attempts []time.Time
			u := New(Options{
				ID:         "flaky",
				MaxBackoff: tt.max,
				Connect: func(context.Context) (mcp.Connection, error) {
					mu.Lock()
					attempts = append(attempts, time.Now())
					mu.Unlock()
					return nil, errors.New("refused")
				},
			})
			u.Start()
			eventually(t, "attempts", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(attempts) > len(tt.want)
			})
			u.Close()
			mu.Lock()
			defer mu.Unlock()
			for i, w := range tt.want {
				want := w * time.Millisecond
				gap := attempts[i+1].Sub(attempts[i])
				if gap < want-5*time.Millisecond || gap > want+slack {
					t.Errorf("gap %d = %v, want about %v (MaxBackoff %v)", i, gap, want, tt.max)
				}
			}
		})
	}
}

// inProcessDemo returns a Connect function for a demo server in process and
// a way to cut the server side of every connection made so far.
func inProcessDemo() (func(context.Context) (mcp.Connection, error), func()) {
	server := demo.NewServer()
	var mu sync.Mutex
	var sessions []*mcp.ServerSession
	connect := func(ctx context.Context) (mcp.Connection, error) {
		ct, st := mcp.NewInMemoryTransports()
		ss, err := server.Connect(ctx, st, nil)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		sessions = append(sessions, ss)
		mu.Unlock()
		return ct.Connect(ctx)
	}
	cut := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ss := range sessions {
			_ = ss.Close()
		}
	}
	return connect, cut
}

func TestReconnectAfterConnectionLoss(t *testing.T) {
	connect, cut := inProcessDemo()
	hl := &healthLog{}
	u := New(Options{ID: "mem", Connect: connect, MaxBackoff: 20 * time.Millisecond, OnHealth: hl.record})
	u.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s1, err := u.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cut()
	select {
	case <-s1.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not notice the cut")
	}
	if !errors.Is(s1.Err(), ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", s1.Err())
	}
	if _, err := s1.Call(ctx, "ping", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call on a lost session = %v, want ErrClosed", err)
	}
	eventually(t, "reconnect", func() bool {
		s, err := u.Session(ctx)
		return err == nil && s != s1
	})
	s2, _ := u.Session(ctx)
	if got := echoText(t, ctx, s2, "back"); got != "back" {
		t.Errorf("echo = %q", got)
	}
	if h := u.Health(); h.Status != StatusUp || h.Restarts != 1 {
		t.Errorf("health %+v, want up after one restart", h)
	}
	u.Close()
	want := []string{StatusUp, StatusStarting, StatusUp, StatusDown}
	if got := hl.get(); !slices.Equal(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}
	if h := u.Health(); h.Status != StatusDown || h.Detail != "stopped" {
		t.Errorf("health after Close %+v", h)
	}
	if _, err := u.Session(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Session after Close = %v", err)
	}
}

func TestCloseDuringBackoff(t *testing.T) {
	u := New(Options{
		ID:         "down",
		MaxBackoff: time.Hour,
		Connect:    func(context.Context) (mcp.Connection, error) { return nil, errors.New("refused") },
	})
	u.Start()
	eventually(t, "down", func() bool { return u.Health().Status == StatusDown })
	time.Sleep(150 * time.Millisecond) // into the second, longer wait
	start := time.Now()
	u.Close()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
}
