package cli_test

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/cli"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// readCloser reads through a tee but closes the pipe underneath.
type readCloser struct {
	io.Reader
	io.Closer
}

// TestStdio drives "mandate stdio" with the Go SDK client over its stdin and
// stdout, in both protocol eras. Everything the client reads on stdout must
// be a JSON-RPC message, one per line (T-01): a log line there would break
// every stdio client, so logs must go to stderr.
func TestStdio(t *testing.T) {
	tests := []struct {
		name    string
		version string
	}{
		{"stateless era", ""},
		{"session era", "2025-11-25"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir(), "store: {driver: memory}\n"+demoUpstream)
			stdinR, stdinW := io.Pipe()
			stdoutR, stdoutW := io.Pipe()
			var stdout, stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- cli.Main([]string{"stdio", "--config", cfg}, stdinR, stdoutW, &stderr)
				stdoutW.Close()
			}()

			c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil)
			transport := &mcp.IOTransport{Reader: readCloser{io.TeeReader(stdoutR, &stdout), stdoutR}, Writer: stdinW}
			cs, err := c.Connect(t.Context(), transport, &mcp.ClientSessionOptions{ProtocolVersion: tc.version})
			if err != nil {
				t.Fatalf("connect: %v\nstderr:\n%s", err, stderr.String())
			}
			if got, want := toolNames(t, cs), []string{"demo__add", "demo__echo", "demo__now", "demo__slow", "mandate__whoami"}; !slices.Equal(got, want) {
				t.Errorf("tools/list = %v, want %v", got, want)
			}
			text, err := resultText(cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": "over stdio"}}))
			if err != nil || text != "over stdio" {
				t.Errorf("demo__echo = %q, %v", text, err)
			}
			// Closing the client closes Mandate's stdin, which ends the run.
			cs.Close()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("stdio exited with %d, want 0:\n%s", code, stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatal("stdio did not return after stdin closed")
			}

			out := stdout.String()
			if out == "" {
				t.Fatal("nothing was read from stdout")
			}
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if _, err := jsonrpc.DecodeMessage(sc.Bytes()); err != nil {
					t.Errorf("stdout line is not a JSON-RPC message (%v): %q", err, sc.Text())
				}
			}
			if !strings.HasSuffix(out, "\n") {
				t.Errorf("stdout does not end with a newline: %q", out[max(0, len(out)-80):])
			}
			if !strings.Contains(stderr.String(), `msg="upstream connected"`) {
				t.Errorf("the log did not reach stderr:\n%s", stderr.String())
			}
			if kids := liveChildren(t); len(kids) > 0 {
				t.Errorf("live children after stdio returned: %v", kids)
			}
		})
	}
}

// TestStoreLocation checks where the SQLite database goes for each way of
// naming it. "mandate stdio" with an empty stdin opens the store, migrates
// it and returns at once, which is all this needs. The working directory is
// a temporary one so that a database written to the default ./mandate-data
// shows up as a wrong location instead of landing in the source tree.
func TestStoreLocation(t *testing.T) {
	tests := []struct {
		name   string
		config string // DIR stands for the test's directory
		flags  []string
		want   []string // database files, relative to DIR
	}{
		{"default", "upstreams: []\n", nil, []string{"mandate-data/mandate.db"}},
		{"data_dir in the file", "data_dir: DIR/from-file\n", nil, []string{"from-file/mandate.db"}},
		{"--data-dir without data_dir in the file", "upstreams: []\n", []string{"--data-dir", "DIR/from-flag"}, []string{"from-flag/mandate.db"}},
		{"--data-dir over data_dir in the file", "data_dir: DIR/from-file\n", []string{"--data-dir", "DIR/from-flag"}, []string{"from-flag/mandate.db"}},
		{"explicit dsn stays", "store: {dsn: DIR/elsewhere/custom.db}\n", []string{"--data-dir", "DIR/from-flag"}, []string{"elsewhere/custom.db"}},
		{"memory store", "store: {driver: memory}\n", []string{"--data-dir", "DIR/from-flag"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			cfg := writeConfig(t, dir, strings.ReplaceAll(tc.config, "DIR", dir))
			args := []string{"stdio", "--config", cfg}
			for _, f := range tc.flags {
				args = append(args, strings.ReplaceAll(f, "DIR", dir))
			}
			var stdout, stderr bytes.Buffer
			if code := cli.Main(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
				t.Fatalf("exit code %d:\n%s", code, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing for an empty stdin", stdout.String())
			}
			var got []string
			err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(path, ".db") {
					rel, _ := filepath.Rel(dir, path)
					got = append(got, filepath.ToSlash(rel))
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("database files = %v, want %v", got, tc.want)
			}
		})
	}
}
