package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestDecodeObjectEmpty(t *testing.T) {
	for _, raw := range []string{"", " ", "\n\t", "null", " null "} {
		o, err := decodeObject(json.RawMessage(raw))
		if err != nil {
			t.Errorf("decodeObject(%q) error %v", raw, err)
			continue
		}
		if o == nil || len(o) != 0 {
			t.Errorf("decodeObject(%q) = %#v, want an empty, non-nil object", raw, o)
		}
		// Callers set members on the result, so it must be writable.
		o.set("k", 1)
		if string(o.encode()) != `{"k":1}` {
			t.Errorf("encode after set = %s", o.encode())
		}
	}
	if o, err := decodeObject(nil); err != nil || o == nil {
		t.Errorf("decodeObject(nil) = %#v, %v", o, err)
	}
	if o, _ := decodeObject(json.RawMessage(`{}`)); string(o.encode()) != `{}` {
		t.Errorf("{} re-encodes as %s", o.encode())
	}
}

func TestDecodeObjectRejects(t *testing.T) {
	for _, raw := range []string{`[1]`, `1`, `"s"`, `true`, `{`, `{"a":}`, `{"a":1}x`, `nul`} {
		if o, err := decodeObject(json.RawMessage(raw)); err == nil {
			t.Errorf("decodeObject(%q) = %#v, want an error", raw, o)
		}
	}
}

// TestObjectKeepsUntouchedMembers guards the promise in object's comment:
// rewriting one member leaves every other member — numbers with their
// original precision, members this version does not know, text with
// characters an HTML-safe encoder would escape — exactly as the peer sent it.
func TestObjectKeepsUntouchedMembers(t *testing.T) {
	members := map[string]string{
		"arguments":  `{"query": "a < b && c > d",  "n": 1.50, "big": 12345678901234567890}`,
		"x-future":   `{"deep":[true,null,1e3,-0.0,"\u00e9\ud83d\ude00"]}`,
		"_meta":      `{"progressToken":"tok","io.example/custom":{"z":1,"a":2}}`,
		"html":       `"<script>&amp;</script>"`,
		"sep":        `"\u2028\u2029"`,
		"emptyArr":   `[ ]`,
		"nullMember": `null`,
	}
	raw := `{"name":"a__echo"`
	for k, v := range members {
		raw += `,"` + k + `":` + v
	}
	raw += `}`

	o, err := decodeObject(json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	o.set("name", "echo")
	out := o.encode()

	var back map[string]json.RawMessage
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("re-encoded object is not JSON: %v\n%s", err, out)
	}
	if string(back["name"]) != `"echo"` {
		t.Errorf("name = %s, want \"echo\"", back["name"])
	}
	for k, v := range members {
		if !bytes.Equal(back[k], []byte(v)) {
			t.Errorf("member %q changed:\n got %s\nwant %s", k, back[k], v)
		}
	}
	if len(back) != len(members)+1 {
		t.Errorf("re-encoded object has %d members, want %d", len(back), len(members)+1)
	}
}

func TestObjectEncodeDeterministic(t *testing.T) {
	o := object{}
	o.set("b", 2)
	o.set("a", "x")
	o.set("c", nil)
	first := string(o.encode())
	for range 10 {
		if got := string(o.encode()); got != first {
			t.Fatalf("encode is not deterministic: %s then %s", first, got)
		}
	}
	if first != `{"a":"x","b":2,"c":null}` {
		t.Errorf("encode = %s", first)
	}
}

