package cli_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/cli"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
	"github.com/mandate-mcp/mandate/internal/users"
)

// adminConfig writes a configuration whose SQLite store lives in a fresh
// directory and returns its path and the database's.
func adminConfig(t *testing.T) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg = writeConfig(t, dir, "data_dir: "+data+"\nstore: {driver: sqlite}\n")
	return cfg, filepath.Join(data, "mandate.db")
}

// openDB opens the database the commands use, for seeding and checking; it
// is closed before the test ends.
func openDB(t *testing.T, path string) store.Store {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type result struct {
	code           int
	stdout, stderr string
}

func run(stdin io.Reader, args ...string) result {
	var stdout, stderr bytes.Buffer
	code := cli.Main(args, stdin, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// checkGolden compares header+got with testdata/name, rewriting it under
// -update.
func checkGolden(t *testing.T, name, header, got string) {
	t.Helper()
	got = header + got
	golden := filepath.Join("testdata", name)
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
		t.Errorf("output differs from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}

func TestUsersCommands(t *testing.T) {
	cfg, db := adminConfig(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	twoLines := filepath.Join(dir, "two-lines")
	for path, text := range map[string]string{pwFile: "file password 1\r\n", twoLines: "first line ok\nsecond line\n"} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mem := writeConfig(t, t.TempDir(), "store: {driver: memory}\n")

	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string // substring; "" means stdout must be empty
		wantStderr string // substring; "" means stderr must be empty
	}{
		{"add from stdin", "correct horse battery\n", []string{"users", "add", "alice", "--config", cfg, "--email", "alice@example.com", "--group", "ops", "--group", "dev"}, 0, "added user alice (id ", ""},
		{"add from a file, flags first", "", []string{"users", "add", "--config", cfg, "--password-file", pwFile, "bob"}, 0, "added user bob (id ", ""},
		{"add without a final newline", "no newline at all", []string{"users", "add", "carol", "--config", cfg}, 0, "added user carol", ""},
		{"add taken username", "correct horse battery\n", []string{"users", "add", "alice", "--config", cfg}, 1, "", `user "alice" already exists`},
		{"add short password", "short\n", []string{"users", "add", "dave", "--config", cfg}, 1, "", "password must be at least 12 characters"},
		{"add empty stdin", "", []string{"users", "add", "dave", "--config", cfg}, 1, "", "password must be at least 12 characters"},
		{"add two-line stdin", "correct horse battery\nmore\n", []string{"users", "add", "dave", "--config", cfg}, 1, "", "the password must be a single line"},
		{"add two-line file", "", []string{"users", "add", "dave", "--config", cfg, "--password-file", twoLines}, 1, "", "the password must be a single line"},
		{"add missing password file", "", []string{"users", "add", "dave", "--config", cfg, "--password-file", filepath.Join(dir, "nope")}, 1, "", "password file: open"},
		{"add too long", strings.Repeat("x", users.MaxPasswordBytes+1) + "\n", []string{"users", "add", "dave", "--config", cfg}, 1, "", "password must be at most 1024 bytes"},
		{"add bad username and email", "correct horse battery\n", []string{"users", "add", "a b", "--config", cfg, "--email", "nope"}, 1, "", "username must be"},
		{"password is never a flag", "", []string{"users", "add", "dave", "--config", cfg, "--password", "correct horse battery"}, 2, "", "flag provided but not defined: -password"},
		{"add without username", "correct horse battery\n", []string{"users", "add", "--config", cfg}, 2, "", "usage: mandate users add USERNAME [flags]"},
		{"add two usernames", "correct horse battery\n", []string{"users", "add", "x", "y", "--config", cfg}, 2, "", "usage: mandate users add USERNAME [flags]"},
		{"add to the memory store", "correct horse battery\n", []string{"users", "add", "dave", "--config", mem}, 1, "", "store.driver is memory"},
		{"disable", "", []string{"users", "disable", "bob", "--config", cfg}, 0, "user bob: disabled\n", ""},
		{"disable again", "", []string{"users", "disable", "--config", cfg, "bob"}, 0, "user bob: disabled\n", ""},
		{"enable", "", []string{"users", "enable", "bob", "--config", cfg}, 0, "user bob: enabled\n", ""},
		{"disable unknown", "", []string{"users", "disable", "nobody", "--config", cfg}, 1, "", `mandate: no user "nobody"`},
		{"disable in the memory store", "", []string{"users", "disable", "bob", "--config", mem}, 1, "", "store.driver is memory"},
		{"username after --", "", []string{"users", "enable", "--config", cfg, "--", "-x"}, 1, "", `no user "-x"`},
		{"list takes no argument", "", []string{"users", "list", "x", "--config", cfg}, 2, "", "usage: mandate users list [flags]"},
		{"list -h", "", []string{"users", "list", "-h"}, 0, "", "-data-dir"},
		{"no verb", "", []string{"users"}, 2, "", "mandate users add USERNAME"},
		{"unknown verb", "", []string{"users", "remove", "bob"}, 2, "", `mandate users: unknown command "remove"`},
		{"help", "", []string{"users", "help"}, 0, "never\ntaken from a flag", ""},
		{"bad config", "", []string{"users", "list", "--config", filepath.Join("testdata", "bad.yaml")}, 1, "", "testdata/bad.yaml:2:9: listen:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(strings.NewReader(tc.stdin), tc.args...)
			if r.code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", r.code, tc.wantCode, r.stderr)
			}
			for _, out := range []struct{ name, got, want string }{
				{"stdout", r.stdout, tc.wantStdout}, {"stderr", r.stderr, tc.wantStderr},
			} {
				switch {
				case out.want == "" && out.got != "":
					t.Errorf("%s = %q, want it empty", out.name, out.got)
				case !strings.Contains(out.got, out.want):
					t.Errorf("%s = %q, want it to contain %q", out.name, out.got, out.want)
				}
			}
		})
	}

	// What the commands did is in the store, and only that.
	st := openDB(t, db)
	list, err := st.ListUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Username)
	}
	if got := strings.Join(names, ","); got != "alice,bob,carol" {
		t.Fatalf("users = %s, want alice,bob,carol", got)
	}
	for _, c := range []struct {
		u  store.User
		pw string
	}{{list[0], "correct horse battery"}, {list[1], "file password 1"}, {list[2], "no newline at all"}} {
		if ok, err := users.VerifyPassword(c.u.PasswordHash, c.pw); err != nil || !ok {
			t.Errorf("%s: password %q does not verify (%v, %v)", c.u.Username, c.pw, ok, err)
		}
		if c.u.Disabled {
			t.Errorf("%s is disabled", c.u.Username)
		}
	}
	if a := list[0]; a.Email != "alice@example.com" || strings.Join(a.Groups, ",") != "ops,dev" {
		t.Errorf("alice = %+v, want her email and groups", a)
	}
}

// TestUsersAddRefusesTerminal checks that a password is never waited for on
// a terminal, where it would be echoed as typed. /dev/null stands in for the
// terminal: it is a character device too.
func TestUsersAddRefusesTerminal(t *testing.T) {
	cfg, _ := adminConfig(t)
	tty, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	r := run(tty, "users", "add", "alice", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "no password: give --password-file FILE") {
		t.Errorf("exit %d, stderr %q; want 1 and a request for --password-file", r.code, r.stderr)
	}
}

func TestUsersDisableEnable(t *testing.T) {
	cfg, db := adminConfig(t)
	if r := run(strings.NewReader("correct horse battery\n"), "users", "add", "alice", "--config", cfg); r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	disabled := func() bool {
		t.Helper()
		st, err := sqlite.Open(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		u, err := st.GetUserByUsername(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		return u.Disabled
	}
	for _, step := range []struct {
		verb string
		want bool
	}{{"disable", true}, {"disable", true}, {"enable", false}, {"enable", false}, {"disable", true}} {
		if r := run(nil, "users", step.verb, "alice", "--config", cfg); r.code != 0 {
			t.Fatalf("%s: %+v", step.verb, r)
		}
		if got := disabled(); got != step.want {
			t.Errorf("after %s: disabled = %v, want %v", step.verb, got, step.want)
		}
	}
}

const usersListHeader = `# Golden output of "mandate users list" for three seeded users. Guards
# against the password hash (or any part of it) reaching the table, against
# a disabled account looking enabled, and against times shown in local time
# or with sub-second noise that makes scripts compare badly.
`

func TestUsersListGolden(t *testing.T) {
	cfg, db := adminConfig(t)
	st := openDB(t, db)
	created := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))
	seed := []store.User{
		{ID: "0123456789abcdef0123456789abcdef", Username: "alice", Email: "alice@example.com", Groups: []string{"admins", "ops"}, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$SECRET-SALT$SECRET-KEY", CreatedAt: created},
		{ID: "fedcba9876543210fedcba9876543210", Username: "bob", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$SECRET-SALT$SECRET-KEY", Disabled: true, CreatedAt: created.Add(time.Hour)},
		{ID: "00000000000000000000000000000001", Username: "carol@example.com", Email: "carol@example.com", Issuer: "https://idp.example", Subject: "c-1", CreatedAt: created.Add(48 * time.Hour), LastLogin: created.Add(49 * time.Hour)},
	}
	for _, u := range seed {
		if err := st.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	r := run(nil, "users", "list", "--config", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "SECRET") || strings.Contains(r.stdout, "argon2") {
		t.Fatalf("the list shows a password hash:\n%s", r.stdout)
	}
	checkGolden(t, "users_list.golden", usersListHeader, r.stdout)
}

func TestUsersListEmpty(t *testing.T) {
	cfg, _ := adminConfig(t)
	r := run(nil, "users", "list", "--config", cfg)
	if r.code != 0 || r.stdout != "USERNAME  ID  EMAIL  GROUPS  DISABLED  CREATED\n" {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
}
