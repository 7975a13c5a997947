package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParsePolicy(t *testing.T) {
	t.Setenv("MANDATE_TEST_PDP_TOKEN", "pdp-secret")
	for _, tc := range []struct {
		name, yaml string
		want       Policy
	}{
		{"none", "", Policy{}},
		{"authzen with defaults", "policy: {authzen: {url: https://pdp.example.com}}\n",
			Policy{AuthZEN: &AuthZEN{URL: "https://pdp.example.com", Timeout: DefaultAuthZENTimeout}}},
		{"authzen in full", `
policy:
  shadow_dir: next
  require_listing: false
  authzen:
    url: "http://127.0.0.1:9000/tenant1"
    timeout: 2s
    headers: {Authorization: "Bearer ${env:MANDATE_TEST_PDP_TOKEN}"}
`, Policy{
			ShadowDir: "next", RequireListing: ptr(false),
			AuthZEN: &AuthZEN{URL: "http://127.0.0.1:9000/tenant1", Timeout: 2 * time.Second,
				Headers: map[string]string{"Authorization": "Bearer pdp-secret"}},
		}},
		{"cedar with a shadow", "policy: {dir: live, shadow_dir: next}\n", Policy{Dir: "live", ShadowDir: "next"}},
		{"authzen timeout zero is the default", "policy: {authzen: {url: 'https://[::1]', timeout: 0}}\n",
			Policy{AuthZEN: &AuthZEN{URL: "https://[::1]", Timeout: DefaultAuthZENTimeout}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Policy, tc.want) {
				t.Errorf("policy = %+v, want %+v", cfg.Policy, tc.want)
			}
		})
	}
}

func TestPolicyShadowDir(t *testing.T) {
	for _, tc := range []struct{ source, dir, want string }{
		{"/etc/mandate/mandate.yaml", "next", "/etc/mandate/next"},
		{"/etc/mandate/mandate.yaml", "/srv/next", "/srv/next"},
		{"", "next", "next"},
		{"/etc/mandate/mandate.yaml", "", ""},
	} {
		c := &Config{Source: tc.source, Policy: Policy{ShadowDir: tc.dir}}
		if got := c.PolicyShadowDir(); got != filepath.FromSlash(tc.want) {
			t.Errorf("PolicyShadowDir(%q, %q) = %q, want %q", tc.source, tc.dir, got, tc.want)
		}
	}
}

func TestPolicyProblems(t *testing.T) {
	t.Setenv("MANDATE_TEST_SECRET_URL", "https://user:policy-secret@pdp.example.com")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"dir and authzen", "policy:\n  dir: p\n  authzen: {url: https://pdp.example.com}\n",
			[]string{"t.yaml:3:12: policy.authzen: only one of dir or authzen may be set: the PDP replaces the Cedar policies (shadow_dir can still compare them)"}},
		{"url required", "policy: {authzen: {timeout: 1s}}\n",
			[]string{"t.yaml:1:19: policy.authzen.url: required"}},
		{"empty authzen", "policy: {authzen: {}}\n",
			[]string{"t.yaml:1:19: policy.authzen.url: required"}},
		{"http to a remote host", "policy: {authzen: {url: 'http://pdp.example.com'}}\n",
			[]string{"t.yaml:1:25: policy.authzen.url: must be an absolute https:// URL (http:// only for a loopback host)"}},
		{"relative url", "policy: {authzen: {url: /pdp}}\n",
			[]string{"t.yaml:1:25: policy.authzen.url: must be an absolute https:// URL (http:// only for a loopback host)"}},
		{"url with a query", "policy: {authzen: {url: 'https://pdp.example.com?t=1'}}\n",
			[]string{"t.yaml:1:25: policy.authzen.url: must have no user info, query or fragment"}},
		{"url with user info from a secret", "policy: {authzen: {url: '${env:MANDATE_TEST_SECRET_URL}'}}\n",
			[]string{"t.yaml:1:25: policy.authzen.url: must have no user info, query or fragment"}},
		{"negative timeout", "policy: {authzen: {url: 'https://pdp.example.com', timeout: -1s}}\n",
			[]string{"t.yaml:1:61: policy.authzen.timeout: must be positive"}},
		{"bad header name", "policy: {authzen: {url: 'https://pdp.example.com', headers: {'a b': x}}}\n",
			[]string{"t.yaml:1:69: policy.authzen.headers.a b: is not a valid header name"}},
		{"header Mandate sets", "policy: {authzen: {url: 'https://pdp.example.com', headers: {content-type: text/plain}}}\n",
			[]string{"t.yaml:1:76: policy.authzen.headers.content-type: is set by Mandate itself"}},
		{"header with a line break", "policy: {authzen: {url: 'https://pdp.example.com', headers: {X-Key: \"a\\r\\nHost: evil\"}}}\n",
			[]string{"t.yaml:1:69: policy.authzen.headers.X-Key: value must not contain a line break or NUL"}},
		{"negative approval wait", "policy: {approval_wait: -1s}\n",
			[]string{"t.yaml:1:25: policy.approval_wait: must not be negative"}},
		{"negative approval timeout", "policy: {approval_timeout: -1s}\n",
			[]string{"t.yaml:1:28: policy.approval_timeout: must not be negative"}},
		{"approval webhook over http", "policy: {approval_webhook: 'http://hooks.example.com/x'}\n",
			[]string{"t.yaml:1:28: policy.approval_webhook: must be an absolute https:// URL (http:// only for a loopback host)"}},
		{"unknown key", "policy: {authzen: {url: 'https://pdp.example.com', tenant: x}}\n",
			[]string{"t.yaml:1:52: policy.authzen.tenant: unknown key (want one of url, timeout, headers)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProblems(t, tc.yaml)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(err.Error(), "policy-secret") {
				t.Errorf("a problem quotes the secret: %v", err)
			}
		})
	}
}

func TestRedactedPolicy(t *testing.T) {
	t.Setenv("MANDATE_TEST_PDP_URL", "https://pdp.example.com/env-secret-1")
	cfg, err := Parse("t.yaml", []byte(`
policy:
  require_listing: true
  approval_webhook: https://hooks.example.com/literal-secret-3
  authzen:
    url: "${env:MANDATE_TEST_PDP_URL}"
    headers: {Authorization: "Bearer literal-secret-2"}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redacted()
	out, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	shown := fmt.Sprintf("%+v %+v\n%s", r.Policy, r.Policy.AuthZEN, out)
	for _, secret := range []string{"env-secret-1", "literal-secret-2", "literal-secret-3"} {
		if strings.Contains(shown, secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, shown)
		}
	}
	if r.Policy.AuthZEN.URL != redactedValue || r.Policy.AuthZEN.Headers["Authorization"] != redactedValue {
		t.Errorf("redacted authzen = %+v", r.Policy.AuthZEN)
	}
	if cfg.Policy.AuthZEN.Headers["Authorization"] != "Bearer literal-secret-2" || cfg.Policy.AuthZEN.URL != "https://pdp.example.com/env-secret-1" {
		t.Errorf("Redacted changed the original: %+v", cfg.Policy.AuthZEN)
	}
	*r.Policy.RequireListing = false
	if !*cfg.Policy.RequireListing {
		t.Errorf("Redacted shares require_listing with the original")
	}
}
