package frontend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/gateway"
	"github.com/mandate-mcp/mandate/internal/policy"
)

func TestTraceID(t *testing.T) {
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"version 00", []string{"00-" + trace + "-00f067aa0ba902b7-01"}, trace},
		{"future version with more fields", []string{"cc-" + trace + "-00f067aa0ba902b7-09-what-comes-next"}, trace},
		{"none", nil, ""},
		{"two headers", []string{"00-" + trace + "-00f067aa0ba902b7-01", "00-" + trace + "-00f067aa0ba902b7-01"}, ""},
		{"version 00 with more fields", []string{"00-" + trace + "-00f067aa0ba902b7-01-x"}, ""},
		{"version ff", []string{"ff-" + trace + "-00f067aa0ba902b7-01"}, ""},
		{"upper case", []string{"00-" + strings.ToUpper(trace) + "-00f067aa0ba902b7-01"}, ""},
		{"zero trace id", []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"zero parent id", []string{"00-" + trace + "-0000000000000000-01"}, ""},
		{"short", []string{"00-" + trace[:31] + "-00f067aa0ba902b7-01"}, ""},
		{"not hex", []string{"00-" + trace[:31] + "g-00f067aa0ba902b7-01"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := traceID(tt.values)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("traceID(%q) = %q, %v; want %q", tt.values, got, ok, tt.want)
			}
		})
	}
}

// traceAuditor keeps the trace ids of the records the gateway appends.
type traceAuditor struct {
	mu     sync.Mutex
	traces []string
}

func (a *traceAuditor) Append(_ context.Context, r audit.Record) (audit.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.traces = append(a.traces, r.Method+" "+r.TraceID)
	r.ID = "aud_test"
	return r, nil
}

// TestTraceparentReachesAudit: the trace id of a request's traceparent
// header is what the gateway records the request under.
func TestTraceparentReachesAudit(t *testing.T) {
	a := &traceAuditor{}
	gw := gateway.New(gateway.Options{Policy: policy.AllowAll(), Audit: a})
	defer gw.Close()
	srv := httptest.NewServer(New(Options{Gateway: gw, Listen: "127.0.0.1:0"}).Handler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d", resp.StatusCode)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.traces) != 1 || a.traces[0] != "initialize 4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("recorded %q", a.traces)
	}
}
