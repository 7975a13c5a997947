package audit_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/audit"
)

func TestRedactArgs(t *testing.T) {
	r := testRedactor(t)
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"plain values stay", map[string]any{"path": "/tmp/x", "n": 3.5, "ok": true, "none": nil},
			`{"n":3.5,"none":null,"ok":true,"path":"/tmp/x"}`},
		{"secret key names, any case, any value type", map[string]any{
			"Password": "hunter2", "client_secret": 42, "X-Api-Key": []any{"k"}, "refresh_token": map[string]any{"a": 1},
			"Authorization": "x", "auth": "y", "author": "kept", "pin": 1234, "spinner": "kept"},
			`{"Authorization":"[redacted]","Password":"[redacted]","X-Api-Key":"[redacted]","auth":"[redacted]","author":"kept","client_secret":"[redacted]","pin":"[redacted]","refresh_token":"[redacted]","spinner":"kept"}`},
		{"nested", map[string]any{"headers": map[string]any{"cookie": "c=1", "accept": "json"},
			"list": []any{map[string]any{"api_key": "x"}, "fine"}},
			`{"headers":{"accept":"json","cookie":"[redacted]"},"list":[{"api_key":"[redacted]"},"fine"]}`},
		{"credential-looking values whatever the key", map[string]any{
			"jwt":     jwt,
			"header":  "Bearer abcdefghijklmnopqrstuvwxyz",
			"basic":   "basic dXNlcjpwYXNzd29yZA==",
			"pem":     "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
			"cut pem": "-----BEGIN PRIVATE KEY-----\nMIIE",
			"aws":     "key AKIAIOSFODNN7EXAMPLE here",
			"github":  "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
			"pat":     "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
			"slack":   "xoxb-1234567890-abcdefghij",
			"hook":    "https://hooks.slack.com/services/T000/B000/XXXX",
			"openai":  "sk-proj-abcdefghijklmnopqrstuvwxyz",
			"stripe":  "sk_live_abcdefghijklmnop1234",
			"google":  "AIzaSyA-abcdefghijklmnopqrstuvwxyz012345",
			"url":     "postgres://app:s3cr3t@db:5432/x",
			"normal":  "see https://example.com/path and basic usage",
		},
			`{"aws":"[redacted]","basic":"[redacted]","cut pem":"[redacted]","github":"[redacted]","google":"[redacted]","header":"[redacted]","hook":"[redacted]","jwt":"[redacted]","normal":"see https://example.com/path and basic usage","openai":"[redacted]","pat":"[redacted]","pem":"[redacted]","slack":"[redacted]","stripe":"[redacted]","url":"[redacted]"}`},
		{"a key that is itself a credential is renamed", map[string]any{"ghp_abcdefghijklmnopqrstuvwxyz0123456789": 1},
			`{"[redacted]#1":1}`},
		{"long strings are cut on a rune boundary", map[string]any{"s": strings.Repeat("é", 1500)},
			`{"s":"` + strings.Repeat("é", 1024) + `…[3000 bytes]"}`},
		{"text that cannot be stored is made storable", map[string]any{"s": "a\x00b\xff"},
			`{"s":"a` + "\uFFFD" + `b` + "\uFFFD" + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(r.Args(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Args =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	in := map[string]any{"password": "p", "n": map[string]any{"token": "t"}}
	r.Args(in)
	if in["password"] != "p" || in["n"].(map[string]any)["token"] != "t" {
		t.Errorf("Args changed its input: %v", in)
	}
	if r.Args(nil) != nil {
		t.Error("Args(nil) is not nil")
	}
}

func TestRedactText(t *testing.T) {
	r := testRedactor(t)
	got := r.Text("retry with Bearer abcdefghijklmnop against postgres://u:pw@h/db please")
	if want := "retry with [redacted] against [redacted]h/db please"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestRedactorRules(t *testing.T) {
	rules := audit.DefaultRules()
	rules.Keys = append(rules.Keys, `^ssn$`)
	rules.Values = append(rules.Values, `\b\d{3}-\d{2}-\d{4}\b`)
	rules.MaxString = -1
	r, err := audit.NewRedactor(rules, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(r.Args(map[string]any{"SSN": "x", "note": "id 123-45-6789", "long": strings.Repeat("a", 5000), "password": "p"}))
	want := `{"SSN":"[redacted]","long":"` + strings.Repeat("a", 5000) + `","note":"[redacted]","password":"[redacted]"}`
	if string(got) != want {
		t.Errorf("Args = %s", got)
	}
	if _, err := audit.NewRedactor(audit.Rules{Keys: []string{"("}}, nil); err == nil || !strings.Contains(err.Error(), "key rule") {
		t.Errorf("a bad key rule gave %v", err)
	}
	if _, err := audit.NewRedactor(audit.Rules{Values: []string{"[a"}}, nil); err == nil || !strings.Contains(err.Error(), "value rule") {
		t.Errorf("a bad value rule gave %v", err)
	}
}

func TestDigest(t *testing.T) {
	r := testRedactor(t)
	digest := func(args map[string]any) string {
		t.Helper()
		d, err := r.Digest(args)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := digest(map[string]any{"n": 1, "s": "x", "o": map[string]any{"b": 1, "a": "<"}})
	same := []map[string]any{
		{"s": "x", "n": 1.0, "o": map[string]any{"a": "<", "b": json.Number("1e0")}},
		{"o": map[string]any{"b": int64(1), "a": "<"}, "n": json.Number("1"), "s": "x"},
	}
	for _, args := range same {
		if d := digest(args); d != a {
			t.Errorf("digest of %v differs from an equal call's", args)
		}
	}
	if d := digest(map[string]any{"n": 2, "s": "x", "o": map[string]any{"b": 1, "a": "<"}}); d == a {
		t.Error("different arguments digest alike")
	}
	if len(a) != 64 {
		t.Errorf("digest %q is not hex HMAC-SHA256", a)
	}
	if digest(nil) != digest(map[string]any{}) {
		t.Error("no arguments and empty arguments digest differently")
	}
	other, _ := audit.NewRedactor(audit.DefaultRules(), []byte("another key, another digest!!!!"))
	if d, _ := other.Digest(map[string]any{"n": 1, "s": "x", "o": map[string]any{"b": 1, "a": "<"}}); d == a {
		t.Error("the digest does not depend on the key")
	}
	unkeyed, _ := audit.NewRedactor(audit.DefaultRules(), nil)
	if d, _ := unkeyed.Digest(map[string]any{"a": 1}); d != "" || unkeyed.DigestText("s") != "" {
		t.Error("a redactor without a key computed a digest")
	}
	if r.DigestText("s-1") == "" || r.DigestText("s-1") == r.DigestText("s-2") {
		t.Error("DigestText does not tell values apart")
	}
}
