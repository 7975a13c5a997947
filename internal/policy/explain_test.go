package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

const explainHeader = `# Golden output of Explain over examples/policies/default.cedar and two test
# policies. Guards against explanations that hide a matching policy (a permit
# overridden by a forbid, an approval permit) or misname the determining one:
# operators read these to find out why a call was denied.
`

func TestExplainGolden(t *testing.T) {
	files := exampleFiles(t, "default.cedar")
	files["taint.cedar"] = []byte(`@id("no-tainted-open-world")
forbid (principal, action == Action::"tools/call", resource)
when { context.sessionTainted && context.annotations.openWorld };

@id("tmp-writes")
permit (principal is User, action == Action::"tools/call", resource == Tool::"fs/write")
when { context.args.hasTag("path") && context.args.getTag("path") like "/tmp/*" };
`)
	s, problems := Compile(files)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	destructive := call(alice, "github", "delete_repo", map[string]any{"repo": "x"})
	destructive.Mandate = MandateRef{ID: "m1", Covered: true}
	destructive.Annotations = Annotations{Destructive: true}
	tainted := call(alice, "web", "fetch", nil)
	tainted.Mandate = MandateRef{ID: "m1", Covered: true}
	tainted.Annotations = Annotations{OpenWorld: true}
	tainted.SessionTainted = true
	cases := []struct {
		name string
		req  Request
	}{
		{"destructive call under a mandate", destructive},
		{"tainted session, open-world tool", tainted},
		{"autonomous agent", call(robot, "github", "list_issues", nil)},
		{"list visibility depends on arguments", Request{Principal: bob, Method: "tools/list",
			Target: Target{Kind: KindTool, Upstream: "fs", Name: "write"}, Time: noon}},
		{"unknown method", Request{Principal: alice, Method: "tools/delete"}},
	}
	var b strings.Builder
	b.WriteString(explainHeader)
	for _, c := range cases {
		b.WriteString("\n=== " + c.name + "\n")
		b.WriteString(strings.ReplaceAll(s.Explain(c.req).String(), s.Version(), "<version>"))
	}
	path := filepath.Join("testdata", "explain.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("Explain output differs from %s (run with -update to accept):\n%s", path, got)
	}
}
