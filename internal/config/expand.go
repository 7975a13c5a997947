package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// redactedValue replaces secrets in Redacted copies.
const redactedValue = "[redacted]"

// Expand replaces references in the values that launch or reach upstreams,
// in store.dsn, in the auth section's secrets and URLs (public_url,
// clients' secret, jwks, jwks_url and redirect_uris, issuers' and id_jag's
// issuer and jwks_url, federation's issuer and client_secret), and in
// policy.authzen's url and headers, so that the rest of Mandate only ever
// sees final values and never reads the environment itself:
//
//   - ${env:NAME} is the environment variable NAME; it is a problem if
//     NAME is unset (an empty value is accepted).
//   - ${file:PATH} is the file's content without its trailing newline; a
//     relative PATH is resolved against the directory of cfg.Source, so a
//     config and its secrets can move together.
//   - ${self} is the path of the running executable, so the quickstart can
//     start Mandate's built-in demo upstream wherever the binary lives.
//   - $${ is a literal "${".
//
// Expansion is not recursive: text brought in by a reference is never
// expanded again, and a second call to Expand does nothing. Values filled
// from ${env:…} or ${file:…} are remembered so that Redacted can hide them.
// Every failure is reported as a Problem in an *Error; messages name the
// variable or file, never a value.
func Expand(cfg *Config) error {
	if cfg.expanded {
		return nil
	}
	cfg.expanded = true
	if cfg.src == nil {
		cfg.src = newOrigin(cfg.Source)
	}
	e := &expander{dir: "."}
	if cfg.Source != "" {
		e.dir = filepath.Dir(cfg.Source)
	}

	e.str(&cfg.Store.DSN, cfg.src, "store.dsn", "store.dsn")
	e.auth(&cfg.Auth, cfg.src)
	e.str(&cfg.Policy.ApprovalWebhook, cfg.src, "policy.approval_webhook", "policy.approval_webhook")
	if a := cfg.Policy.AuthZEN; a != nil {
		e.str(&a.URL, cfg.src, "policy.authzen.url", "policy.authzen.url")
		e.values(a.Headers, cfg.src, "policy.authzen.headers", "")
	}

	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		if u.src == nil {
			u.src = newOrigin(cfg.src.file)
		}
		base := fmt.Sprintf("upstreams[%d].", i)
		field := func(ptr *string, rel string) {
			e.str(ptr, u.src, rel, base+rel)
		}
		if s := u.Stdio; s != nil {
			field(&s.Command, "stdio.command")
			for j := range s.Args {
				field(&s.Args[j], fmt.Sprintf("stdio.args[%d]", j))
			}
			e.values(s.Env, u.src, "stdio.env", base)
		}
		if h := u.HTTP; h != nil {
			field(&h.URL, "http.url")
			e.values(h.Headers, u.src, "http.headers", base)
		}
		if s := u.SSE; s != nil {
			field(&s.URL, "sse.url")
			e.values(s.Headers, u.src, "sse.headers", base)
		}
	}

	if len(e.problems) == 0 {
		return nil
	}
	sortProblems(e.problems)
	return &Error{Problems: e.problems}
}

// auth expands the auth section. Its paths are relative to the Config, so
// the relative and the full path are the same.
func (e *expander) auth(a *Auth, o *origin) {
	field := func(ptr *string, rel string) { e.str(ptr, o, rel, rel) }
	field(&a.PublicURL, "auth.public_url")
	for i := range a.Clients {
		c := &a.Clients[i]
		base := fmt.Sprintf("auth.clients[%d].", i)
		field(&c.Secret, base+"secret")
		field(&c.JWKS, base+"jwks")
		field(&c.JWKSURL, base+"jwks_url")
		for j := range c.RedirectURIs {
			field(&c.RedirectURIs[j], fmt.Sprintf("%sredirect_uris[%d]", base, j))
		}
	}
	issuers := func(list []Issuer, key string) {
		for i := range list {
			base := fmt.Sprintf("auth.%s[%d].", key, i)
			field(&list[i].Issuer, base+"issuer")
			field(&list[i].JWKSURL, base+"jwks_url")
		}
	}
	issuers(a.Issuers, "issuers")
	issuers(a.IDJAG, "id_jag")
	if f := a.Federation; f != nil {
		field(&f.Issuer, "auth.federation.issuer")
		field(&f.ClientSecret, "auth.federation.client_secret")
	}
}

type expander struct {
	// dir resolves relative ${file:…} paths.
	dir      string
	problems []Problem
}

