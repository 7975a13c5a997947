package authserver

import (
	"sync"

	"github.com/mandate-mcp/mandate/internal/users"
)

// Passwords and client secrets are hashed and checked by package users,
// the one place that decides their parameters; these adapters give the
// shapes the rest of this package uses.

// hashSecret returns the hash of a client secret (users.HashSecret).
func hashSecret(secret string) (string, error) { return users.HashSecret(secret) }

// verifyPassword reports whether password (or client secret) matches the
// stored hash. A hash that cannot be verified never matches.
func verifyPassword(hash, password string) bool {
	ok, err := users.VerifyPassword(hash, password)
	return err == nil && ok
}

// dummyHash is verified against when the user does not exist, so that an
// unknown username costs as much as a wrong password and the response time
// does not reveal which usernames exist.
var dummyHash = sync.OnceValue(func() string {
	h, err := users.HashPassword("mandate: no such user")
	if err != nil {
		panic(err)
	}
	return h
})
