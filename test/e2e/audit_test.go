package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"
)

// auditRecord is the part of an audit record these tests read, as
// `mandate audit export` prints it.
type auditRecord struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Event      string         `json:"event"`
	Ref        string         `json:"ref"`
	User       string         `json:"user"`
	Agent      string         `json:"agent"`
	Method     string         `json:"method"`
	Name       string         `json:"name"`
	Upstream   string         `json:"upstream"`
	Args       map[string]any `json:"args"`
	ArgsDigest string         `json:"args_digest"`
	Decision   string         `json:"decision"`
	Reasons    []string       `json:"reasons"`
	Mandate    string         `json:"mandate"`
	Approval   string         `json:"approval"`
	Status     string         `json:"status"`
	Target     string         `json:"target"`
}

// localMandate is a `mandate serve` without authentication over the demo
// upstream, with its config file and data directory, for tests that stop
// and start it.
type localMandate struct {
	bin, config, dataDir, addr string
	proc                       *Process
}

func newLocalMandate(t *testing.T) *localMandate {
	t.Helper()
	bin := BuildGoBinary(t, "./cmd/mandate")
	dir := t.TempDir()
	m := &localMandate{bin: bin, config: filepath.Join(dir, "mandate.yaml"), dataDir: filepath.Join(dir, "data")}
	m.listenOn(t, FreePort(t))
	return m
}

// listenOn (re)writes the config for port.
func (m *localMandate) listenOn(t *testing.T, port int) {
	t.Helper()
	m.addr = "127.0.0.1:" + strconv.Itoa(port)
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\nauth: {mode: none}\nupstreams:\n  - id: demo\n    stdio: {command: %q, args: [\"demo-upstream\"]}\n",
		m.addr, m.dataDir, m.bin)
	if err := os.WriteFile(m.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs `mandate serve` and waits until this Mandate answers
// /healthz. A free port can be taken by a parallel test between choosing
// it and binding it; then Mandate exits (or another server answers), and
// start moves to a new port, at most twice.
func (m *localMandate) start(t *testing.T) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		m.proc = StartProcess(t, "mandate serve", exec.Command(m.bin, "serve", "--config", m.config))
		if m.healthy(30 * time.Second) {
			return
		}
		m.proc.Stop()
		if attempt == 2 {
			t.Fatalf("mandate serve did not become healthy on %s:\n%s", m.addr, m.proc.Output())
		}
		m.listenOn(t, FreePort(t))
	}
}

// healthy waits for this process's /healthz; false when it exited first.
func (m *localMandate) healthy(timeout time.Duration) bool {
	c := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m.proc.Exited() {
			return false
		}
		resp, err := c.Get("http://" + m.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !m.proc.Exited() {
				return true
			}
		}
	}
	return false
}

func (m *localMandate) url() string { return "http://" + m.addr + "/mcp" }

