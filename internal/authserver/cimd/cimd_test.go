package cimd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// docServer is a client's web server: an https test server on 127.0.0.1
// whose handlers tests add per path.
type docServer struct {
	*httptest.Server
	mux  *http.ServeMux
	hits atomic.Int64
}

func newDocServer(t *testing.T) *docServer {
	t.Helper()
	s := &docServer{mux: http.NewServeMux()}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// url returns the server's URL for path, under host name host when given
// (the test certificate also covers example.com).
func (s *docServer) url(host, path string) string {
	u, _ := url.Parse(s.URL)
	if host != "" {
		u.Host = host + ":" + u.Port()
	}
	return u.String() + path
}

// serveJSON serves body at path as application/json. A body containing
// %[1]s gets the document's own URL (under host) substituted.
func (s *docServer) serveJSON(host, path, body string, header ...string) string {
	id := s.url(host, path)
	if strings.Contains(body, "%[1]s") {
		body = fmt.Sprintf(body, id)
	}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		fmt.Fprint(w, body)
	})
	return id
}

func (s *docServer) options() *Options {
	return &Options{
		AllowHosts: []string{"127.0.0.1"},
		RootCAs:    s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Resolver:   noDNS,
	}
}

// noDNS fails every lookup: tests that reach it by accident must not touch
// the network.
func noDNS(_ context.Context, host string) ([]netip.Addr, error) {
	return nil, fmt.Errorf("no DNS in tests (asked for %s)", host)
}

// fakeDNS answers from a table and counts lookups.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	asked   []string
}

func newFakeDNS(answers map[string]string) *fakeDNS {
	d := &fakeDNS{answers: map[string][]netip.Addr{}}
	for host, list := range answers {
		for a := range strings.SplitSeq(list, ",") {
			d.answers[host] = append(d.answers[host], netip.MustParseAddr(a))
		}
	}
	return d
}

func (d *fakeDNS) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, host)
	if a, ok := d.answers[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func (d *fakeDNS) lookups() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.asked...)
}

const goodDoc = `{
  "client_id": "%[1]s",
  "client_name": "Example Agent",
  "client_uri": "https://agent.example/",
  "logo_uri": "https://agent.example/logo.png",
  "redirect_uris": ["http://127.0.0.1:33418/callback", "https://agent.example/cb"],
  "scope": "tools:read",
  "extension_field": {"ignored": true}
}`

func TestFetchGoodDocument(t *testing.T) {
	s := newDocServer(t)
	dns := newFakeDNS(map[string]string{"example.com": "127.0.0.1"})
	opts := s.options()
	opts.AllowHosts = []string{"Example.COM"}
	opts.Resolver = dns.resolve
	id := s.serveJSON("example.com", "/agent/client.json", goodDoc)

	doc, err := New(opts).Fetch(t.Context(), id)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if doc.ClientID != id || doc.ClientName != "Example Agent" || doc.Scope != "tools:read" ||
		doc.ClientURI != "https://agent.example/" || doc.LogoURI != "https://agent.example/logo.png" {
		t.Errorf("document = %+v", doc)
	}
	if len(doc.RedirectURIs) != 2 || doc.RedirectURIs[1] != "https://agent.example/cb" {
		t.Errorf("RedirectURIs = %q", doc.RedirectURIs)
	}
	if doc.TokenEndpointAuthMethod != "none" || doc.GrantTypes[0] != "authorization_code" || doc.ResponseTypes[0] != "code" {
		t.Errorf("defaults not applied: %+v", doc)
	}
	var raw map[string]any
	if err := json.Unmarshal(doc.Raw, &raw); err != nil || raw["extension_field"] == nil {
		t.Errorf("Raw = %s (%v)", doc.Raw, err)
	}
	// One lookup, and the connection reached the test server: the dial
	// used the vetted address rather than asking DNS again.
	if got := dns.lookups(); len(got) != 1 || got[0] != "example.com" {
		t.Errorf("lookups = %q, want exactly one for example.com", got)
	}
	if doc.LoopbackRedirectsOnly() {
		t.Error("LoopbackRedirectsOnly = true with an https redirect URI")
	}
}

