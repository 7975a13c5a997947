// Package upstream connects Mandate, as an MCP client, to the servers it
// fronts: it speaks stdio, Streamable HTTP and legacy HTTP+SSE at the level of
// JSON-RPC messages so that every field an upstream sends reaches the gateway
// unchanged, and it supervises those connections.
package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ErrClosed is returned for calls on a session whose connection has ended;
// the calls that were in flight when an upstream crashed fail with it.
var ErrClosed = errors.New("upstream connection closed")

// Related is attached (as jsonrpc.Request.Extra) to a message that an
// upstream sent in the scope of one of Mandate's requests, for example on the
// SSE stream of that request's POST. It lets the gateway route the message to
// the downstream session that caused it.
type Related struct {
	// ID is Mandate's request id on the upstream leg.
	ID int64
}

// Handler receives what an upstream sends on its own initiative.
type Handler interface {
	// Notify is called for every notification, in arrival order.
	Notify(s *Session, n *jsonrpc.Request)
	// Request is called for every server-to-client request; the handler must
	// answer it exactly once with s.Reply. It runs on its own goroutine.
	Request(s *Session, r *jsonrpc.Request)
}

// InitInfo is what the upstream said about itself during initialization.
type InitInfo struct {
	// Raw is the InitializeResult exactly as received.
	Raw             json.RawMessage
	ProtocolVersion string
	ServerInfo      json.RawMessage
	Capabilities    map[string]json.RawMessage
	Instructions    string
}

// Has reports whether the upstream declared the named server capability
// ("tools", "prompts", "resources", "completions", "logging").
func (i *InitInfo) Has(capability string) bool {
	_, ok := i.Capabilities[capability]
	return ok
}

// Session is one initialized MCP client session to an upstream server.
// It multiplexes concurrent calls over one connection and rewrites nothing.
type Session struct {
	conn    mcp.Connection
	handler Handler
	log     *slog.Logger
	Init    InitInfo

	nextID atomic.Int64

	mu      sync.Mutex
	pending map[int64]*pendingCall
	closed  bool
	err     error
	done    chan struct{}
}

type pendingCall struct {
	ch    chan *jsonrpc.Response
	route any
}

// ClientInfo is what Mandate says about itself to upstreams.
type ClientInfo struct {
	Name    string
	Version string
	// Capabilities is the client capabilities object sent in initialize.
	Capabilities json.RawMessage
}

// protocolVersion is the version Mandate asks upstreams for; older servers
// answer with their own and Mandate follows them.
const protocolVersion = "2025-11-25"

// newSession starts reading conn and performs the initialize handshake.
func newSession(ctx context.Context, conn mcp.Connection, h Handler, info ClientInfo, log *slog.Logger) (*Session, error) {
	s := &Session{
		conn:    conn,
		handler: h,
		log:     log,
		pending: make(map[int64]*pendingCall),
		done:    make(chan struct{}),
	}
	go s.readLoop()
	caps := info.Capabilities
	if len(caps) == 0 {
		caps = json.RawMessage(`{}`)
	}
	params, err := json.Marshal(map[string]any{
		"protocolVersion": protocolVersion,
		"capabilities":    caps,
		"clientInfo":      map[string]string{"name": info.Name, "version": info.Version},
	})
	if err != nil {
		return nil, err
	}
	resp, err := s.Call(ctx, "initialize", params, nil)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	if resp.Error != nil {
		s.Close()
		return nil, fmt.Errorf("initialize: %w", resp.Error)
	}
	if err := s.Init.parse(resp.Result); err != nil {
		s.Close()
		return nil, fmt.Errorf("initialize result: %w", err)
	}
	if err := s.Notify(ctx, "notifications/initialized", nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("initialized: %w", err)
	}
	return s, nil
}

