package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPOptions describe a Streamable HTTP upstream.
type HTTPOptions struct {
	URL string
	// Headers are sent with every request (static credentials from config).
	// They are Mandate's own credentials for this upstream; a client's
	// Authorization header is never among them.
	Headers map[string]string
	// Client performs the requests; nil means a client with sane timeouts.
	Client *http.Client
}

// httpConn is Mandate's own Streamable HTTP client connection. The SDK's
// client transport cannot be driven at the message level without losing the
// standalone GET stream (its session hook is unexported), and a gateway also
// needs to know which POST stream a server message arrived on, to route it to
// the downstream session that caused it.
type httpConn struct {
	opts HTTPOptions
	hc   *http.Client
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	sessionID string
	version   string
	getOnce   sync.Once

	incoming chan jsonrpc.Message
	closed   chan struct{}
	once     sync.Once
	err      error
}

var _ mcp.Connection = (*httpConn)(nil)

// DefaultHTTPClient is used for upstreams that configure no client. It has no
// overall timeout because SSE streams are long-lived; per-request deadlines
// come from contexts.
func DefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	t.MaxIdleConns = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0
	return &http.Client{Transport: t}
}

func dialHTTP(o HTTPOptions, log *slog.Logger) *httpConn {
	hc := o.Client
	if hc == nil {
		hc = DefaultHTTPClient()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &httpConn{
		opts: o, hc: hc, log: log, ctx: ctx, cancel: cancel,
		incoming: make(chan jsonrpc.Message, 64),
		closed:   make(chan struct{}),
	}
}

func (c *httpConn) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

func (c *httpConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.closed:
		return nil, c.closeErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *httpConn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}

func (c *httpConn) deliver(m jsonrpc.Message) {
	select {
	case c.incoming <- m:
	case <-c.closed:
	}
}

func (c *httpConn) newRequest(ctx context.Context, method string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.opts.URL, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range c.opts.Headers {
		req.Header.Set(k, v)
	}
	c.mu.Lock()
	if c.sessionID != "" {
		req.Header.Set("Mcp-Session-Id", c.sessionID)
	}
	if c.version != "" {
		req.Header.Set("Mcp-Protocol-Version", c.version)
	}
	c.mu.Unlock()
	return req, nil
}

// Write POSTs one message. A request's response (JSON or an SSE stream) is
// read on its own goroutine, so Write never waits for the upstream's work.
func (c *httpConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	select {
	case <-c.closed:
		return c.closeErr()
	default:
	}
	body, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	req, isReq := msg.(*jsonrpc.Request)
	if isReq && req.IsCall() {
		go c.roundTrip(req, body)
		return nil
	}
	hreq, err := c.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && c.SessionID() != "" {
		c.fail(errors.New("upstream session expired (404)"))
		return c.closeErr()
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("upstream answered HTTP %d", resp.StatusCode)
	}
	if isReq && req.Method == "notifications/initialized" {
		c.getOnce.Do(func() { go c.standaloneStream() })
	}
	return nil
}

// errorFor builds the response Mandate substitutes when an upstream could
// not answer a request itself.
func errorFor(id jsonrpc.ID, code int64, format string, args ...any) *jsonrpc.Response {
	return &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// call performs one request/response exchange on the caller's goroutine.
// Messages the upstream sends on the request's SSE stream before the
// response are delivered to Read, marked as Related to the request. It
// implements the caller interface that Session.Call prefers, which saves
// two goroutine hand-offs per call on the hot path.
func (c *httpConn) call(ctx context.Context, req *jsonrpc.Request) (*jsonrpc.Response, error) {
	body, err := jsonrpc.EncodeMessage(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	resp := c.exchange(ctx, req, body)
	if err := ctx.Err(); err != nil {
		if c.ctx.Err() != nil {
			return nil, c.closeErr()
		}
		return nil, err
	}
	return resp, nil
}

func (c *httpConn) roundTrip(req *jsonrpc.Request, body []byte) {
	resp := c.exchange(c.ctx, req, body)
	if c.ctx.Err() == nil {
		c.deliver(resp)
	}
}

// exchange POSTs a request and returns its response, substituting an error
// response when the upstream gives none.
func (c *httpConn) exchange(ctx context.Context, req *jsonrpc.Request, body []byte) *jsonrpc.Response {
	hreq, err := c.newRequest(ctx, http.MethodPost, body)
	if err != nil {
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream request: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := c.hc.Do(hreq)
	if err != nil {
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream unreachable")
	}
	defer resp.Body.Close()
	if req.Method == "initialize" && resp.StatusCode == http.StatusOK {
		c.mu.Lock()
		c.sessionID = resp.Header.Get("Mcp-Session-Id")
		c.mu.Unlock()
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && c.SessionID() != "" && req.Method != "initialize":
		c.fail(errors.New("upstream session expired (404)"))
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream session expired")
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream refused Mandate's credentials (HTTP %d)", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		// A JSON-RPC error body (for example 400 with -32602) is passed on as is.
		if m, ok := c.decodeBody(resp); ok {
			if r, ok := m.(*jsonrpc.Response); ok && r.Error != nil {
				r.ID = req.ID
				return r
			}
		}
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream answered HTTP %d", resp.StatusCode)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "text/event-stream" {
		m, ok := c.decodeBody(resp)
		r, isResp := m.(*jsonrpc.Response)
		if !ok || !isResp {
			return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream sent an invalid response")
		}
		c.noteVersion(req, r)
		return r
	}
	var final *jsonrpc.Response
	related := Related{}
	if id, ok := req.ID.Raw().(int64); ok {
		related.ID = id
	}
	err = readSSE(resp.Body, func(ev sseEvent) bool {
		if len(ev.data) == 0 {
			return true
		}
		m, err := jsonrpc.DecodeMessage(ev.data)
		if err != nil {
			c.log.Warn("upstream sent an undecodable SSE event; dropped", "err", err)
			return true
		}
		switch m := m.(type) {
		case *jsonrpc.Response:
			if m.ID == req.ID {
				final = m
				return false
			}
			c.deliver(m)
		case *jsonrpc.Request:
			m.Extra = related
			c.deliver(m)
		}
		return true
	})
	drain(resp.Body)
	if final == nil {
		if ctx.Err() == nil {
			c.log.Warn("upstream stream ended before the response", "method", req.Method, "err", err)
		}
		return errorFor(req.ID, jsonrpc.CodeInternalError, "upstream closed the stream before responding")
	}
	c.noteVersion(req, final)
	return final
}

// drain reads what is left of a response stream after its final message, so
// the connection goes back to the pool instead of being redialled for the
// next call. Servers end the stream right after the response; one that keeps
// it open is cut off after a short wait.
func drain(body io.ReadCloser) {
	t := time.AfterFunc(100*time.Millisecond, func() { body.Close() })
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	t.Stop()
}

func (c *httpConn) noteVersion(req *jsonrpc.Request, r *jsonrpc.Response) {
	if req.Method != "initialize" || r.Error != nil {
		return
	}
	var v struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if json.Unmarshal(r.Result, &v) == nil {
		c.mu.Lock()
		c.version = v.ProtocolVersion
		c.mu.Unlock()
	}
}

func (c *httpConn) decodeBody(resp *http.Response) (jsonrpc.Message, bool) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLine))
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return nil, false
	}
	m, err := jsonrpc.DecodeMessage(data)
	return m, err == nil
}

