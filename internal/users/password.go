package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Parameters of new password hashes: OWASP's argon2id baseline (19 MiB,
// 2 passes, 1 lane). A human's login runs one verification inside a flow
// whose whole time budget is 300 ms, on the machine that also proxies MCP
// traffic, and several logins may arrive at once; these costs keep one
// verification to about 20 ms on one core of a current server CPU, while
// every guess against a stolen hash still costs 19 MiB of memory. Stored
// hashes carry their own parameters, so changing these leaves old hashes
// (such as the 64 MiB, 3-pass ones of earlier releases) verifiable.
const (
	hashMemory  = 19 * 1024 // KiB
	hashTime    = 2
	hashThreads = 1
	saltLen     = 16
	keyLen      = 32
)

// Parameters of secret hashes (HashSecret): 1 MiB and 1 pass, about 1 ms.
// A slow hash protects low-entropy secrets, the kind humans choose; a
// secret Mandate generates has 256 random bits, so a stolen hash cannot be
// reversed by guessing whatever one guess costs. The cheap
// parameters matter because a confidential agent's secret is verified on
// every one of its token requests.
const (
	secretMemory  = 1024 // KiB
	secretTime    = 1
	secretThreads = 1
)

// Bounds on the parameters VerifyPassword accepts. A hash is read from the
// store, and one with absurd parameters (planted or corrupted) must not make
// a login allocate gigabytes or spin for minutes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// Password length limits. The minimum is the floor that makes a guessed
// password expensive even against a stolen hash; the maximum bounds the work
// an unauthenticated login can cause.
const (
	MinPasswordLength = 12   // characters
	MaxPasswordBytes  = 1024 // bytes
)

// ErrMalformedHash reports a stored hash that is not an argon2id PHC string
// Mandate can verify. It is never a wrong password.
var ErrMalformedHash = errors.New("malformed password hash")

// params are the argon2id cost parameters a hash was made with.
type params struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}

// CheckPassword reports why pw cannot be a password, or nil.
func CheckPassword(pw string) error {
	switch {
	case utf8.RuneCountInString(pw) < MinPasswordLength:
		return fmt.Errorf("password must be at least %d characters", MinPasswordLength)
	case len(pw) > MaxPasswordBytes:
		return fmt.Errorf("password must be at most %d bytes", MaxPasswordBytes)
	}
	return nil
}

// HashPassword returns an argon2id hash of a human's password pw in PHC
// string format, "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>", with a
// fresh 16-byte salt and a 32-byte key, both in unpadded standard base64.
func HashPassword(pw string) (string, error) {
	return hash(params{memory: hashMemory, time: hashTime, threads: hashThreads}, pw)
}

// HashSecret returns an argon2id hash, in the format of HashPassword but
// with cheap parameters, of a secret Mandate generated itself with at
// least 256 bits of entropy (an agent's client secret). It must never hash
// anything a human chose: that is what HashPassword is for. VerifyPassword
// checks both kinds.
func HashSecret(secret string) (string, error) {
	return hash(params{memory: secretMemory, time: secretTime, threads: secretThreads}, secret)
}

func hash(p params, pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	return encodeHash(p, salt, derive(p, pw, salt, keyLen)), nil
}

// VerifyPassword reports whether pw matches hash, a string HashPassword or
// HashSecret made (or another argon2id PHC string within sane bounds); the
// parameters are read from the hash. The comparison
// takes the same time wherever the keys differ. A wrong password is (false,
// nil); a hash that cannot be verified is (false, ErrMalformedHash), so a
// caller can tell a typo from a broken record and log the latter.
func VerifyPassword(hash, pw string) (bool, error) {
	p, salt, key, err := decodeHash(hash)
	if err != nil {
		return false, err
	}
	got := derive(p, pw, salt, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func derive(p params, pw string, salt []byte, n uint32) []byte {
	return argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, n)
}

func encodeHash(p params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodeHash parses a PHC argon2id string strictly: the fields in their
// canonical order, decimal numbers without signs or leading zeros, and
// unpadded base64, so that one hash has one spelling.
func decodeHash(hash string) (params, []byte, []byte, error) {
	bad := func(why string) (params, []byte, []byte, error) {
		return params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=19$m=…,t=…,p=…$salt$key")
	}
	if parts[1] != "argon2id" {
		return bad("not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("unsupported version")
	}

	var p params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("want parameters m, t and p")
	}
	var nums [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return bad("want parameters m, t and p")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || strconv.FormatUint(n, 10) != v {
			return bad("parameter " + name + " is not a number")
		}
		nums[i] = n
	}
	switch {
	case nums[2] < 1 || nums[2] > 255:
		return bad("p out of range")
	case nums[1] < 1 || nums[1] > maxTime:
		return bad("t out of range")
	case nums[0] < 8*nums[2] || nums[0] > maxMemory:
		return bad("m out of range")
	}
	p.memory, p.time, p.threads = uint32(nums[0]), uint32(nums[1]), uint8(nums[2])

	salt, ok := decodeB64(parts[4])
	if !ok || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("bad salt")
	}
	key, ok := decodeB64(parts[5])
	if !ok || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("bad key")
	}
	return p, salt, key, nil
}

// decodeB64 decodes unpadded standard base64 that is spelled exactly as the
// encoder would write it. The decoder alone is not enough: it skips CR and
// LF anywhere in its input.
func decodeB64(s string) ([]byte, bool) {
	enc := base64.RawStdEncoding.Strict()
	b, err := enc.DecodeString(s)
	return b, err == nil && enc.EncodeToString(b) == s
}