func (i *InitInfo) parse(raw json.RawMessage) error {
	var r struct {
		ProtocolVersion string                     `json:"protocolVersion"`
		ServerInfo      json.RawMessage            `json:"serverInfo"`
		Capabilities    map[string]json.RawMessage `json:"capabilities"`
		Instructions    string                     `json:"instructions"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if r.ProtocolVersion == "" {
		return errors.New("no protocolVersion")
	}
	*i = InitInfo{Raw: raw, ProtocolVersion: r.ProtocolVersion, ServerInfo: r.ServerInfo,
		Capabilities: r.Capabilities, Instructions: r.Instructions}
	if i.Capabilities == nil {
		i.Capabilities = map[string]json.RawMessage{}
	}
	return nil
}

// Done is closed when the connection has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err reports why the session ended, once Done is closed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Call sends a request and waits for its response. route is kept with the
// call so that messages the upstream relates to it can be routed back (see
// RouteOf). When ctx ends first, the upstream is sent notifications/cancelled
// (never for initialize, which must not be cancelled) and ctx's error returned.
func (s *Session) Call(ctx context.Context, method string, params json.RawMessage, route any) (*jsonrpc.Response, error) {
	id := s.nextID.Add(1)
	pc := &pendingCall{ch: make(chan *jsonrpc.Response, 1), route: route}
	s.mu.Lock()
	if s.closed {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	s.pending[id] = pc
	s.mu.Unlock()

	jid, _ := jsonrpc.MakeID(float64(id))
	req := &jsonrpc.Request{ID: jid, Method: method, Params: params}
	if c, ok := s.conn.(caller); ok {
		resp, err := c.call(ctx, req)
		s.forget(id)
		if err != nil {
			if ctx.Err() != nil {
				s.cancelUpstream(method, id)
				return nil, ctx.Err()
			}
			return nil, err
		}
		return resp, nil
	}
	if err := s.conn.Write(ctx, req); err != nil {
		s.forget(id)
		s.fail(fmt.Errorf("%w: write: %v", ErrClosed, err))
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	select {
	case resp := <-pc.ch:
		return resp, nil
	case <-s.done:
		s.forget(id)
		return nil, s.Err()
	case <-ctx.Done():
		s.forget(id)
		s.cancelUpstream(method, id)
		return nil, ctx.Err()
	}
}

// caller is implemented by connections that can perform a whole
// request/response exchange on the caller's goroutine.
type caller interface {
	call(ctx context.Context, req *jsonrpc.Request) (*jsonrpc.Response, error)
}

// cancelUpstream tells the upstream to stop working on request id
// (initialize must never be cancelled).
func (s *Session) cancelUpstream(method string, id int64) {
	if method == "initialize" {
		return
	}
	p, _ := json.Marshal(map[string]any{"requestId": id, "reason": "cancelled by client"})
	wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	_ = s.conn.Write(wctx, &jsonrpc.Request{Method: "notifications/cancelled", Params: p})
	cancel()
}

// Notify sends a notification.
func (s *Session) Notify(ctx context.Context, method string, params json.RawMessage) error {
	if err := s.conn.Write(ctx, &jsonrpc.Request{Method: method, Params: params}); err != nil {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return nil
}

// Reply answers a server-to-client request.
func (s *Session) Reply(ctx context.Context, resp *jsonrpc.Response) error {
	return s.conn.Write(ctx, resp)
}

// RouteOf returns the route given to the in-flight Call with upstream id.
func (s *Session) RouteOf(id int64) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pc, ok := s.pending[id]
	if !ok {
		return nil, false
	}
	return pc.route, true
}

// InFlightRoutes returns the routes of every call in flight. Over stdio a
// server-to-client message carries no link to the request that caused it;
// when exactly one caller is waiting, that caller is the only candidate.
func (s *Session) InFlightRoutes() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]any, 0, len(s.pending))
	for _, pc := range s.pending {
		if pc.route != nil {
			out = append(out, pc.route)
		}
	}
	return out
}

// Close ends the connection; calls in flight fail with ErrClosed.
func (s *Session) Close() error {
	s.fail(ErrClosed)
	return nil
}

func (s *Session) forget(id int64) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

func (s *Session) fail(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.err = err
	s.pending = map[int64]*pendingCall{}
	close(s.done)
	s.mu.Unlock()
	_ = s.conn.Close()
}

func (s *Session) readLoop() {
	for {
		msg, err := s.conn.Read(context.Background())
		if err != nil {
			s.fail(fmt.Errorf("%w: %v", ErrClosed, err))
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			id, ok := m.ID.Raw().(int64)
			if !ok {
				s.log.Warn("upstream response with an id Mandate never sent", "id", m.ID.Raw())
				continue
			}
			s.mu.Lock()
			pc := s.pending[id]
			delete(s.pending, id)
			s.mu.Unlock()
			if pc != nil {
				pc.ch <- m
			}
		case *jsonrpc.Request:
			if m.IsCall() {
				go s.handler.Request(s, m)
			} else {
				s.handler.Notify(s, m)
			}
		}
	}
}
