package config

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/loopback"
)

// Problem is one thing wrong with a configuration, located in its file so an
// operator can go straight to it. Messages never quote string values that
// may hold secrets: they name the field, the variable or the file instead.
type Problem struct {
	// File is the configuration file; "" for a Config built in code.
	File string
	// Line and Col are 1-based; 0 when unknown, as for a value that was
	// not in the file.
	Line, Col int
	// Field is the path of the value, such as "upstreams[1].http.url".
	Field string
	// Msg says what is wrong.
	Msg string
}

// String formats p as "file:line:col: field: msg", leaving out the parts
// that are unknown (YAML syntax errors, for one, come without a column).
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	switch {
	case p.Line > 0 && p.Col > 0:
		fmt.Fprintf(&b, "%d:%d:", p.Line, p.Col)
	case p.Line > 0:
		fmt.Fprintf(&b, "%d:", p.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error carries every problem found in a configuration, so that one run of
// "mandate check" lists them all instead of one per edit.
type Error struct {
	Problems []Problem
}

// Error joins the problems, one per line.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return "invalid configuration"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems puts problems in reading order. The sort is stable so that
// problems at one position keep the order in which they were found.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Col, b.Col),
		)
	})
}

var (
	// namePattern bounds ids and prefixes to characters that are safe in
	// tool names on every client, and to a length that leaves room for the
	// upstream's own names within common tool-name limits.
	namePattern      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	separatorPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Validate reports every problem in cfg at once, in file order. It expects
// defaults applied and references expanded, as Load and Parse do; a value
// already reported while parsing or expanding is not reported again.
func Validate(cfg *Config) []Problem {
	v := &validator{}
	v.config(cfg)
	sortProblems(v.problems)
	return v.problems
}

type validator struct {
	problems []Problem
}

// report records a problem at rel inside o, unless that value or one of its
// parents was already reported.
func (v *validator) report(o *origin, rel, full, format string, args ...any) {
	if o.quiet(rel) {
		return
	}
	p := o.at(rel)
	file := ""
	if o != nil {
		file = o.file
	}
	v.problems = append(v.problems, Problem{
		File:  file,
		Line:  p.line,
		Col:   p.col,
		Field: full,
		Msg:   fmt.Sprintf(format, args...),
	})
}

func (v *validator) config(cfg *Config) {
	o := cfg.src
	top := func(rel, format string, args ...any) {
		v.report(o, rel, rel, format, args...)
	}

	if err := checkListen(cfg.Listen); err != "" {
		top("listen", "%s", err)
	}
	if cfg.DataDir == "" {
		top("data_dir", "must not be empty")
	}
	if !separatorPattern.MatchString(cfg.Separator) {
		top("separator", "must be one or more of A-Z a-z 0-9 _ -")
	}

	switch cfg.Store.Driver {
	case "sqlite", "memory":
	case "postgres":
		if cfg.Store.DSN == "" {
			top("store.dsn", "required when store.driver is postgres")
		}
	default:
		top("store.driver", "must be sqlite, postgres or memory, not %q", cfg.Store.Driver)
	}

	if cfg.HTTP.MaxBodyBytes < 0 {
		top("http.max_body_bytes", "must not be negative")
	}
	if cfg.Policy.ApprovalTimeout < 0 {
		top("policy.approval_timeout", "must not be negative")
	}
	if w := cfg.Policy.ApprovalWait; w != nil && *w < 0 {
		top("policy.approval_wait", "must not be negative")
	}
	if cfg.HTTP.SessionTimeout < 0 {
		top("http.session_timeout", "must not be negative")
	}
	if cfg.HTTP.MaxSessionsPerClient < 0 {
		top("http.max_sessions_per_client", "must not be negative")
	}
	for i, s := range cfg.HTTP.AllowedOrigins {
		if s == "" {
			top(fmt.Sprintf("http.allowed_origins[%d]", i), "must not be empty")
		}
	}
	for i, s := range cfg.HTTP.AllowedHosts {
		if s == "" {
			top(fmt.Sprintf("http.allowed_hosts[%d]", i), "must not be empty")
		}
	}

	v.auth(cfg)
	v.policy(cfg)
	v.audit(cfg)

	ids := map[string]int{}
	prefixes := map[string]int{}
	for i, u := range cfg.Upstreams {
		v.upstream(i, u)

		if u.ID != "" && namePattern.MatchString(u.ID) {
			if j, dup := ids[u.ID]; dup {
				v.atUpstream(i, u, "id", "duplicate id %q (also %s)", u.ID, where(j, cfg.Upstreams[j]))
			} else {
				ids[u.ID] = i
			}
		}

		// An empty prefix may be shared: whether unprefixed names collide
		// depends on what the upstreams serve, which only the gateway
		// sees. Two equal non-empty prefixes always collide.
		p := u.EffectivePrefix()
		if p == "" || !namePattern.MatchString(p) {
			continue
		}
		j, dup := prefixes[p]
		if !dup {
			prefixes[p] = i
			continue
		}
		if u.Prefix == nil && cfg.Upstreams[j].Prefix == nil {
			continue // Already reported as a duplicate id.
		}
		rel := "prefix"
		if u.Prefix == nil {
			rel = "id"
		}
		v.atUpstream(i, u, rel, "prefix %q is already used by %s", p, where(j, cfg.Upstreams[j]))
	}
}

// where names upstream i for a message pointing back at it.
func where(i int, u Upstream) string {
	if u.Line > 0 {
		return fmt.Sprintf("upstreams[%d] at line %d", i, u.Line)
	}
	return fmt.Sprintf("upstreams[%d]", i)
}

func (v *validator) atUpstream(i int, u Upstream, rel, format string, args ...any) {
	full := fmt.Sprintf("upstreams[%d]", i)
	if rel != "" {
		full += "." + rel
	}
	v.report(u.src, rel, full, format, args...)
}

func (v *validator) upstream(i int, u Upstream) {
	at := func(rel, format string, args ...any) {
		v.atUpstream(i, u, rel, format, args...)
	}

	switch {
	case u.ID == "":
		at("id", "required")
	case !namePattern.MatchString(u.ID):
		at("id", "must be 1 to 32 of A-Z a-z 0-9 _ -")
	}
	if u.Prefix != nil && *u.Prefix != "" && !namePattern.MatchString(*u.Prefix) {
		at("prefix", "must be empty or 1 to 32 of A-Z a-z 0-9 _ -")
	}

	var set []string
	for _, t := range []struct {
		name string
		on   bool
	}{{"stdio", u.Stdio != nil}, {"http", u.HTTP != nil}, {"sse", u.SSE != nil}} {
		if t.on {
			set = append(set, t.name)
		}
	}
	switch {
	case len(set) == 0 && !u.src.quiet("stdio") && !u.src.quiet("http") && !u.src.quiet("sse"):
		at("", "one of stdio, http or sse is required")
	case len(set) > 1:
		at(set[1], "only one of stdio, http or sse may be set, found %s", strings.Join(set, " and "))
	}

	if u.Stdio != nil {
		if u.Stdio.Command == "" {
			at("stdio.command", "required")
		}
		for name := range u.Stdio.Env {
			if name == "" || strings.ContainsAny(name, "=\x00") {
				at("stdio.env", "variable names must be non-empty and contain no '=' or NUL")
				break
			}
		}
	}
	if u.HTTP != nil {
		checkURL(at, "http", u.HTTP.URL)
	}
	if u.SSE != nil {
		checkURL(at, "sse", u.SSE.URL)
	}

	switch u.Session {
	case SessionShared, SessionPerClient:
	default:
		at("session", "must be %s or %s, not %q", SessionShared, SessionPerClient, u.Session)
	}
	if u.Timeout < 0 {
		at("timeout", "must not be negative")
	}
	if u.IdleTimeout < 0 {
		at("idle_timeout", "must not be negative")
	}
	if u.Restart.MaxBackoff < 0 {
		at("restart.max_backoff", "must not be negative")
	}
	if u.MaxSessions < 1 {
		at("max_sessions", "must be at least 1")
	}
}

// checkURL never quotes the URL: after expansion it may carry a token in its
// query or user info.
func checkURL(at func(rel, format string, args ...any), transport, raw string) {
	rel := transport + ".url"
	if raw == "" {
		at(rel, "required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		at(rel, "must be an absolute http:// or https:// URL")
	}
}

// checkListen returns what is wrong with a listen address, or "". Any host
// is accepted: a non-loopback one is only ever there because an operator
// wrote it, which is the explicit choice the default asks for.
func checkListen(addr string) string {
	const want = `must be host:port, such as "127.0.0.1:8787"`
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return want
	}
	if strings.ContainsAny(host, " /") {
		return want
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "port must be a number from 0 to 65535"
	}
	return ""
}

// headersSetByMandate are the request headers the AuthZEN client sets
// itself; configuring one would be silently overridden, so it is refused.
var headersSetByMandate = []string{"Content-Type", "Content-Length", "Host", "X-Request-Id"}

func (v *validator) policy(cfg *Config) {
	p, o := &cfg.Policy, cfg.src
	top := func(rel, format string, args ...any) {
		v.report(o, rel, rel, format, args...)
	}
	if p.ApprovalWebhook != "" && !o.bad["policy.approval_webhook"] {
		if _, msg := secureURL(p.ApprovalWebhook); msg != "" {
			top("policy.approval_webhook", "%s", msg)
		}
	}
	a := p.AuthZEN
	if a == nil {
		return
	}
	if p.Dir != "" {
		// Two live decision points would need a rule for when they
		// disagree; a shadow is the way to compare them.
		top("policy.authzen", "only one of dir or authzen may be set: the PDP replaces the Cedar policies (shadow_dir can still compare them)")
	}
	switch u, msg := secureURL(a.URL); {
	case msg != "":
		top("policy.authzen.url", "%s", msg)
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(a.URL, "#"):
		// Credentials go in headers, where they are redacted; the
		// identifier is compared with the PDP's metadata as written.
		top("policy.authzen.url", "must have no user info, query or fragment")
	}
	if a.Timeout < 0 {
		top("policy.authzen.timeout", "must be positive")
	}
	for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
		rel := joinPath("policy.authzen.headers", name)
		switch {
		case !headerName.MatchString(name):
			top(rel, "is not a valid header name")
		case slices.ContainsFunc(headersSetByMandate, func(h string) bool { return strings.EqualFold(h, name) }):
			top(rel, "is set by Mandate itself")
		case strings.ContainsAny(a.Headers[name], "\r\n\x00"):
			top(rel, "value must not contain a line break or NUL")
		}
	}
}