func TestFetchPrivateKeyJWT(t *testing.T) {
	s := newDocServer(t)
	id := s.serveJSON("", "/pkjwt.json", `{"client_id":"%[1]s","client_name":"Signer",
		"redirect_uris":["http://localhost/cb"],"token_endpoint_auth_method":"private_key_jwt",
		"jwks":{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}`)
	doc, err := New(s.options()).Fetch(t.Context(), id)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if doc.TokenEndpointAuthMethod != "private_key_jwt" || len(doc.JWKS) == 0 {
		t.Errorf("document = %+v", doc)
	}
	if !doc.LoopbackRedirectsOnly() {
		t.Error("LoopbackRedirectsOnly = false for a localhost-only client")
	}
}

// TestFetchClientIDMismatch is A-12's test: a document whose client_id is
// not exactly the URL it was fetched from is someone else's registration.
func TestFetchClientIDMismatch(t *testing.T) {
	s := newDocServer(t)
	for name, claimed := range map[string]string{
		"other client":   "https://agent.example/client.json",
		"trailing slash": "%[1]s/",
		"case":           "HTTPS://127.0.0.1",
		"query":          "%[1]s?x=1",
	} {
		t.Run(name, func(t *testing.T) {
			path := "/mismatch/" + strings.ReplaceAll(name, " ", "-")
			id := s.serveJSON("", path, `{"client_id":"`+claimed+`","client_name":"X","redirect_uris":["https://a.example/cb"]}`)
			_, err := New(s.options()).Fetch(t.Context(), id)
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("Fetch = %v, want ErrInvalidDocument", err)
			}
		})
	}
}

