package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Stream carries messages to a client: the SSE stream of one POST, the
// standalone GET stream, or stdout. Send must be safe for concurrent use and
// fail once the stream has ended.
type Stream interface {
	Send(ctx context.Context, msg jsonrpc.Message) error
}

// ErrNoStream is returned when a message cannot reach the client because it
// has no open stream.
var ErrNoStream = errors.New("no open stream to the client")

// Session is one downstream (client) session. Everything that flows through
// it — its request ids, progress tokens, subscriptions, dedicated upstream
// sessions — is its own; nothing is shared with another session.
type Session struct {
	g *Gateway
	// ID is the session id the front end issued ("" on stdio).
	ID string
	// Client names who opened the session, for per-client caps.
	Client string
	// Principal is who opened the session; the front end sets it before
	// first use and refuses the session to anyone else.
	Principal *identity.Principal

	mu          sync.Mutex
	version     string
	caps        object
	initialized bool
	modern      bool
	standalone  Stream
	inflight    map[string]context.CancelFunc
	outgoing    map[string]chan *jsonrpc.Response
	subs        map[string]bool // public URIs this session subscribed to
	logLevel    string
	ded         map[string]*dedicated
	listen      *listenFlags        // set while a stateless-era subscriptions/listen is open
	shown       map[string]struct{} // public tool names tools/list delivered (interrogation)
	shownHash   string              // shownDigest of shown; "" until asked for after a change
	closed      bool
	done        chan struct{}

	lastSeen atomic.Int64
	nextOut  atomic.Int64
}

type dedicated struct {
	mu       sync.Mutex // held while dialing, so one dial per upstream
	s        *upstream.Session
	lastUsed time.Time
}

// NewSession registers a new downstream session.
func (g *Gateway) NewSession(id, client string) *Session {
	s := g.newSession(id, client)
	g.mu.Lock()
	g.sessions[s] = struct{}{}
	g.mu.Unlock()
	return s
}

// NewEphemeral returns a session for one stateless-era request. It is not
// registered, so broadcasts (list changes, logs) never reach it.
func (g *Gateway) NewEphemeral(client string) *Session {
	return g.newSession("", client)
}

func (g *Gateway) newSession(id, client string) *Session {
	s := &Session{
		g: g, ID: id, Client: client,
		inflight: map[string]context.CancelFunc{},
		outgoing: map[string]chan *jsonrpc.Response{},
		subs:     map[string]bool{},
		ded:      map[string]*dedicated{},
		done:     make(chan struct{}),
	}
	s.touch()
	return s
}

// NewSessionID returns a 128-bit random, visible-ASCII session id
// (requirement T-22).
func NewSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Session) logID() string {
	if len(s.ID) > 8 {
		return s.ID[:8]
	}
	return s.ID
}

func (s *Session) touch() { s.lastSeen.Store(time.Now().UnixNano()) }

// LastSeen is when the client last sent something.
func (s *Session) LastSeen() time.Time { return time.Unix(0, s.lastSeen.Load()) }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Version is the negotiated protocol version ("" before initialize).
func (s *Session) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// SetStandalone sets (or, with nil, clears) the stream for messages that
// relate to no request. It reports false if a stream is already open.
func (s *Session) SetStandalone(st Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != nil && s.standalone != nil {
		return false
	}
	s.standalone = st
	return true
}

func (s *Session) busy() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// markShown records tool names a tools/list page delivered to the client.
func (s *Session) markShown(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shown == nil {
		s.shown = make(map[string]struct{}, len(names))
	}
	for _, n := range names {
		s.shown[n] = struct{}{}
	}
	s.shownHash = ""
}

// wasShown reports whether a tools/list page delivered the tool name to
// the client of this session.
func (s *Session) wasShown(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shown[name]
	return ok
}

// urlElicitation reports whether the client declared URL-mode elicitation
// in a session that negotiated 2025-11-25, the only version whose clients
// understand URLElicitationRequiredError (C-07). The stateless era removed
// that error (B-07), so a modern request never qualifies.
func (s *Session) urlElicitation() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.modern || s.version != "2025-11-25" {
		return false
	}
	_, ok := s.caps.sub("elicitation")["url"]
	return ok
}

func (s *Session) hasCap(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.caps[name]
	return ok
}

// send delivers msg on the stream of the request it relates to, falling
// back to the standalone stream once that request's stream has ended.
func (s *Session) send(ctx context.Context, related Stream, msg jsonrpc.Message) error {
	if related != nil {
		if err := related.Send(ctx, msg); err == nil {
			return nil
		}
	}
	s.mu.Lock()
	st := s.standalone
	s.mu.Unlock()
	if st == nil {
		return ErrNoStream
	}
	return st.Send(ctx, msg)
}

