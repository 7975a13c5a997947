package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %s: %v", key, err)) // only called with plain values
	}
	o[key] = b
}

func (o object) encode() json.RawMessage {
	b, _ := json.Marshal(map[string]json.RawMessage(o))
	return b
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
