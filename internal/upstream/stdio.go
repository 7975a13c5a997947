package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// writeTimeout bounds a single write to an upstream so that a wedged child
// cannot block a caller forever.
const writeTimeout = 10 * time.Second

// maxLine bounds one stdio frame; a longer line closes the connection rather
// than growing memory without limit.
const maxLine = 16 << 20

// StdioOptions describe a child process speaking MCP over stdin/stdout.
type StdioOptions struct {
	Command string
	Args    []string
	// Env is the complete environment of the child; nil inherits Mandate's.
	Env []string
	Dir string
	// Grace is how long shutdown waits after closing stdin before SIGTERM,
	// and again before SIGKILL. Zero means 2 seconds.
	Grace time.Duration
}

// stdioConn is a Connection to a child process. It frames messages by line
// itself (instead of the SDK's IOTransport) so that a stray non-JSON line on
// stdout (a banner, a debug print) is logged and dropped rather than tearing
// the connection down (requirement T-01).
type stdioConn struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *slog.Logger
	grace time.Duration

	wmu      sync.Mutex
	incoming chan jsonrpc.Message
	readErr  error
	exited   chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

var _ mcp.Connection = (*stdioConn)(nil)

func dialStdio(ctx context.Context, o StdioOptions, log *slog.Logger) (*stdioConn, error) {
	cmd := exec.Command(o.Command, o.Args...)
	cmd.Env = o.Env
	cmd.Dir = o.Dir
	// A process group lets shutdown reach grandchildren (npx starts node).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Command, err)
	}
	grace := o.Grace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	c := &stdioConn{
		cmd: cmd, stdin: stdin, log: log, grace: grace,
		incoming: make(chan jsonrpc.Message, 64),
		exited:   make(chan struct{}),
		closed:   make(chan struct{}),
	}
	go c.logStderr(stderr)
	go c.readStdout(stdout)
	go func() {
		err := cmd.Wait()
		if err != nil {
			log.Warn("upstream process exited", "err", err)
		} else {
			log.Info("upstream process exited")
		}
		close(c.exited)
	}()
	return c, nil
}

func (c *stdioConn) logStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.log.Info("upstream stderr", "line", sc.Text())
	}
}

func (c *stdioConn) readStdout(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	defer close(c.incoming)
	for {
		line, err := readLine(br)
		if len(bytes.TrimSpace(line)) > 0 {
			msg, derr := jsonrpc.DecodeMessage(line)
			if derr != nil {
				// The decode error quotes the line, which may hold anything
				// the child printed; only its size is logged.
				c.log.Warn("upstream wrote a line that is not a JSON-RPC message; dropped", "bytes", len(line))
			} else {
				select {
				case c.incoming <- msg:
				case <-c.closed:
					return
				}
			}
		}
		if err != nil {
			c.readErr = err
			return
		}
	}
}

// readLine reads one newline-terminated line, refusing lines over maxLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, errors.New("stdio frame exceeds 16 MiB")
		}
		if err != nil || !isPrefix {
			return buf, err
		}
	}
}

func (c *stdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	select {
	case msg, ok := <-c.incoming:
		if !ok {
			if c.readErr != nil && !errors.Is(c.readErr, io.EOF) {
				return nil, c.readErr
			}
			return nil, io.EOF
		}
		return msg, nil
	case <-c.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *stdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	data, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	_, err = c.stdin.Write(data)
	return err
}

// Close shuts the child down as the specification asks: close stdin, wait,
// SIGTERM, wait, SIGKILL (requirement T-03). It returns once the process has
// exited.
func (c *stdioConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		// Not under wmu: closing the pipe is what unblocks a write stuck on
		// a child that stopped reading.
		_ = c.stdin.Close()
		pgid := -c.cmd.Process.Pid
		select {
		case <-c.exited:
			// The child is gone; stray grandchildren in its group get the
			// same treatment, without delaying the caller.
			if syscall.Kill(pgid, syscall.SIGTERM) == nil {
				time.AfterFunc(c.grace, func() { _ = syscall.Kill(pgid, syscall.SIGKILL) })
			}
			return
		case <-time.After(c.grace):
		}
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-c.exited:
			return
		case <-time.After(c.grace):
		}
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-c.exited
	})
	return nil
}

func (c *stdioConn) SessionID() string { return "" }
