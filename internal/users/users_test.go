package users_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
	"github.com/mandate-mcp/mandate/internal/users"
)

func newStore(t *testing.T) store.Store {
	t.Helper()
	st := memory.New()
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestAdd(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	groups := []string{"ops", "admins"}
	u, err := users.Add(ctx, st, users.Spec{
		Username: "alice", Email: "alice@example.com", Groups: groups, Password: "correct horse battery",
	})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	groups[0] = "changed" // The stored user must not share the caller's slice.
	if !hexID.MatchString(u.ID) {
		t.Errorf("ID = %q, want 32 hex digits", u.ID)
	}
	if u.CreatedAt.IsZero() || u.Disabled || u.Issuer != "" || u.Subject != "" {
		t.Errorf("Add returned %+v", u)
	}
	got, err := st.GetUserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.Email != "alice@example.com" || strings.Join(got.Groups, ",") != "ops,admins" ||
		!got.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("stored %+v, want what Add returned: %+v", got, u)
	}
	if strings.Contains(got.PasswordHash, "correct horse") {
		t.Fatalf("the store holds the password itself")
	}
	if ok, err := users.VerifyPassword(got.PasswordHash, "correct horse battery"); err != nil || !ok {
		t.Errorf("stored hash does not verify the password: %v, %v", ok, err)
	}

	other, err := users.Add(ctx, st, users.Spec{Username: "bob", Password: "another long password"})
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == u.ID {
		t.Errorf("two users share the ID %s", u.ID)
	}

	_, err = users.Add(ctx, st, users.Spec{Username: "alice", Password: "correct horse battery"})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("Add of a taken username: %v, want ErrConflict", err)
	}
}

func TestAddRefusesBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec users.Spec
		want []string
	}{
		{"empty", users.Spec{}, []string{"username must be", "password must be at least 12 characters"}},
		{"short password", users.Spec{Username: "a", Password: "elevenchars"}, []string{"password must be at least 12"}},
		{"username with space", users.Spec{Username: "a b", Password: "twelve chars"}, []string{"username must be"}},
		{"username starting with a dash", users.Spec{Username: "-a", Password: "twelve chars"}, []string{"username must be"}},
		{"username too long", users.Spec{Username: strings.Repeat("a", 65), Password: "twelve chars"}, []string{"username must be"}},
		{"display-name email", users.Spec{Username: "a", Email: "Alice <a@example.com>", Password: "twelve chars"}, []string{"email must be"}},
		{"not an email", users.Spec{Username: "a", Email: "alice", Password: "twelve chars"}, []string{"email must be"}},
		{"group with comma", users.Spec{Username: "a", Groups: []string{"a,b", ""}, Password: "twelve chars"}, []string{`group "a,b"`, `group ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			_, err := users.Add(context.Background(), st, tt.spec)
			if err == nil {
				t.Fatal("Add accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if n, _ := st.CountUsers(context.Background()); n != 0 {
				t.Errorf("%d users stored after a refused Add", n)
			}
		})
	}
}

var adminOutput = regexp.MustCompile(`^Created the first user, "admin", with password ([A-Za-z0-9]{20})\nIt is shown only this once.\n$`)

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	var out bytes.Buffer
	created, err := users.EnsureAdmin(ctx, st, &out)
	if err != nil || !created {
		t.Fatalf("EnsureAdmin on an empty store = %v, %v; want true, nil", created, err)
	}
	m := adminOutput.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q does not show the password as expected", out.String())
	}
	if strings.ContainsAny(m[1], "0O1lI") {
		t.Errorf("password %q uses easily misread characters", m[1])
	}
	u, err := st.GetUserByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := users.VerifyPassword(u.PasswordHash, m[1]); err != nil || !ok {
		t.Errorf("the printed password does not verify: %v, %v", ok, err)
	}
	if !slices.Equal(u.Groups, []string{users.AdminGroup}) || u.Disabled {
		t.Errorf("admin has groups %q, disabled %v; want [%s], false", u.Groups, u.Disabled, users.AdminGroup)
	}

	out.Reset()
	created, err = users.EnsureAdmin(ctx, st, &out)
	if err != nil || created || out.Len() > 0 {
		t.Errorf("second EnsureAdmin = %v, %v, output %q; want false, nil, nothing", created, err, out.String())
	}
}

func TestEnsureAdminLeavesExistingUsers(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if _, err := users.Add(ctx, st, users.Spec{Username: "alice", Password: "correct horse battery"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	created, err := users.EnsureAdmin(ctx, st, &out)
	if err != nil || created || out.Len() > 0 {
		t.Errorf("EnsureAdmin with a user = %v, %v, output %q; want false, nil, nothing", created, err, out.String())
	}
	if _, err := st.GetUserByUsername(ctx, "admin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("admin lookup: %v, want ErrNotFound", err)
	}
}

// TestEnsureAdminConcurrent checks that replicas starting together create
// one administrator and show one password.
func TestEnsureAdminConcurrent(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		out     bytes.Buffer
	)
	for range 4 {
		wg.Go(func() {
			var b bytes.Buffer
			ok, err := users.EnsureAdmin(ctx, st, &b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("EnsureAdmin: %v", err)
			}
			if ok {
				created++
			}
			out.Write(b.Bytes())
		})
	}
	wg.Wait()
	if n, _ := st.CountUsers(ctx); created != 1 || n != 1 {
		t.Errorf("%d calls created, %d users stored; want 1 and 1", created, n)
	}
	if got := strings.Count(out.String(), "with password"); got != 1 {
		t.Errorf("%d passwords shown, want 1:\n%s", got, out.String())
	}
}

// TestEnsureAdminFailsClosed checks that a store that cannot be read gives
// an error, not a second administrator or a silent success.
func TestEnsureAdminFailsClosed(t *testing.T) {
	st := newStore(t)
	st.Close()
	var out bytes.Buffer
	created, err := users.EnsureAdmin(context.Background(), st, &out)
	if err == nil || created || out.Len() > 0 {
		t.Errorf("EnsureAdmin on a closed store = %v, %v, output %q; want an error", created, err, out.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestEnsureAdminReportsUnshownPassword checks that a password that could
// not be shown is an error: the account exists, but nobody knows how to use
// it.
func TestEnsureAdminReportsUnshownPassword(t *testing.T) {
	st := newStore(t)
	created, err := users.EnsureAdmin(context.Background(), st, failingWriter{})
	if err == nil || !created {
		t.Errorf("EnsureAdmin with a failing writer = %v, %v; want true and an error", created, err)
	}
}
