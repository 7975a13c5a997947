package authserver

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/loopback"
)

// FuzzCheckRedirectURI: whatever a registration sends, an accepted redirect
// URI is absolute, has no fragment or credentials, and is https, loopback
// http or a scheme a browser does not execute.
func FuzzCheckRedirectURI(f *testing.F) {
	for _, s := range []string{
		"https://a.example/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost/cb",
		"cursor://anysphere/cb", "javascript:alert(1)", "JaVaScRiPt:alert(1)", "http://evil.example/cb",
		"https://u:p@a.example/", "https://a.example/#x", "http://127.0.0.1.evil.example/", "//a.example/cb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkRedirectURI(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.User != nil || strings.Contains(s, "#") {
			t.Fatalf("accepted %q", s)
		}
		switch strings.ToLower(u.Scheme) {
		case "javascript", "data", "vbscript", "file":
			t.Fatalf("accepted %q", s)
		case "http":
			if !loopback.Host(u.Hostname()) {
				t.Fatalf("accepted non-loopback http %q", s)
			}
		}
	})
}