func TestObjectStrAndSub(t *testing.T) {
	o, err := decodeObject(json.RawMessage(`{"s":"v","n":1,"o":{"k":"w"},"bad":[1],"nul":null}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ key, want string }{
		{"s", "v"}, {"n", ""}, {"o", ""}, {"missing", ""}, {"nul", ""},
	}
	for _, tt := range tests {
		if got := o.str(tt.key); got != tt.want {
			t.Errorf("str(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := o.sub("o").str("k"); got != "w" {
		t.Errorf("sub(o).str(k) = %q", got)
	}
	for _, k := range []string{"bad", "missing", "nul", "s"} {
		if sub := o.sub(k); sub == nil || len(sub) != 0 {
			t.Errorf("sub(%q) = %#v, want an empty object", k, sub)
		}
	}
}

func TestStripModernMeta(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		changed bool
		want    string // params re-encoded; "" means unchanged
	}{
		{name: "no meta", params: `{"name":"x"}`},
		{name: "null meta", params: `{"_meta":null}`},
		{name: "meta not an object", params: `{"_meta":5}`},
		{name: "no modern keys", params: `{"_meta":{"progressToken":1}}`},
		{
			name:    "only modern keys",
			params:  `{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
			changed: true,
			want:    `{"name":"x"}`,
		},
		{
			name: "modern keys beside others",
			params: `{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
				`"io.modelcontextprotocol/clientInfo":{"name":"c"},"io.modelcontextprotocol/logLevel":"info",` +
				`"progressToken":"t","io.example/x":[1, 2]}}`,
			changed: true,
			want:    `{"_meta":{"io.example/x":[1, 2],"progressToken":"t"}}`,
		},
		{
			name:   "similar but foreign key",
			params: `{"_meta":{"io.modelcontextprotocol/protocolversion":"x"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := decodeObject(json.RawMessage(tt.params))
			if err != nil {
				t.Fatal(err)
			}
			before := string(p.encode())
			if got := stripModernMeta(p); got != tt.changed {
				t.Errorf("stripModernMeta = %v, want %v", got, tt.changed)
			}
			want := tt.want
			if want == "" {
				want = before
			}
			if got := string(p.encode()); got != want {
				t.Errorf("params = %s, want %s", got, want)
			}
		})
	}
}

func TestModernVersion(t *testing.T) {
	meta := func(v string) string {
		return `{"_meta":{"io.modelcontextprotocol/protocolVersion":` + v + `}}`
	}
	tests := []struct {
		params string
		want   string
	}{
		{"", ""},
		{"null", ""},
		{`{}`, ""},
		{`not json`, ""},
		{`{"_meta":"x"}`, ""},
		{meta(`"2026-07-28"`), "2026-07-28"},
		{meta(`"2027-01-01"`), "2027-01-01"},
		{meta(`"2025-11-25"`), ""},
		{meta(`"2024-11-05"`), ""},
		{meta(`""`), ""},
		{meta(`20260728`), ""},
		{`{"protocolVersion":"2026-07-28"}`, ""},
	}
	for _, tt := range tests {
		if got := ModernVersion(json.RawMessage(tt.params)); got != tt.want {
			t.Errorf("ModernVersion(%s) = %q, want %q", tt.params, got, tt.want)
		}
	}
}

