// Package loopback answers one question several parts of Mandate ask
// before they accept plain http:// or a private address: does a URL's host
// name this machine? One answer for all of them keeps the exception the
// same everywhere it is made (configured PDPs, issuers, redirect URIs).
package loopback

import (
	"net"
	"strings"
)

// Host reports whether host is "localhost" (any case) or a loopback IP
// literal. Other names are not resolved — a name that resolves to
// 127.0.0.1 today may not tomorrow — so they count as remote.
func Host(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
