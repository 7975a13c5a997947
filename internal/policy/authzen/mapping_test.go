package authzen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/policy/authzen"
	"github.com/mandate-mcp/mandate/internal/policy/authzen/authzentest"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// The golden files pin the requests a PDP receives: the package
// documentation promises PDP authors this mapping, so a change to it must
// be a visible, reviewed change of these files.
var goldenCases = []struct {
	name   string
	header string
	faults authzentest.Faults
	run    func(context.Context, *authzen.Client)
}{
	{
		name: "call",
		header: `# A delegated tools/call: one batch request, deny_on_first_deny, asking the
# tool's listing question (no arguments, listing true) before the call.
# Guards against a call of an item the PDP would not list, against the agent
# being passed off as the human (the human is the subject, the agent is in
# context), and against arguments leaking into the listing question.`,
		run: func(ctx context.Context, c *authzen.Client) {
			r := toolCall(alice, "delete_branch", map[string]any{"repo": "mandate", "n": 3, "labels": []any{"bug"}})
			r.Annotations = policy.Annotations{Destructive: true, OpenWorld: true, Risk: "high"}
			r.Intent = "clean up merged branches"
			r.SessionTainted = true
			c.DecideContext(ctx, r)
		},
	},
	{
		name: "autonomous",
		header: `# An autonomous agent's prompts/get without arguments: the agent is the
# subject, the call sends empty arguments ({}) and the listing question none.
# Guards against an autonomous agent being mapped to a human subject.`,
		run: func(ctx context.Context, c *authzen.Client) {
			c.DecideContext(ctx, policy.Request{
				Principal: robot, Method: "prompts/get",
				Target: policy.Target{Kind: policy.KindPrompt, Upstream: "docs", Name: "summarise"}, Time: noon,
			})
		},
	},
	{
		name: "session",
		header: `# Session-level methods: one single evaluation each, the resource being the
# server as a whole (id "" for Mandate itself). Guards against session
# methods being asked as item calls or skipped.`,
		run: func(ctx context.Context, c *authzen.Client) {
			c.DecideContext(ctx, session(alice, "initialize"))
			r := session(robot, "logging/setLevel")
			r.Target.Upstream = "github"
			c.DecideContext(ctx, r)
		},
	},
	{
		name: "list",
		header: `# tools/list filtering: the listing questions of a whole list in one batch
# request (execute_all), subject and action sent once as defaults. Guards
# against one round trip per item and against arguments in listing questions.`,
		run: func(ctx context.Context, c *authzen.Client) {
			rs := items(3)
			rs[1].Annotations = policy.Annotations{ReadOnly: true, Idempotent: true, Risk: "low"}
			rs[2].Mandate = policy.MandateRef{Covered: true}
			c.VisibleAll(ctx, rs)
		},
	},
	{
		name: "no-batch",
		header: `# A PDP without metadata or batch endpoint: the default batch path answers
# 404 once, then resources/subscribe is asked as two single evaluations, the
# listing question (resources/read) first. Guards against the invariant
# "unlisted means not callable" depending on the PDP's optional endpoint, and
# against a missing optional endpoint denying everything.`,
		faults: authzentest.Faults{NoBatch: true, NoMetadata: true},
		run: func(ctx context.Context, c *authzen.Client) {
			c.DecideContext(ctx, policy.Request{
				Principal: alice, Method: "resources/subscribe",
				Target: policy.Target{Kind: policy.KindResource, Upstream: "fs", Name: "file:///etc/motd"},
				Args:   map[string]any{"uri": "file:///etc/motd"}, Time: noon,
			})
		},
	},
}

func TestMappingGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			pdp, c := start(t, allowAll, nil)
			pdp.SetFaults(tc.faults)
			tc.run(context.Background(), c)

			var b strings.Builder
			b.WriteString(tc.header + "\n# Refresh with -update.\n")
			for _, r := range pdp.Requests() {
				b.WriteString("\n" + r.Method + " " + r.Path + "\n")
				if len(r.Body) == 0 {
					continue
				}
				var out bytes.Buffer
				if err := json.Indent(&out, r.Body, "", "  "); err != nil {
					t.Fatalf("request body is not JSON: %v", err)
				}
				b.WriteString(strings.ReplaceAll(out.String(), pdp.URL, "<pdp>") + "\n")
			}
			got := b.String()

			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("requests differ from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
