package users

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// phcPattern is the shape of every hash HashPassword makes: 16-byte salt
// (22 base64 characters) and 32-byte key (43).
var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	h1, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{h1, h2} {
		if !phcPattern.MatchString(h) {
			t.Errorf("HashPassword = %q, want the PHC argon2id format", h)
		}
	}
	if h1 == h2 {
		t.Errorf("two hashes of one password are equal (%s): the salt is not random", h1)
	}
	p, salt, key, err := decodeHash(h1)
	if err != nil {
		t.Fatal(err)
	}
	if p != (params{memory: 19456, time: 2, threads: 1}) || len(salt) != 16 || len(key) != 32 {
		t.Errorf("decoded %+v, %d-byte salt, %d-byte key; want m=19456 t=2 p=1, 16, 32", p, len(salt), len(key))
	}

	for _, tt := range []struct {
		pw   string
		want bool
	}{
		{pw, true},
		{"correct horse battery stapl", false},
		{"Correct horse battery staple", false},
		{pw + " ", false},
		{"", false},
	} {
		got, err := VerifyPassword(h1, tt.pw)
		if err != nil || got != tt.want {
			t.Errorf("VerifyPassword(h, %q) = %v, %v; want %v, nil", tt.pw, got, err, tt.want)
		}
	}
}

// TestHashSecret checks that generated secrets get the cheap parameters,
// and only those, and that VerifyPassword checks them.
func TestHashSecret(t *testing.T) {
	const secret = "c2VjcmV0LXdpdGgtMjU2LWJpdHMtb2YtZW50cm9weS4"
	h, err := HashSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	p, salt, key, err := decodeHash(h)
	if err != nil {
		t.Fatal(err)
	}
	if p != (params{memory: 1024, time: 1, threads: 1}) || len(salt) != 16 || len(key) != 32 {
		t.Errorf("decoded %+v, %d-byte salt, %d-byte key; want m=1024 t=1 p=1, 16, 32", p, len(salt), len(key))
	}
	if again, _ := HashSecret(secret); again == h {
		t.Errorf("two hashes of one secret are equal (%s): the salt is not random", h)
	}
	for _, tt := range []struct {
		secret string
		want   bool
	}{{secret, true}, {secret[1:], false}, {"", false}} {
		if got, err := VerifyPassword(h, tt.secret); err != nil || got != tt.want {
			t.Errorf("VerifyPassword(h, %q) = %v, %v; want %v, nil", tt.secret, got, err, tt.want)
		}
	}
}

