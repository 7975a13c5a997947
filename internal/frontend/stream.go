package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

var errStreamEnded = errors.New("stream ended")

// sseWriter writes server-sent events to one HTTP response. It is safe for
// concurrent use and refuses writes once ended.
type sseWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	f       http.Flusher
	started bool
	ended   bool
}

func (s *sseWriter) startLocked() {
	if s.started {
		return
	}
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	s.started = true
}

func (s *sseWriter) writeLocked(msg jsonrpc.Message) error {
	return s.writeEvent(msg, true)
}

// writeEvent writes one event; flush is false for the last event of a
// response, which the end of the handler flushes together with the
// stream's terminator in one write.
func (s *sseWriter) writeEvent(msg jsonrpc.Message, flush bool) error {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	s.startLocked()
	buf := make([]byte, 0, len(data)+24)
	buf = append(buf, "event: message\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := s.w.Write(buf); err != nil {
		s.ended = true
		return err
	}
	if flush && s.f != nil {
		s.f.Flush()
	}
	return nil
}

// Send implements gateway.Stream.
func (s *sseWriter) Send(_ context.Context, msg jsonrpc.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errStreamEnded
	}
	return s.writeLocked(msg)
}

func (s *sseWriter) comment(text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return errStreamEnded
	}
	s.startLocked()
	if _, err := fmt.Fprintf(s.w, ": %s\n\n", text); err != nil {
		s.ended = true
		return err
	}
	if s.f != nil {
		s.f.Flush()
	}
	return nil
}

func (s *sseWriter) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// postStream answers one POSTed request. It starts as a plain JSON
// response and turns into an SSE stream only if a message related to the
// request must go out before the response, so the common case costs no
// stream framing.
type postStream struct {
	sseWriter
	// sse makes the response an SSE stream even when nothing precedes it,
	// as the reference servers do for clients that accept one; clients and
	// conformance checks expect POST SSE streams to be usable.
	sse bool
}

func newPostStream(w http.ResponseWriter, r *http.Request) *postStream {
	f, _ := w.(http.Flusher)
	return &postStream{sseWriter: sseWriter{w: w, f: f}, sse: strings.Contains(r.Header.Get("Accept"), "text/event-stream")}
}

// finish writes the response and ends the stream. status applies only when
// the response goes out as plain JSON.
func (p *postStream) finish(resp *jsonrpc.Response, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.ended = true
	if resp != nil && (p.sse || p.started) {
		_ = p.writeEvent(resp, false)
		return
	}
	if p.started {
		return
	}
	if resp == nil {
		p.w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(p.w, status, resp)
}

func writeJSON(w http.ResponseWriter, status int, msg jsonrpc.Message) {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeError answers with an id-less (or id-bearing) JSON-RPC error body.
func writeError(w http.ResponseWriter, status int, id jsonrpc.ID, code int64, msg string) {
	writeJSON(w, status, &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: msg}})
}
