package gateway

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

func testCodec(key string) *cursorCodec { return &cursorCodec{key: []byte(key)} }

// mint builds a cursor around an arbitrary body with a valid MAC, which only
// a holder of the key can do; it lets the tests reach the checks behind the
// MAC.
func mint(c *cursorCodec, body string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + c.mac(body)
}

func TestCursorRoundTrip(t *testing.T) {
	c := testCodec("k1")
	for _, kind := range []string{"tools", "prompts", "resources", "resource_templates"} {
		for _, off := range []int{0, 1, 2, 499, 500, 1 << 30} {
			cur := c.encode(kind, off)
			got, err := c.decode(kind, cur)
			if err != nil || got != off {
				t.Errorf("decode(%s, encode(%d)) = %d, %v", kind, off, got, err)
			}
			if strings.ContainsAny(cur, "+/= \n") {
				t.Errorf("cursor %q is not URL-safe", cur)
			}
		}
	}
}

func TestCursorRejected(t *testing.T) {
	c := testCodec("k1")
	valid := c.encode("tools", 4)
	b64, mac, _ := strings.Cut(valid, ".")
	flip := func(s string, i int) string {
		r := []byte(s)
		if r[i] == 'A' {
			r[i] = 'B'
		} else {
			r[i] = 'A'
		}
		return string(r)
	}
	tests := []struct {
		name   string
		kind   string
		cursor string
	}{
		{"empty", "tools", ""},
		{"no dot", "tools", b64 + mac},
		{"only a dot", "tools", "."},
		{"MAC missing", "tools", b64 + "."},
		{"body missing", "tools", "." + mac},
		{"tampered MAC", "tools", b64 + "." + flip(mac, 0)},
		{"truncated MAC", "tools", b64 + "." + mac[:len(mac)-1]},
		{"extended MAC", "tools", valid + "A"},
		{"tampered body", "tools", base64.RawURLEncoding.EncodeToString([]byte("tools:0")) + "." + mac},
		{"body not base64", "tools", "!!!." + mac},
		{"padded body", "tools", b64 + "==." + mac},
		{"another key", "tools", testCodec("k2").encode("tools", 4)},
		{"another kind", "prompts", valid},
		{"templates cursor for resources", "resources", c.encode("resource_templates", 2)},
		{"negative offset", "tools", mint(c, "tools:-1")},
		{"garbage offset", "tools", mint(c, "tools:abc")},
		{"empty offset", "tools", mint(c, "tools:")},
		{"overflowing offset", "tools", mint(c, "tools:99999999999999999999999")},
		{"two offsets", "tools", mint(c, "tools:1:2")},
		{"float offset", "tools", mint(c, "tools:1.5")},
		{"no separator", "tools", mint(c, "tools")},
		{"empty body", "tools", mint(c, "")},
		{"kind prefix only", "tools", mint(c, "tool:1")},
		{"space in offset", "tools", mint(c, "tools: 1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := c.decode(tt.kind, tt.cursor); err == nil {
				t.Errorf("decode(%q, %q) = %d, want an error", tt.kind, tt.cursor, n)
			}
		})
	}
}

// FuzzCursor checks that decoding arbitrary input never panics and that a
// cursor is accepted only if the codec itself minted it for that kind and
// offset: the fuzzer does not hold the key, so any accepted mutation would be
// a forgery.
func FuzzCursor(f *testing.F) {
	c := testCodec("fuzz-key")
	other := testCodec("other-key")
	for _, s := range []string{
		c.encode("tools", 0), c.encode("tools", 2), c.encode("prompts", 10),
		c.encode("resource_templates", 1<<20), mint(c, "tools:-1"), mint(c, "tools:x"),
		"", ".", "dG9vbHM6MA.", "dG9vbHM6MA.AAAAAAAAAAAAAAAA",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		for _, kind := range []string{"tools", "prompts", "resources", "resource_templates"} {
			n, err := c.decode(kind, cursor)
			if err != nil {
				continue
			}
			if n < 0 {
				t.Fatalf("decode(%s, %q) accepted negative offset %d", kind, cursor, n)
			}
			_, mac, _ := strings.Cut(cursor, ".")
			if mac != c.mac(kind+":"+strconv.Itoa(n)) {
				t.Fatalf("decode(%s, %q) = %d, but the codec never minted that", kind, cursor, n)
			}
			if _, err := other.decode(kind, cursor); err == nil {
				t.Fatalf("a codec with another key accepted %q", cursor)
			}
		}
	})
}

func TestItemKeys(t *testing.T) {
	items := []string{
		`{"name":"a"}`,
		`{"name":""}`,
		`{"title":"no name"}`,
		`{"name":5}`,
		`not json`,
		`{"name":"b","extra":[1,2]}`,
	}
	raw := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		raw = append(raw, json.RawMessage(it))
	}
	got := itemKeys(raw, "name")
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("itemKeys = %q, want [a b]", got)
	}
}
