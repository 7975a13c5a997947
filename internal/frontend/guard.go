// Package frontend carries downstream MCP traffic: Streamable HTTP in both
// protocol eras, the legacy HTTP+SSE transport, and stdio. It owns the HTTP
// hygiene a gateway needs (Host/Origin checks, body caps, session ids,
// protocol-version checks) and hands decoded messages to the gateway.
package frontend

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// hostGuard protects against DNS rebinding (requirement T-11): on a loopback
// listener only loopback Host names are accepted, and a browser Origin must
// be loopback or explicitly allowed.
type hostGuard struct {
	loopback       bool
	allowedHosts   []string
	allowedOrigins []string
}

func newHostGuard(listen string, hosts, origins []string) *hostGuard {
	h, _, err := net.SplitHostPort(listen)
	if err != nil {
		h = listen
	}
	return &hostGuard{loopback: isLoopbackHost(h) || h == "", allowedHosts: lower(hosts), allowedOrigins: lower(origins)}
}

func lower(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(strings.TrimSuffix(s, "/"))
	}
	return out
}

func isLoopbackHost(h string) bool {
	h = strings.Trim(strings.ToLower(h), "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// check returns "" when the request may proceed, or the reason it may not.
func (g *hostGuard) check(r *http.Request) string {
	host := strings.ToLower(hostOnly(r.Host))
	if g.loopback && !isLoopbackHost(host) && !slices.Contains(g.allowedHosts, host) && !slices.Contains(g.allowedHosts, strings.ToLower(r.Host)) {
		return "invalid Host header"
	}
	if !g.loopback && len(g.allowedHosts) > 0 && !slices.Contains(g.allowedHosts, host) && !slices.Contains(g.allowedHosts, strings.ToLower(r.Host)) {
		return "invalid Host header"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	o := strings.ToLower(strings.TrimSuffix(origin, "/"))
	if slices.Contains(g.allowedOrigins, o) || slices.Contains(g.allowedOrigins, "*") {
		return ""
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackHost(u.Hostname()) {
		return "invalid Origin header"
	}
	return ""
}
