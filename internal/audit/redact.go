package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Redacted replaces every value a rule matches.
const Redacted = "[redacted]"

// Rules say which values never reach an audit record.
type Rules struct {
	// Keys are regular expressions matched, case-insensitively and
	// anywhere in the name, against argument and detail keys at every
	// depth. A match replaces the key's whole value, whatever its type.
	Keys []string
	// Values are regular expressions matched against string values and
	// free text. In arguments a match replaces the whole string; in free
	// text (intent, error, names) the matched text.
	Values []string
	// MaxString is the longest string argument kept, in bytes; a longer one
	// is cut. Zero means 2048; negative keeps strings whole.
	MaxString int
}

// DefaultRules are the rules every deployment starts from; configured rules
// are added to them, never substituted, so a configuration cannot
// accidentally switch redaction off.
func DefaultRules() Rules {
	return Rules{
		Keys: []string{
			`passw(or)?d`, `passphrase`, `secret`, `token`, `api[-_]?key`, `access[-_]?key`, `private[-_]?key`,
			`authorization`, `^auth$`, `credential`, `cookie`, `session[-_]?key`, `^otp$`, `^pin$`, `^cvv$`,
		},
		Values: []string{
			// JSON Web Tokens (and the header.payload of unsigned ones).
			`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`,
			// HTTP credentials.
			`(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`,
			// PEM private keys, also when cut short.
			`(?s)-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)`,
			// AWS access key ids.
			`\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b`,
			// GitHub tokens.
			`\bgh[pousr]_[A-Za-z0-9]{30,}`, `\bgithub_pat_[A-Za-z0-9_]{30,}`,
			// Slack tokens and webhooks.
			`\bxox[abposre]-[A-Za-z0-9-]{10,}`, `https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+`,
			// OpenAI, Anthropic and Stripe secret keys; Google API keys.
			`\bsk-[A-Za-z0-9_-]{20,}`, `\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}`, `\bAIza[0-9A-Za-z_-]{35}`,
			// Passwords in URLs.
			`\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@`,
		},
	}
}

// Redactor applies Rules, and keys argument digests.
type Redactor struct {
	keys      *regexp.Regexp
	values    *regexp.Regexp
	maxString int
	digestKey []byte

	// secretKeys remembers which argument names the key rules match: the
	// same few names come back on every call of a tool.
	secretKeys sync.Map // string → bool
	remembered atomic.Int64
}

// maxRemembered bounds secretKeys, since names are chosen by clients.
const maxRemembered = 4096

// NewRedactor compiles rules. digestKey keys the HMAC of ArgsDigest; without
// one no digest is computed, as an unkeyed hash of low-entropy arguments
// would let anyone holding the log confirm a guess of them.
func NewRedactor(rules Rules, digestKey []byte) (*Redactor, error) {
	r := &Redactor{maxString: rules.MaxString, digestKey: digestKey}
	if r.maxString == 0 {
		r.maxString = 2048
	}
	var err error
	if r.keys, err = union(rules.Keys, "(?i)"); err != nil {
		return nil, fmt.Errorf("audit redaction key rule: %w", err)
	}
	if r.values, err = union(rules.Values, ""); err != nil {
		return nil, fmt.Errorf("audit redaction value rule: %w", err)
	}
	return r, nil
}

// union compiles patterns into one alternation, each checked on its own
// first so an error names the pattern at fault.
func union(patterns []string, flags string) (*regexp.Regexp, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	parts := make([]string, len(patterns))
	for i, p := range patterns {
		if _, err := regexp.Compile(flags + p); err != nil {
			return nil, err
		}
		parts[i] = "(?:" + p + ")"
	}
	return regexp.Compile(flags + strings.Join(parts, "|"))
}

// Args returns a redacted deep copy of args: values under secret-looking
// keys and strings that look like credentials become Redacted, a key that
// itself looks like a credential is renamed, and long strings are cut.
func (r *Redactor) Args(args map[string]any) map[string]any {
	if args == nil {
		return nil
	}
	return r.object(args, 0)
}

// Text returns s with every credential-looking substring replaced.
func (r *Redactor) Text(s string) string {
	if r.values == nil || s == "" {
		return s
	}
	return r.values.ReplaceAllLiteralString(s, Redacted)
}