// audit checks the audit section. Redaction patterns are compiled here as
// the audit log will compile them, so a typo is reported with the rest of
// the file rather than as a failure to start.
func (v *validator) audit(cfg *Config) {
	a, o := &cfg.Audit, cfg.src
	top := func(rel, format string, args ...any) {
		v.report(o, rel, rel, format, args...)
	}
	if a.CheckpointInterval < 0 {
		top("audit.checkpoint_interval", "must not be negative")
	}
	for _, list := range []struct {
		key, flags string
		patterns   []string
	}{{"keys", "(?i)", a.Redact.Keys}, {"values", "", a.Redact.Values}} {
		for i, p := range list.patterns {
			rel := fmt.Sprintf("audit.redact.%s[%d]", list.key, i)
			if p == "" {
				// An empty pattern matches everything, which would
				// redact every value; that is never what was meant.
				top(rel, "must not be empty")
				continue
			}
			if _, err := regexp.Compile(list.flags + p); err != nil {
				top(rel, "is not a valid regular expression (RE2 syntax): %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
	}
}

// headerName is an HTTP field name (RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// grantTypes are the grant types a pre-registered client may be given.
var grantTypes = []string{
	GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantTokenExchange, GrantJWTBearer,
}

func (v *validator) auth(cfg *Config) {
	a, o := &cfg.Auth, cfg.src
	top := func(rel, format string, args ...any) {
		v.report(o, rel, rel, format, args...)
	}
	listenOK := checkListen(cfg.Listen) == ""

	switch a.Mode {
	case AuthEmbedded, AuthExternal:
	case AuthNone:
		// Without authentication anyone who can reach the listener acts as
		// the local user; only this machine may reach a loopback one.
		if listenOK && !loopbackListen(cfg.Listen) {
			v.report(o, "auth.mode", "auth", "none is refused on a non-loopback listener")
		}
	default:
		top("auth.mode", "must be %s, %s or %s, not %q", AuthEmbedded, AuthExternal, AuthNone, a.Mode)
	}

	derived := !o.has("auth.public_url") && a.PublicURL == derivedPublicURL(cfg.Listen)
	switch msg := publicURLProblem(a.PublicURL); {
	case msg == "":
	case derived && !listenOK:
		// The listen address it came from is already reported.
	case derived:
		v.report(o, "listen", "auth.public_url", "required: it cannot be derived from listen %q", cfg.Listen)
	default:
		top("auth.public_url", "%s", msg)
	}

	for _, d := range []struct {
		rel string
		d   time.Duration
	}{
		{"auth.access_token_ttl", a.AccessTokenTTL},
		{"auth.refresh_token_ttl", a.RefreshTokenTTL},
		{"auth.key_rotation", a.KeyRotation},
		{"auth.cimd.timeout", a.CIMD.Timeout},
	} {
		if d.d <= 0 {
			top(d.rel, "must be positive")
		}
	}
	if a.DCR.PerMinute < 1 {
		top("auth.dcr.per_minute", "must be at least 1")
	}
	if a.CIMD.MaxBytes < 1 {
		top("auth.cimd.max_bytes", "must be at least 1")
	}
	for i, h := range a.CIMD.AllowHosts {
		if h == "" {
			top(fmt.Sprintf("auth.cimd.allow_hosts[%d]", i), "must not be empty")
		}
	}

	clients := map[string]int{}
	for i, c := range a.Clients {
		v.client(o, i, c)
		if c.ID == "" {
			continue
		}
		if j, dup := clients[c.ID]; dup {
			top(fmt.Sprintf("auth.clients[%d].id", i), "duplicate id %q (also %s)", c.ID, clientWhere(o, j))
			continue
		}
		clients[c.ID] = i
	}
	for i, id := range a.TokenExchange.TrustedClients {
		if _, ok := clients[id]; !ok {
			top(fmt.Sprintf("auth.token_exchange.trusted_clients[%d]", i), "%q is not a client in auth.clients", id)
		}
	}

	if a.Mode == AuthExternal && len(a.Issuers) == 0 {
		top("auth.issuers", "at least one issuer is required when auth.mode is external")
	}
	for i, is := range a.Issuers {
		v.issuer(o, fmt.Sprintf("auth.issuers[%d].", i), is)
	}
	for i, is := range a.IDJAG {
		v.issuer(o, fmt.Sprintf("auth.id_jag[%d].", i), is)
	}

	if f := a.Federation; f != nil {
		v.issuerURL(o, "auth.federation.issuer", f.Issuer)
		if f.ClientID == "" {
			top("auth.federation.client_id", "required")
		}
		switch {
		case len(f.Scopes) == 0:
			top("auth.federation.scopes", "must not be empty; leave it out for openid, email and profile")
		case !slices.Contains(f.Scopes, "openid"):
			top("auth.federation.scopes", "must include openid")
		}
	}
}

// clientWhere names client i for a message pointing back at it.
func clientWhere(o *origin, i int) string {
	rel := fmt.Sprintf("auth.clients[%d]", i)
	if o.has(rel) {
		return fmt.Sprintf("%s at line %d", rel, o.at(rel).line)
	}
	return rel
}

func (v *validator) client(o *origin, i int, c Client) {
	base := fmt.Sprintf("auth.clients[%d].", i)
	at := func(rel, format string, args ...any) {
		v.report(o, base+rel, base+rel, format, args...)
	}

	if c.ID == "" {
		at("id", "required")
	}
	switch {
	case c.Secret != "" && (c.JWKS != "" || c.JWKSURL != ""):
		// One client, one way to authenticate: accepting either would let
		// the weaker one stand in for the other.
		rel := "jwks"
		if c.JWKS == "" {
			rel = "jwks_url"
		}
		at(rel, "only one of secret, jwks or jwks_url may be set")
	case c.JWKS != "" && c.JWKSURL != "":
		at("jwks_url", "only one of secret, jwks or jwks_url may be set")
	}
	if c.JWKS != "" {
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if json.Unmarshal([]byte(c.JWKS), &set) != nil || len(set.Keys) == 0 {
			at("jwks", `must be a JSON Web Key Set, {"keys": [...]} with at least one key`)
		}
	}
	if c.JWKSURL != "" {
		if _, msg := secureURL(c.JWKSURL); msg != "" {
			at("jwks_url", "%s", msg)
		}
	}
	for j, raw := range c.RedirectURIs {
		rel := fmt.Sprintf("redirect_uris[%d]", j)
		u, msg := secureURL(raw)
		switch {
		case msg != "":
			at(rel, "%s", msg)
		case u.Fragment != "" || strings.HasSuffix(raw, "#"):
			at(rel, "must not have a fragment")
		}
	}

	if c.GrantTypes != nil && len(c.GrantTypes) == 0 {
		at("grant_types", "must not be empty; leave it out for authorization_code and refresh_token")
	}
	for j, g := range c.GrantTypes {
		rel := fmt.Sprintf("grant_types[%d]", j)
		switch {
		case !slices.Contains(grantTypes, g):
			at(rel, "unknown grant type %q (want one of %s)", g, strings.Join(grantTypes, ", "))
		case g == GrantClientCredentials && c.Secret == "" && c.JWKS == "" && c.JWKSURL == "":
			// A client acting for nobody proves only itself; without a
			// credential anyone could claim its id.
			at(rel, "client_credentials requires secret, jwks or jwks_url")
		case g == GrantAuthorizationCode && len(c.RedirectURIs) == 0 && o.has(base+"grant_types"):
			at(rel, "authorization_code requires at least one of redirect_uris")
		}
	}
	if len(c.RedirectURIs) == 0 && !o.has(base+"grant_types") && slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		at("redirect_uris", "required by the default grant types; set grant_types for a client without redirects")
	}
	if c.Scopes != nil && len(c.Scopes) == 0 {
		// Left out means every supported scope; an explicit empty list most
		// likely meant none, so it is refused rather than widened.
		at("scopes", "must not be empty; leave it out for every supported scope")
	}
	for j, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			at(fmt.Sprintf("scopes[%d]", j), "must be a non-empty scope name without spaces")
		}
	}
	switch c.TrustLevel {
	case TrustUntrusted, TrustStandard, TrustTrusted:
	default:
		at("trust_level", "must be %s, %s or %s, not %q", TrustUntrusted, TrustStandard, TrustTrusted, c.TrustLevel)
	}
}

