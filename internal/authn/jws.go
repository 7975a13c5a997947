package authn

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

// The signature algorithms Mandate accepts. Everything else is refused
// before a key is looked at: "none" (no signature), HS* (a public key used
// as an HMAC secret forges anything), and algorithms no issuer we support
// uses.
const (
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// maxTokenBytes bounds the token parsed; real access tokens, even with a
// few hundred group names, are far smaller.
const maxTokenBytes = 32 << 10

// segment is base64url without padding in its canonical form (unused
// trailing bits zero), so one token has exactly one spelling: a cache key
// or a replay check on the token cannot be dodged by re-encoding it.
var segment = base64.RawURLEncoding.Strict()

// compactJWS is a parsed, not yet verified, JWS compact serialization.
type compactJWS struct {
	signingInput string // header "." payload, as signed
	payload      []byte
	signature    []byte
	alg          string
	kid          string
}

// parseCompact parses a JWS compact serialization strictly: three
// segments of canonical base64url (Go's decoder would skip CR and LF,
// so the alphabet is checked first), a header and payload that are UTF-8
// JSON objects without duplicate members, an allowed alg, an access token
// typ, and no critical extensions, none of which Mandate understands.
// Keys a header names or carries (jku, jwk, x5u, x5c) are ignored: keys
// come only from the issuer's KeySource.
func parseCompact(token string) (*compactJWS, error) {
	if len(token) > maxTokenBytes {
		return nil, invalid("token longer than %d bytes", maxTokenBytes)
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return nil, invalid("not a compact JWS: byte %#x at %d", c, i)
		}
	}
	if dots != 2 {
		return nil, invalid("not a compact JWS: %d segments", dots+1)
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	headerJSON, err := segment.DecodeString(h)
	if err != nil {
		return nil, invalid("header: %v", err)
	}
	payload, err := segment.DecodeString(p)
	if err != nil {
		return nil, invalid("payload: %v", err)
	}
	sig, err := segment.DecodeString(s)
	if err != nil {
		return nil, invalid("signature: %v", err)
	}
	header, err := decodeObject(headerJSON)
	if err != nil {
		return nil, invalid("header: %v", err)
	}
	jws := &compactJWS{
		signingInput: token[:len(h)+1+len(p)],
		payload:      payload,
		signature:    sig,
	}
	if jws.alg, err = stringMember(header, "alg"); err != nil {
		return nil, invalid("header: %v", err)
	}
	switch jws.alg {
	case AlgRS256, AlgES256, AlgEdDSA:
	default:
		return nil, invalid("algorithm %.20q not allowed", jws.alg)
	}
	if jws.kid, err = stringMember(header, "kid"); err != nil {
		return nil, invalid("header: %v", err)
	}
	typ, err := stringMember(header, "typ")
	if err != nil {
		return nil, invalid("header: %v", err)
	}
	if !accessTokenType(typ) {
		return nil, invalid("typ %.40q is not an access token", typ)
	}
	for _, name := range []string{"crit", "cty", "b64"} {
		if _, ok := header[name]; ok {
			return nil, invalid("header parameter %q not supported", name)
		}
	}
	return jws, nil
}

// accessTokenType reports whether a JWS typ header fits an access token:
// RFC 9068's at+jwt, plain JWT, or none. Tokens of other types signed by
// the same keys — ID-JAG assertions, DPoP proofs, logout tokens — are
// refused so they cannot be replayed as access tokens.
func accessTokenType(typ string) bool {
	t := strings.ToLower(typ)
	t = strings.TrimPrefix(t, "application/")
	return typ == "" || t == "at+jwt" || t == "jwt"
}

// verify checks the signature against the keys of set that fit the
// token's alg and kid. It reports errNoKey when the set holds no key with
// the token's kid, so that the caller may refresh the set and try again.
func (j *compactJWS) verify(set *jose.JSONWebKeySet) error {
	var (
		tried   int
		kidSeen bool
		only    crypto.PublicKey
	)
	for i := range set.Keys {
		k := &set.Keys[i]
		if j.kid != "" {
			if k.KeyID != j.kid {
				continue
			}
			kidSeen = true
		}
		pub, ok := publicKeyFor(j.alg, k)
		if !ok {
			continue
		}
		if j.kid == "" {
			// Without a kid the key must be unambiguous: trying every
			// key would multiply the cost of each forged token.
			if tried++; tried > 1 {
				return invalid("no kid and several %s keys", j.alg)
			}
			only = pub
			continue
		}
		tried++
		if verifySignature(j.alg, pub, j.signingInput, j.signature) {
			return nil
		}
	}
	switch {
	case j.kid != "" && !kidSeen:
		return errNoKey
	case tried == 0:
		return invalid("no %s key fits kid %.80q", j.alg, j.kid)
	case j.kid == "" && verifySignature(j.alg, only, j.signingInput, j.signature):
		return nil
	}
	return invalid("bad signature")
}

// errNoKey means the key set holds no key with the token's kid.
var errNoKey = fmt.Errorf("%w: unknown key", ErrInvalidToken)

// publicKeyFor returns k's public key if it may verify alg: a public
// signing key of the matching type and strength whose own alg, if any,
// is alg. A private or symmetric key in a published set means that key is
// compromised or misfiled; it is never used.
func publicKeyFor(alg string, k *jose.JSONWebKey) (crypto.PublicKey, bool) {
	if k.Use != "" && k.Use != "sig" {
		return nil, false
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return nil, false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return pub, alg == AlgRS256 && pub.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return pub, alg == AlgES256 && pub.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return pub, alg == AlgEdDSA && len(pub) == ed25519.PublicKeySize
	}
	return nil, false
}

// verifySignature reports whether sig signs input under pub with alg; pub
// has already been matched to alg by publicKeyFor.
func verifySignature(alg string, pub crypto.PublicKey, input string, sig []byte) bool {
	switch alg {
	case AlgRS256:
		h := sha256.Sum256([]byte(input))
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, h[:], sig) == nil
	case AlgES256:
		// JWS carries R || S, 32 bytes each (RFC 7518 §3.4), not ASN.1.
		if len(sig) != 64 {
			return false
		}
		h := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub.(*ecdsa.PublicKey), h[:], r, s)
	case AlgEdDSA:
		return ed25519.Verify(pub.(ed25519.PublicKey), []byte(input), sig)
	}
	return false
}

