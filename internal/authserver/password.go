package authserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// argonParams are the cost parameters of an argon2id hash.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// Human passwords get OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane):
// guessing stays expensive while a login stays well under the flow's time
// budget. Client secrets Mandate generates carry 256 bits of entropy, so
// nobody can guess them whatever the cost, and they get the cheapest
// parameters: every token request of a confidential agent verifies one.
var (
	passwordParams = argonParams{memory: 19 * 1024, time: 2, threads: 1}
	secretParams   = argonParams{memory: 1024, time: 1, threads: 1}
)

// Bounds on parameters read back from a stored hash, so that a corrupted or
// hostile record cannot make a verification allocate gigabytes.
const (
	maxArgonMemory  = 256 * 1024
	maxArgonTime    = 16
	maxArgonThreads = 16
	argonKeyLen     = 32
	argonSaltLen    = 16
)

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC-format argon2id hash of a human password.
func hashPassword(password string) (string, error) {
	return hashArgon(password, passwordParams)
}

// hashSecret returns the PHC-format argon2id hash of a generated client
// secret.
func hashSecret(secret string) (string, error) {
	return hashArgon(secret, secretParams)
}

func hashArgon(secret string, p argonParams) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash: %w", err)
	}
	sum := argon2.IDKey([]byte(secret), salt, p.time, p.memory, p.threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

var errBadHash = errors.New("not a supported argon2id hash")

// verifyPassword reports whether password matches the PHC argon2id hash.
// The comparison is constant-time; a malformed hash never matches.
func verifyPassword(hash, password string) bool {
	p, salt, want, err := parseArgon(hash)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified against when the user does not exist, so that an
// unknown username costs as much as a wrong password and the response time
// does not reveal which usernames exist.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword("mandate: no such user")
	if err != nil {
		panic(err)
	}
	return h
})

func parseArgon(hash string) (argonParams, []byte, []byte, error) {
	var p argonParams
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, nil, nil, errBadHash
	}
	if p.memory == 0 || p.memory > maxArgonMemory || p.time == 0 || p.time > maxArgonTime ||
		threads == 0 || threads > maxArgonThreads {
		return p, nil, nil, errBadHash
	}
	p.threads = uint8(threads)
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errBadHash
	}
	sum, err := b64.DecodeString(parts[5])
	if err != nil || len(sum) < 16 || len(sum) > 64 {
		return p, nil, nil, errBadHash
	}
	return p, salt, sum, nil
}
