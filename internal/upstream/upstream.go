package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ErrUnavailable is returned when an upstream is down; the gateway reports it
// per upstream instead of failing the whole request.
var ErrUnavailable = errors.New("upstream unavailable")

// Health states.
const (
	StatusStarting = "starting"
	StatusUp       = "up"
	StatusDown     = "down"
)

// SSEOptions describe a legacy HTTP+SSE (2024-11-05) upstream.
type SSEOptions struct {
	URL     string
	Headers map[string]string
}

// Options configure one upstream. Exactly one of Stdio, HTTP and SSE is set.
type Options struct {
	ID    string
	Stdio *StdioOptions
	HTTP  *HTTPOptions
	SSE   *SSEOptions
	// Connect, if set instead, opens a connection to an in-process server
	// (tests, and servers embedded in the binary).
	Connect func(ctx context.Context) (mcp.Connection, error)
	// Client is what Mandate declares in initialize.
	Client ClientInfo
	// Handler receives server-initiated messages of the shared session.
	Handler Handler
	// Log receives lifecycle events and the child's stderr; nil discards.
	Log *slog.Logger
	// MaxBackoff caps the delay between reconnect attempts; zero means 30s.
	MaxBackoff time.Duration
	// OnHealth, if set, is told of every health transition.
	OnHealth func(status, detail string)
	// PingInterval is how often the shared session is pinged; an upstream
	// that does not answer within PingTimeout is treated as crashed and
	// restarted (requirement U-04). Zero means 30s; negative disables.
	PingInterval time.Duration
	// PingTimeout bounds one ping; zero means 10s.
	PingTimeout time.Duration
}

// Health is a snapshot of an upstream's state.
type Health struct {
	Status   string    `json:"status"`
	Detail   string    `json:"detail,omitempty"`
	Since    time.Time `json:"since"`
	Restarts int       `json:"restarts"`
	// PID is the child process of a stdio upstream while it is up.
	PID int `json:"pid,omitempty"`
}

// Upstream supervises the shared session to one MCP server and dials
// dedicated sessions on demand. A failed connection is retried with
// exponential backoff; callers never wait on a server that is known down.
type Upstream struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	cur     *Session
	health  Health
	changed chan struct{} // closed and replaced on every state change

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns an unstarted upstream.
func New(o Options) *Upstream {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.PingInterval == 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Upstream{
		opts: o, log: log.With("upstream", o.ID),
		health:  Health{Status: StatusStarting, Since: time.Now()},
		changed: make(chan struct{}),
		ctx:     ctx, cancel: cancel,
	}
}

// ID is the upstream's configured id.
func (u *Upstream) ID() string { return u.opts.ID }

// Start launches supervision of the shared session.
func (u *Upstream) Start() {
	u.wg.Add(1)
	go u.supervise()
}

// Health returns the current state.
func (u *Upstream) Health() Health {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.health
}

func (u *Upstream) setHealth(status, detail string, s *Session) {
	u.mu.Lock()
	if status == StatusStarting && u.health.Status != StatusStarting {
		u.health.Restarts++
	}
	prev := u.health.Status
	u.health.Status, u.health.Detail, u.health.Since = status, detail, time.Now()
	u.health.PID = 0
	if s != nil {
		if sc, ok := s.conn.(*stdioConn); ok {
			u.health.PID = sc.cmd.Process.Pid
		}
	}
	u.cur = s
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
	if prev != status && u.opts.OnHealth != nil {
		u.opts.OnHealth(status, detail)
	}
}

