// Package users manages Mandate's local accounts: how their passwords are
// hashed and checked, how one is added, and the first administrator of a
// fresh installation. It is also the one place where Mandate hashes and
// checks any secret, so the authorization server's client secrets are
// hashed here too. It works on any store it is given.
package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// AdminUsername is the name of the account EnsureAdmin creates.
const AdminUsername = "admin"

// AdminGroup is the group whose members may administer Mandate (the admin
// API). EnsureAdmin puts the first account in it.
const AdminGroup = "admin"

// Creator is the part of the user store that Add and EnsureAdmin need, so
// that a component holding only a slice of the storage contract (the
// authorization server) can use them.
type Creator interface {
	CreateUser(ctx context.Context, u store.User) error
	CountUsers(ctx context.Context) (int, error)
}

// Interface guard.
var _ Creator = (store.UserStore)(nil)

// adminPasswordLength is the length of the generated first password: 20
// characters from a 57-character alphabet, about 116 bits.
const adminPasswordLength = 20

// passwordAlphabet leaves out characters that are easily misread (0/O,
// 1/l/I), since the first password is read off a terminal and typed.
const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// usernamePattern keeps login names printable, unambiguous in a table and
// safe in a URL path; an e-mail address is a valid username.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// Spec is a local account to add.
type Spec struct {
	// Username is the login name: 1 to 64 of A-Z a-z 0-9 . _ @ + -,
	// starting with a letter or digit.
	Username string
	// Email is optional; when set it is a bare address (no display name).
	Email string
	// Groups are optional group names, without spaces or commas.
	Groups []string
	// Password is the clear-text password; see CheckPassword. Only its
	// hash is stored.
	Password string
}

// Check reports every reason s cannot be added, joined, or nil.
func (s Spec) Check() error {
	var errs []error
	if !usernamePattern.MatchString(s.Username) {
		errs = append(errs, errors.New("username must be 1 to 64 of A-Z a-z 0-9 . _ @ + -, starting with a letter or digit"))
	}
	if s.Email != "" {
		if a, err := mail.ParseAddress(s.Email); err != nil || a.Address != s.Email || a.Name != "" {
			errs = append(errs, errors.New("email must be a bare address such as alice@example.com"))
		}
	}
	for _, g := range s.Groups {
		if g == "" || strings.ContainsAny(g, ", \t\r\n") {
			errs = append(errs, fmt.Errorf("group %q must be non-empty, without spaces or commas", g))
		}
	}
	if err := CheckPassword(s.Password); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Add creates the local account s with a random 128-bit hex ID. A taken
// username gives an error wrapping store.ErrConflict.
func Add(ctx context.Context, us Creator, s Spec) (store.User, error) {
	if err := s.Check(); err != nil {
		return store.User{}, err
	}
	hash, err := HashPassword(s.Password)
	if err != nil {
		return store.User{}, err
	}
	u := store.User{
		ID:           newID(),
		Username:     s.Username,
		Email:        s.Email,
		Groups:       slices.Clone(s.Groups),
		PasswordHash: hash,
		CreatedAt:    time.Now().UTC().Truncate(store.TimePrecision),
	}
	if err := us.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("user %q already exists: %w", s.Username, err)
		}
		return store.User{}, fmt.Errorf("add user %q: %w", s.Username, err)
	}
	return u, nil
}

// EnsureAdmin gives a fresh installation its first account: when the store
// has no users at all, it creates AdminUsername, in AdminGroup, with a
// random password and writes that password to w, the only place it ever
// appears; only its hash is stored. It reports whether it created the
// account. Replicas starting together may all call it; the one that loses
// the race for the username creates nothing.
func EnsureAdmin(ctx context.Context, us Creator, w io.Writer) (created bool, err error) {
	n, err := us.CountUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	pw := randomPassword(adminPasswordLength)
	u, err := Add(ctx, us, Spec{Username: AdminUsername, Groups: []string{AdminGroup}, Password: pw})
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := fmt.Fprintf(w, "Created the first user, %q, with password %s\nIt is shown only this once.\n", u.Username, pw); err != nil {
		return true, fmt.Errorf("show the password of user %q: %w", u.Username, err)
	}
	return true, nil
}

// newID returns a random 128-bit identifier in hex.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b) // Never fails: crypto/rand.Read crashes the program instead.
	return hex.EncodeToString(b)
}

// randomPassword returns n characters of passwordAlphabet, each uniform:
// bytes that would bias the choice are drawn again.
func randomPassword(n int) string {
	const a = len(passwordAlphabet)
	limit := byte(256 - 256%a)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if b < limit && len(out) < n {
				out = append(out, passwordAlphabet[int(b)%a])
			}
		}
	}
	return string(out)
}