// Digest returns the hex HMAC-SHA256 of args' canonical JSON (keys sorted,
// numbers as their shortest float64 form, as the policy saw them), or "" when
// the Redactor has no digest key.
func (r *Redactor) Digest(args map[string]any) (string, error) {
	if len(r.digestKey) == 0 {
		return "", nil
	}
	if args == nil {
		args = map[string]any{}
	}
	b, err := canonicalJSON(args)
	if err != nil {
		return "", err
	}
	return r.mac(b), nil
}

// DigestText returns the keyed digest of s, for values that identify
// something without being safe to record, such as a session id; "" when
// the Redactor has no digest key.
func (r *Redactor) DigestText(s string) string {
	if len(r.digestKey) == 0 || s == "" {
		return ""
	}
	return r.mac([]byte(s))
}

func (r *Redactor) mac(b []byte) string {
	m := hmac.New(sha256.New, r.digestKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// maxDepth bounds how deep redaction follows nested values; deeper values
// are dropped rather than recorded unexamined.
const maxDepth = 32

func (r *Redactor) object(m map[string]any, depth int) map[string]any {
	out := make(map[string]any, len(m))
	n := 0
	for k, v := range m {
		name := k
		if r.secretValue(k) {
			n++
			name = Redacted + "#" + strconv.Itoa(n)
		}
		if r.secretKey(k) {
			out[name] = Redacted
			continue
		}
		out[name] = r.value(v, depth+1)
	}
	return out
}

func (r *Redactor) value(v any, depth int) any {
	if depth > maxDepth {
		return "[too deep]"
	}
	switch x := v.(type) {
	case map[string]any:
		return r.object(x, depth)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = r.value(e, depth+1)
		}
		return out
	case string:
		if r.secretValue(x) {
			return Redacted
		}
		return cutString(sanitize(x), r.maxString)
	case nil, bool, json.Number:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
		return x
	case float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return x
	default:
		// Another Go value is redacted as the JSON it encodes to, the form
		// the decision saw it in.
		b, err := json.Marshal(x)
		if err != nil {
			return "[unencodable]"
		}
		var generic any
		if json.Unmarshal(b, &generic) != nil {
			return "[unencodable]"
		}
		return r.value(generic, depth)
	}
}

func (r *Redactor) secretKey(k string) bool {
	if r.keys == nil {
		return false
	}
	if v, ok := r.secretKeys.Load(k); ok {
		return v.(bool)
	}
	secret := r.keys.MatchString(k)
	if r.remembered.Add(1) <= maxRemembered {
		r.secretKeys.Store(k, secret)
	}
	return secret
}

func (r *Redactor) secretValue(s string) bool {
	return r.values != nil && r.values.MatchString(s)
}

// cutString shortens s to at most n bytes on a rune boundary, saying how
// long it was.
func cutString(s string, n int) string {
	if n < 0 || len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[" + strconv.Itoa(len(s)) + " bytes]"
}

// canonicalJSON encodes v with object keys sorted bytewise, no
// insignificant whitespace, strings escaped only where JSON requires (invalid
// UTF-8 as U+FFFD) and every number in its shortest float64 form, so that 1,
// 1.0 and 1e0 digest alike, as the policy saw them alike.
func canonicalJSON(v any) ([]byte, error) {
	return appendCanonical(make([]byte, 0, 256), v, 0)
}

func appendCanonical(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("canonical arguments: nested too deeply")
	}
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case string:
		return appendJSONString(b, x), nil
	case float64:
		return appendNumber(b, x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("canonical arguments: number %s: %w", x, err)
		}
		return appendNumber(b, f)
	case int:
		return appendNumber(b, float64(x))
	case int64:
		return appendNumber(b, float64(x))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, k), ':')
			if b, err = appendCanonical(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendCanonical(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	default:
		// Any other Go value counts as the JSON it encodes to.
		raw, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("canonical arguments: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var generic any
		if err := dec.Decode(&generic); err != nil {
			return nil, fmt.Errorf("canonical arguments: %w", err)
		}
		return appendCanonical(b, generic, depth)
	}
}

func appendNumber(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("canonical arguments: a number is not finite")
	}
	if f == 0 {
		f = 0 // -0 and 0 are one number to JSON.
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64), nil
}

// appendJSONString appends s as a JSON string, escaping only quotes,
// backslashes and control characters.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// marshalNoEscape is json.Marshal without HTML escaping: "<" stays itself,
// as in RFC 8785.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
