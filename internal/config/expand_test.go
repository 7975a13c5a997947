package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// unsetenv unsets name for the duration of the test.
func unsetenv(t *testing.T, name string) {
	t.Setenv(name, "") // Restores the previous value when the test ends.
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "file-secret\n")
	writeFile(t, filepath.Join(dir, "sub", "crlf"), "crlf-secret\r\n")
	writeFile(t, filepath.Join(dir, "big"), strings.Repeat("x", maxSecretFile+1))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MANDATE_TEST_SET", "env-secret")
	t.Setenv("MANDATE_TEST_EMPTY", "")
	unsetenv(t, "MANDATE_TEST_UNSET")

	tests := []struct {
		name    string
		value   string
		want    string
		secret  bool
		problem string
	}{
		{name: "plain", value: "npx", want: "npx"},
		{name: "lone dollar", value: "a$b$", want: "a$b$"},
		{name: "escape", value: "$${env:X}", want: "${env:X}"},
		{name: "env", value: "Bearer ${env:MANDATE_TEST_SET}", want: "Bearer env-secret", secret: true},
		{name: "env empty is set", value: "x${env:MANDATE_TEST_EMPTY}", want: "x", secret: true},
		{name: "env unset", value: "${env:MANDATE_TEST_UNSET}", problem: "environment variable MANDATE_TEST_UNSET is not set"},
		{name: "file relative", value: "${file:token}", want: "file-secret", secret: true},
		{name: "file crlf", value: "${file:sub/crlf}", want: "crlf-secret", secret: true},
		{name: "file absolute", value: "${file:" + filepath.Join(dir, "token") + "}", want: "file-secret", secret: true},
		{name: "file too large", value: "${file:big}", problem: "cannot read ${file:big}: larger than 1 MiB"},
		{name: "file is a directory", value: "${file:sub}", problem: "cannot read ${file:sub}: is a directory"},
		{name: "file missing", value: "${file:nope}", problem: "cannot read ${file:nope}: no such file or directory"},
		{name: "self", value: "${self}", want: exe},
		{name: "two refs", value: "${self}:${env:MANDATE_TEST_SET}", want: exe + ":env-secret", secret: true},
		{name: "unknown", value: "${home}", problem: "unknown reference: want ${env:NAME}, ${file:PATH}, ${self}, or $${ for a literal ${"},
		{name: "empty env name", value: "${env:}", problem: "unknown reference: want ${env:NAME}, ${file:PATH}, ${self}, or $${ for a literal ${"},
		{name: "unterminated", value: "${env:X", problem: `unterminated "${"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{
				Source: filepath.Join(dir, "mandate.yaml"),
				Upstreams: []Upstream{{
					ID:    "a",
					Stdio: &Stdio{Command: "x", Args: []string{tt.value}},
				}},
			}
			err := Expand(cfg)
			if tt.problem != "" {
				want := cfg.Source + ": upstreams[0].stdio.args[0]: " + tt.problem
				if err == nil || err.Error() != want {
					t.Fatalf("Expand error = %v, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			if got := cfg.Upstreams[0].Stdio.Args[0]; got != tt.want {
				t.Errorf("value = %q, want %q", got, tt.want)
			}
			if got := cfg.Upstreams[0].src.isSecret("stdio.args[0]"); got != tt.secret {
				t.Errorf("secret = %v, want %v", got, tt.secret)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestExpandEveryField(t *testing.T) {
	t.Setenv("MANDATE_TEST_V", "v")
	data := `
store: {driver: postgres, dsn: "${env:MANDATE_TEST_V}"}
upstreams:
  - id: a
    stdio:
      command: "${env:MANDATE_TEST_V}"
      args: ["${env:MANDATE_TEST_V}"]
      env: {E: "${env:MANDATE_TEST_V}"}
      dir: "${env:MANDATE_TEST_V}"
  - id: b
    http: {url: "https://${env:MANDATE_TEST_V}", headers: {H: "${env:MANDATE_TEST_V}"}}
  - id: c
    sse: {url: "https://${env:MANDATE_TEST_V}", headers: {H: "${env:MANDATE_TEST_V}"}}
`
	cfg, err := Parse("t.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := cfg.Upstreams[0], cfg.Upstreams[1], cfg.Upstreams[2]
	got := []string{
		cfg.Store.DSN, a.Stdio.Command, a.Stdio.Args[0], a.Stdio.Env["E"],
		b.HTTP.URL, b.HTTP.Headers["H"], c.SSE.URL, c.SSE.Headers["H"],
	}
	want := []string{"v", "v", "v", "v", "https://v", "v", "https://v", "v"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expanded = %q, want %q", got, want)
	}
	// dir is a path on the host, not a place secrets go; it is kept as
	// written.
	if a.Stdio.Dir != "${env:MANDATE_TEST_V}" {
		t.Errorf("stdio.dir = %q, want it unexpanded", a.Stdio.Dir)
	}
}

func TestExpandEveryAuthField(t *testing.T) {
	t.Setenv("MANDATE_TEST_V", "v")
	t.Setenv("MANDATE_TEST_JWKS", `{"keys": [{"kty": "OKP"}]}`)
	data := `
auth:
  public_url: "https://${env:MANDATE_TEST_V}"
  clients:
    - id: a
      secret: "${env:MANDATE_TEST_V}"
      redirect_uris: ["https://${env:MANDATE_TEST_V}/cb"]
      name: "${env:MANDATE_TEST_V}"
    - id: b
      jwks: "${env:MANDATE_TEST_JWKS}"
      grant_types: [client_credentials]
    - id: c
      jwks_url: "https://${env:MANDATE_TEST_V}/jwks"
      grant_types: [client_credentials]
  issuers:
    - {issuer: "https://${env:MANDATE_TEST_V}", jwks_url: "https://${env:MANDATE_TEST_V}/k", audience: "${env:MANDATE_TEST_V}"}
  id_jag:
    - {issuer: "https://${env:MANDATE_TEST_V}", jwks_url: "https://${env:MANDATE_TEST_V}/k"}
  federation:
    issuer: "https://${env:MANDATE_TEST_V}"
    client_id: m
    client_secret: "${env:MANDATE_TEST_V}"
`
	cfg, err := Parse("t.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	got := []string{
		a.PublicURL, a.Clients[0].Secret, a.Clients[0].RedirectURIs[0], a.Clients[1].JWKS, a.Clients[2].JWKSURL,
		a.Issuers[0].Issuer, a.Issuers[0].JWKSURL, a.IDJAG[0].Issuer, a.IDJAG[0].JWKSURL,
		a.Federation.Issuer, a.Federation.ClientSecret,
	}
	want := []string{
		"https://v", "v", "https://v/cb", `{"keys": [{"kty": "OKP"}]}`, "https://v/jwks",
		"https://v", "https://v/k", "https://v", "https://v/k",
		"https://v", "v",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expanded = %q, want %q", got, want)
	}
	// Names and audiences are identifiers, not secrets or addresses; they
	// are kept as written.
	if a.Clients[0].Name != "${env:MANDATE_TEST_V}" || a.Issuers[0].Audience != "${env:MANDATE_TEST_V}" {
		t.Errorf("name, audience = %q, %q; want them unexpanded", a.Clients[0].Name, a.Issuers[0].Audience)
	}
}

// TestExpandAuthProblems checks that an auth reference that fails is
// reported where it is written, by variable or file name only.
func TestExpandAuthProblems(t *testing.T) {
	unsetenv(t, "MANDATE_TEST_A")
	data := `
auth:
  clients:
    - id: a
      secret: "${env:MANDATE_TEST_A}"
      grant_types: [client_credentials]
  federation:
    issuer: https://idp.example
    client_id: m
    client_secret: "${file:missing-secret}"
`
	_, err := Parse("t.yaml", []byte(data))
	want := strings.Join([]string{
		"t.yaml:5:15: auth.clients[0].secret: environment variable MANDATE_TEST_A is not set",
		"t.yaml:10:20: auth.federation.client_secret: cannot read ${file:missing-secret}: no such file or directory",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("Parse error:\n%v\nwant:\n%s", err, want)
	}
}

// TestExpandIsNotRecursive guards against a secret whose text looks like a
// reference pulling in another file or variable.
func TestExpandIsNotRecursive(t *testing.T) {
	t.Setenv("MANDATE_TEST_V", "${file:/etc/hostname}")
	cfg, err := Parse("t.yaml", []byte("upstreams:\n  - {id: a, http: {url: 'https://x', headers: {H: '${env:MANDATE_TEST_V}'}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Expand(cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstreams[0].HTTP.Headers["H"]; got != "${file:/etc/hostname}" {
		t.Errorf("header = %q, want the variable's text unexpanded", got)
	}
}

func TestExpandReportsEveryProblem(t *testing.T) {
	unsetenv(t, "MANDATE_TEST_A")
	unsetenv(t, "MANDATE_TEST_B")
	data := `
store: {driver: postgres, dsn: "${env:MANDATE_TEST_A}"}
upstreams:
  - id: a
    http:
      url: "${env:MANDATE_TEST_B}"
      headers:
        Y: "${file:missing}"
        X: "${env:MANDATE_TEST_A}${env:MANDATE_TEST_B}"
`
	_, err := Parse("t.yaml", []byte(data))
	want := strings.Join([]string{
		"t.yaml:2:32: store.dsn: environment variable MANDATE_TEST_A is not set",
		"t.yaml:6:12: upstreams[0].http.url: environment variable MANDATE_TEST_B is not set",
		"t.yaml:8:12: upstreams[0].http.headers.Y: cannot read ${file:missing}: no such file or directory",
		"t.yaml:9:12: upstreams[0].http.headers.X: environment variable MANDATE_TEST_A is not set",
		"t.yaml:9:12: upstreams[0].http.headers.X: environment variable MANDATE_TEST_B is not set",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("Parse error:\n%v\nwant:\n%s", err, want)
	}
}

func TestRedacted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dsn"), "postgres://u:file-secret-1@db/m\n")
	t.Setenv("MANDATE_TEST_TOKEN", "env-secret-2")
	t.Setenv("MANDATE_TEST_PATH", "env-secret-3")
	data := `
store: {driver: postgres, dsn: "${file:dsn}"}
upstreams:
  - id: a
    stdio:
      command: "${self}"
      args: [serve, "--token=${env:MANDATE_TEST_TOKEN}"]
      env: {PLAIN: literal-secret-4}
  - id: b
    http:
      url: "https://host/${env:MANDATE_TEST_PATH}"
      headers: {Authorization: "Bearer literal-secret-5"}
  - id: c
    sse:
      url: "https://host/sse"
      headers: {X-Key: "${env:MANDATE_TEST_TOKEN}"}
`
	path := filepath.Join(dir, "mandate.yaml")
	writeFile(t, path, data)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()

	var shown strings.Builder
	fmt.Fprintf(&shown, "%+v\n", r)
	for _, u := range r.Upstreams {
		fmt.Fprintf(&shown, "%+v %+v %+v %+v\n", u, u.Stdio, u.HTTP, u.SSE)
	}
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	shown.Write(out)
	for _, secret := range []string{"file-secret-1", "env-secret-2", "env-secret-3", "literal-secret-4", "literal-secret-5"} {
		if strings.Contains(shown.String(), secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, shown.String())
		}
	}

	exe, _ := os.Executable()
	a, b, c := r.Upstreams[0], r.Upstreams[1], r.Upstreams[2]
	checks := []struct{ name, got, want string }{
		{"store.dsn", r.Store.DSN, redactedValue},
		{"self stays visible", a.Stdio.Command, exe},
		{"literal arg stays visible", a.Stdio.Args[0], "serve"},
		{"arg with secret", a.Stdio.Args[1], redactedValue},
		{"env value", a.Stdio.Env["PLAIN"], redactedValue},
		{"url with secret", b.HTTP.URL, redactedValue},
		{"literal header", b.HTTP.Headers["Authorization"], redactedValue},
		{"literal url stays visible", c.SSE.URL, "https://host/sse"},
		{"header from env", c.SSE.Headers["X-Key"], redactedValue},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}

	// The copy is deep: the original keeps its secrets for use.
	if cfg.Upstreams[0].Stdio.Args[1] != "--token=env-secret-2" || cfg.Upstreams[0].Stdio.Env["PLAIN"] != "literal-secret-4" ||
		cfg.Upstreams[2].SSE.Headers["X-Key"] != "env-secret-2" || cfg.Store.DSN != "postgres://u:file-secret-1@db/m" {
		t.Errorf("Redacted changed the original config")
	}
	if (*Config)(nil).Redacted() != nil {
		t.Errorf("nil.Redacted() != nil")
	}
}

func TestRedactedAuth(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "jwks"), `{"keys": [{"kty": "OKP", "x": "file-secret-1"}]}`+"\n")
	t.Setenv("MANDATE_TEST_SECRET", "env-secret-2")
	t.Setenv("MANDATE_TEST_HOST", "env-secret-3.example")
	data := `
auth:
  public_url: "https://${env:MANDATE_TEST_HOST}"
  clients:
    - id: a
      secret: "${env:MANDATE_TEST_SECRET}"
      redirect_uris: ["https://${env:MANDATE_TEST_HOST}/cb", "https://plain.example/cb"]
    - id: b
      secret: literal-secret-4
      grant_types: [client_credentials]
    - id: c
      jwks: "${file:jwks}"
      grant_types: [client_credentials]
    - id: d
      jwks: '{"keys": [{"kty": "OKP", "x": "public-key"}]}'
      jwks_url: ""
      grant_types: [client_credentials]
  issuers:
    - {issuer: "https://${env:MANDATE_TEST_HOST}", jwks_url: "https://keys.example/jwks"}
  federation:
    issuer: https://idp.example
    client_id: m
    client_secret: literal-secret-5
  id_jag:
    - {issuer: "https://idp.example", jwks_url: "https://${env:MANDATE_TEST_HOST}/k"}
`
	path := filepath.Join(dir, "mandate.yaml")
	writeFile(t, path, data)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"file-secret-1", "env-secret-2", "env-secret-3", "literal-secret-4", "literal-secret-5"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, out)
		}
	}

	a := r.Auth
	checks := []struct{ name, got, want string }{
		{"public_url from env", a.PublicURL, redactedValue},
		{"secret from env", a.Clients[0].Secret, redactedValue},
		{"redirect from env", a.Clients[0].RedirectURIs[0], redactedValue},
		{"literal redirect stays visible", a.Clients[0].RedirectURIs[1], "https://plain.example/cb"},
		{"literal secret", a.Clients[1].Secret, redactedValue},
		{"jwks from a file", a.Clients[2].JWKS, redactedValue},
		{"literal jwks stays visible", a.Clients[3].JWKS, `{"keys": [{"kty": "OKP", "x": "public-key"}]}`},
		{"issuer from env", a.Issuers[0].Issuer, redactedValue},
		{"literal jwks_url stays visible", a.Issuers[0].JWKSURL, "https://keys.example/jwks"},
		{"literal federation secret", a.Federation.ClientSecret, redactedValue},
		{"literal federation issuer stays visible", a.Federation.Issuer, "https://idp.example"},
		{"id_jag jwks_url from env", a.IDJAG[0].JWKSURL, redactedValue},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}

	// The copy is deep: changing it leaves the original, secrets and all.
	a.Clients[0].RedirectURIs[1] = "changed"
	a.Clients[0].GrantTypes[0] = "changed"
	*a.DCR.Enabled = false
	a.Federation.Scopes[0] = "changed"
	o := cfg.Auth
	if o.Clients[0].Secret != "env-secret-2" || o.Clients[1].Secret != "literal-secret-4" ||
		o.Federation.ClientSecret != "literal-secret-5" || o.PublicURL != "https://env-secret-3.example" ||
		o.Clients[0].RedirectURIs[1] != "https://plain.example/cb" || o.Clients[0].GrantTypes[0] != GrantAuthorizationCode ||
		!*o.DCR.Enabled || o.Federation.Scopes[0] != "openid" {
		t.Errorf("Redacted shares or changed the original auth section: %+v", o)
	}
}

// TestSecretsNotInErrors checks that a secret that makes a value invalid is
// not echoed by the problem report.
func TestSecretsNotInErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "url"), "not a url file-secret-1\n")
	t.Setenv("MANDATE_TEST_URL", "ftp://user:env-secret-2@host/")
	t.Setenv("MANDATE_TEST_CMD", "")
	data := `
store: {driver: postgres}
upstreams:
  - id: a
    http: {url: "${file:url}"}
  - id: b
    sse: {url: "${env:MANDATE_TEST_URL}", headers: {K: "literal-secret-3${bad"}}
  - id: c
    stdio: {command: "${env:MANDATE_TEST_CMD}", env: {"=": "literal-secret-4"}}
`
	path := filepath.Join(dir, "mandate.yaml")
	writeFile(t, path, data)
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load accepted invalid URLs")
	}
	for _, secret := range []string{"file-secret-1", "env-secret-2", "literal-secret-3", "literal-secret-4"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q:\n%v", secret, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 6 {
		t.Errorf("got %d problems, want 6:\n%v", n, err)
	}
}