// TestVerifyPasswordKnownAnswers pins verification against hashes made
// elsewhere: one from an earlier HashPassword (64 MiB, 3 passes, 2 lanes),
// so a change of format or parameters cannot lock existing users out; the
// password and the client secret hashes of the authorization server's
// former copy of this code, so that accounts and confidential agents it
// stored keep working; and the argon2 reference
// implementation's test vector for argon2id ("password", "somesalt", t=2,
// m=64 KiB, p=2, 24-byte tag), so the parameters are read from the hash and
// not assumed.
func TestVerifyPasswordKnownAnswers(t *testing.T) {
	tests := []struct {
		name, hash, pw string
	}{
		{
			name: "earlier HashPassword",
			hash: "$argon2id$v=19$m=65536,t=3,p=2$yLQe5gJ0CxZ0+t4WnvNZ3Q$PXSxWFyQqeMGIWHzLkiBo0Rhy6d3ySzBRbpukpylGKI",
			pw:   "correct horse battery staple",
		},
		{
			name: "former authorization server password",
			hash: "$argon2id$v=19$m=19456,t=2,p=1$jgTgSWc+ezaraonwiv+pzw$xl0jbeDcI2cC9xkmVl8ezTTbdXgJk2rVUXUSPMqxDbQ",
			pw:   "correct horse battery staple",
		},
		{
			name: "former authorization server client secret",
			hash: "$argon2id$v=19$m=1024,t=1,p=1$61e9ijO1L+4wRKxA34gfiQ$eBnZexYhga3H1y6HJ0wUzRHLRftMf1lbJHDZXuy/66Y",
			pw:   "generated-secret-0123456789abcdef",
		},
		{
			name: "reference vector",
			hash: "$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$NQrDciL0Nsy1wJcvHr079rlYvyBxhBNi",
			pw:   "password",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.hash, tt.pw)
			if err != nil || !ok {
				t.Errorf("VerifyPassword(right password) = %v, %v; want true, nil", ok, err)
			}
			ok, err = VerifyPassword(tt.hash, tt.pw+"!")
			if err != nil || ok {
				t.Errorf("VerifyPassword(wrong password) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

// TestVerifyPasswordReadsParameters checks that every parameter, and the
// key length, comes from the hash: a hash made with other costs verifies,
// and the same key under edited parameters does not.
func TestVerifyPasswordReadsParameters(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, p := range []params{
		{memory: 8, time: 1, threads: 1},
		{memory: 256, time: 2, threads: 4},
		{memory: 1024, time: 1, threads: 3},
	} {
		for _, n := range []uint32{16, 32, 64} {
			h := encodeHash(p, salt, derive(p, "pw", salt, n))
			if ok, err := VerifyPassword(h, "pw"); err != nil || !ok {
				t.Errorf("VerifyPassword(%s) = %v, %v; want true, nil", h, ok, err)
			}
			edited := p
			edited.time++
			h = encodeHash(edited, salt, derive(p, "pw", salt, n))
			if ok, err := VerifyPassword(h, "pw"); err != nil || ok {
				t.Errorf("VerifyPassword(%s) with edited t = %v, %v; want false, nil", h, ok, err)
			}
		}
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const (
		salt = "c29tZXNhbHQ"
		key  = "NQrDciL0Nsy1wJcvHr079rlYvyBxhBNi"
	)
	good := "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + key
	if _, _, _, err := decodeHash(good); err != nil {
		t.Fatalf("the base of the table does not parse: %v", err)
	}
	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "password"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=64,t=2,p=2$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=64,t=2,p=2$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=64,t=2,p=2$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=2,p=2$" + salt + "$" + key},
		{"no leading $", "argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + key + "$"},
		{"extra field", good + "$x"},
		{"trailing $", good + "$"},
		{"parameters out of order", "$argon2id$v=19$t=2,m=64,p=2$" + salt + "$" + key},
		{"parameter missing", "$argon2id$v=19$m=64,t=2$" + salt + "$" + key},
		{"parameter extra", "$argon2id$v=19$m=64,t=2,p=2,k=1$" + salt + "$" + key},
		{"parameter with spaces", "$argon2id$v=19$m=64, t=2,p=2$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=2,p=2$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=2,p=2$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=64,t=-2,p=2$" + salt + "$" + key},
		{"not a number", "$argon2id$v=19$m=64,t=two,p=2$" + salt + "$" + key},
		{"over 32 bits", "$argon2id$v=19$m=4294967296,t=2,p=2$" + salt + "$" + key},
		{"memory too large", "$argon2id$v=19$m=4194304,t=2,p=2$" + salt + "$" + key},
		{"memory below 8 per lane", "$argon2id$v=19$m=15,t=2,p=2$" + salt + "$" + key},
		{"time zero", "$argon2id$v=19$m=64,t=0,p=2$" + salt + "$" + key},
		{"time too large", "$argon2id$v=19$m=64,t=1000,p=2$" + salt + "$" + key},
		{"no lanes", "$argon2id$v=19$m=64,t=2,p=0$" + salt + "$" + key},
		{"too many lanes", "$argon2id$v=19$m=4096,t=2,p=256$" + salt + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "=$" + key},
		{"key with a line break", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + key[:10] + "\r\n" + key[10:]},
		{"salt not base64", "$argon2id$v=19$m=64,t=2,p=2$s@lt!salt$" + key},
		{"salt too short", "$argon2id$v=19$m=64,t=2,p=2$" + b64("short") + "$" + key},
		{"salt too long", "$argon2id$v=19$m=64,t=2,p=2$" + b64(strings.Repeat("s", 65)) + "$" + key},
		{"empty key", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$"},
		{"key too short", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + b64("fifteen bytes!!")},
		{"key too long", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + b64(strings.Repeat("k", 65))},
		{"url-safe base64", "$argon2id$v=19$m=64,t=2,p=2$" + salt + "$" + strings.Repeat("_", 21) + "w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.hash, "password")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", tt.hash, ok, err)
			}
		})
	}
}

func b64(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"elevenchars", false},
		{"twelve chars", true},
		{strings.Repeat("é", 11), false}, // 22 bytes, but 11 characters
		{strings.Repeat("é", 12), true},
		{strings.Repeat("x", MaxPasswordBytes), true},
		{strings.Repeat("x", MaxPasswordBytes+1), false},
	}
	for _, tt := range tests {
		if err := CheckPassword(tt.pw); (err == nil) != tt.ok {
			t.Errorf("CheckPassword(%d bytes) = %v, want ok %v", len(tt.pw), err, tt.ok)
		}
	}
}

// FuzzDecodeHash checks that the parser of stored hashes never panics and
// is strict: a hash it accepts is exactly the one encodeHash would write.
func FuzzDecodeHash(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=2$yLQe5gJ0CxZ0+t4WnvNZ3Q$PXSxWFyQqeMGIWHzLkiBo0Rhy6d3ySzBRbpukpylGKI")
	f.Add("$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$NQrDciL0Nsy1wJcvHr079rlYvyBxhBNi")
	f.Add("$argon2id$v=19$m=064,t=2,p=2$c29tZXNhbHQ=$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, hash string) {
		p, salt, key, err := decodeHash(hash)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("decodeHash error %v does not wrap ErrMalformedHash", err)
			}
			return
		}
		if again := encodeHash(p, salt, key); again != hash {
			t.Fatalf("decodeHash accepted %q, which encodes back as %q", hash, again)
		}
	})
}
