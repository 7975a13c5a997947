// Package cimd fetches and checks OAuth Client ID Metadata Documents: a
// client whose client_id is an https URL publishes its registration at that
// URL, and the authorization server reads it there instead of keeping a
// registration of its own (MCP authorization 2025-11-25, requirement A-12).
//
// Fetching a URL a stranger chose is a server-side request forgery waiting to
// happen (S-20…S-24, AT-36), so a Fetcher resolves the host itself, refuses
// private, loopback, link-local and other non-public addresses, dials only
// the addresses it vetted, follows at most three redirects under the same
// rules, and bounds time and size. What it returns is a registration that
// says only what a public document may say: no shared secrets.
package cimd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Errors for two audiences: the wrapped reason is for logs; the sentinel
// decides what the client is told (invalid_client, with no detail that
// would help probe the network behind Mandate).
var (
	// ErrInvalidClientID means the client id is not an acceptable client
	// identifier URL; nothing was fetched.
	ErrInvalidClientID = errors.New("invalid client id url")
	// ErrForbiddenAddress means the host resolved to an address a metadata
	// fetch must not reach; no connection was made to it.
	ErrForbiddenAddress = errors.New("forbidden address")
	// ErrRedirect means a redirect broke the rules: too many hops, a
	// scheme other than https, or credentials in the location.
	ErrRedirect = errors.New("forbidden redirect")
	// ErrFetch means the document could not be fetched: network failure,
	// timeout or a status other than 200.
	ErrFetch = errors.New("fetch client metadata")
	// ErrTooLarge means the document exceeded Options.MaxBytes.
	ErrTooLarge = errors.New("client metadata document too large")
	// ErrInvalidDocument means the document was fetched but is not an
	// acceptable client registration.
	ErrInvalidDocument = errors.New("invalid client metadata document")
)

// Defaults of Options.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxBytes = 64 << 10
	DefaultCacheTTL = 5 * time.Minute
	// MinCacheTTL is the least time a fetched document is kept, whatever
	// its Cache-Control says, so that no document can make every
	// authorization request a fetch.
	MinCacheTTL = 30 * time.Second
)

// Resolver returns the IP addresses of host. It is how tests stand in for
// DNS; the default is net.DefaultResolver.
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// Options configure a Fetcher. The zero value is a production fetcher.
type Options struct {
	// AllowHosts are host names or IP literals exempt from the address
	// rules: a client hosted inside the deployment's own network, or a
	// test server on 127.0.0.1. Matching is exact and case-insensitive;
	// there are no wildcards. Nil means no exemptions.
	AllowHosts []string
	// AllowHTTP permits http:// client ids and redirects, but only for
	// hosts in AllowHosts. False means https only.
	AllowHTTP bool
	// Timeout bounds one fetch, redirects and body included. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// MaxBytes bounds the document's size. Zero means DefaultMaxBytes.
	MaxBytes int64
	// Resolver looks host names up. Nil means net.DefaultResolver.
	Resolver Resolver
	// CacheTTL is the longest a fetched document is reused. A response's
	// Cache-Control max-age shortens it, down to MinCacheTTL (or CacheTTL
	// if that is shorter). Zero means DefaultCacheTTL; negative disables
	// caching.
	CacheTTL time.Duration
	// RootCAs verify the servers' certificates. Nil means the system pool.
	RootCAs *x509.CertPool
}