func TestFetchInvalidDocuments(t *testing.T) {
	s := newDocServer(t)
	tests := map[string]string{
		"missing client_id":     `{"client_name":"X","redirect_uris":["https://a.example/cb"]}`,
		"missing client_name":   `{"client_id":"%[1]s","redirect_uris":["https://a.example/cb"]}`,
		"blank client_name":     `{"client_id":"%[1]s","client_name":"  ","redirect_uris":["https://a.example/cb"]}`,
		"missing redirect_uris": `{"client_id":"%[1]s","client_name":"X"}`,
		"empty redirect_uris":   `{"client_id":"%[1]s","client_name":"X","redirect_uris":[]}`,
		"redirect_uris string":  `{"client_id":"%[1]s","client_name":"X","redirect_uris":"https://a.example/cb"}`,
		"client_name number":    `{"client_id":"%[1]s","client_name":7,"redirect_uris":["https://a.example/cb"]}`,
		"not an object":         `["%[1]s"]`,
		"null":                  `null`,
		"not JSON":              `client_id=%[1]s`,
		"redirect fragment":     `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb#x"]}`,
		"redirect relative":     `{"client_id":"%[1]s","client_name":"X","redirect_uris":["/cb"]}`,
		"redirect javascript":   `{"client_id":"%[1]s","client_name":"X","redirect_uris":["javascript:alert(1)"]}`,
		"redirect http remote":  `{"client_id":"%[1]s","client_name":"X","redirect_uris":["http://a.example/cb"]}`,
		"logo javascript":       `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],"logo_uri":"javascript:alert(1)"}`,
		"jwks_uri http":         `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://a.example/jwks"}`,
		"private_key_jwt no keys": `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],
			"token_endpoint_auth_method":"private_key_jwt"}`,
		"jwks and jwks_uri": `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],
			"jwks_uri":"https://a.example/jwks","jwks":{"keys":[{}]}}`,
		"jwks not a set": `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],"jwks":{"kty":"RSA"}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			id := s.serveJSON("", "/invalid/"+strings.ReplaceAll(name, " ", "-"), body)
			_, err := New(s.options()).Fetch(t.Context(), id)
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("Fetch = %v, want ErrInvalidDocument", err)
			}
		})
	}
}

// TestFetchRefusesSharedSecrets: a public document cannot carry a secret,
// nor ask to authenticate with one.
func TestFetchRefusesSharedSecrets(t *testing.T) {
	s := newDocServer(t)
	for _, extra := range []string{
		`"token_endpoint_auth_method":"client_secret_basic"`,
		`"token_endpoint_auth_method":"client_secret_post"`,
		`"token_endpoint_auth_method":"client_secret_jwt"`,
		`"token_endpoint_auth_method":"tls_client_auth"`,
		`"client_secret":"s3cret"`,
		`"client_secret_expires_at":0`,
	} {
		t.Run(extra, func(t *testing.T) {
			path := fmt.Sprintf("/secret/%x", extra)
			id := s.serveJSON("", path, `{"client_id":"%[1]s","client_name":"X","redirect_uris":["https://a.example/cb"],`+extra+`}`)
			_, err := New(s.options()).Fetch(t.Context(), id)
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("Fetch = %v, want ErrInvalidDocument", err)
			}
		})
	}
}

// TestFetchForbiddenAddresses is AT-36: without an allow-list entry, a
// client id whose host is or resolves to a non-public address is never
// connected to. The fake resolver keeps every packet on this machine.
func TestFetchForbiddenAddresses(t *testing.T) {
	addrs := []string{
		"169.254.169.254", // cloud metadata
		"169.254.1.1",
		"127.0.0.1",
		"127.9.9.9",
		"::1",
		"10.0.0.5",
		"172.16.3.4",
		"192.168.1.1",
		"100.64.0.1",
		"fc00::1",
		"fd12:3456::1",
		"fe80::1",
		"0.0.0.0",
		"::",
		"224.0.0.1",
		"ff02::1",
		"255.255.255.255",
		"::ffff:127.0.0.1",       // IPv4-mapped loopback
		"::ffff:169.254.169.254", // IPv4-mapped metadata
		"64:ff9b::a9fe:a9fe",     // NAT64 of 169.254.169.254
		"2002:a00:1::1",          // 6to4 of 10.0.0.1
	}
	for _, a := range addrs {
		t.Run("resolves to "+a, func(t *testing.T) {
			dns := newFakeDNS(map[string]string{"client.example": a})
			f := New(&Options{Resolver: dns.resolve, Timeout: time.Second})
			_, err := f.Fetch(t.Context(), "https://client.example/client.json")
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("Fetch = %v, want ErrForbiddenAddress", err)
			}
		})
	}
	for _, id := range []string{
		"https://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"https://127.0.0.1/client.json",
		"https://[::1]/client.json",
		"https://[::ffff:169.254.169.254]/client.json",
		"https://[fe80::1%25eth0]/client.json",
		"https://10.0.0.1:8443/client.json",
	} {
		t.Run("literal "+id, func(t *testing.T) {
			dns := newFakeDNS(nil)
			_, err := New(&Options{Resolver: dns.resolve}).Fetch(t.Context(), id)
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("Fetch = %v, want ErrForbiddenAddress", err)
			}
			if got := dns.lookups(); len(got) != 0 {
				t.Errorf("an IP literal was looked up: %q", got)
			}
		})
	}
	t.Run("one bad address among several", func(t *testing.T) {
		dns := newFakeDNS(map[string]string{"client.example": "127.0.0.2,10.1.2.3"})
		_, err := New(&Options{Resolver: dns.resolve}).Fetch(t.Context(), "https://client.example/c")
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Fatalf("Fetch = %v, want ErrForbiddenAddress", err)
		}
	})
}

// TestFetchAllowHostsExemptsOnlyListedHosts: the exemption is per host
// name, not per address; another name for the same address is refused.
func TestFetchAllowHostsExemptsOnlyListedHosts(t *testing.T) {
	s := newDocServer(t)
	dns := newFakeDNS(map[string]string{"example.com": "127.0.0.1"})
	opts := s.options()
	opts.Resolver = dns.resolve // AllowHosts is 127.0.0.1 only
	id := s.serveJSON("example.com", "/c.json", goodDoc)
	if _, err := New(opts).Fetch(t.Context(), id); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Fetch = %v, want ErrForbiddenAddress", err)
	}
}

// TestFetchRedirects is AT-35's redirect chain applied to CIMD: each hop
// meets the same rules as the first request.
func TestFetchRedirects(t *testing.T) {
	s := newDocServer(t)
	dns := newFakeDNS(map[string]string{"internal.example": "10.0.0.5", "metadata.example": "169.254.169.254"})
	opts := s.options()
	opts.Resolver = dns.resolve
	opts.AllowHTTP = true
	redirect := func(path, to string) string {
		s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, to, http.StatusFound)
		})
		return s.url("", path)
	}
	moved := s.url("", "/moved")
	s.serveJSON("", "/final.json", strings.Replace(goodDoc, "%[1]s", moved, 1))

	t.Run("to a private address", func(t *testing.T) {
		id := redirect("/to-private", "https://internal.example/client.json")
		_, err := New(opts).Fetch(t.Context(), id)
		if !errors.Is(err, ErrForbiddenAddress) {
			t.Fatalf("Fetch = %v, want ErrForbiddenAddress", err)
		}
	})
	t.Run("to cloud metadata over http", func(t *testing.T) {
		id := redirect("/to-metadata", "http://metadata.example/latest/meta-data/")
		_, err := New(opts).Fetch(t.Context(), id)
		if !errors.Is(err, ErrRedirect) {
			t.Fatalf("Fetch = %v, want ErrRedirect", err)
		}
	})
	t.Run("with credentials", func(t *testing.T) {
		id := redirect("/to-userinfo", strings.Replace(s.url("", "/final.json"), "https://", "https://u:p@", 1))
		_, err := New(opts).Fetch(t.Context(), id)
		if !errors.Is(err, ErrRedirect) {
			t.Fatalf("Fetch = %v, want ErrRedirect", err)
		}
	})
	t.Run("too many hops", func(t *testing.T) {
		redirect("/hop4", s.url("", "/final.json"))
		redirect("/hop3", s.url("", "/hop4"))
		redirect("/hop2", s.url("", "/hop3"))
		id := redirect("/hop1", s.url("", "/hop2"))
		_, err := New(opts).Fetch(t.Context(), id)
		if !errors.Is(err, ErrRedirect) {
			t.Fatalf("Fetch = %v, want ErrRedirect", err)
		}
	})
	t.Run("allowed hop keeps the original client id", func(t *testing.T) {
		id := redirect("/moved", s.url("", "/final.json"))
		doc, err := New(opts).Fetch(t.Context(), id)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if doc.ClientID != moved {
			t.Errorf("ClientID = %q, want %q", doc.ClientID, moved)
		}
	})
}

func TestFetchTooLarge(t *testing.T) {
	s := newDocServer(t)
	pad := strings.Repeat("x", 2048)
	body := `{"client_id":"%[1]s","client_name":"` + pad + `","redirect_uris":["https://a.example/cb"]}`
	withLength := s.serveJSON("", "/big.json", body)
	s.mux.HandleFunc("/big-chunked.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for range 8 {
			fmt.Fprint(w, pad)
			w.(http.Flusher).Flush()
		}
	})
	opts := s.options()
	opts.MaxBytes = 1024
	for _, id := range []string{withLength, s.url("", "/big-chunked.json")} {
		if _, err := New(opts).Fetch(t.Context(), id); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Fetch(%s) = %v, want ErrTooLarge", id, err)
		}
	}
	// The default limit admits the same document.
	if _, err := New(s.options()).Fetch(t.Context(), withLength); err != nil {
		t.Errorf("Fetch with default MaxBytes: %v", err)
	}
}

func TestFetchSlowServerTimesOut(t *testing.T) {
	s := newDocServer(t)
	s.mux.HandleFunc("/slow.json", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	opts := s.options()
	opts.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := New(opts).Fetch(t.Context(), s.url("", "/slow.json"))
	if !errors.Is(err, ErrFetch) {
		t.Fatalf("Fetch = %v, want ErrFetch", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Fetch took %v with a 200ms timeout", d)
	}
}

func TestFetchResponseChecks(t *testing.T) {
	s := newDocServer(t)
	s.mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"X","redirect_uris":["https://a.example/cb"]}`, s.url("", "/html"))
	})
	s.mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	})
	if _, err := New(s.options()).Fetch(t.Context(), s.url("", "/html")); !errors.Is(err, ErrInvalidDocument) {
		t.Errorf("text/html: Fetch = %v, want ErrInvalidDocument", err)
	}
	if _, err := New(s.options()).Fetch(t.Context(), s.url("", "/gone")); !errors.Is(err, ErrFetch) {
		t.Errorf("410: Fetch = %v, want ErrFetch", err)
	}
	charset := s.serveJSON("", "/charset.json", goodDoc, "Content-Type", "application/json; charset=utf-8")
	if _, err := New(s.options()).Fetch(t.Context(), charset); err != nil {
		t.Errorf("application/json with charset: %v", err)
	}
}

