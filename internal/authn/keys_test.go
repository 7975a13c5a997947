package authn

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer is an issuer's jwks_uri: it serves whatever key set the test
// sets and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...*testKey) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.publish(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(t *testing.T, keys ...*testKey) {
	t.Helper()
	body, err := json.Marshal(staticKeys(keys...).Set)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(http.StatusOK, body)
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func remoteVerifier(jwks *RemoteJWKS, clock *fixedClock) *JWTVerifier {
	return NewJWTVerifier(JWTOptions{
		Issuers:   []IssuerSpec{{Issuer: testIssuer, Keys: jwks, Audience: testAudience}},
		CacheSize: -1, // every Verify reaches the key source
		Now:       clock.Now,
	})
}

func TestRemoteJWKSRotation(t *testing.T) {
	old, next := key(t, jose.RS256, "rsa-1"), key(t, jose.ES256, "ec-1")
	srv := newJWKSServer(t, old)
	clock := newClock()
	jwks := &RemoteJWKS{URL: srv.URL, MinRefresh: time.Minute, now: clock.Now}
	v := remoteVerifier(jwks, clock)
	ctx := context.Background()

	if _, err := v.Verify(ctx, old.sign(t, claims(nil))); err != nil {
		t.Fatalf("old key: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after the first token, want 1", n)
	}

	// The issuer rotates: the new key is published next to the old one.
	clock.Add(time.Minute)
	srv.publish(t, old, next)
	if _, err := v.Verify(ctx, next.sign(t, claims(nil))); err != nil {
		t.Fatalf("new key (unknown kid): %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the unknown kid, want 2", n)
	}
	if _, err := v.Verify(ctx, old.sign(t, claims(nil))); err != nil {
		t.Fatalf("old key after rotation: %v", err)
	}

	// Random kids cause no fetch within MinRefresh …
	for i := range 20 {
		forged := key(t, jose.RS256, "rsa-2").signWith(t, claims(nil),
			(&jose.SignerOptions{}).WithHeader("kid", "random-"+string(rune('a'+i))))
		if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown kid: %v, want ErrInvalidToken", err)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 20 unknown kids within MinRefresh, want 2", n)
	}
	// … and one after it.
	clock.Add(time.Minute)
	if _, err := v.Verify(ctx, key(t, jose.RS256, "rsa-2").sign(t, claims(nil))); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown kid: %v, want ErrInvalidToken", err)
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after MinRefresh, want 3", n)
	}
}

func TestRemoteJWKSMaxAgeDropsWithdrawnKey(t *testing.T) {
	old, next := key(t, jose.RS256, "rsa-1"), key(t, jose.ES256, "ec-1")
	srv := newJWKSServer(t, old, next)
	clock := newClock()
	jwks := &RemoteJWKS{URL: srv.URL, MinRefresh: time.Minute, MaxAge: time.Hour, now: clock.Now}
	v := remoteVerifier(jwks, clock)
	ctx := context.Background()
	if _, err := v.Verify(ctx, old.sign(t, claims(nil))); err != nil {
		t.Fatal(err)
	}
	srv.publish(t, next) // the old key is withdrawn
	clock.Add(time.Hour)
	later := claims(map[string]any{"exp": clock.Now().Add(5 * time.Minute).Unix()})
	// The first call past MaxAge refetches.
	if _, err := v.Verify(ctx, next.sign(t, later)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, old.sign(t, later)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("withdrawn key: %v, want ErrInvalidToken", err)
	}
}

func TestRemoteJWKSKeepsLastGoodSet(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	srv := newJWKSServer(t, rs)
	clock := newClock()
	jwks := &RemoteJWKS{URL: srv.URL, now: clock.Now}
	v := remoteVerifier(jwks, clock)
	token := rs.sign(t, claims(map[string]any{"exp": clock.Now().Add(3 * DefaultMaxAge).Unix()}))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	srv.serve(http.StatusInternalServerError, []byte("down"))
	clock.Add(2 * DefaultMaxAge)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("issuer down after a good fetch: %v, want the last good set", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (one failed refetch)", n)
	}
}

// TestRemoteJWKSFailsClosed: with no key set fetched, nothing verifies.
func TestRemoteJWKSFailsClosed(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	big := `{"keys":[` + strings.Repeat(" ", maxJWKSBytes) + `]}`
	redirect := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/jwks", http.StatusFound))
	t.Cleanup(redirect.Close)
	tests := []struct {
		name   string
		status int
		body   string
		url    string
	}{
		{"status 500", http.StatusInternalServerError, `{"keys":[]}`, ""},
		{"not JSON", http.StatusOK, `<html>`, ""},
		{"no usable key", http.StatusOK, `{"keys":[{"kty":"XYZ"}]}`, ""},
		{"body over 1 MiB", http.StatusOK, big, ""},
		{"redirect", 0, "", redirect.URL},
		{"unreachable", 0, "", "http://127.0.0.1:1/jwks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t)
			srv.serve(tc.status, []byte(tc.body))
			url := srv.URL
			if tc.url != "" {
				url = tc.url
			}
			clock := newClock()
			v := remoteVerifier(&RemoteJWKS{URL: url, now: clock.Now}, clock)
			p, err := v.Verify(context.Background(), rs.sign(t, claims(nil)))
			if !errors.Is(err, ErrUnavailable) || p != nil {
				t.Fatalf("Verify = %+v, %v; want ErrUnavailable", p, err)
			}
		})
	}
}

func TestRemoteJWKSSkipsUnparsableKeys(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	good, err := json.Marshal(rs.jwk())
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t)
	srv.serve(http.StatusOK, []byte(`{"keys":[{"kty":"XYZ","kid":"odd"},`+string(good)+`]}`))
	clock := newClock()
	v := remoteVerifier(&RemoteJWKS{URL: srv.URL, now: clock.Now}, clock)
	if _, err := v.Verify(context.Background(), rs.sign(t, claims(nil))); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteJWKSOneFetchForConcurrentUnknownKids: a burst of tokens with a
// new kid costs the issuer one fetch.
func TestRemoteJWKSOneFetchForConcurrentUnknownKids(t *testing.T) {
	old, next := key(t, jose.RS256, "rsa-1"), key(t, jose.ES256, "ec-1")
	srv := newJWKSServer(t, old)
	clock := newClock()
	jwks := &RemoteJWKS{URL: srv.URL, now: clock.Now}
	v := remoteVerifier(jwks, clock)
	if _, err := v.Verify(context.Background(), old.sign(t, claims(nil))); err != nil {
		t.Fatal(err)
	}
	clock.Add(DefaultMinRefresh)
	srv.publish(t, old, next)
	token := next.sign(t, claims(nil))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

// TestRemoteJWKSIgnoresCallerCancellation: the fetch serves every waiting
// request, so the one that started it going away does not fail it.
func TestRemoteJWKSIgnoresCallerCancellation(t *testing.T) {
	rs := key(t, jose.RS256, "rsa-1")
	srv := newJWKSServer(t, rs)
	jwks := &RemoteJWKS{URL: srv.URL}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	set, err := jwks.Keys(ctx)
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("Keys = %v, %v", set, err)
	}
}
