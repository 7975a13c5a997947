package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"
)

// referenceDecode is decodeObject written the slow, obvious way with
// encoding/json's tokenizer: the oracle FuzzDecodeObject compares with.
func referenceDecode(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := t.(string)
		if _, dup := m[name]; dup {
			return nil, errors.New("repeated")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return m, nil
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{`{}`, map[string]string{}},
		{" \t\r\n{ } \n", map[string]string{}},
		{`{"a":1}`, map[string]string{"a": "1"}},
		{`{"a" : -1.5e3 , "b":true,"c":null}`, map[string]string{"a": "-1.5e3", "b": "true", "c": "null"}},
		{`{"a":"x\"}y","b":{"a":[1,{"a":"]"}]},"c":[]}`, map[string]string{"a": `"x\"}y"`, "b": `{"a":[1,{"a":"]"}]}`, "c": "[]"}},
		{`{"\u0061\\":"\\"}`, map[string]string{`a\`: `"\\"`}},
		{`{"a":1,"b":{"a":2}}`, map[string]string{"a": "1", "b": `{"a":2}`}},
		{`{"a":1,"a":2}`, nil},
		{`{"a":1,"\u0061":2}`, nil},
		{`{"a":1}{}`, nil},
		{`{"a":1,}`, nil},
		{`["a"]`, nil},
		{`null`, nil},
		{`"a"`, nil},
		{``, nil},
		{"{\"a\":\"\xff\"}", nil},
	}
	for _, tc := range tests {
		got, err := decodeObject([]byte(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("decodeObject(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("decodeObject(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		for k, v := range tc.want {
			if string(got[k]) != v {
				t.Errorf("decodeObject(%q)[%q] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

// FuzzDecodeObject checks decodeObject against referenceDecode: the same
// inputs accepted, the same members with the same values.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[1,"x",{"c":null}]}`, `{"a":"\"","a":1}`, `{"a":1}x`, `{"\u0061":{"a":{}}}`, ` {"a" : "b" } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeObject(data)
		want, werr := referenceDecode(data)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeObject(%q): err %v, reference err %v", data, err, werr)
		}
		if err != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("decodeObject(%q) = %q, reference %q", data, got, want)
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("decodeObject(%q)[%q] = %q, reference %q", data, k, got[k], v)
			}
		}
	})
}