// cli runs `mandate ARGS --config CFG` and returns stdout, stderr and the
// exit error.
func (m *localMandate) cli(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.bin, append(args, "--config", m.config)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// exportAudit reads every record of the log through `mandate audit export`.
func exportAudit(t *testing.T, cli func(...string) (string, string, error)) []auditRecord {
	t.Helper()
	out, errOut, err := cli("audit", "export")
	if err != nil {
		t.Fatalf("mandate audit export: %v\n%s", err, errOut)
	}
	var recs []auditRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Record *auditRecord `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if line.Record != nil {
			recs = append(recs, *line.Record)
		}
	}
	return recs
}

// TestAuditCrashLosesNoAcknowledgedRecord: under a load of calls, Mandate
// is killed with SIGKILL; after a restart every call a client saw succeed
// has its decision and its outcome on record, and the chain verifies.
func TestAuditCrashLosesNoAcknowledgedRecord(t *testing.T) {
	t.Parallel()
	m := newLocalMandate(t)
	m.start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := 0; c < 8; c++ {
		cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.url()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				msg := fmt.Sprintf("crash-%d-%d", c, i)
				callCtx, done := context.WithTimeout(ctx, 5*time.Second)
				res, err := cs.CallTool(callCtx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": msg}})
				done()
				if err != nil {
					return // the gateway is gone
				}
				if !res.IsError {
					mu.Lock()
					acked = append(acked, msg)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := syscall.Kill(m.proc.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < 20 {
		t.Fatalf("only %d calls succeeded before the kill; the load did not run", n)
	}

	// A restart continues the chain and signs what the killed run left.
	m.start(t)
	m.proc.Stop()

	recs := exportAudit(t, m.cli)
	decisions := map[string]auditRecord{}
	outcomes := map[string]auditRecord{}
	for _, r := range recs {
		switch r.Kind {
		case "decision":
			if msg, ok := r.Args["message"].(string); ok && r.Method == "tools/call" {
				decisions[msg] = r
			}
		case "outcome":
			outcomes[r.Ref] = r
		}
	}
	for _, msg := range acked {
		d, ok := decisions[msg]
		if !ok {
			t.Errorf("acknowledged call %q has no decision record", msg)
			continue
		}
		if d.Decision != "allow" {
			t.Errorf("acknowledged call %q: decision %q", msg, d.Decision)
		}
		if o, ok := outcomes[d.ID]; !ok || o.Status != "ok" {
			t.Errorf("acknowledged call %q: outcome %+v (found %v)", msg, o, ok)
		}
	}
	if out, errOut, err := m.cli("audit", "verify"); err != nil {
		t.Fatalf("audit verify after the crash: %v\n%s%s", err, out, errOut)
	}
	t.Logf("%d acknowledged calls before SIGKILL, %d records, chain verifies", n, len(recs))
}

// TestAuditUnwritableDeniesCalls: when the store refuses audit records,
// calls are refused with a clear error and not forwarded; once it accepts
// them again, calls go through again.
func TestAuditUnwritableDeniesCalls(t *testing.T) {
	t.Parallel()
	m := newLocalMandate(t)
	m.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.url()})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	call := func(msg string) (*mcp.CallToolResult, error) {
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": msg}})
	}
	if _, err := call("before"); err != nil {
		t.Fatalf("call with a writable log: %v", err)
	}

	db, err := sql.Open("sqlite", filepath.Join(m.dataDir, "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`PRAGMA busy_timeout = 5000; CREATE TRIGGER audit_refused BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'audit store refuses writes'); END;`); err != nil {
		t.Fatal(err)
	}
	res, err := call("while unwritable")
	if err == nil {
		t.Fatalf("call went through with an unwritable audit log: %+v", res)
	}
	if !strings.Contains(err.Error(), "audit") || !strings.Contains(err.Error(), "not forwarded") {
		t.Errorf("refusal does not say the audit log stopped the call: %v", err)
	}

	if _, err := db.Exec(`DROP TRIGGER audit_refused`); err != nil {
		t.Fatal(err)
	}
	if _, err := call("after"); err != nil {
		t.Fatalf("call once the log is writable again: %v", err)
	}
	m.proc.Stop()
	for _, r := range exportAudit(t, m.cli) {
		if r.Args["message"] == "while unwritable" {
			t.Errorf("a record of the refused call exists: %+v", r)
		}
	}
	if out, errOut, err := m.cli("audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out, errOut)
	}
}

// approvalOnAdd is the default policy's shape with demo's add needing a
// human's approval of each call.
const approvalOnAdd = `
@id("session")
permit (principal, action in [Action::"initialize", Action::"tools/list", Action::"prompts/list",
  Action::"resources/list", Action::"resources/templates/list"], resource);

@id("delegated-with-mandate")
permit (principal is User, action == Action::"tools/call", resource)
when { context.delegated && context.mandate.covered };

@id("add-needs-approval")
@approval("required")
permit (principal is User, action == Action::"tools/call", resource == Tool::"demo/add")
when { context.delegated && context.mandate.covered };
`

// TestAuditScenarioEndToEnd: grant, allowed call, denied call, approval,
// revocation, denied call — the log holds exactly these records for the
// agent's calls, queryable by user and by agent, `mandate audit explain`
// tells the story of the allowed call, the chain verifies, and no token,
// password or redacted argument value appears in a record or a log line.
func TestAuditScenarioEndToEnd(t *testing.T) {
	t.Parallel()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Auth: webappClient(redirect), Policy: approvalOnAdd})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tok, err := CodeFlow{Meta: m.Meta, ClientID: "webapp", RedirectURI: redirect, Resource: m.URL}.Run(ctx, m.alice(nil))
	if err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: bearerClient(tok.AccessToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	// A GitHub token inside an argument: the log must redact the value
	// (value rules), and nothing else may print it.
	const planted = "ghp_plantedSecret9f1c2dAAAAAAAAAAAAAAAAAAAA"
	call := func(tool string, args map[string]any) error {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		return err
	}
	admin := func(args ...string) string {
		t.Helper()
		out, err := m.admin(args...)
		if err != nil {
			t.Fatalf("mandate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	grant := admin("mandates", "grant", "--user", "alice", "--agent", "webapp",
		"--upstream", "demo", "--tool", "echo", "--constraint", "message:prefix=ok",
		"--upstream", "demo", "--tool", "add", "--purpose", "audit scenario")
	mandate := regexp.MustCompile(`mnd_[A-Za-z0-9]+`).FindString(grant)
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := call("demo__echo", map[string]any{"message": "ok, allowed " + planted}); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	if err := call("demo__echo", map[string]any{"message": "not ok"}); err == nil {
		t.Fatal("a call breaking the mandate's constraint went through")
	}
	// The approval: the call is held while the CLI approves it.
	done := make(chan error, 1)
	go func() { done <- call("demo__add", map[string]any{"a": 2, "b": 3}) }()
	var approval string
	for deadline := time.Now().Add(30 * time.Second); approval == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		approval = regexp.MustCompile(`apr_[A-Za-z0-9]+`).FindString(admin("approvals", "list", "--status", "pending"))
	}
	if approval == "" {
		t.Fatal("no pending approval appeared")
	}
	admin("approvals", "approve", approval)
	if err := <-done; err != nil {
		t.Fatalf("approved call: %v", err)
	}
	admin("mandates", "revoke", mandate)
	if err := call("demo__echo", map[string]any{"message": "ok, after revocation"}); err == nil {
		t.Fatal("a call after revocation went through")
	}

	recs := exportAuditWith(t, m.admin)
	var got []string
	byID := map[string]auditRecord{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	var allowedEcho auditRecord
	for _, r := range recs {
		switch {
		case r.Kind == "admin" && (strings.HasPrefix(r.Event, "mandate.") || strings.HasPrefix(r.Event, "approval.")):
			got = append(got, "admin "+r.Event)
		case r.Kind == "decision" && r.Method == "tools/call":
			got = append(got, fmt.Sprintf("decision %s %s", r.Name, r.Decision))
			if r.Name == "echo" && r.Decision == "allow" {
				allowedEcho = r
			}
		case r.Kind == "outcome":
			if d := byID[r.Ref]; d.Method == "tools/call" {
				got = append(got, fmt.Sprintf("outcome %s %s", d.Name, r.Status))
			}
		}
	}
	want := []string{
		"admin mandate.granted",
		"decision echo allow", "outcome echo ok",
		"decision echo needs-mandate",
		"admin approval.requested", "admin approval.approved", "admin approval.used",
		"decision add allow", "outcome add ok",
		"admin mandate.revoked",
		"decision echo needs-mandate",
	}
	// The CLI records its approval after storing it, while the held call
	// may already be proceeding in the server: that one event is only
	// ordered between the request and the revocation.
	approved := slices.Index(got, "admin approval.approved")
	if approved < slices.Index(got, "admin approval.requested") || approved > slices.Index(got, "admin mandate.revoked") {
		t.Errorf("approval.approved out of place:\n%s", strings.Join(got, "\n"))
	}
	drop := func(l []string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return s == "admin approval.approved" })
	}
	if strings.Join(drop(got), "\n") != strings.Join(drop(want), "\n") || len(got) != len(want) {
		t.Fatalf("records of the scenario:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if allowedEcho.User == "" || allowedEcho.Agent != "webapp" || allowedEcho.Mandate != mandate ||
		allowedEcho.ArgsDigest == "" || !slices.Contains(allowedEcho.Reasons, "delegated-with-mandate") {
		t.Errorf("allowed call's record = %+v", allowedEcho)
	}
	for _, r := range recs {
		if r.Kind == "decision" && r.Name == "add" && r.Approval != approval {
			t.Errorf("approved call's record names approval %q, want %q", r.Approval, approval)
		}
	}

	for _, q := range [][]string{{"--user", "alice"}, {"--agent", "webapp"}} {
		out := admin(append([]string{"audit", "query", "--kind", "decision", "--json", "--limit", "1000"}, q...)...)
		calls := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r auditRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("query %v line %q: %v", q, line, err)
			}
			if r.Agent != "webapp" {
				t.Errorf("query %v returned another agent's record: %+v", q, r)
			}
			if r.Method == "tools/call" {
				calls++
			}
		}
		if calls != 4 {
			t.Errorf("query %v: %d tools/call decisions, want 4\n%s", q, calls, out)
		}
	}

	story := admin("audit", "explain", allowedEcho.ID)
	for _, want := range []string{"webapp", mandate, "delegated-with-mandate", "echo", allowedEcho.ArgsDigest[:12]} {
		if !strings.Contains(story, want) {
			t.Errorf("audit explain does not mention %q:\n%s", want, story)
		}
	}
	if out, err := m.admin("audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}

	// No token, password or redacted value in any record or log line.
	export := admin("audit", "export")
	m.proc.Stop()
	for name, text := range map[string]string{"audit export": export, "mandate's log": m.proc.Output(), "audit explain": story} {
		for what, secret := range map[string]string{"access token": tok.AccessToken, "refresh token": tok.RefreshToken,
			"password": alicePassword, "redacted argument": planted} {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("%s contains the %s", name, what)
			}
		}
	}
}

// exportAuditWith is exportAudit over an admin runner that returns the
// combined output.
func exportAuditWith(t *testing.T, admin func(...string) (string, error)) []auditRecord {
	return exportAudit(t, func(args ...string) (string, string, error) {
		out, err := admin(args...)
		return out, "", err
	})
}