// request sends a server-to-client request under an id this session issued,
// and waits for the client's answer.
func (s *Session) request(ctx context.Context, related Stream, method string, params json.RawMessage) (*jsonrpc.Response, string, error) {
	key := fmt.Sprintf("mandate-%d", s.nextOut.Add(1))
	id, _ := jsonrpc.MakeID(key)
	ch := make(chan *jsonrpc.Response, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, key, errors.New("session closed")
	}
	s.outgoing[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.outgoing, key)
		s.mu.Unlock()
	}()
	if err := s.send(ctx, related, &jsonrpc.Request{ID: id, Method: method, Params: params}); err != nil {
		return nil, key, err
	}
	select {
	case r := <-ch:
		return r, key, nil
	case <-ctx.Done():
		return nil, key, ctx.Err()
	case <-s.done:
		return nil, key, errors.New("session closed")
	}
}

// deliverResponse hands a client's response to the server-to-client request
// waiting for it. A response to an id this session never issued is dropped.
func (s *Session) deliverResponse(r *jsonrpc.Response) {
	key, ok := r.ID.Raw().(string)
	if !ok {
		return
	}
	s.mu.Lock()
	ch := s.outgoing[key]
	delete(s.outgoing, key)
	s.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// dedicated returns this session's own session to upstream u (per-client
// mode), dialing it on first use.
func (s *Session) dedicated(ctx context.Context, u *upState) (*upstream.Session, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("session closed")
	}
	d := s.ded[u.id]
	if d == nil {
		d = &dedicated{}
		s.ded[u.id] = d
	}
	s.mu.Unlock()

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.s != nil {
		select {
		case <-d.s.Done():
			d.s = nil
			u.release()
		default:
			d.lastUsed = time.Now()
			return d.s, nil
		}
	}
	if !u.acquire() {
		return nil, fmt.Errorf("%w: session limit of upstream %q reached", upstream.ErrUnavailable, u.id)
	}
	us, err := u.spec.Conn.Dial(ctx, &relay{g: s.g, up: u, owner: s})
	if err != nil {
		u.release()
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		us.Close()
		u.release()
		return nil, errors.New("session closed")
	}
	d.s, d.lastUsed = us, time.Now()
	return us, nil
}

func (u *upState) acquire() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dedicated >= u.spec.MaxSessions {
		return false
	}
	u.dedicated++
	return true
}

func (u *upState) release() {
	u.mu.Lock()
	u.dedicated--
	u.mu.Unlock()
}

func (s *Session) expireDedicated(now time.Time) {
	s.mu.Lock()
	ds := make(map[string]*dedicated, len(s.ded))
	for k, d := range s.ded {
		ds[k] = d
	}
	s.mu.Unlock()
	for id, d := range ds {
		u := s.g.upstream(id)
		if !d.mu.TryLock() {
			continue
		}
		if d.s != nil && now.Sub(d.lastUsed) > u.spec.IdleTimeout {
			d.s.Close()
			d.s = nil
			u.release()
		}
		d.mu.Unlock()
	}
}

// Close ends the session: requests in flight are cancelled, subscriptions
// released and dedicated upstream sessions (and their processes) closed.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	for _, cancel := range s.inflight {
		cancel()
	}
	subs := s.subs
	s.subs = map[string]bool{}
	ded := s.ded
	s.ded = map[string]*dedicated{}
	s.mu.Unlock()

	s.g.mu.Lock()
	delete(s.g.sessions, s)
	for tok, pr := range s.g.tokens {
		if pr.sess == s {
			delete(s.g.tokens, tok)
		}
	}
	s.g.mu.Unlock()
	for uri := range subs {
		s.g.unsubscribeShared(uri)
	}
	var wg sync.WaitGroup
	for id, d := range ded {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.s != nil {
				d.s.Close()
				d.s = nil
				s.g.upstream(id).release()
			}
		}()
	}
	wg.Wait()
}

// idKey renders a JSON-RPC id as a map key that keeps 1 and "1" apart.
func idKey(id jsonrpc.ID) string {
	switch v := id.Raw().(type) {
	case string:
		return "s:" + v
	case int64:
		return fmt.Sprintf("n:%d", v)
	}
	return fmt.Sprintf("?:%v", id.Raw())
}

// Reply sends a response on the standalone stream, for transports (legacy
// SSE, stdio) where responses do not travel on their request's connection.
func (s *Session) Reply(ctx context.Context, resp *jsonrpc.Response) error {
	return s.send(ctx, nil, resp)
}
