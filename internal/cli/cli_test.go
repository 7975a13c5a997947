package cli_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/cli"
)

var update = flag.Bool("update", false, "rewrite golden files")

// childEnv, when set in the environment, makes the test binary the built-in
// demo upstream instead of running tests, so that serve and stdio start a
// real child process without a build step.
const childEnv = "MANDATE_CLI_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(cli.Main([]string{"demo-upstream"}, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// demoUpstream configures the test binary itself, through ${self}, as the
// stdio upstream "demo", with authentication off: these tests are about
// serving, not about tokens.
const demoUpstream = `auth: {mode: none}
upstreams:
  - id: demo
    stdio:
      command: "${self}"
      env: {` + childEnv + `: "1"}
`

// syncBuffer is a bytes.Buffer that Main's goroutines and the test can use
// at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// liveChildren returns the processes whose parent is this test process and
// that have not exited; a reaped child is gone from /proc, an unreaped one
// is a zombie ("Z").
func liveChildren(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	me := strconv.Itoa(os.Getpid())
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The state and the parent id follow the parenthesised command name,
		// which may itself contain spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == me && fields[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func TestCommands(t *testing.T) {
	good := filepath.Join("testdata", "good.yaml")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact
		wantStderr string // substring; "" means stderr must be empty
	}{
		{"no command", nil, 2, "", "Usage:"},
		{"unknown command", []string{"serv"}, 2, "", `mandate: unknown command "serv"`},
		{"version", []string{"version"}, 0, "mandate " + cli.Version + "\n", ""},
		{"--version", []string{"--version"}, 0, "mandate " + cli.Version + "\n", ""},
		{"check good file", []string{"config", "check", good}, 0, good + ": ok (2 upstreams)\n", ""},
		{"check with --config", []string{"config", "check", "--config", good}, 0, good + ": ok (2 upstreams)\n", ""},
		{"check missing file", []string{"config", "check", filepath.Join("testdata", "missing.yaml")}, 1, "", "mandate: read config:"},
		{"config without check", []string{"config"}, 2, "", "usage: mandate config check FILE"},
		{"config unknown verb", []string{"config", "lint", good}, 2, "", "usage: mandate config check FILE"},
		{"check without file", []string{"config", "check"}, 2, "", "usage: mandate config check FILE"},
		{"check two files", []string{"config", "check", good, good}, 2, "", "usage: mandate config check FILE"},
		{"serve unknown flag", []string{"serve", "--port", "80"}, 2, "", "flag provided but not defined: -port"},
		{"serve stray argument", []string{"serve", good}, 2, "", `serve: unexpected argument "testdata/good.yaml"`},
		{"serve -h", []string{"serve", "-h"}, 0, "", "-listen"},
		{"stdio takes no --listen", []string{"stdio", "--listen", "127.0.0.1:0"}, 2, "", "flag provided but not defined: -listen"},
		{"serve bad listen", []string{"serve", "--config", good, "--listen", "8787"}, 1, "", "listen: must be host:port"},
		{"serve bad config", []string{"serve", "--config", filepath.Join("testdata", "bad.yaml")}, 1, "", "testdata/bad.yaml:2:9: listen: must be host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Main(tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tc.wantCode, stderr.String())
			}
			if stdout.String() != tc.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tc.wantStdout)
			}
			switch {
			case tc.wantStderr == "" && stderr.Len() > 0:
				t.Errorf("stderr = %q, want it empty", stderr.String())
			case !strings.Contains(stderr.String(), tc.wantStderr):
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

// TestHelp checks that help goes to stdout (it was asked for) and names every
// subcommand.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := cli.Main([]string{arg}, nil, &stdout, &stderr); code != 0 {
			t.Errorf("%s: exit code %d, want 0", arg, code)
		}
		for _, cmd := range []string{"mandate serve", "mandate stdio", "mandate config check", "mandate version"} {
			if !strings.Contains(stdout.String(), cmd) {
				t.Errorf("%s: usage does not mention %q:\n%s", arg, cmd, stdout.String())
			}
		}
		if stderr.Len() > 0 {
			t.Errorf("%s: stderr = %q", arg, stderr.String())
		}
	}
}

// TestConfigCheckGolden pins what "mandate config check" prints for broken
// files. Each golden file's header says what it guards against.
func TestConfigCheckGolden(t *testing.T) {
	tests := []struct {
		file   string
		header string
	}{
		{"bad.yaml", `# Golden report of "mandate config check testdata/bad.yaml" (exit 1): every
# problem of the file in one run, in file order, each as file:line:col: field:
# msg, then the count. Guards against stopping at the first problem, against
# losing positions between config.Load and the command line, and against the
# report going to stderr where "config check > report" would miss it.
`},
		{"syntax.yaml", `# Golden report of "mandate config check testdata/syntax.yaml" (exit 1): a file
# that is not YAML is still reported as file:line: msg on stdout with a count,
# not as an opaque error on stderr.
`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			var stdout, stderr bytes.Buffer
			if code := cli.Main([]string{"config", "check", path}, nil, &stdout, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr = %q, want it empty", stderr.String())
			}
			got := tc.header + stdout.String()
			golden := filepath.Join("testdata", strings.TrimSuffix(tc.file, ".yaml")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("report differs from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
