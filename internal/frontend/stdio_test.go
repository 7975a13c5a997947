package frontend_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/frontend"
	"github.com/mandate-mcp/mandate/internal/gateway"
)

// stdioPeer is the client end of one ServeStdio: it writes lines to
// Mandate's stdin and reads the lines of its stdout.
type stdioPeer struct {
	t     *testing.T
	in    *io.PipeWriter
	lines chan string
	done  chan struct{} // closed when ServeStdio has returned
	err   error         // ServeStdio's result, once done is closed
}

func serveStdio(t *testing.T, ctx context.Context, gw *gateway.Gateway) *stdioPeer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &stdioPeer{t: t, in: inW, lines: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = frontend.ServeStdio(ctx, gw, inR, outW, slog.New(slog.DiscardHandler))
		outW.Close()
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("ServeStdio did not return after stdin closed")
		}
	})
	return p
}

func (p *stdioPeer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		p.t.Fatalf("write to stdin: %v", err)
	}
}

// stdioReply is one response line, decoded loosely enough to see what a
// client would: a missing or null id, an error, a result.
type stdioReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (p *stdioPeer) next() stdioReply {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatal("stdout ended")
		}
		var r stdioReply
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.JSONRPC != "2.0" {
			p.t.Fatalf("stdout line is not a JSON-RPC message (%v): %q", err, line)
		}
		return r
	case <-time.After(10 * time.Second):
		p.t.Fatal("no line on stdout")
	}
	panic("unreachable")
}

func (p *stdioPeer) initialize() {
	p.t.Helper()
	p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if r := p.next(); string(r.ID) != "1" || r.Error != nil {
		p.t.Fatalf("initialize: %+v", r)
	}
	p.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	// Like any client, list the tools before calling them: Mandate refuses
	// calls of tools the session was not shown.
	p.send(`{"jsonrpc":"2.0","id":"list","method":"tools/list"}`)
	if r := p.next(); string(r.ID) != `"list"` || r.Error != nil {
		p.t.Fatalf("tools/list: %+v", r)
	}
}

func echoText(t *testing.T, r stdioReply) string {
	t.Helper()
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if r.Error != nil || json.Unmarshal(r.Result, &res) != nil || len(res.Content) != 1 {
		t.Fatalf("not a text result: id %s result %s error %+v", r.ID, r.Result, r.Error)
	}
	return res.Content[0].Text
}

// TestServeStdioGarbage: a line that is not JSON-RPC gets a parse error
// (-32700) that names no request, and does not end the session; a blank
// line is not a message at all and gets nothing.
func TestServeStdioGarbage(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	p := serveStdio(t, context.Background(), h.gw)
	p.initialize()
	tests := []struct {
		name string
		line string
	}{
		{"not json", `{not json`},
		{"plain text", `hello, mandate`},
		{"truncated request", `{"jsonrpc":"2.0","id":7,"method":"tools/li`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.send("   ")
			p.send(tc.line)
			r := p.next()
			if r.Error == nil || r.Error.Code != -32700 {
				t.Fatalf("reply to %q: %+v, want a -32700 parse error", tc.line, r)
			}
			if len(r.ID) > 0 && string(r.ID) != "null" {
				t.Errorf("parse error carries id %s, want none or null", r.ID)
			}
			// The session goes on: the next request is answered normally.
			p.send(`{"jsonrpc":"2.0","id":"after","method":"tools/call","params":{"name":"remote__echo","arguments":{"message":"still here"}}}`)
			r = p.next()
			if string(r.ID) != `"after"` || echoText(t, r) != "still here" {
				t.Fatalf("request after garbage: %+v", r)
			}
		})
	}
}

// TestServeStdioConcurrent: requests are served concurrently, so a fast
// call is not queued behind a slow one, and both are answered.
func TestServeStdioConcurrent(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	p := serveStdio(t, context.Background(), h.gw)
	p.initialize()
	p.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__slow","arguments":{"ms":400}}}`)
	p.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"remote__echo","arguments":{"message":"fast"}}}`)
	first, second := p.next(), p.next()
	if string(first.ID) != "3" || echoText(t, first) != "fast" {
		t.Errorf("first answer: %+v, want the echo (id 3)", first)
	}
	if string(second.ID) != "2" || echoText(t, second) != "slept 400 ms" {
		t.Errorf("second answer: %+v, want the slow call (id 2)", second)
	}
}

// TestServeStdioEOF: the end of stdin ends ServeStdio with nil, but only
// after answering what was already asked, so a client that writes its last
// request and closes stdin still gets the answer.
func TestServeStdioEOF(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	p := serveStdio(t, context.Background(), h.gw)
	p.initialize()
	p.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"remote__slow","arguments":{"ms":200}}}`)
	p.in.Close()
	if r := p.next(); string(r.ID) != "2" || echoText(t, r) != "slept 200 ms" {
		t.Errorf("answer after EOF: %+v", r)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("ServeStdio = %v, want nil at EOF", p.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio did not return at EOF")
	}
	if _, ok := <-p.lines; ok {
		t.Error("stdout went on after ServeStdio returned")
	}
	waitFor(t, "the stdio session to end", func() bool { return h.gw.SessionCount() == 0 })
}

// TestServeStdioCancel: cancelling ctx ends ServeStdio even while the
// client keeps stdin open, as its documentation promises; "mandate stdio"
// relies on it to stop on SIGINT or SIGTERM.
func TestServeStdioCancel(t *testing.T) {
	h := startGateway(t, frontend.Options{}, httpUpstream(t, "remote"))
	ctx, cancel := context.WithCancel(context.Background())
	p := serveStdio(t, ctx, h.gw)
	p.initialize()
	cancel()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeStdio did not return after ctx was cancelled")
	}
}
