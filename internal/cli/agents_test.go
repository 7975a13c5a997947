package cli_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// secretHash is the stored hash of a confidential agent's secret; no
// command may print it.
const secretHash = "$argon2id$v=19$m=65536,t=3,p=2$U0VDUkVULVNBTFQ$U0VDUkVULUtFWS1tdXN0LW5vdC1iZS1zaG93bg"

// seedAgents stores three agents, one of each registration kind, and
// returns the configuration that finds them.
func seedAgents(t *testing.T) string {
	t.Helper()
	cfg, db := adminConfig(t)
	st := openDB(t, db)
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))
	agents := []store.Agent{
		{
			ID: "ci-bot", Name: "CI bot", Registration: store.RegistrationConfig, TrustLevel: "trusted",
			Status: store.AgentActive, GrantTypes: []string{"client_credentials"},
			AuthMethod: "client_secret_basic", SecretHash: secretHash, Scopes: []string{"mcp"},
			CreatedAt: t0, FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(26 * time.Hour),
		},
		{
			ID: "https://agent.example.com/client.json", Name: "Example agent", Registration: store.RegistrationCIMD,
			Owner: "0123456789abcdef0123456789abcdef", TrustLevel: "standard", Status: store.AgentSuspended,
			RedirectURIs: []string{"http://127.0.0.1:33418/callback"},
			GrantTypes:   []string{"authorization_code", "refresh_token"}, AuthMethod: "private_key_jwt",
			JWKS:      []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
			Scopes:    []string{"mcp", "offline_access"},
			Metadata:  []byte(`{"client_id":"https://agent.example.com/client.json","client_name":"Example agent"}`),
			CreatedAt: t0.Add(time.Hour), FirstSeen: t0.Add(2 * time.Hour), LastSeen: t0.Add(3 * time.Hour),
		},
		{
			ID: "dcr-7f3a", Registration: store.RegistrationDCR, TrustLevel: "untrusted", Status: store.AgentActive,
			RedirectURIs: []string{"https://app.example.com/cb"}, GrantTypes: []string{"authorization_code"},
			AuthMethod: "none", JWKSURL: "https://app.example.com/jwks.json",
			CreatedAt: t0.Add(48 * time.Hour),
		},
	}
	for _, a := range agents {
		if err := st.PutAgent(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	return cfg
}

const agentsListHeader = `# Golden output of "mandate agents list" for one agent of each registration
# kind. Guards against a suspended agent looking active, a secret hash
# reaching the table, and an agent never seen looking as if it had been.
`

const agentsShowHeader = `# Golden output of "mandate agents show" for a CIMD agent with every field
# such an agent has. Guards against a field of store.Agent going missing from
# the JSON, stored JSON (JWKS, metadata) being shown as base64, and renamed
# keys that would break scripts.
`

func TestAgentsListGolden(t *testing.T) {
	cfg := seedAgents(t)
	r := run(nil, "agents", "list", "--config", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "argon2") {
		t.Fatalf("the list shows a secret hash:\n%s", r.stdout)
	}
	checkGolden(t, "agents_list.golden", agentsListHeader, r.stdout)
}

func TestAgentsShowGolden(t *testing.T) {
	cfg := seedAgents(t)
	r := run(nil, "agents", "show", "https://agent.example.com/client.json", "--config", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkGolden(t, "agents_show.golden", agentsShowHeader, r.stdout)
}

// TestAgentsShowHidesSecretHash checks that show says a secret exists but
// never prints its hash, which would let anyone with the output guess at
// the secret offline.
func TestAgentsShowHidesSecretHash(t *testing.T) {
	cfg := seedAgents(t)
	r := run(nil, "agents", "show", "--config", cfg, "ci-bot")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "argon2") || strings.Contains(r.stdout, "U0VDUkVU") {
		t.Fatalf("show prints the secret hash:\n%s", r.stdout)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	if got["secret_hash"] != "[redacted]" {
		t.Errorf("secret_hash = %v, want [redacted]", got["secret_hash"])
	}
}

// TestAgentsShowUnsetFields checks that every key is present even when its
// field is unset: null for absent values, [] for empty lists.
func TestAgentsShowUnsetFields(t *testing.T) {
	cfg := seedAgents(t)
	r := run(nil, "agents", "show", "dcr-7f3a", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	want := map[string]string{
		"id": `"dcr-7f3a"`, "name": `""`, "owner": `""`, "secret_hash": "null", "jwks": "null",
		"jwks_url": `"https://app.example.com/jwks.json"`, "scopes": "[]", "metadata": "null",
		"created_at": `"2026-03-16T14:09:26.535897Z"`, "first_seen": "null", "last_seen": "null",
	}
	for k, w := range want {
		if string(got[k]) != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
	if n := reflect.TypeFor[store.Agent]().NumField(); len(got) != n {
		t.Errorf("%d keys, want %d: one per field of store.Agent", len(got), n)
	}
}

func TestAgentsSuspendResume(t *testing.T) {
	cfg := seedAgents(t)
	status := func(id string) string {
		t.Helper()
		r := run(nil, "agents", "show", id, "--config", cfg)
		var a struct{ Status string }
		if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
			t.Fatalf("show %s: %v (%+v)", id, err, r)
		}
		return a.Status
	}
	for _, step := range []struct{ verb, want string }{
		{"suspend", "suspended"}, {"suspend", "suspended"}, {"resume", "active"}, {"resume", "active"}, {"suspend", "suspended"},
	} {
		r := run(nil, "agents", step.verb, "ci-bot", "--config", cfg)
		if r.code != 0 || r.stdout != "agent ci-bot: "+step.want+"\n" || r.stderr != "" {
			t.Errorf("%s: %+v", step.verb, r)
		}
		if got := status("ci-bot"); got != step.want {
			t.Errorf("after %s: status %q, want %q", step.verb, got, step.want)
		}
	}
	if got := status("https://agent.example.com/client.json"); got != "suspended" {
		t.Errorf("another agent's status changed to %q", got)
	}
}

func TestAgentsCommands(t *testing.T) {
	cfg := seedAgents(t)
	mem := writeConfig(t, t.TempDir(), "store: {driver: memory}\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"show unknown", []string{"agents", "show", "ghost", "--config", cfg}, 1, `mandate: no agent "ghost"`},
		{"suspend unknown", []string{"agents", "suspend", "ghost", "--config", cfg}, 1, `mandate: no agent "ghost"`},
		{"resume unknown", []string{"agents", "resume", "ghost", "--config", cfg}, 1, `mandate: no agent "ghost"`},
		{"suspend in the memory store", []string{"agents", "suspend", "ci-bot", "--config", mem}, 1, "store.driver is memory"},
		{"show without id", []string{"agents", "show", "--config", cfg}, 2, "usage: mandate agents show ID [flags]"},
		{"suspend two ids", []string{"agents", "suspend", "a", "b", "--config", cfg}, 2, "usage: mandate agents suspend ID [flags]"},
		{"list with an argument", []string{"agents", "list", "x", "--config", cfg}, 2, "usage: mandate agents list [flags]"},
		{"unknown flag", []string{"agents", "list", "--all", "--config", cfg}, 2, "flag provided but not defined: -all"},
		{"no verb", []string{"agents"}, 2, "mandate agents show ID"},
		{"unknown verb", []string{"agents", "delete", "x"}, 2, `mandate agents: unknown command "delete"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(nil, tc.args...)
			if r.code != tc.wantCode || r.stdout != "" || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit %d, no stdout, stderr with %q",
					r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStderr)
			}
		})
	}
}

func TestAgentsListEmpty(t *testing.T) {
	cfg, _ := adminConfig(t)
	r := run(nil, "agents", "list", "--config", cfg)
	if r.code != 0 || r.stdout != "ID  NAME  REGISTRATION  OWNER  TRUST  STATUS  FIRST SEEN  LAST SEEN\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// TestUsageNamesAdminCommands keeps the top-level usage listing the store
// administration commands.
func TestUsageNamesAdminCommands(t *testing.T) {
	r := run(nil, "help")
	for _, cmd := range []string{"mandate users  add USERNAME", "disable USERNAME", "enable USERNAME", "mandate agents list", "show ID", "suspend ID", "resume ID", "--password-file F"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("usage does not mention %q:\n%s", cmd, r.stdout)
		}
	}
}