// Document is a client registration read from a client metadata document
// (RFC 7591 §2 field names). Defaults are filled in: GrantTypes
// [authorization_code], ResponseTypes [code], TokenEndpointAuthMethod none.
type Document struct {
	ClientID                string          `json:"client_id"`
	ClientName              string          `json:"client_name"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	// Raw is the document exactly as fetched.
	Raw json.RawMessage `json:"-"`
}

// LoopbackRedirectsOnly reports whether every redirect URI points at the
// user's own machine. Any local process can listen there, so the consent
// screen should say that the client's identity is not proven by where it
// receives the code (A-12, localhost redirect impersonation).
func (d *Document) LoopbackRedirectsOnly() bool {
	for _, r := range d.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || !isLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return len(d.RedirectURIs) > 0
}

func (d *Document) clone() *Document {
	c := *d
	c.RedirectURIs = slices.Clone(d.RedirectURIs)
	c.GrantTypes = slices.Clone(d.GrantTypes)
	c.ResponseTypes = slices.Clone(d.ResponseTypes)
	c.JWKS = bytes.Clone(d.JWKS)
	c.Raw = bytes.Clone(d.Raw)
	return &c
}

// Fetcher fetches client metadata documents and caches them. It is safe for
// concurrent use.
type Fetcher struct {
	allowHosts map[string]struct{}
	allowHTTP  bool
	timeout    time.Duration
	maxBytes   int64
	resolver   Resolver
	cacheTTL   time.Duration
	client     *http.Client
	cache      *cache
	now        func() time.Time // tests set a fake clock
}

// New returns a Fetcher. A nil opts means defaults.
func New(opts *Options) *Fetcher {
	if opts == nil {
		opts = &Options{}
	}
	f := &Fetcher{
		allowHosts: make(map[string]struct{}, len(opts.AllowHosts)),
		allowHTTP:  opts.AllowHTTP,
		timeout:    orDefault(opts.Timeout, DefaultTimeout),
		maxBytes:   orDefault(opts.MaxBytes, DefaultMaxBytes),
		resolver:   opts.Resolver,
		cacheTTL:   orDefault(opts.CacheTTL, DefaultCacheTTL),
		cache:      newCache(),
		now:        time.Now,
	}
	for _, h := range opts.AllowHosts {
		f.allowHosts[normalHost(h)] = struct{}{}
	}
	if f.resolver == nil {
		f.resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	f.client = &http.Client{
		Timeout:       f.timeout,
		CheckRedirect: f.checkRedirect,
		Transport: &http.Transport{
			// No proxy from the environment: a proxy would resolve
			// and connect on our behalf, past every check in dial.
			Proxy:                  nil,
			DialContext:            f.dial,
			TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    f.timeout,
			ResponseHeaderTimeout:  f.timeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           16,
			IdleConnTimeout:        30 * time.Second,
			DisableCompression:     true,
		},
	}
	return f
}

func orDefault[T int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Client returns the guarded HTTP client Fetch uses, for the other URLs a
// client metadata document names and the server must fetch (jwks_uri): the
// same address, redirect and TLS rules apply. Callers add their own size
// limits.
func (f *Fetcher) Client() *http.Client { return f.client }

// IsURLClientID reports whether s is a client id in URL form, that is, one
// to be resolved by fetching a client metadata document rather than looked
// up among registered clients. It decides the path, not acceptance: Fetch
// applies the rules and tells precisely what is wrong.
func IsURLClientID(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// checkClientID applies the client identifier URL rules: https (or http for
// an allow-listed host when AllowHTTP is set), a host, a path other than
// "/", no dot segments, no fragment, no credentials.
func (f *Fetcher) checkClientID(clientID string) (*url.URL, error) {
	u, err := parseClientID(clientID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidClientID, err)
	}
	if err := f.checkScheme(u.Scheme, u.Hostname()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidClientID, err)
	}
	return u, nil
}

// parseClientID checks everything but the scheme policy.
func parseClientID(clientID string) (*url.URL, error) {
	u, err := url.Parse(clientID)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case !u.IsAbs() || u.Opaque != "":
		return nil, errors.New("not an absolute URL")
	case u.Hostname() == "":
		return nil, errors.New("no host")
	case u.User != nil:
		return nil, errors.New("credentials in URL")
	case u.Fragment != "" || strings.Contains(clientID, "#"):
		return nil, errors.New("fragment in URL")
	case u.Path == "" || u.Path == "/":
		return nil, errors.New("no path")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("bad port")
		}
	}
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, errors.New("dot segment in path")
		}
	}
	return u, nil
}

// Fetch returns the client registration published at clientID, from the
// cache when a fresh copy is there. The Document is the caller's to keep.
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Document, error) {
	if _, err := f.checkClientID(clientID); err != nil {
		return nil, err
	}
	if d, ok := f.cache.get(clientID, f.now()); ok {
		return d.clone(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	doc, ttl, err := f.fetch(ctx, clientID)
	if err != nil {
		return nil, err
	}
	if ttl > 0 {
		now := f.now()
		f.cache.put(clientID, doc, now, now.Add(ttl))
	}
	return doc.clone(), nil
}

func (f *Fetcher) fetch(ctx context.Context, clientID string) (*Document, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidClientID, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Mandate-CIMD/1")
	resp, err := f.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrForbiddenAddress) || errors.Is(err, ErrRedirect) {
			return nil, 0, fmt.Errorf("fetch %s: %w", clientID, err)
		}
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrFetch, clientID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%w: %s: status %d", ErrFetch, clientID, resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, 0, fmt.Errorf("%w: content type %q is not application/json", ErrInvalidDocument, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > f.maxBytes {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, resp.ContentLength, f.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrFetch, clientID, err)
	}
	if int64(len(body)) > f.maxBytes {
		return nil, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, f.maxBytes)
	}
	doc, err := parseDocument(clientID, body)
	if err != nil {
		return nil, 0, err
	}
	return doc, f.ttl(resp.Header.Get("Cache-Control")), nil
}

// ttl is how long a response may be reused: CacheTTL, shortened by
// max-age, no-cache or no-store, but never below the MinCacheTTL floor.
func (f *Fetcher) ttl(cacheControl string) time.Duration {
	if f.cacheTTL < 0 {
		return 0
	}
	ttl := f.cacheTTL
	for dir := range strings.SplitSeq(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			ttl = 0
		case "max-age":
			var secs int64
			if _, err := fmt.Sscanf(strings.Trim(val, `"`), "%d", &secs); err == nil && secs >= 0 {
				ttl = min(ttl, time.Duration(min(secs, 1<<32))*time.Second)
			}
		}
	}
	return max(ttl, min(MinCacheTTL, f.cacheTTL))
}

