package loopback

import "testing"

func TestHost(t *testing.T) {
	for _, c := range []struct {
		host string
		want bool
	}{
		{"localhost", true}, {"LocalHost", true}, {"127.0.0.1", true}, {"127.8.9.10", true}, {"::1", true},
		{"", false}, {"example.com", false}, {"localhost.example.com", false}, {"10.0.0.1", false},
		{"[::1]", false}, // a URL's Hostname() has no brackets; a bracketed value is not a host
		{"0.0.0.0", false},
	} {
		if got := Host(c.host); got != c.want {
			t.Errorf("Host(%q) = %v, want %v", c.host, got, c.want)
		}
	}
}
