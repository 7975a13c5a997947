package frontend

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Options configure the HTTP front end. Zero values mean the defaults noted.
type Options struct {
	Gateway *gateway.Gateway
	// Listen is the listener address; it decides whether Host checks apply.
	Listen         string
	AllowedHosts   []string
	AllowedOrigins []string
	// MaxBodyBytes caps a POST body; zero means 4 MiB.
	MaxBodyBytes int64
	// SessionTimeout closes sessions idle this long; zero means 30m.
	SessionTimeout time.Duration
	// MaxSessionsPerClient caps concurrent sessions per client address;
	// zero means 64.
	MaxSessionsPerClient int
	Log                  *slog.Logger
	// Authenticate, if set, guards the MCP endpoints: it must put the
	// verified principal into the request context (identity.WithPrincipal)
	// or answer the request itself. Nil means `auth: none`: every request
	// is the implicit local principal.
	Authenticate func(http.Handler) http.Handler
	// RequiredScopes names the scopes an MCP method needs; nil means none.
	RequiredScopes func(method string) []string
	// InsufficientScope answers a request whose token lacks some of the
	// scopes its method needs; required lists all of them (step-up asks for
	// everything at once). Nil answers a plain 403.
	InsufficientScope func(w http.ResponseWriter, required []string)
	// Mount adds routes (authorization server, metadata) that share the
	// listener and its Host/Origin checks but not MCP authentication.
	Mount map[string]http.Handler
}

// Server is the HTTP front end.
type Server struct {
	opts  Options
	gw    *gateway.Gateway
	guard *hostGuard
	log   *slog.Logger

	mu       sync.Mutex
	sessions map[string]*gateway.Session
	perAddr  map[string]int
}

// New builds the front end.
func New(o Options) *Server {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	if o.MaxSessionsPerClient <= 0 {
		o.MaxSessionsPerClient = 64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		opts: o, gw: o.Gateway, log: o.Log,
		guard:    newHostGuard(o.Listen, o.AllowedHosts, o.AllowedOrigins),
		sessions: map[string]*gateway.Session{},
		perAddr:  map[string]int{},
	}
}

// Handler returns the HTTP routes: /mcp (Streamable HTTP), /sse and
// /message (legacy HTTP+SSE), /healthz and /readyz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", s.guarded(s.authenticated(traced(s.serveMCP))))
	mux.Handle("/sse", s.guarded(s.authenticated(traced(s.serveSSE))))
	mux.Handle("/message", s.guarded(s.authenticated(traced(s.serveMessage))))
	for pattern, h := range s.opts.Mount {
		mux.Handle(pattern, s.guarded(h.ServeHTTP))
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/readyz", s.serveReady)
	return recoverer(s.log, mux)
}

func recoverer(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", "panic", v, "path", r.URL.Path)
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// authenticated runs the configured authentication before h; without one,
// the request is the implicit local principal.
func (s *Server) authenticated(h http.HandlerFunc) http.HandlerFunc {
	if s.opts.Authenticate == nil {
		return func(w http.ResponseWriter, r *http.Request) {
			h(w, r.WithContext(identity.WithPrincipal(r.Context(), identity.Local())))
		}
	}
	return s.opts.Authenticate(h).ServeHTTP
}

// principal is who sent r. The authentication middleware guarantees one;
// a request without is refused, so a wiring mistake fails closed.
func principal(r *http.Request) (*identity.Principal, bool) {
	return identity.FromContext(r.Context())
}

// scopesOK checks the token's scopes for method and answers the step-up
// challenge when some are missing.
func (s *Server) scopesOK(w http.ResponseWriter, p *identity.Principal, method string) bool {
	if s.opts.RequiredScopes == nil || p.Method == identity.MethodNone {
		return true
	}
	required := s.opts.RequiredScopes(method)
	if len(p.MissingScopes(required)) == 0 {
		return true
	}
	if s.opts.InsufficientScope != nil {
		s.opts.InsufficientScope(w, required)
	} else {
		http.Error(w, "insufficient scope", http.StatusForbidden)
	}
	return false
}

func (s *Server) guarded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if reason := s.guard.check(r); reason != "" {
			s.log.Warn("request refused", "reason", reason, "remote", r.RemoteAddr)
			writeError(w, http.StatusForbidden, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "Forbidden: "+reason)
			return
		}
		h(w, r)
	}
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	health := s.gw.UpstreamHealth()
	status, code := "ready", http.StatusOK
	for _, h := range health {
		if h.Status != upstream.StatusUp {
			status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "upstreams": health, "sessions": s.gw.SessionCount()})
}

// Run expires idle sessions until ctx ends.
func (s *Server) Run(ctx context.Context) {
	tick := min(s.opts.SessionTimeout/4, 30*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.gw.ExpireIdle(s.opts.SessionTimeout)
			s.sweep()
		}
	}
}

func (s *Server) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sess := range s.sessions {
		select {
		case <-sess.Done():
			s.removeLocked(id, sess)
		default:
		}
	}
}