// wireDocument is the document as JSON declares it; field types are
// enforced by decoding.
type wireDocument struct {
	ClientID                string          `json:"client_id"`
	ClientName              string          `json:"client_name"`
	ClientURI               string          `json:"client_uri"`
	LogoURI                 string          `json:"logo_uri"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKSURI                 string          `json:"jwks_uri"`
	JWKS                    json.RawMessage `json:"jwks"`
	Scope                   string          `json:"scope"`
}

// parseDocument checks a client metadata document fetched from clientID and
// returns the registration it declares.
func parseDocument(clientID string, body []byte) (*Document, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidDocument, fmt.Sprintf(format, args...))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, bad("not a JSON object")
	}
	var w wireDocument
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, bad("%v", err)
	}
	// A document anyone can read cannot hold a secret, and a client that
	// believes it can has misunderstood what it is publishing.
	for _, k := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := fields[k]; ok {
			return nil, bad("%s in a public document", k)
		}
	}
	switch {
	case w.ClientID == "":
		return nil, bad("client_id missing")
	case w.ClientID != clientID:
		return nil, bad("client_id %q does not equal the document URL %q", w.ClientID, clientID)
	case strings.TrimSpace(w.ClientName) == "":
		return nil, bad("client_name missing")
	case len(w.RedirectURIs) == 0:
		return nil, bad("redirect_uris missing")
	}
	for _, r := range w.RedirectURIs {
		if err := checkRedirectURI(r); err != nil {
			return nil, bad("redirect_uri %q: %v", r, err)
		}
	}
	switch w.TokenEndpointAuthMethod {
	case "":
		w.TokenEndpointAuthMethod = "none"
	case "none", "private_key_jwt":
	default:
		return nil, bad("token_endpoint_auth_method %q: only none and private_key_jwt suit a public document", w.TokenEndpointAuthMethod)
	}
	hasJWKS := len(w.JWKS) > 0 && string(w.JWKS) != "null"
	if w.JWKSURI != "" && hasJWKS {
		return nil, bad("both jwks_uri and jwks")
	}
	if w.TokenEndpointAuthMethod == "private_key_jwt" && w.JWKSURI == "" && !hasJWKS {
		return nil, bad("private_key_jwt without jwks_uri or jwks")
	}
	if hasJWKS {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(w.JWKS, &set); err != nil || len(set.Keys) == 0 {
			return nil, bad("jwks is not a key set")
		}
	} else {
		w.JWKS = nil
	}
	for name, v := range map[string]string{"jwks_uri": w.JWKSURI, "client_uri": w.ClientURI, "logo_uri": w.LogoURI} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
			return nil, bad("%s %q is not an https URL", name, v)
		}
	}
	if len(w.GrantTypes) == 0 {
		w.GrantTypes = []string{"authorization_code"}
	}
	if len(w.ResponseTypes) == 0 {
		w.ResponseTypes = []string{"code"}
	}
	return &Document{
		ClientID:                w.ClientID,
		ClientName:              w.ClientName,
		ClientURI:               w.ClientURI,
		LogoURI:                 w.LogoURI,
		RedirectURIs:            w.RedirectURIs,
		GrantTypes:              w.GrantTypes,
		ResponseTypes:           w.ResponseTypes,
		TokenEndpointAuthMethod: w.TokenEndpointAuthMethod,
		JWKSURI:                 w.JWKSURI,
		JWKS:                    w.JWKS,
		Scope:                   w.Scope,
		Raw:                     bytes.Clone(body),
	}, nil
}

// checkRedirectURI accepts what OAuth 2.1 §2.3.1 and RFC 8252 allow a
// client to register: https, http on a loopback host, or a private-use
// scheme of a native app — absolute, without a fragment. Schemes a browser
// would execute or read locally are refused outright.
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if !u.IsAbs() {
		return errors.New("not absolute")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http only for loopback hosts")
		}
	case "javascript", "data", "vbscript", "file", "about", "blob", "filesystem":
		return fmt.Errorf("scheme %q", u.Scheme)
	}
	if u.User != nil {
		return errors.New("credentials in URL")
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