// standaloneStream keeps the GET stream open for server-initiated messages
// (list_changed, resources/updated), resuming with Last-Event-ID after a drop.
func (c *httpConn) standaloneStream() {
	lastID := ""
	backoff := 100 * time.Millisecond
	for c.ctx.Err() == nil {
		req, err := c.newRequest(c.ctx, http.MethodGet, nil)
		if err != nil {
			return
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			switch resp.StatusCode {
			case http.StatusOK:
				backoff = 100 * time.Millisecond
				_ = readSSE(resp.Body, func(ev sseEvent) bool {
					if ev.id != "" {
						lastID = ev.id
					}
					if ev.retry > 0 {
						backoff = ev.retry
					}
					if len(ev.data) == 0 {
						return true
					}
					if m, err := jsonrpc.DecodeMessage(ev.data); err == nil {
						c.deliver(m)
					}
					return true
				})
				resp.Body.Close()
			case http.StatusMethodNotAllowed:
				resp.Body.Close()
				return
			case http.StatusNotFound:
				resp.Body.Close()
				c.fail(errors.New("upstream session expired (404)"))
				return
			default:
				resp.Body.Close()
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (c *httpConn) fail(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = fmt.Errorf("%w: %v", ErrClosed, err)
		c.mu.Unlock()
		close(c.closed)
		c.cancel()
	})
}

// Close ends the upstream session with DELETE (best effort) and aborts every
// open stream.
func (c *httpConn) Close() error {
	if sid := c.SessionID(); sid != "" {
		select {
		case <-c.closed:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if req, err := c.newRequest(ctx, http.MethodDelete, nil); err == nil {
				if resp, err := c.hc.Do(req); err == nil {
					resp.Body.Close()
				}
			}
			cancel()
		}
	}
	c.fail(ErrClosed)
	return nil
}

type sseEvent struct {
	id    string
	event string
	data  []byte
	retry time.Duration
}

// readSSE parses a text/event-stream body, calling fn per event until fn
// returns false or the stream ends.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	br := bufio.NewReaderSize(r, 4<<10)
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	for {
		line, err := readLine(br)
		if err != nil && len(line) == 0 {
			return err
		}
		if len(line) == 0 {
			if hasData || ev.id != "" || ev.retry > 0 {
				ev.data = bytes.Clone(data.Bytes())
				if !fn(ev) {
					return nil
				}
			}
			ev, hasData = sseEvent{}, false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(string(line), ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				ev.retry = time.Duration(ms) * time.Millisecond
			}
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		}
		if data.Len() > maxLine {
			return errors.New("SSE event exceeds 16 MiB")
		}
		if err != nil {
			return err
		}
	}
}
