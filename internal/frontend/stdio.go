package frontend

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// lineWriter writes newline-delimited JSON-RPC messages; it is the one
// stream of a stdio session.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Send(_ context.Context, msg jsonrpc.Message) error {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(append(data, '\n'))
	return err
}

// ServeStdio runs one client session over r/w (a local client spawning
// Mandate) until r ends (it then waits for the requests in flight) or ctx is
// cancelled (returning ctx's error). Requests are served concurrently;
// nothing but JSON-RPC is ever written to w (T-01).
func ServeStdio(ctx context.Context, gw *gateway.Gateway, r io.Reader, w io.Writer, log *slog.Logger) error {
	out := &lineWriter{w: w}
	sess := gw.NewSession("", "stdio")
	// A local client that spawned Mandate is the operator's own process:
	// it runs as the implicit local principal, as with `auth: none`.
	sess.Principal = identity.Local()
	sess.SetStandalone(out)
	defer sess.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	for {
		var line []byte
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read stdin: %w", err)
		case line = <-lines:
		}
		msg, derr := jsonrpc.DecodeMessage(bytes.TrimSpace(line))
		if derr != nil {
			// JSON-RPC answers an unparseable message with "id": null.
			out.mu.Lock()
			_, _ = io.WriteString(out.w, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"invalid JSON-RPC message"}}`+"\n")
			out.mu.Unlock()
			continue
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok || !req.IsCall() {
			gw.Handle(ctx, sess, msg, out)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := sess
			// A stateless-era request carries its own version and
			// capabilities and is served on its own (B-06).
			if v := gateway.ModernVersion(req.Params); v != "" && req.Method != "server/discover" {
				target = gw.NewEphemeral("stdio")
				target.Principal = sess.Principal
				defer target.Close()
				if rerr := gw.BeginModern(target, req.Params, v); rerr != nil {
					_ = out.Send(ctx, &jsonrpc.Response{ID: req.ID, Error: rerr})
					return
				}
			}
			if resp := gw.Handle(ctx, target, req, out); resp != nil {
				if err := out.Send(ctx, resp); err != nil {
					log.Warn("write to stdout", "err", err)
				}
			}
		}()
	}
}
