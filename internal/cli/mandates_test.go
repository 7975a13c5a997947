package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// seedMandates stores two users, two agents and one mandate in each state,
// with fixed ids and times: expiries far in the past or the future keep the
// statuses stable whenever the test runs. It returns the configuration
// that finds them.
func seedMandates(t *testing.T) string {
	t.Helper()
	cfg, db := adminConfig(t)
	st := openDB(t, db)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, u := range []store.User{
		{ID: "u-alice", Username: "alice", CreatedAt: t0},
		{ID: "u-bob", Username: "bob", CreatedAt: t0},
		{ID: "u-carol", Username: "carol", Disabled: true, CreatedAt: t0},
	} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"claude-desktop", "ci-bot"} {
		if err := st.PutAgent(ctx, store.Agent{
			ID: id, Registration: store.RegistrationConfig, TrustLevel: "standard", Status: store.AgentActive,
			AuthMethod: "none", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1/cb"}, CreatedAt: t0,
		}); err != nil {
			t.Fatal(err)
		}
	}
	mandates := []store.Mandate{
		{
			ID: "mnd_active", User: "u-alice", Agent: "claude-desktop",
			Grants: []byte(`[{"upstream":"fs","tool":"read_file","constraints":[{"arg":"path","prefix":"/srv/reports"},` +
				`{"arg":"limit","min":1,"max":100}]},{"upstream":"github","tool":"list_*"},` +
				`{"upstream":"mail","tool":"send","constraints":[{"arg":"to","one_of":["a@example.com","b@example.com"],"suffix":"@example.com"}]}]`),
			Purpose: "quarterly report", CreatedAt: t0.Add(3 * time.Hour), ExpiresAt: future, UsesLeft: 50,
		},
		{
			ID: "mnd_revoked", User: "u-alice", Agent: "ci-bot", Grants: []byte(`[{"upstream":"*","tool":"*"}]`),
			CreatedAt: t0.Add(2 * time.Hour), ExpiresAt: future, UsesLeft: store.UnlimitedUses,
			RevokedAt: t0.Add(26 * time.Hour), RevokedBy: "alice",
		},
		{
			ID: "mnd_exhausted", User: "u-bob", Agent: "claude-desktop", Grants: []byte(`[{"upstream":"fs","tool":"write_file"}]`),
			Purpose:   "a purpose long enough to be cut short in the table, but not in show",
			CreatedAt: t0.Add(time.Hour), ExpiresAt: future, UsesLeft: 0,
		},
		{
			// The purpose tries to drive the operator's terminal.
			ID: "mnd_expired", User: "u-bob", Agent: "ci-bot", Grants: []byte(`[{"upstream":"github","tool":"create_issue"}]`),
			Purpose:   "\x1b[2Jhidden\ttab",
			CreatedAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC),
			UsesLeft: store.UnlimitedUses,
		},
		{
			// Its user has been deleted since; the mandate stays as evidence.
			ID: "mnd_orphan", User: "u-gone", Agent: "claude-desktop", Grants: []byte(`[{"upstream":"fs","tool":"*"}]`),
			CreatedAt: t0, ExpiresAt: future, UsesLeft: 3,
		},
	}
	for _, m := range mandates {
		if err := st.CreateMandate(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	return cfg
}

const mandatesListHeader = `# Golden output of "mandate mandates list" with one mandate in each state.
# Guards against a revoked, expired or used-up mandate looking active, the
# grants (and their constraints) being hidden from the operator, a deleted
# user's mandate vanishing, and a purpose's escape sequences or tabs
# reaching the operator's terminal or breaking the table.
`

const mandatesShowHeader = `# Golden output of "mandate mandates show" for a mandate with several grants
# and constraints. Guards against a field going missing from the JSON,
# constraints being shown other than as they are matched, and renamed keys
# that would break scripts.
`

func TestMandatesListGolden(t *testing.T) {
	cfg := seedMandates(t)
	r := run(nil, "mandates", "list", "--config", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "\x1b") {
		t.Fatalf("the list carries an escape sequence:\n%q", r.stdout)
	}
	checkGolden(t, "mandates_list.golden", mandatesListHeader, r.stdout)
}

func TestMandatesListFilters(t *testing.T) {
	cfg := seedMandates(t)
	ids := func(args ...string) []string {
		t.Helper()
		r := run(nil, append([]string{"mandates", "list", "--config", cfg}, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n")[1:] {
			out = append(out, strings.Fields(line)[0])
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", "alice"}, "mnd_active mnd_revoked"},
		{[]string{"--agent", "ci-bot"}, "mnd_revoked mnd_expired"},
		{[]string{"--user", "bob", "--agent", "claude-desktop"}, "mnd_exhausted"},
		{[]string{"--user", "carol"}, ""},
		// A deleted agent's mandates can still be listed by its id.
		{[]string{"--agent", "deleted-agent"}, ""},
	} {
		if got := strings.Join(ids(tc.args...), " "); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestMandatesShowGolden(t *testing.T) {
	cfg := seedMandates(t)
	r := run(nil, "mandates", "show", "mnd_active", "--config", cfg)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkGolden(t, "mandates_show.golden", mandatesShowHeader, r.stdout)
}

// TestMandatesShowStates checks the fields that differ between states: an
// unlimited mandate has a null uses_left, a revoked one says by whom, and a
// deleted user's username is empty.
func TestMandatesShowStates(t *testing.T) {
	cfg := seedMandates(t)
	for _, tc := range []struct {
		id   string
		want map[string]string
	}{
		{"mnd_revoked", map[string]string{"status": `"revoked"`, "uses_left": "null", "revoked_by": `"alice"`,
			"revoked_at": `"2026-03-15T16:09:26.535897Z"`, "purpose": `""`, "username": `"alice"`}},
		{"mnd_expired", map[string]string{"status": `"expired"`, "revoked_at": "null", "revoked_by": `""`,
			"purpose": `"\u001b[2Jhidden\ttab"`}},
		{"mnd_exhausted", map[string]string{"status": `"exhausted"`, "uses_left": "0"}},
		{"mnd_orphan", map[string]string{"status": `"active"`, "user": `"u-gone"`, "username": `""`, "uses_left": "3"}},
	} {
		r := run(nil, "mandates", "show", tc.id, "--config", cfg)
		var got map[string]json.RawMessage
		if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
			t.Fatalf("%s: exit %d, %v, stderr %q", tc.id, r.code, err, r.stderr)
		}
		for k, w := range tc.want {
			if string(got[k]) != w {
				t.Errorf("%s: %s = %s, want %s", tc.id, k, got[k], w)
			}
		}
	}
}

var mandateID = regexp.MustCompile(`mnd_[A-Z2-7]{26}`)

// TestMandatesRoundTrip grants mandates through the command line, finds
// them in list and show, and revokes one, on SQLite.
func TestMandatesRoundTrip(t *testing.T) {
	cfg := seedMandates(t)
	r := run(nil, "mandates", "grant", "--config", cfg, "--user", "bob", "--agent", "claude-desktop",
		"--upstream", "fs", "--tool", "read_file", "--constraint", "path:prefix=/srv/reports", "--constraint", "path:suffix=.pdf",
		"--tool", "list_*", "--upstream", "*", "--constraint", `state:oneof="open","closed"`,
		"--purpose", "audit", "--expires", "48h", "--uses", "5")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("grant: exit %d, stderr %q", r.code, r.stderr)
	}
	id := mandateID.FindString(r.stdout)
	if id == "" || !strings.HasPrefix(r.stdout, "granted mandate "+id+": user bob, agent claude-desktop, expires ") ||
		!strings.HasSuffix(r.stdout, ", uses 5\n") {
		t.Fatalf("grant printed %q", r.stdout)
	}

	r = run(nil, "mandates", "show", id, "--config", cfg)
	var m struct {
		User, Username, Agent, Status, Purpose string
		Grants                                 json.RawMessage
		UsesLeft                               *int      `json:"uses_left"`
		CreatedAt                              time.Time `json:"created_at"`
		ExpiresAt                              time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("show: %v (%+v)", err, r)
	}
	wantGrants := `[{"upstream":"fs","tool":"read_file","constraints":[{"arg":"path","prefix":"/srv/reports","suffix":".pdf"}]},` +
		`{"upstream":"*","tool":"list_*","constraints":[{"arg":"state","one_of":["open","closed"]}]}]`
	if got := compactJSON(t, m.Grants); got != wantGrants {
		t.Errorf("grants:\n got %s\nwant %s", got, wantGrants)
	}
	if m.User != "u-bob" || m.Username != "bob" || m.Agent != "claude-desktop" || m.Status != "active" ||
		m.Purpose != "audit" || m.UsesLeft == nil || *m.UsesLeft != 5 {
		t.Errorf("show: %+v", m)
	}
	if d := m.ExpiresAt.Sub(m.CreatedAt); d != 48*time.Hour {
		t.Errorf("expires %v after creation, want 48h", d)
	}

	r = run(nil, "mandates", "list", "--user", "bob", "--config", cfg)
	line := lineWith(r.stdout, id)
	for _, want := range []string{" bob ", " claude-desktop ", " audit ", " 5 ",
		` fs/read_file path:prefix=/srv/reports path:suffix=.pdf, */list_* state:oneof="open","closed" `} {
		if !strings.Contains(line, want) || !strings.HasSuffix(line, " active") {
			t.Errorf("list shows the new mandate as %q, want %q in it and status active", line, want)
		}
	}

	r = run(nil, "mandates", "revoke", id, "--config", cfg, "--by", "security-team")
	if r.code != 0 || !regexp.MustCompile(`^mandate `+id+`: revoked by security-team at \S+Z\n$`).MatchString(r.stdout) {
		t.Fatalf("revoke: %+v", r)
	}
	r = run(nil, "mandates", "revoke", id, "--config", cfg)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mandate "+id+": already revoked by security-team at ") {
		t.Errorf("second revoke: %+v", r)
	}
	r = run(nil, "mandates", "list", "--user", "bob", "--agent", "claude-desktop", "--config", cfg)
	if line := lineWith(r.stdout, id); !strings.HasSuffix(line, "revoked") {
		t.Errorf("after revoke, list shows %q", line)
	}

	// Defaults: any upstream, unlimited uses, 24 hours, revoked by "cli".
	r = run(nil, "mandates", "grant", "--user", "alice", "--agent", "ci-bot", "--tool", "*", "--config", cfg)
	id = mandateID.FindString(r.stdout)
	if r.code != 0 || id == "" || !strings.HasSuffix(r.stdout, ", uses unlimited\n") {
		t.Fatalf("grant with defaults: %+v", r)
	}
	r = run(nil, "mandates", "show", id, "--config", cfg)
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.UsesLeft != nil || m.ExpiresAt.Sub(m.CreatedAt) != 24*time.Hour ||
		compactJSON(t, m.Grants) != `[{"upstream":"*","tool":"*"}]` {
		t.Errorf("defaults: %+v", m)
	}
	r = run(nil, "mandates", "revoke", "--config", cfg, id)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "mandate "+id+": revoked by cli at ") {
		t.Errorf("revoke with the default --by: %+v", r)
	}
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return b.String()
}

func lineWith(text, s string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func TestMandatesCommands(t *testing.T) {
	cfg := seedMandates(t)
	mem := writeConfig(t, t.TempDir(), "store: {driver: memory}\n")
	grant := func(extra ...string) []string {
		return append([]string{"mandates", "grant", "--config", cfg}, extra...)
	}
	ok := []string{"--user", "alice", "--agent", "claude-desktop", "--tool", "read_file"}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"grant unknown user", grant("--user", "mallory", "--agent", "claude-desktop", "--tool", "x"), 1, `mandate: no user "mallory"`},
		{"grant unknown agent", grant("--user", "alice", "--agent", "ghost", "--tool", "x"), 1, `mandate: no agent "ghost"`},
		{"grant for a disabled user", grant("--user", "carol", "--agent", "ci-bot", "--tool", "x"), 1, `mandate: user "carol" is disabled`},
		{"grant in the memory store", []string{"mandates", "grant", "--config", mem, "--user", "a", "--agent", "b", "--tool", "x"}, 1, "store.driver is memory"},
		{"grant expired", grant(append(ok, "--expires", "2020-01-01T00:00:00Z")...), 1, "expiry is not in the future"},
		{"grant min above max", grant(append(ok, "--constraint", "n:min=5", "--constraint", "n:max=1")...), 1, "minimum above maximum"},
		{"grant without flags", grant(), 2, "mandate mandates grant: --user, --agent, --tool required"},
		{"grant without tool", grant("--user", "alice", "--agent", "ci-bot"), 2, "--tool required"},
		{"grant a tool without upstream", grant(append(ok, "--tool", "y", "--upstream", "fs")...), 2,
			"mandate mandates grant: 2 --tool but 1 --upstream: give one --upstream for each --tool, or none for any upstream"},
		{"grant two upstreams", grant(append(ok, "--upstream", "a", "--upstream", "b")...), 2, "1 --tool but 2 --upstream"},
		{"grant constraint before tool", grant("--constraint", "p:prefix=/x", "--tool", "x"), 2, "give the --tool it applies to before --constraint"},
		{"grant bad tool glob", grant("--tool", "[x"), 2, `bad pattern "[x"`},
		{"grant bad constraint", grant("--tool", "x", "--constraint", "path=/srv"), 2, `"path=/srv" is not ARG:KIND=VALUE`},
		{"grant zero uses", grant(append(ok, "--uses", "0")...), 2, "invalid value \"0\" for flag -uses: must be a whole number, at least 1"},
		{"grant bad expiry", grant(append(ok, "--expires", "tomorrow")...), 2, `--expires: "tomorrow" is neither a duration`},
		{"grant negative expiry", grant(append(ok, "--expires", "-1h")...), 2, "--expires: must be in the future"},
		{"grant stray argument", grant(append(ok, "extra")...), 2, "usage: mandate mandates grant [flags]"},
		{"list unknown user", []string{"mandates", "list", "--user", "mallory", "--config", cfg}, 1, `mandate: no user "mallory"`},
		{"list with an argument", []string{"mandates", "list", "x", "--config", cfg}, 2, "usage: mandate mandates list [flags]"},
		{"show unknown", []string{"mandates", "show", "mnd_nope", "--config", cfg}, 1, `mandate: no mandate "mnd_nope"`},
		{"show without id", []string{"mandates", "show", "--config", cfg}, 2, "usage: mandate mandates show ID [flags]"},
		{"revoke unknown", []string{"mandates", "revoke", "mnd_nope", "--config", cfg}, 1, `mandate: no mandate "mnd_nope"`},
		{"revoke in the memory store", []string{"mandates", "revoke", "mnd_active", "--config", mem}, 1, "store.driver is memory"},
		{"revoke two ids", []string{"mandates", "revoke", "a", "b", "--config", cfg}, 2, "usage: mandate mandates revoke ID [flags]"},
		{"no verb", []string{"mandates"}, 2, "mandate mandates grant --user USERNAME"},
		{"unknown verb", []string{"mandates", "delete", "x"}, 2, `mandate mandates: unknown command "delete"`},
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
	// Nothing above was granted or revoked.
	r := run(nil, "mandates", "list", "--config", cfg)
	if n := strings.Count(r.stdout, "\n"); n != 6 {
		t.Errorf("%d lines after refused commands, want 6:\n%s", n, r.stdout)
	}
	if line := lineWith(r.stdout, "mnd_active"); !strings.HasSuffix(line, " active") {
		t.Errorf("mnd_active changed: %q", line)
	}
}

func TestMandatesHelp(t *testing.T) {
	r := run(nil, "mandates", "help")
	for _, s := range []string{"--constraint ARG:KIND=VALUE", "oneof", "prefix", "suffix", "glob", "pattern", "min, max", "--expires", "--uses"} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Errorf("mandates help lacks %q (exit %d):\n%s", s, r.code, r.stdout)
		}
	}
	r = run(nil, "help")
	for _, s := range []string{"mandate mandates list", "mandate mandates grant", "mandate mandates revoke", "--constraint ARG:KIND=VALUE",
		"mandate policy validate", "mandate policy test", "mandate policy explain"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("usage does not mention %q", s)
		}
	}
}