func (v *validator) issuer(o *origin, base string, is Issuer) {
	v.issuerURL(o, base+"issuer", is.Issuer)
	if is.JWKSURL != "" {
		if _, msg := secureURL(is.JWKSURL); msg != "" {
			v.report(o, base+"jwks_url", base+"jwks_url", "%s", msg)
		}
	}
}

// issuerURL checks an issuer identifier: an https URL without query or
// fragment (RFC 8414), compared by the verifier exactly as written.
func (v *validator) issuerURL(o *origin, rel, raw string) {
	u, msg := secureURL(raw)
	switch {
	case msg != "":
		v.report(o, rel, rel, "%s", msg)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(raw, "#"):
		v.report(o, rel, rel, "must not have a query or fragment")
	}
}

// secureURL parses an absolute https URL; plain http is accepted only for a
// loopback host, where nothing crosses a network. Like checkURL it never
// quotes the value, which may carry a secret.
func secureURL(raw string) (*url.URL, string) {
	if raw == "" {
		return nil, "required"
	}
	const want = "must be an absolute https:// URL (http:// only for a loopback host)"
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, want
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback.Host(u.Hostname()):
	default:
		return nil, want
	}
	return u, ""
}

// publicURLProblem returns what is wrong with a public_url, or "". It is a
// base URL that paths are appended to, so it has nothing after the port.
func publicURLProblem(raw string) string {
	if raw == "" {
		return "required"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return "must be an absolute http:// or https:// URL"
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "must be scheme://host[:port] with no path, query or fragment"
	}
	return ""
}

// loopbackListen reports whether a valid listen address accepts connections
// from this machine only. An empty host listens on every interface.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopback.Host(host)
}
