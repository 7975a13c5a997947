package authserver

import (
	"net/url"
	"strings"
	"testing"
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
			if !isLoopbackHost(u.Hostname()) {
				t.Fatalf("accepted non-loopback http %q", s)
			}
		}
	})
}

// FuzzVerifyPassword: a stored hash, however malformed, never panics and
// never makes verification allocate past the parameter bounds.
func FuzzVerifyPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=16,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2id$v=19$m=16,t=1,p=0$$", "")
	f.Fuzz(func(t *testing.T, hash, password string) {
		if p, _, _, err := parseArgon(hash); err == nil && (p.memory > maxArgonMemory || p.time > maxArgonTime) {
			t.Fatalf("parameters past the bounds accepted: %+v", p)
		}
		verifyPassword(hash, password)
	})
}