func (s *Server) removeLocked(id string, sess *gateway.Session) {
	if s.sessions[id] != sess {
		return
	}
	delete(s.sessions, id)
	if s.perAddr[sess.Client]--; s.perAddr[sess.Client] <= 0 {
		delete(s.perAddr, sess.Client)
	}
}

// clientKey names the client for session caps: the authenticated agent and
// user when there are some, else the remote address.
func clientKey(r *http.Request) string {
	if p, ok := principal(r); ok && p.Method != identity.MethodNone {
		return "principal:" + p.BindingKey()
	}
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// openSession registers a session, or returns nil when the client is at its
// cap (so one client cannot exhaust upstream processes or memory).
func (s *Server) openSession(r *http.Request) *gateway.Session {
	client := clientKey(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAddr[client] >= s.opts.MaxSessionsPerClient {
		return nil
	}
	s.perAddr[client]++
	sess := s.gw.NewSession(gateway.NewSessionID(), client)
	sess.Principal, _ = principal(r)
	s.sessions[sess.ID] = sess
	return sess
}

// lookupFor returns the session id names if it belongs to the principal of
// r. A session id presented with another principal's credentials is
// answered exactly like an unknown one (AT-30): the id alone grants nothing
// and reveals nothing.
func (s *Server) lookupFor(r *http.Request, id string) *gateway.Session {
	sess := s.lookup(id)
	if sess == nil {
		return nil
	}
	p, ok := principal(r)
	if !ok || sess.Principal == nil || sess.Principal.BindingKey() != p.BindingKey() {
		s.log.Warn("session presented by another principal; refused", "session", id[:min(8, len(id))])
		return nil
	}
	return sess
}

func (s *Server) lookup(id string) *gateway.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil {
		return nil
	}
	select {
	case <-sess.Done():
		s.removeLocked(id, sess)
		return nil
	default:
		return sess
	}
}

func (s *Server) closeSession(sess *gateway.Session) {
	sess.Close()
	s.mu.Lock()
	s.removeLocked(sess.ID, sess)
	s.mu.Unlock()
}

// Shutdown closes every session.
func (s *Server) Shutdown() {
	s.mu.Lock()
	all := make([]*gateway.Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		s.closeSession(sess)
	}
}

func (s *Server) serveMCP(w http.ResponseWriter, r *http.Request) {
	pv := r.Header.Get("Mcp-Protocol-Version")
	if pv != "" && !gateway.SupportedVersion(pv) {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, -32022, "Bad Request: unsupported protocol version "+pv)
		return
	}
	switch r.Method {
	case http.MethodPost:
		s.post(w, r, pv)
	case http.MethodGet:
		if gateway.IsModern(pv) {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		s.get(w, r)
	case http.MethodDelete:
		if gateway.IsModern(pv) {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		s.delete(w, r)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	}
}

// readMessage reads and decodes one POSTed JSON-RPC message, answering the
// HTTP error itself when it cannot.
func (s *Server) readMessage(w http.ResponseWriter, r *http.Request) (jsonrpc.Message, bool) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		http.Error(w, "Content-Type must be 'application/json'", http.StatusUnsupportedMediaType)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest,
				"request body exceeds the limit of "+byteSize(mbe.Limit))
			return nil, false
		}
		http.Error(w, "failed to read body", http.StatusBadRequest)
		return nil, false
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "empty body")
		return nil, false
	}
	if trimmed[0] == '[' {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "JSON-RPC batching is not supported")
		return nil, false
	}
	msg, err := jsonrpc.DecodeMessage(trimmed)
	if err != nil {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeParseError, "invalid JSON-RPC message")
		return nil, false
	}
	if req, ok := msg.(*jsonrpc.Request); ok && req.Method == "" {
		writeError(w, http.StatusBadRequest, req.ID, jsonrpc.CodeInvalidRequest, "missing method")
		return nil, false
	}
	return msg, true
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strings.TrimSpace(itoa(n>>20) + " MiB")
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, pv string) {
	p, ok := principal(r)
	if !ok {
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	msg, ok := s.readMessage(w, r)
	if !ok {
		return
	}
	req, isReq := msg.(*jsonrpc.Request)
	if isReq && req.IsCall() && !s.scopesOK(w, p, req.Method) {
		return
	}
	if isReq && (req.Method == "server/discover" || gateway.IsModern(pv)) {
		s.postModern(w, r, req, pv)
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if isReq && req.Method == "initialize" {
		if sid != "" {
			writeError(w, http.StatusBadRequest, req.ID, jsonrpc.CodeInvalidRequest, "initialize must not carry a session id")
			return
		}
		s.initialize(w, r, req)
		return
	}
	if sid == "" {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "Bad Request: missing Mcp-Session-Id header")
		return
	}
	sess := s.lookupFor(r, sid)
	if sess == nil {
		writeError(w, http.StatusNotFound, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "session not found")
		return
	}
	if pv != "" && pv != sess.Version() {
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.CodeInvalidRequest, "Bad Request: MCP-Protocol-Version does not match the negotiated version")
		return
	}
	if !isReq || !req.IsCall() {
		s.gw.Handle(r.Context(), sess, msg, nil)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	// A dropped connection is not a cancellation in the session-based era
	// (T-18); the request lives as long as its session.
	ctx, cancel := sessionContext(r.Context(), sess)
	defer cancel()
	ps := newPostStream(w, r)
	resp := s.gw.Handle(ctx, sess, req, ps)
	ps.finish(resp, http.StatusOK)
}

// sessionContext detaches a request's work from its HTTP connection and
// binds it to the session instead.
func sessionContext(parent context.Context, sess *gateway.Session) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := make(chan struct{})
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel() }
}

