package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseAudit(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Audit
	}{
		{"defaults", "", Audit{Enabled: ptr(true), CheckpointInterval: DefaultCheckpointInterval}},
		{"off", "audit: {enabled: false}\n", Audit{Enabled: ptr(false), CheckpointInterval: DefaultCheckpointInterval}},
		{"in full", `
audit:
  file: audit/log.jsonl
  checkpoint_interval: 5s
  redact:
    keys: ["^ssn$"]
    values: ["[0-9]{3}-[0-9]{2}-[0-9]{4}"]
`, Audit{Enabled: ptr(true), File: "audit/log.jsonl", CheckpointInterval: 5 * time.Second,
			Redact: AuditRedact{Keys: []string{"^ssn$"}, Values: []string{"[0-9]{3}-[0-9]{2}-[0-9]{4}"}}}},
		{"interval zero is the default", "audit: {checkpoint_interval: 0}\n", Audit{Enabled: ptr(true), CheckpointInterval: DefaultCheckpointInterval}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("t.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Audit, tc.want) {
				t.Errorf("audit = %+v, want %+v", cfg.Audit, tc.want)
			}
			if cfg.Audit.On() != *tc.want.Enabled {
				t.Errorf("On() = %v", cfg.Audit.On())
			}
		})
	}
	if !(Audit{}).On() {
		t.Error("an audit section built in code without enabled is off")
	}
}

func TestAuditProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"negative interval", "audit: {checkpoint_interval: -1s}\n",
			[]string{"t.yaml:1:30: audit.checkpoint_interval: must not be negative"}},
		{"empty key rule", "audit: {redact: {keys: ['']}}\n",
			[]string{"t.yaml:1:25: audit.redact.keys[0]: must not be empty"}},
		{"bad value rule", "audit: {redact: {values: ['ok', '(']}}\n",
			[]string{"t.yaml:1:33: audit.redact.values[1]: is not a valid regular expression (RE2 syntax): missing closing ): `(`"}},
		{"enabled not a bool", "audit: {enabled: yes please}\n",
			[]string{"t.yaml:1:18: audit.enabled: want true or false"}},
		{"unknown key", "audit: {sink: x}\n",
			[]string{"t.yaml:1:9: audit.sink: unknown key (want one of enabled, file, checkpoint_interval, redact)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := parseProblems(t, tc.yaml)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestAuditFile(t *testing.T) {
	for _, tc := range []struct{ source, file, want string }{
		{"/etc/mandate/mandate.yaml", "audit.jsonl", "/etc/mandate/audit.jsonl"},
		{"/etc/mandate/mandate.yaml", "/var/log/mandate.jsonl", "/var/log/mandate.jsonl"},
		{"", "audit.jsonl", "audit.jsonl"},
		{"/etc/mandate/mandate.yaml", "", ""},
	} {
		c := &Config{Source: tc.source, Audit: Audit{File: tc.file}}
		if got := c.AuditFile(); got != filepath.FromSlash(tc.want) {
			t.Errorf("AuditFile(%q, %q) = %q, want %q", tc.source, tc.file, got, tc.want)
		}
	}
}

// TestFingerprint: the fingerprint recorded at start follows the
// configuration but not its secrets, which it must not reveal.
func TestFingerprint(t *testing.T) {
	load := func(secret, listen string) string {
		t.Helper()
		t.Setenv("MANDATE_TEST_UP_KEY", secret)
		cfg, err := Parse("t.yaml", []byte("listen: "+listen+`
upstreams:
  - id: up
    http: {url: "https://mcp.example.com", headers: {X-Key: "${env:MANDATE_TEST_UP_KEY}"}}
`))
		if err != nil {
			t.Fatal(err)
		}
		fp, err := cfg.Fingerprint()
		if err != nil {
			t.Fatal(err)
		}
		if len(fp) != 64 {
			t.Fatalf("fingerprint %q is not a hex SHA-256", fp)
		}
		return fp
	}
	a := load("secret-1", "127.0.0.1:8787")
	if b := load("secret-2", "127.0.0.1:8787"); a != b {
		t.Errorf("a changed secret changed the fingerprint")
	}
	if c := load("secret-1", "127.0.0.1:9999"); a == c {
		t.Errorf("a changed listen address left the fingerprint as it was")
	}
}