// values expands every value of m in place, in key order so that problems
// come out in a stable order.
func (e *expander) values(m map[string]string, o *origin, rel, base string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		kr := joinPath(rel, k)
		e.str(&v, o, kr, base+kr)
		m[k] = v
	}
}

func (e *expander) str(ptr *string, o *origin, rel, full string) {
	if !strings.Contains(*ptr, "$") {
		return
	}
	out, secret, msgs := e.expand(*ptr)
	if len(msgs) > 0 {
		o.bad[rel] = true
		p := o.at(rel)
		for _, m := range msgs {
			e.problems = append(e.problems, Problem{
				File: o.file, Line: p.line, Col: p.col, Field: full, Msg: m,
			})
		}
		return
	}
	*ptr = out
	if secret {
		o.secret[rel] = true
	}
}

// expand returns s with its references replaced, whether any of them was a
// secret, and what went wrong.
func (e *expander) expand(s string) (out string, secret bool, msgs []string) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
			continue
		case !strings.HasPrefix(s, "${"):
			b.WriteByte('$')
			s = s[1:]
			continue
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			msgs = append(msgs, `unterminated "${"`)
			break
		}
		ref := s[2:end]
		s = s[end+1:]
		val, isSecret, msg := e.resolve(ref)
		if msg != "" {
			msgs = append(msgs, msg)
			continue
		}
		secret = secret || isSecret
		b.WriteString(val)
	}
	return b.String(), secret, msgs
}

// resolve looks one reference up. The reference text comes from the file,
// not from a secret, so naming the variable or path in a message is safe;
// an unknown reference is not quoted, since it may be a literal secret that
// happens to contain "${".
func (e *expander) resolve(ref string) (val string, secret bool, msg string) {
	kind, arg, _ := strings.Cut(ref, ":")
	switch {
	case kind == "env" && arg != "":
		v, ok := os.LookupEnv(arg)
		if !ok {
			return "", false, fmt.Sprintf("environment variable %s is not set", arg)
		}
		return v, true, ""
	case kind == "file" && arg != "":
		path := arg
		if !filepath.IsAbs(path) {
			path = filepath.Join(e.dir, path)
		}
		data, err := readSecret(path)
		if err != nil {
			return "", false, fmt.Sprintf("cannot read ${file:%s}: %s", arg, describe(err))
		}
		return strings.TrimRight(string(data), "\r\n"), true, ""
	case ref == "self":
		exe, err := os.Executable()
		if err != nil {
			return "", false, fmt.Sprintf("cannot resolve ${self}: %v", err)
		}
		return exe, false, ""
	}
	return "", false, "unknown reference: want ${env:NAME}, ${file:PATH}, ${self}, or $${ for a literal ${"
}

// maxSecretFile bounds what ${file:…} reads, so a reference to the wrong
// file (a log, a device) fails instead of filling memory.
const maxSecretFile = 1 << 20

var errTooLarge = errors.New("larger than 1 MiB")

func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFile {
		return nil, errTooLarge
	}
	return data, nil
}

// describe returns the cause of a file error without the path the caller
// already names.
func describe(err error) string {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Redacted returns a deep copy of c that is safe to print or log: every
// value filled from ${env:…} or ${file:…}, and every stdio env value, HTTP
// header value (of upstreams and of the AuthZEN PDP) and auth client secret
// whatever its source, reads "[redacted]". Env values, headers and client secrets are hidden even when
// written literally because that is where tokens end up; ${self} and
// literal commands, arguments and URLs are kept so the output still shows
// what runs where.
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	r := *c
	r.HTTP.AllowedOrigins = slices.Clone(c.HTTP.AllowedOrigins)
	r.HTTP.AllowedHosts = slices.Clone(c.HTTP.AllowedHosts)
	if c.src.isSecret("store.dsn") {
		r.Store.DSN = redactedValue
	}
	r.Auth = c.Auth.redacted(c.src)
	r.Policy = c.Policy.redacted(c.src)
	r.Audit = c.Audit.redacted()
	r.Upstreams = nil
	if c.Upstreams != nil {
		r.Upstreams = make([]Upstream, len(c.Upstreams))
	}
	for i, u := range c.Upstreams {
		r.Upstreams[i] = u.redacted()
	}
	return &r
}