func TestFetchCache(t *testing.T) {
	s := newDocServer(t)
	id := s.serveJSON("", "/cached.json", goodDoc)
	short := s.serveJSON("", "/short.json", goodDoc, "Cache-Control", "public, max-age=60")
	nostore := s.serveJSON("", "/nostore.json", goodDoc, "Cache-Control", "no-store")
	now := time.Unix(1_700_000_000, 0)
	f := New(s.options())
	f.now = func() time.Time { return now }
	fetch := func(id string) *Document {
		t.Helper()
		d, err := f.Fetch(t.Context(), id)
		if err != nil {
			t.Fatalf("Fetch(%s): %v", id, err)
		}
		return d
	}
	expectHits := func(want int64) {
		t.Helper()
		if got := s.hits.Load(); got != want {
			t.Fatalf("server hits = %d, want %d", got, want)
		}
	}

	d := fetch(id)
	d.RedirectURIs[0] = "https://evil.example/cb" // the caller's copy, not the cache's
	if got := fetch(id); got.RedirectURIs[0] != "http://127.0.0.1:33418/callback" {
		t.Errorf("cached document was modified through a returned copy: %q", got.RedirectURIs)
	}
	expectHits(1)
	now = now.Add(DefaultCacheTTL - time.Second)
	fetch(id)
	expectHits(1)
	now = now.Add(2 * time.Second)
	fetch(id)
	expectHits(2)

	fetch(short)
	now = now.Add(59 * time.Second)
	fetch(short)
	expectHits(3)
	now = now.Add(2 * time.Second)
	fetch(short)
	expectHits(4)

	// no-store is honoured down to the floor, no further.
	fetch(nostore)
	fetch(nostore)
	expectHits(5)
	now = now.Add(MinCacheTTL)
	fetch(nostore)
	expectHits(6)

	off := s.options()
	off.CacheTTL = -1
	g := New(off)
	for range 2 {
		if _, err := g.Fetch(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
	expectHits(8)
}

func TestTTL(t *testing.T) {
	f := New(nil)
	for cc, want := range map[string]time.Duration{
		"":                       DefaultCacheTTL,
		"max-age=120":            2 * time.Minute,
		"public, MAX-AGE=120":    2 * time.Minute,
		"max-age=86400":          DefaultCacheTTL,
		"max-age=1":              MinCacheTTL,
		"max-age=junk":           DefaultCacheTTL,
		"max-age=-5":             DefaultCacheTTL,
		"no-cache":               MinCacheTTL,
		"private, no-store":      MinCacheTTL,
		"max-age=99999999999999": DefaultCacheTTL,
	} {
		if got := f.ttl(cc); got != want {
			t.Errorf("ttl(%q) = %v, want %v", cc, got, want)
		}
	}
	if got := New(&Options{CacheTTL: 10 * time.Second}).ttl("max-age=1"); got != 10*time.Second {
		t.Errorf("ttl below a short CacheTTL = %v, want 10s", got)
	}
}

// TestFetchIgnoresEnvironmentProxy: a proxy would connect on Mandate's
// behalf, out of reach of the address checks.
func TestFetchIgnoresEnvironmentProxy(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
	t.Setenv("HTTP_PROXY", "http://10.0.0.1:3128")
	s := newDocServer(t)
	id := s.serveJSON("", "/direct.json", goodDoc)
	if _, err := New(s.options()).Fetch(t.Context(), id); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
}

func TestCheckClientID(t *testing.T) {
	f := New(&Options{AllowHosts: []string{"dev.local"}, AllowHTTP: true})
	good := []string{
		"https://agent.example/client.json",
		"https://agent.example:8443/a/b/c",
		"https://agent.example/client?v=1",
		"http://dev.local/client.json",
		"https://[2001:db8::1]/c",
	}
	bad := []string{
		"",
		"agent.example/client.json",
		"/client.json",
		"https://agent.example",
		"https://agent.example/",
		"https://agent.example/client.json#frag",
		"https://agent.example/client.json#",
		"https://user:pass@agent.example/client.json",
		"https://user@agent.example/client.json",
		"https://agent.example/a/../client.json",
		"https://agent.example/a/./client.json",
		"https://agent.example/a/%2e%2e/client.json",
		"https://agent.example/..",
		"http://agent.example/client.json",
		"ftp://agent.example/client.json",
		"https:///client.json",
		"https:agent.example/client.json",
		"https://agent.example:99999/c",
		"https://agent example/c",
	}
	for _, id := range good {
		if _, err := f.checkClientID(id); err != nil {
			t.Errorf("checkClientID(%q) = %v, want accepted", id, err)
		}
	}
	for _, id := range bad {
		if _, err := f.checkClientID(id); !errors.Is(err, ErrInvalidClientID) {
			t.Errorf("checkClientID(%q) = %v, want ErrInvalidClientID", id, err)
		}
	}
	// AllowHTTP does not extend to hosts outside AllowHosts.
	if _, err := New(&Options{AllowHTTP: true}).checkClientID("http://dev.local/c"); err == nil {
		t.Error("http accepted for a host not in AllowHosts")
	}
}

func TestIsURLClientID(t *testing.T) {
	for s, want := range map[string]bool{
		"https://agent.example/client.json": true,
		"http://127.0.0.1/c":                true,
		"https://agent.example":             true, // routed to Fetch, which refuses it
		"3f1c2a9e-client":                   false,
		"":                                  false,
		"HTTPS://agent.example/c":           false,
		"urn:agent":                         false,
	} {
		if got := IsURLClientID(s); got != want {
			t.Errorf("IsURLClientID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestForbidden(t *testing.T) {
	public := []string{"93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "100.63.255.255", "100.128.0.0", "172.32.0.1"}
	blocked := []string{"127.0.0.1", "10.255.255.255", "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.0", "100.127.255.255",
		"0.0.0.0", "0.1.2.3", "::", "::1", "fc00::", "fdff::1", "fe80::1", "fe80::1%eth0", "ff02::1", "224.0.0.251", "239.255.255.250",
		"240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1", "::ffff:0.0.0.0", "64:ff9b::7f00:1",
		"64:ff9b:1::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2001:0:4136:e378::1", "::127.0.0.1"}
	for _, s := range public {
		if why := forbidden(netip.MustParseAddr(s)); why != "" {
			t.Errorf("forbidden(%s) = %q, want allowed", s, why)
		}
	}
	for _, s := range blocked {
		if why := forbidden(netip.MustParseAddr(s)); why == "" {
			t.Errorf("forbidden(%s) = allowed, want refused", s)
		}
	}
	if forbidden(netip.Addr{}) == "" {
		t.Error("the zero Addr is allowed")
	}
}

// TestDialRefusesBeforeConnecting: the dial hook itself refuses a
// forbidden address for a host outside the allow-list, even one a test
// server listens on.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	s := newDocServer(t)
	u, _ := url.Parse(s.URL)
	f := New(&Options{Resolver: noDNS})
	if _, err := f.dial(t.Context(), "tcp", u.Host); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("dial = %v, want ErrForbiddenAddress", err)
	}
	if s.hits.Load() != 0 {
		t.Error("the server was reached")
	}
	conn, err := New(&Options{AllowHosts: []string{"127.0.0.1"}}).dial(t.Context(), "tcp", u.Host)
	if err != nil {
		t.Fatalf("dial an allowed host: %v", err)
	}
	conn.Close()
}

func FuzzParseDocument(f *testing.F) {
	const id = "https://agent.example/client.json"
	f.Add([]byte(fmt.Sprintf(goodDoc, id)))
	f.Add([]byte(`{"client_id":"` + id + `","client_name":"X","redirect_uris":["x:/"],"jwks":{"keys":[1]},"token_endpoint_auth_method":"private_key_jwt"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := parseDocument(id, body)
		if err != nil {
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("error %v does not wrap ErrInvalidDocument", err)
			}
			return
		}
		if d.ClientID != id || d.ClientName == "" || len(d.RedirectURIs) == 0 {
			t.Fatalf("accepted an incomplete document: %+v", d)
		}
		if d.TokenEndpointAuthMethod != "none" && d.TokenEndpointAuthMethod != "private_key_jwt" {
			t.Fatalf("accepted auth method %q", d.TokenEndpointAuthMethod)
		}
	})
}

func FuzzCheckClientID(f *testing.F) {
	for _, s := range []string{"https://a.example/c", "https://a.example/a/../c", "https://u@a.example/c", "https://[::1]/c#f"} {
		f.Add(s)
	}
	fetcher := New(nil)
	f.Fuzz(func(t *testing.T, s string) {
		u, err := fetcher.checkClientID(s)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Hostname() == "" || u.Path == "" || u.Path == "/" {
			t.Fatalf("accepted %q", s)
		}
		for seg := range strings.SplitSeq(u.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted dot segment in %q", s)
			}
		}
	})
}