func (s *Server) initialize(w http.ResponseWriter, r *http.Request, req *jsonrpc.Request) {
	sess := s.openSession(r)
	if sess == nil {
		writeError(w, http.StatusTooManyRequests, req.ID, jsonrpc.CodeInvalidRequest, "too many sessions for this client")
		return
	}
	resp := s.gw.Handle(r.Context(), sess, req, nil)
	if resp == nil || resp.Error != nil {
		s.closeSession(sess)
		if resp == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	w.Header().Set("Mcp-Session-Id", sess.ID)
	writeJSON(w, http.StatusOK, resp)
}

// postModern serves one stateless-era request (2026-07-28): no session,
// capabilities from the request's _meta, mirrored headers validated against
// the body before anything acts on them (T-35, T-37).
func (s *Server) postModern(w http.ResponseWriter, r *http.Request, req *jsonrpc.Request, pv string) {
	if !req.IsCall() {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	sess := s.gw.NewEphemeral(clientKey(r))
	sess.Principal, _ = principal(r)
	defer sess.Close()
	if req.Method != "server/discover" || gateway.IsModern(pv) {
		if msg := headerMismatch(r, req); msg != "" {
			writeError(w, http.StatusBadRequest, req.ID, -32020, "HeaderMismatch: "+msg)
			return
		}
	}
	if req.Method != "server/discover" {
		if pv == "" {
			writeError(w, http.StatusBadRequest, req.ID, -32020, "HeaderMismatch: MCP-Protocol-Version header is required")
			return
		}
		if rerr := s.gw.BeginModern(sess, req.Params, pv); rerr != nil {
			writeJSON(w, http.StatusBadRequest, &jsonrpc.Response{ID: req.ID, Error: rerr})
			return
		}
	}
	// Closing the response stream cancels the request in this era (T-33).
	ps := newPostStream(w, r)
	resp := s.gw.Handle(r.Context(), sess, req, ps)
	status := http.StatusOK
	if resp != nil {
		var we *jsonrpc.Error
		if errors.As(resp.Error, &we) && we.Code == jsonrpc.CodeMethodNotFound {
			status = http.StatusNotFound
		}
	}
	ps.finish(resp, status)
}

// headerMismatch compares the mirrored Mcp-Method and Mcp-Name headers with
// the body. Policy is always evaluated on the body; a mismatch is refused so
// that no intermediary acts on a header that lies (AT-45).
func headerMismatch(r *http.Request, req *jsonrpc.Request) string {
	method := r.Header.Get("Mcp-Method")
	if method == "" {
		return "missing Mcp-Method header"
	}
	if method != req.Method {
		return "Mcp-Method header does not match the body"
	}
	var key string
	switch req.Method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	default:
		return ""
	}
	var p map[string]json.RawMessage
	_ = json.Unmarshal(req.Params, &p)
	var want string
	_ = json.Unmarshal(p[key], &want)
	got, ok := r.Header["Mcp-Name"]
	if !ok || len(got) == 0 {
		return "missing Mcp-Name header"
	}
	v, err := decodeHeaderValue(got[0])
	if err != nil || v != want {
		return "Mcp-Name header does not match the body"
	}
	return ""
}

// decodeHeaderValue undoes the =?base64?…?= sentinel encoding of mirrored
// header values.
func decodeHeaderValue(v string) (string, error) {
	if inner, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if inner, ok = strings.CutSuffix(inner, "?="); ok {
			b, err := base64.StdEncoding.DecodeString(inner)
			return string(b), err
		}
	}
	return v, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		http.Error(w, "Accept must contain 'text/event-stream' for GET requests", http.StatusBadRequest)
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		http.Error(w, "Bad Request: GET requires an Mcp-Session-Id header", http.StatusBadRequest)
		return
	}
	sess := s.lookupFor(r, sid)
	if sess == nil {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	f, _ := w.(http.Flusher)
	st := &sseWriter{w: w, f: f}
	if !sess.SetStandalone(st) {
		http.Error(w, "a stream is already open for this session", http.StatusConflict)
		return
	}
	defer sess.SetStandalone(nil)
	defer st.end()
	if err := st.comment("stream open"); err != nil {
		return
	}
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sess.Done():
			return
		case <-keepalive.C:
			if st.comment("keepalive") != nil {
				return
			}
		}
	}
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		http.Error(w, "Bad Request: DELETE requires an Mcp-Session-Id header", http.StatusBadRequest)
		return
	}
	sess := s.lookupFor(r, sid)
	if sess == nil {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	s.closeSession(sess)
	w.WriteHeader(http.StatusNoContent)
}