func (u *Upstream) supervise() {
	defer u.wg.Done()
	initial := min(100*time.Millisecond, u.opts.MaxBackoff) // MaxBackoff caps the first delay too
	backoff := initial
	for u.ctx.Err() == nil {
		start := time.Now()
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		s, err := u.Dial(ctx, u.opts.Handler)
		cancel()
		if err != nil {
			if u.ctx.Err() != nil {
				break
			}
			u.log.Warn("upstream connect failed", "err", err, "retry_in", backoff)
			u.setHealth(StatusDown, "connect failed", nil)
		} else {
			u.log.Info("upstream connected", "protocol", s.Init.ProtocolVersion)
			u.setHealth(StatusUp, "", s)
			stopPing := u.watch(s)
			select {
			case <-s.Done():
				stopPing()
				if u.ctx.Err() != nil {
					break
				}
				u.log.Warn("upstream connection lost; restarting", "err", s.Err())
				u.setHealth(StatusStarting, "restarting after connection loss", nil)
				if time.Since(start) > 10*time.Second {
					backoff = initial
				}
				// A crash right after start waits for the backoff; one after a
				// long healthy run restarts at once.
				if time.Since(start) > 10*time.Second {
					continue
				}
			case <-u.ctx.Done():
				stopPing()
				s.Close()
			}
		}
		select {
		case <-u.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, u.opts.MaxBackoff)
	}
	u.setHealth(StatusDown, "stopped", nil)
}

// watch pings s until it ends or the returned stop is called; a ping that
// fails or times out closes s, which the supervisor then restarts. A hung
// server would otherwise hold every call until its own timeout.
func (u *Upstream) watch(s *Session) (stop func()) {
	if u.opts.PingInterval < 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(u.opts.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-s.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(u.ctx, u.opts.PingTimeout)
			resp, err := s.Call(ctx, "ping", nil, nil)
			cancel()
			if u.ctx.Err() != nil {
				return
			}
			if err != nil || resp.Error != nil {
				u.log.Warn("upstream did not answer ping; restarting it", "err", err)
				s.Close()
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// Session returns the shared session. While the upstream is (re)starting it
// waits, up to ctx's deadline; when the upstream is down it fails at once
// with ErrUnavailable.
func (u *Upstream) Session(ctx context.Context) (*Session, error) {
	for {
		u.mu.Lock()
		s, st, ch := u.cur, u.health.Status, u.changed
		u.mu.Unlock()
		switch st {
		case StatusUp:
			if s != nil {
				return s, nil
			}
		case StatusDown:
			return nil, ErrUnavailable
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
	}
}

// Dial opens a new, dedicated, initialized session whose server-initiated
// messages go to h.
func (u *Upstream) Dial(ctx context.Context, h Handler) (*Session, error) {
	conn, err := u.connect(ctx)
	if err != nil {
		return nil, err
	}
	return newSession(ctx, conn, h, u.opts.Client, u.log)
}

func (u *Upstream) connect(ctx context.Context) (mcp.Connection, error) {
	switch {
	case u.opts.Stdio != nil:
		return dialStdio(ctx, *u.opts.Stdio, u.log)
	case u.opts.HTTP != nil:
		return dialHTTP(*u.opts.HTTP, u.log), nil
	case u.opts.Connect != nil:
		return u.opts.Connect(ctx)
	case u.opts.SSE != nil:
		hc := DefaultHTTPClient()
		hc.Transport = headerTransport{base: hc.Transport, headers: u.opts.SSE.Headers}
		t := &mcp.SSEClientTransport{Endpoint: u.opts.SSE.URL, HTTPClient: hc}
		// The SDK ties the event stream to the context it connects with, and
		// ctx ends when Dial returns; the stream must last until the
		// connection is closed. ctx still bounds the handshake.
		sctx, cancel := context.WithCancel(u.ctx)
		stop := context.AfterFunc(ctx, cancel)
		conn, err := t.Connect(sctx)
		if !stop() || err != nil {
			cancel()
			if err == nil {
				conn.Close()
				err = ctx.Err()
			}
			return nil, err
		}
		return cancelOnClose{Connection: conn, cancel: cancel}, nil
	}
	return nil, errors.New("upstream has no transport")
}

// cancelOnClose releases a connection's context when it is closed.
type cancelOnClose struct {
	mcp.Connection
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	defer c.cancel()
	return c.Connection.Close()
}

// Close stops supervision and closes the shared session (stopping a child
// process as T-03 describes).
func (u *Upstream) Close() {
	u.cancel()
	u.mu.Lock()
	s := u.cur
	u.mu.Unlock()
	if s != nil {
		s.Close()
	}
	u.wg.Wait()
}

// headerTransport adds configured static headers to every request.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	return t.base.RoundTrip(r)
}

// SetHandler sets the handler of the shared session; it must be called
// before Start.
func (u *Upstream) SetHandler(h Handler) { u.opts.Handler = h }