// decodeObject decodes a JSON object into its members, refusing invalid
// UTF-8 (which encoding/json would silently replace, letting two different
// byte strings decode to the same subject), duplicate member names (which
// parsers resolve differently; encoding/json keeps the last), and
// anything but one object. The values alias data.
//
// The input is validated by encoding/json first; the walk below only
// splits a valid object into members, which costs a fraction of
// decoding it into a map.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	if !json.Valid(data) {
		return nil, errors.New("not a JSON object")
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage, 16)
	for i = skipSpace(data, i+1); data[i] != '}'; {
		end := stringEnd(data, i)
		name, err := unquote(data[i:end], "member name")
		if err != nil {
			return nil, err
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %.40q repeated", name)
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past ':'
		end = valueEnd(data, i)
		m[name] = data[i:end:end]
		if i = skipSpace(data, end); data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return m, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at i.
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the index just past the JSON value starting at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(data) && !strings.ContainsRune(",}] \t\n\r", rune(data[i])) {
		i++
	}
	return i
}

// stringMember returns member name of m as a string: "" when absent or
// null, an error when it is not a string.
func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok || isNull(raw) {
		return "", nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("%s is not a string", name)
	}
	return unquote(raw, name)
}

// unquote returns the JSON string raw (already validated, and UTF-8) as a
// Go string, decoding it only when it holds escapes.
func unquote(raw json.RawMessage, name string) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }
