package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
)

type whoamiOut struct {
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Structured *whoamiResult `json:"structuredContent"`
	IsError    bool          `json:"isError"`
}

func callWhoami(t *testing.T, f *fixture, sess *Session) whoamiOut {
	t.Helper()
	out := decode[whoamiOut](t, mustOK(t, f.handle(t, sess, "who", "tools/call", `{"name":"mandate__whoami","arguments":{}}`, nil)))
	if out.IsError || out.Structured == nil || len(out.Content) != 1 || out.Content[0].Type != "text" {
		t.Fatalf("whoami result = %+v", out)
	}
	var fromText whoamiResult
	if err := json.Unmarshal([]byte(out.Content[0].Text), &fromText); err != nil {
		t.Fatalf("whoami text is not the structured content as JSON: %v", err)
	}
	return out
}

// TestWhoamiListedFirst: every tools/list starts with the built-in tool,
// unprefixed, read-only and without arguments.
func TestWhoamiListedFirst(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	page := decode[listPage](t, mustOK(t, f.handle(t, f.session(t, "s"), float64(1), "tools/list", nil, nil)))
	if len(page.Tools) == 0 {
		t.Fatal("empty list")
	}
	def := decode[struct {
		Name        string `json:"name"`
		InputSchema struct {
			Type       string         `json:"type"`
			Properties map[string]any `json:"properties"`
		} `json:"inputSchema"`
		Annotations struct {
			ReadOnly    bool `json:"readOnlyHint"`
			Destructive bool `json:"destructiveHint"`
		} `json:"annotations"`
	}](t, page.Tools[0])
	if def.Name != "mandate__whoami" || def.InputSchema.Type != "object" || len(def.InputSchema.Properties) != 0 ||
		!def.Annotations.ReadOnly || def.Annotations.Destructive {
		t.Errorf("first tool = %s", page.Tools[0])
	}
}

// TestWhoamiWithoutMandate: under the default policy an agent with no
// mandate may still ask who it is, without listing first, and learns its
// mandates once granted — never its token.
func TestWhoamiWithoutMandate(t *testing.T) {
	f, svc := enforced(t)
	p := *alice
	p.Scopes = []string{"mcp:tools"}
	p.Chain = []identity.Actor{{Subject: "agent-a", ClientID: "agent-a"}, {Subject: "orchestrator"}}
	p.TokenID = "jti-must-not-leak"
	p.TrustLevel = identity.TrustStandard
	sess := f.sessionAs(t, &p)

	out := callWhoami(t, f, sess)
	got := out.Structured
	if got.Agent != "agent-a" || got.User == nil || *got.User != "alice" || got.AuthMethod != identity.MethodAuthorizationCode ||
		len(got.Chain) != 2 || len(got.Scopes) != 1 || len(got.Mandates) != 0 || got.Trust != "standard" {
		t.Errorf("whoami = %+v", got)
	}
	if !strings.HasPrefix(got.PolicyVersion, "sha256:") {
		t.Errorf("policyVersion = %q", got.PolicyVersion)
	}

	unlimited := grant(t, svc, "alice", "agent-a", "echo")
	counted, err := svc.Grant(context.Background(), consent.Spec{
		User: "alice", Agent: "agent-a", Purpose: "sums", ExpiresAt: time.Now().Add(time.Hour), Uses: 3,
		Grants: []consent.Grant{{Upstream: "a", Tool: "add"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	grant(t, svc, "alice", "agent-other", "now") // another agent's mandate is not shown
	out = callWhoami(t, f, sess)
	ms := map[string]whoamiMandate{}
	for _, m := range out.Structured.Mandates {
		ms[m.ID] = m
	}
	if len(ms) != 2 {
		t.Fatalf("mandates = %+v", out.Structured.Mandates)
	}
	if m := ms[unlimited.ID]; m.UsesLeft != nil || len(m.Tools) != 1 || m.Tools[0].Tool != "echo" || m.ExpiresAt.IsZero() {
		t.Errorf("unlimited mandate = %+v", m)
	}
	if m := ms[counted.ID]; m.UsesLeft == nil || *m.UsesLeft != 3 || m.Purpose != "sums" {
		t.Errorf("counted mandate = %+v", m)
	}
	if text := out.Content[0].Text; !strings.Contains(text, unlimited.ID) || strings.Contains(text, "jti-must-not-leak") {
		t.Errorf("whoami text = %s", text)
	}
	// Calling whoami used no mandate.
	if m, _ := svc.Get(context.Background(), counted.ID); m.UsesLeft != 3 {
		t.Errorf("uses left = %d after whoami", m.UsesLeft)
	}
}

// TestWhoamiAutonomousAgent: an agent acting for nobody has no user and no
// mandates.
func TestWhoamiAutonomousAgent(t *testing.T) {
	f, _ := enforced(t)
	bot := &identity.Principal{Issuer: "test", Agent: "ci-bot", Method: identity.MethodClientCredentials}
	got := callWhoami(t, f, f.sessionAs(t, bot)).Structured
	if got.Agent != "ci-bot" || got.User != nil || got.Mandates == nil || len(got.Mandates) != 0 {
		t.Errorf("whoami = %+v", got)
	}
}

// TestWhoamiMandateLookupFailure: whoami never reports "no mandates" when
// they could not be read.
func TestWhoamiMandateLookupFailure(t *testing.T) {
	f, _ := enforced(t)
	f.g.opts.Mandates = failingMandates{}
	out := decode[whoamiOut](t, mustOK(t, f.handle(t, f.sessionAs(t, alice), float64(1), "tools/call", `{"name":"mandate__whoami"}`, nil)))
	if !out.IsError || out.Structured != nil {
		t.Errorf("whoami = %+v, want a tool error", out)
	}
}

// TestWhoamiWithoutPolicyDenied (invariant 1): a gateway without a policy
// refuses even its own tool.
func TestWhoamiWithoutPolicyDenied(t *testing.T) {
	f := newFixture(t, 0, demoUp("a"))
	f.g.opts.Policy = nil
	sess := f.stateless(t, identity.Local(), nil)
	wantError(t, f.handle(t, sess, float64(1), "tools/call", `{"name":"mandate__whoami"}`, nil), codeDenied)
}