// redacted copies p deeply, hiding the AuthZEN header values and a URL
// that came from a secret.
func (p Policy) redacted(o *origin) Policy {
	r := p
	r.RequireListing = clonePtr(p.RequireListing)
	r.ApprovalWait = clonePtr(p.ApprovalWait)
	if p.ApprovalWebhook != "" {
		r.ApprovalWebhook = redactedValue
	}
	if a := p.AuthZEN; a != nil {
		c := *a
		if o.isSecret("policy.authzen.url") {
			c.URL = redactedValue
		}
		c.Headers = redactValues(a.Headers)
		r.AuthZEN = &c
	}
	return r
}

// redacted copies a deeply; it holds no secrets to hide.
func (a Audit) redacted() Audit {
	r := a
	r.Enabled = clonePtr(a.Enabled)
	r.Redact.Keys = slices.Clone(a.Redact.Keys)
	r.Redact.Values = slices.Clone(a.Redact.Values)
	return r
}

func (u Upstream) redacted() Upstream {
	hide := func(rel, v string) string {
		if u.src.isSecret(rel) {
			return redactedValue
		}
		return v
	}
	r := u
	if u.Prefix != nil {
		p := *u.Prefix
		r.Prefix = &p
	}
	if s := u.Stdio; s != nil {
		c := *s
		c.Command = hide("stdio.command", s.Command)
		c.Args = slices.Clone(s.Args)
		for i, a := range c.Args {
			c.Args[i] = hide(fmt.Sprintf("stdio.args[%d]", i), a)
		}
		c.Env = redactValues(s.Env)
		r.Stdio = &c
	}
	if h := u.HTTP; h != nil {
		c := *h
		c.URL = hide("http.url", h.URL)
		c.Headers = redactValues(h.Headers)
		r.HTTP = &c
	}
	if s := u.SSE; s != nil {
		c := *s
		c.URL = hide("sse.url", s.URL)
		c.Headers = redactValues(s.Headers)
		r.SSE = &c
	}
	return r
}

// redacted copies a deeply, hiding what came from secrets and every client
// secret; a literal JWKS is public keys and stays visible.
func (a Auth) redacted(o *origin) Auth {
	hide := func(rel, v string) string {
		if o.isSecret(rel) {
			return redactedValue
		}
		return v
	}
	secret := func(v string) string {
		if v != "" {
			return redactedValue
		}
		return v
	}
	r := a
	r.PublicURL = hide("auth.public_url", a.PublicURL)
	r.DCR.Enabled = clonePtr(a.DCR.Enabled)
	r.CIMD.Enabled = clonePtr(a.CIMD.Enabled)
	r.CIMD.AllowHosts = slices.Clone(a.CIMD.AllowHosts)
	r.TokenExchange.TrustedClients = slices.Clone(a.TokenExchange.TrustedClients)
	r.Clients = slices.Clone(a.Clients)
	for i, c := range r.Clients {
		base := fmt.Sprintf("auth.clients[%d].", i)
		c.Secret = secret(c.Secret)
		c.JWKS = hide(base+"jwks", c.JWKS)
		c.JWKSURL = hide(base+"jwks_url", c.JWKSURL)
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		for j, u := range c.RedirectURIs {
			c.RedirectURIs[j] = hide(fmt.Sprintf("%sredirect_uris[%d]", base, j), u)
		}
		c.GrantTypes = slices.Clone(c.GrantTypes)
		c.Scopes = slices.Clone(c.Scopes)
		r.Clients[i] = c
	}
	issuers := func(list []Issuer, key string) []Issuer {
		list = slices.Clone(list)
		for i, is := range list {
			base := fmt.Sprintf("auth.%s[%d].", key, i)
			list[i].Issuer = hide(base+"issuer", is.Issuer)
			list[i].JWKSURL = hide(base+"jwks_url", is.JWKSURL)
		}
		return list
	}
	r.Issuers = issuers(a.Issuers, "issuers")
	r.IDJAG = issuers(a.IDJAG, "id_jag")
	if f := a.Federation; f != nil {
		c := *f
		c.Issuer = hide("auth.federation.issuer", f.Issuer)
		c.ClientSecret = secret(f.ClientSecret)
		c.Scopes = slices.Clone(f.Scopes)
		r.Federation = &c
	}
	return r
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// redactValues keeps the keys, which say what is configured, and hides the
// values.
func redactValues(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	r := make(map[string]string, len(m))
	for k := range m {
		r[k] = redactedValue
	}
	return r
}

// Fingerprint returns the hex SHA-256 of the redacted configuration as
// YAML. The audit log records it at start, so a record can be tied to the
// configuration that was in force without the log holding its secrets; a
// change of a secret alone therefore leaves the fingerprint as it was.
func (c *Config) Fingerprint() (string, error) {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "", fmt.Errorf("fingerprint config: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
