package gateway

import (
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

func mustID(t *testing.T, v any) jsonrpc.ID {
	t.Helper()
	id, err := jsonrpc.MakeID(v)
	if err != nil {
		t.Fatalf("MakeID(%v): %v", v, err)
	}
	return id
}

// TestIDKey guards request bookkeeping: 1 and "1" are different JSON-RPC
// ids, so a client using both must not have one request's cancel or
// duplicate check hit the other.
func TestIDKey(t *testing.T) {
	tests := []struct {
		a, b any
		same bool
	}{
		{float64(1), "1", false},
		{float64(1), float64(1), true},
		{float64(2), float64(1), false},
		{"1", "1", true},
		{"n:1", float64(1), false},
		{"", float64(0), false},
		{float64(-1), "-1", false},
		{"s:x", "x", false},
	}
	for _, tt := range tests {
		ka, kb := idKey(mustID(t, tt.a)), idKey(mustID(t, tt.b))
		if (ka == kb) != tt.same {
			t.Errorf("idKey(%#v) = %q, idKey(%#v) = %q; same = %v, want %v", tt.a, ka, tt.b, kb, ka == kb, tt.same)
		}
	}
	if k := idKey(jsonrpc.ID{}); k == idKey(mustID(t, "")) || k == idKey(mustID(t, float64(0))) {
		t.Errorf("the absent id shares key %q with a real id", k)
	}
}

func TestLogSeverity(t *testing.T) {
	order := []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}
	for i, level := range order {
		if got := logSeverity(level); got != i {
			t.Errorf("logSeverity(%q) = %d, want %d", level, got, i)
		}
	}
	for _, bad := range []string{"", "INFO", "warn", "fatal", " info", "trace"} {
		if got := logSeverity(bad); got >= 0 {
			t.Errorf("logSeverity(%q) = %d, want < 0", bad, got)
		}
	}
}

func TestWantsLog(t *testing.T) {
	tests := []struct {
		min, level string
		want       bool
	}{
		{"", "debug", true},
		{"", "bogus", true},
		{"debug", "debug", true},
		{"warning", "error", true},
		{"warning", "warning", true},
		{"warning", "info", false},
		{"warning", "bogus", false},
		{"emergency", "alert", false},
		{"emergency", "emergency", true},
	}
	g := New(Options{})
	for _, tt := range tests {
		s := g.NewEphemeral("c")
		s.logLevel = tt.min
		if got := s.wantsLog(tt.level); got != tt.want {
			t.Errorf("min %q, level %q: wantsLog = %v, want %v", tt.min, tt.level, got, tt.want)
		}
	}
}

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewSessionID()
		if len(id) != 32 {
			t.Fatalf("session id %q has %d characters, want 32", id, len(id))
		}
		for _, r := range id {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("session id %q has a character outside visible ASCII", id)
			}
		}
		if seen[id] {
			t.Fatalf("session id %q repeated", id)
		}
		seen[id] = true
	}
}
