package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// object is a JSON object whose members stay raw, so that rewriting one
// member (a name, a cursor, a progress token) keeps every other member —
// including ones this version of Mandate does not know — byte for byte.
type object map[string]json.RawMessage

func decodeObject(raw json.RawMessage) (object, error) {
	o := object{}
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return o, nil
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	if o == nil {
		o = object{}
	}
	return o, nil
}

func (o object) str(key string) string {
	var s string
	if v, ok := o[key]; ok {
		_ = json.Unmarshal(v, &s)
	}
	return s
}

func (o object) set(key string, v any) {
	b, err := marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", key, err)) // only called with plain values
	}
	o[key] = b
}

// encode writes the members in key order and copies each raw member as it
// is: json.Marshal would compact it and escape <, > and & inside its strings,
// so a member Mandate never touched would still reach the peer changed.
func (o object) encode() json.RawMessage {
	keys := slices.Sorted(maps.Keys(o))
	b := make([]byte, 0, 64)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKey(b, k)
		b = append(b, ':')
		if v := o[k]; len(v) > 0 {
			b = append(b, v...)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, '}')
}

// appendKey appends k as a JSON string; keys are almost always plain ASCII,
// which needs no escaping and no encoder on this hot path.
func appendKey(b []byte, k string) []byte {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			kb, _ := marshal(k)
			return append(b, kb...)
		}
	}
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"')
}

// marshal is json.Marshal without HTML escaping, the way the SDK writes
// messages, so that text Mandate re-encodes keeps its characters.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (o object) sub(key string) object {
	s, err := decodeObject(o[key])
	if err != nil {
		return object{}
	}
	return s
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
