package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-mcp/mandate/internal/policy/authzen/authzentest"
)

// TestMandateEndToEnd: with the shipped default policy, an agent acting for
// alice sees and may call nothing until alice's mandate names the tool; the
// mandate's argument constraint and use count are enforced on real calls,
// and revoking it denies the very next call (AT-51).
func TestMandateEndToEnd(t *testing.T) {
	t.Parallel()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Policy: defaultPolicy(t), Auth: webappClient(redirect)})
	mandateScenario(t, m, redirect)
}

// TestMandateEndToEndAuthZEN is the same scenario with an AuthZEN PDP
// deciding instead of Cedar: authzentest's PDP with MandateRules, the
// default policy's rules over Mandate's AuthZEN mapping. The default Cedar
// policy runs beside it as a shadow, and since the two decide alike, the
// shadow must not report a single difference.
func TestMandateEndToEndAuthZEN(t *testing.T) {
	t.Parallel()
	pdp := authzentest.New(authzentest.MandateRules, nil)
	t.Cleanup(pdp.Close)
	redirect := loopbackRedirect(t)
	// The timeout is generous because the PDP shares a loaded test machine;
	// the client's own tests cover timeouts.
	pol := fmt.Sprintf("{authzen: {url: %q, timeout: 5s}, shadow_dir: %q, require_listing: true}",
		pdp.URL, writePolicyDir(t, defaultPolicy(t)))
	m := startAuthMandate(t, authServe{Auth: webappClient(redirect), PolicySection: pol})
	mandateScenario(t, m, redirect)

	if s := pdp.Stats(); s.Metadata == 0 || s.Single == 0 || s.Batch == 0 {
		t.Errorf("PDP stats %+v: want metadata, single (session) and batch (list, call) requests", s)
	}
	out := m.proc.Output()
	if !strings.Contains(out, "policy shadow on") {
		t.Errorf("mandate did not start the policy shadow:\n%s", out)
	}
	if strings.Contains(out, "policy shadow differs") || strings.Contains(out, "policy shadow failed") {
		t.Errorf("the default Cedar policy decided differently from MandateRules:\n%s", out)
	}
}

func defaultPolicy(t *testing.T) string {
	t.Helper()
	def, err := os.ReadFile(filepath.Join(mustRoot(t), "examples", "policies", "default.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	return string(def)
}

// webappClient is an auth section body pre-registering the agent "webapp".
func webappClient(redirect string) string {
	return fmt.Sprintf(`  clients:
    - id: webapp
      name: Web app
      redirect_uris: [%q]
`, redirect)
}

// mandateScenario: alice's agent webapp sees and may call nothing until
// alice grants a mandate for demo's echo tool; the mandate's constraint and
// use count hold on real calls; a revoked mandate denies the next call.
func mandateScenario(t *testing.T, m *authMandate, redirect string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
	tools := func() string {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		var names []string
		for _, tl := range res.Tools {
			if tl.Name != "mandate__whoami" { // Mandate's own, always listed
				names = append(names, tl.Name)
			}
		}
		return strings.Join(names, ",")
	}
	call := func(msg string) error {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "demo__echo", Arguments: map[string]any{"message": msg}})
		return err
	}

	if got := tools(); got != "" {
		t.Fatalf("tools/list without a mandate = %q, want nothing", got)
	}
	if err := call("ok"); err == nil || !strings.Contains(err.Error(), "no mandate covers this call") {
		t.Fatalf("call without a mandate: %v", err)
	}

	out, err := m.admin("mandates", "grant", "--user", "alice", "--agent", "webapp", "--upstream", "demo", "--tool", "echo",
		"--constraint", "message:prefix=ok", "--uses", "2", "--purpose", "e2e")
	if err != nil {
		t.Fatalf("mandates grant: %v\n%s", err, out)
	}
	id := regexp.MustCompile(`mnd_[A-Za-z0-9]+`).FindString(out)
	if got := tools(); got != "demo__echo" {
		t.Fatalf("tools/list with a mandate for echo = %q", got)
	}
	if err := call("ok, first"); err != nil {
		t.Fatalf("covered call: %v", err)
	}
	if err := call("not ok"); err == nil || !strings.Contains(err.Error(), "message") {
		t.Fatalf("call breaking the constraint: %v", err)
	}
	if err := call("ok, second"); err != nil {
		t.Fatalf("second covered call: %v", err)
	}
	if err := call("ok, third"); err == nil {
		t.Fatal("a third call went through a mandate good for two")
	}

	out, err = m.admin("mandates", "grant", "--user", "alice", "--agent", "webapp", "--upstream", "demo", "--tool", "echo")
	if err != nil {
		t.Fatalf("second grant: %v\n%s", err, out)
	}
	id = regexp.MustCompile(`mnd_[A-Za-z0-9]+`).FindString(out)
	if id == "" {
		t.Fatalf("no mandate id in %q", out)
	}
	if err := call("anything"); err != nil {
		t.Fatalf("call under the unlimited mandate: %v", err)
	}
	if out, err := m.admin("mandates", "revoke", id); err != nil {
		t.Fatalf("mandates revoke: %v\n%s", err, out)
	}
	if err := call("after revocation"); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("call after revocation: %v", err)
	}
}