func TestSupportedVersion(t *testing.T) {
	for v, want := range map[string]bool{
		"2024-11-05": true, "2025-03-26": true, "2025-06-18": true, "2025-11-25": true, "2026-07-28": true,
		"": false, "2025-01-01": false, "2099-01-01": false, "latest": false,
	} {
		if got := SupportedVersion(v); got != want {
			t.Errorf("SupportedVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestWithCacheHints(t *testing.T) {
	got := withCacheHints(json.RawMessage(`{"tools":[],"ttlMs":60000}`))
	if string(got) != `{"cacheScope":"private","tools":[],"ttlMs":0}` {
		t.Errorf("withCacheHints = %s", got)
	}
	if got := withCacheHints(json.RawMessage(`[1]`)); string(got) != `[1]` {
		t.Errorf("withCacheHints on a non-object = %s, want it unchanged", got)
	}
}

func TestPublicContentsURIs(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			`{"contents":[{"uri":"demo://readme","text":"a <b>"},{"uri":"demo://x","blob":"AA=="}],"x":1}`,
			`{"contents":[{"text":"a <b>","uri":"mandate://p/demo://readme"},{"blob":"AA==","uri":"mandate://p/demo://x"}],"x":1}`,
		},
		{`{"contents":[{"text":"no uri"}]}`, `{"contents":[{"text":"no uri"}]}`},
		{`{"contents":"bad"}`, `{"contents":"bad"}`},
		{`[]`, `[]`},
	}
	for _, tt := range tests {
		if got := publicContentsURIs("p", json.RawMessage(tt.in)); string(got) != tt.want {
			t.Errorf("publicContentsURIs(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestObjectEncodeKeys(t *testing.T) {
	keys := []string{"plain", `quo"te`, `back\slash`, "tab\there", "é", "<&>", "", "\u2028", "bad\xffutf8"}
	o := object{}
	for i, k := range keys {
		o.set(k, i)
	}
	var back map[string]int
	if err := json.Unmarshal(o.encode(), &back); err != nil {
		t.Fatalf("%v\n%s", err, o.encode())
	}
	for i, k := range keys {
		want := k
		if k == "bad\xffutf8" {
			want = "bad\ufffdutf8"
		}
		if v, ok := back[want]; !ok || v != i {
			t.Errorf("key %q: got %d, %v", k, v, ok)
		}
	}
	if !bytes.Contains(o.encode(), []byte(`"<&>":`)) {
		t.Errorf("key <&> was escaped: %s", o.encode())
	}
}

// FuzzDecodeObject feeds arbitrary params through decode, one rewrite and
// encode: the result must be valid JSON that keeps every other member
// byte for byte.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"name":"a__echo","arguments":{"x":[1, 2.50, "<&>"]}}`,
		`null`, ``, `{}`, `{"a":null,"b":""}`, `{"\u0000":1}`, `[1]`, `{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		o, err := decodeObject(raw)
		if err != nil {
			return
		}
		orig := make(map[string][]byte, len(o))
		for k, v := range o {
			orig[k] = bytes.Clone(v)
		}
		o.set("name", "rewritten <&>")
		out := o.encode()
		var back map[string]json.RawMessage
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("encode produced invalid JSON %q from %q: %v", out, raw, err)
		}
		if string(back["name"]) != `"rewritten <&>"` {
			t.Fatalf("name = %s", back["name"])
		}
		for k, v := range orig {
			if k == "name" {
				continue
			}
			if !bytes.Equal(back[k], v) {
				t.Fatalf("member %q changed from %s to %s", k, v, back[k])
			}
		}
		if len(back) != len(orig)+boolInt(orig["name"] == nil) {
			t.Fatalf("%d members after encode, %d before", len(back), len(orig))
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestModernResult(t *testing.T) {
	cases := []struct {
		name, method, in, want string
	}{
		{"adds resultType", "tools/call", `{"content":[]}`, `{"resultType":"complete","content":[]}`},
		{"empty result", "ping", `{}`, `{"resultType":"complete"}`},
		{"empty with spaces", "ping", ` { } `, `{"resultType":"complete"}`},
		{"keeps an existing resultType", "tools/call", `{"resultType":"input_required","requestState":"x"}`, `{"resultType":"input_required","requestState":"x"}`},
		{"nested resultType does not count", "tools/call", `{"structuredContent":{"resultType":"x"}}`, `{"resultType":"complete","structuredContent":{"resultType":"x"}}`},
		{"resources/read gets private cache hints", "resources/read", `{"contents":[]}`, `{"resultType":"complete","ttlMs":0,"cacheScope":"private","contents":[]}`},
		{"resources/read keeps the upstream's hints", "resources/read", `{"contents":[],"ttlMs":5,"cacheScope":"public","resultType":"complete"}`, `{"contents":[],"ttlMs":5,"cacheScope":"public","resultType":"complete"}`},
		{"not an object", "tools/call", `null`, `null`},
		{"malformed", "tools/call", `{"a":`, `{"a":`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(modernResult(c.method, json.RawMessage(c.in))); got != c.want {
				t.Errorf("modernResult(%s) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}
