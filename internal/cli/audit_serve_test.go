package cli_test

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// traceparent is the W3C trace context the test client sends.
const (
	testTraceID     = "0af7651916cd43dd8448eb211c80319c"
	testTraceparent = "00-" + testTraceID + "-b7ad6b7169203331-01"
)

// tracing adds a traceparent header to every request.
type tracing struct{ next http.RoundTripper }

func (t tracing) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Traceparent", testTraceparent)
	return t.next.RoundTrip(r)
}

// auditRecords reads every record of the store of cfg through
// "mandate audit query --json", oldest first.
func auditRecords(t *testing.T, args ...string) []audit.Record {
	t.Helper()
	r := run(nil, append([]string{"audit", "query", "--json", "--limit", "1000"}, args...)...)
	if r.code != 0 {
		t.Fatalf("audit query: %d %s", r.code, r.stderr)
	}
	var recs []audit.Record
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rec, err := audit.Decode(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		recs = append([]audit.Record{rec}, recs...)
	}
	return recs
}

// TestServeWritesAuditLog runs "mandate serve" with the default SQLite
// store and auth: none — audit is on by default there too — calls a tool
// with a traceparent header, changes the store from the command line while
// the gateway runs (both write the data directory's one chain), and stops
// the gateway: the log then holds the configuration, every decision with
// its outcome under the client's trace id, the command's event, and
// "mandate audit verify" proves it complete and signed.
func TestServeWritesAuditLog(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, demoUpstream+"audit:\n  file: audit.jsonl\n  checkpoint_interval: 1h\n")
	flags := []string{"--config", cfg, "--data-dir", dataDir}
	s := startServe(t, flags...)

	c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: s.base + "/mcp", HTTPClient: &http.Client{Transport: tracing{http.DefaultTransport}},
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	toolNames(t, cs)
	call := func(msg string) {
		t.Helper()
		text, err := resultText(cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": msg}}))
		if err != nil || text != msg {
			t.Fatalf("demo__echo = %q, %v", text, err)
		}
	}
	call("before")
	if r := run(strings.NewReader("correct horse battery staple\n"), append([]string{"users", "add", "alice"}, flags...)...); r.code != 0 {
		t.Fatalf("users add: %d %s", r.code, r.stderr)
	}
	call("after")
	cs.Close()

	s.interrupt(t)
	select {
	case <-s.done:
		if s.code != 0 {
			t.Fatalf("serve exited with %d:\n%s", s.code, s.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}

	if r := run(nil, append([]string{"audit", "verify"}, flags...)...); r.code != 0 || !strings.Contains(r.stdout, "ok: every record verifies") ||
		strings.Contains(r.stdout, "not yet signed") {
		t.Fatalf("audit verify: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(nil, append([]string{"audit", "verify", "--file", filepath.Join(dir, "audit.jsonl")}, flags...)...); r.code != 0 {
		t.Fatalf("audit verify --file: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	recs := auditRecords(t, flags...)
	if len(recs) == 0 || recs[0].Kind != audit.KindAdmin || recs[0].Event != "config.loaded" || recs[0].Detail["sha256"] == "" ||
		recs[0].PolicyVersion == "" {
		t.Fatalf("the log does not start with the configuration: %+v", recs)
	}
	decisions := map[string]audit.Record{}
	var calls, outcomes, added int
	for _, r := range recs {
		switch {
		case r.Kind == audit.KindDecision:
			decisions[r.ID] = r
			if r.Method == "tools/call" {
				calls++
				// No catalog hash: with auth: none listing is not required,
				// so what a session was shown is not kept.
				if r.TraceID != testTraceID || r.Decision != "allow" || r.Upstream != "demo" || r.Name != "echo" ||
					r.ArgsDigest == "" || r.Agent == "" || r.Session == "" || r.PolicyVersion == "" {
					t.Errorf("call decision %+v", r)
				}
			}
		case r.Kind == audit.KindOutcome:
			outcomes++
			d, ok := decisions[r.Ref]
			if !ok || r.Status != "ok" || r.TraceID != testTraceID || d.Method != "tools/call" {
				t.Errorf("outcome %+v does not follow its decision (%+v)", r, d)
			}
		case r.Event == "user.added":
			added++
			if r.Actor != "cli" || r.Detail["username"] != "alice" {
				t.Errorf("user.added %+v", r)
			}
		}
	}
	if calls != 2 || outcomes != 2 || added != 1 {
		t.Errorf("%d call decisions, %d outcomes, %d user.added events; want 2, 2, 1", calls, outcomes, added)
	}
	for _, m := range []string{"initialize", "tools/list"} {
		found := false
		for _, r := range decisions {
			found = found || r.Method == m
		}
		if !found {
			t.Errorf("no decision record of %s", m)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "audit", audit.SigningKeyFile)); err != nil {
		t.Errorf("signing key: %v", err)
	}
}

// TestAuditDisabled: with audit.enabled false nothing is recorded and no
// audit keys are made.
func TestAuditDisabled(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := writeConfig(t, dir, demoUpstream+"audit: {enabled: false}\n")
	flags := []string{"--config", cfg, "--data-dir", dataDir}
	s := startServe(t, flags...)
	cs := connectHTTP(t, s.base+"/mcp", "2025-11-25", nil)
	toolNames(t, cs)
	cs.Close()
	s.interrupt(t)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	if recs := auditRecords(t, flags...); len(recs) != 0 {
		t.Errorf("records with audit off: %+v", recs)
	}
	if _, err := os.Stat(audit.KeysDir(dataDir)); !os.IsNotExist(err) {
		t.Errorf("audit keys made with audit off (%v)", err)
	}
}

// TestAdminCommandsRecordEvents: the commands that change the store append
// their event to the data directory's chain, after the change, naming who
// made it; a change that cannot be recorded stands, and the command fails
// saying so.
func TestAdminCommandsRecordEvents(t *testing.T) {
	cfg, db := adminConfig(t)
	if r := run(strings.NewReader("correct horse battery staple\n"), "users", "add", "alice", "--config", cfg); r.code != 0 {
		t.Fatalf("users add: %d %s", r.code, r.stderr)
	}
	if r := run(nil, "users", "disable", "alice", "--config", cfg); r.code != 0 {
		t.Fatalf("users disable: %d %s", r.code, r.stderr)
	}
	recs := auditRecords(t, "--config", cfg)
	var events []string
	for _, r := range recs {
		events = append(events, r.Event+" "+r.Actor)
	}
	if strings.Join(events, ",") != "user.added cli,user.disabled cli" {
		t.Errorf("events %q", events)
	}
	if r := run(nil, "audit", "verify", "--config", cfg); r.code != 0 {
		t.Fatalf("audit verify: %d %s%s", r.code, r.stdout, r.stderr)
	}

	// A signing key others could read is refused, so nothing can be
	// recorded.
	key := filepath.Join(audit.KeysDir(filepath.Dir(db)), audit.SigningKeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(nil, "users", "enable", "alice", "--config", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "the change was made, but it could not be recorded in the audit log") {
		t.Fatalf("users enable with the audit log broken: %d %q", r.code, r.stderr)
	}
	if u, err := openDB(t, db).GetUserByUsername(t.Context(), "alice"); err != nil || u.Disabled {
		t.Errorf("alice after the unrecorded enable: %+v, %v; want enabled", u, err)
	}
}
