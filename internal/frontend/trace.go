package frontend

import (
	"net/http"

	"github.com/mandate-mcp/mandate/internal/gateway"
)

// traced passes the trace id of a request's W3C traceparent header to the
// gateway in the request's context, so that the audit records of a call
// name the trace it belongs to. A malformed header is ignored, as Trace
// Context requires of a receiver; Mandate starts no trace of its own.
func traced(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id, ok := traceID(r.Header.Values("Traceparent")); ok {
			r = r.WithContext(gateway.WithTraceID(r.Context(), id))
		}
		h(w, r)
	}
}

// traceID returns the trace id of a traceparent header
// (version-traceid-parentid-flags, W3C Trace Context §3.2). There must be
// exactly one header; a version Mandate does not know is read as version
// 00, as the specification asks, provided it is at least that long.
func traceID(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	v := values[0]
	if len(v) < 55 || (len(v) > 55 && (v[:2] == "00" || v[55] != '-')) {
		return "", false
	}
	if !lowerHex(v[0:2]) || v[:2] == "ff" || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	trace, parent, flags := v[3:35], v[36:52], v[53:55]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) || allZero(trace) || allZero(parent) {
		return "", false
	}
	return trace, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
