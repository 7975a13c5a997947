package frontend

import (
	"context"
	"net/http"
	"time"

	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// serveSSE is the legacy HTTP+SSE transport (2024-11-05) for old clients:
// the GET stream carries every server message, and the client POSTs to the
// endpoint the first event names.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	sess := s.openSession(r)
	if sess == nil {
		http.Error(w, "too many sessions for this client", http.StatusTooManyRequests)
		return
	}
	defer s.closeSession(sess)
	f, _ := w.(http.Flusher)
	st := &sseWriter{w: w, f: f}
	defer st.end()
	st.mu.Lock()
	st.startLocked()
	_, err := w.Write([]byte("event: endpoint\ndata: /message?sessionId=" + sess.ID + "\n\n"))
	if f != nil {
		f.Flush()
	}
	st.mu.Unlock()
	if err != nil {
		return
	}
	sess.SetStandalone(st)
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

func (s *Server) serveMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	sess := s.lookupFor(r, r.URL.Query().Get("sessionId"))
	if sess == nil {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	msg, ok := s.readMessage(w, r)
	if !ok {
		return
	}
	if req, isReq := msg.(*jsonrpc.Request); isReq && req.IsCall() {
		if p, _ := principal(r); p == nil || !s.scopesOK(w, p, req.Method) {
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
	req, isReq := msg.(*jsonrpc.Request)
	if !isReq || !req.IsCall() {
		s.gw.Handle(r.Context(), sess, msg, nil)
		return
	}
	if req.Method == "server/discover" {
		// The stateless era cannot run over this transport; refusing the
		// probe makes clients fall back to initialize.
		_ = sess.Reply(r.Context(), &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "server/discover is not available over HTTP+SSE"}})
		return
	}
	trace := gateway.TraceID(r.Context())
	go func() {
		ctx, cancel := sessionContext(gateway.WithTraceID(context.Background(), trace), sess)
		defer cancel()
		if resp := s.gw.Handle(ctx, sess, req, nil); resp != nil {
			_ = sess.Reply(ctx, resp)
		}
	}()
}
