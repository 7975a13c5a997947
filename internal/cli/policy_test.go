package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// examplePolicies is examples/policies, seen from this package's directory.
var examplePolicies = filepath.Join("..", "..", "examples", "policies")

// policyVersion matches a snapshot version, which changes with every edit
// of the policies a golden file was made from.
var policyVersion = regexp.MustCompile(`sha256:[0-9a-f]{24}`)

func normaliseVersion(s string) string { return policyVersion.ReplaceAllString(s, "<version>") }

// TestPolicyTestExamples runs the shipped decision tests of the example
// policies, so that CI fails when a policy edit changes what they decide.
func TestPolicyTestExamples(t *testing.T) {
	r := run(nil, "policy", "test", filepath.Join(examplePolicies, "tests.yaml"))
	if r.code != 0 || r.stderr != "" || !regexp.MustCompile(`^[1-9][0-9]* passed, 0 failed\n$`).MatchString(r.stdout) {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
	}
}

const policyValidateHeader = `# Golden report of "mandate policy validate testdata/policies/bad" (exit 1):
# every problem of every .cedar file of the directory in one run, each as
# file:line:col: message with the path as given, then the count. Guards
# against stopping at the first file or problem, a schema violation (a
# misspelt context attribute that would never hold) passing as valid, an
# @approval on a forbid or a duplicate id being accepted, and non-.cedar
# files being read as policies.
`

func TestPolicyValidateGolden(t *testing.T) {
	r := run(nil, "policy", "validate", filepath.Join("testdata", "policies", "bad"))
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkGolden(t, "policy_validate.golden", policyValidateHeader, r.stdout)
}

const policyExplainHeader = `# Golden output of "mandate policy explain" (version normalised). Guards
# against an explanation that hides a matching policy (a permit overridden
# by a forbid, an approval permit), misnames the determining one, or loses
# the flags that feed the decision (--user, --args and its numbers, --trust,
# --annotations, --mandate-covered): operators read it to find out why a
# call was denied.
`

func TestPolicyExplainGolden(t *testing.T) {
	good := filepath.Join("testdata", "policies", "good")
	def := filepath.Join(examplePolicies, "default.cedar")
	recipes := filepath.Join(examplePolicies, "recipes")
	cases := []struct {
		name string
		args []string
	}{
		{"destructive call under a mandate", []string{"--policies", def, "--user", "alice", "--agent", "claude",
			"--groups", "eng,ops", "--tool", "github/delete_repo", "--annotations", "destructive", "--mandate-covered"}},
		{"delegated call without a mandate", []string{"--policies", def, "--user", "alice", "--agent", "claude",
			"--tool", "github/create_issue"}},
		{"autonomous agent", []string{"--policies", def, "--agent", "nightly-report", "--tool", "github/list_issues",
			"--mandate-covered"}},
		{"forbid overrides permit", []string{"--policies", good, "--user", "alice", "--agent", "claude",
			"--tool", "fs/read_file", "--args", `{"path":"/srv/reports/secret.pdf"}`}},
		{"approval on a non-string argument", []string{"--agent", "claude", "--user", "alice", "--policies", good,
			"--tool", "fs/read_file", "--args", `{"path":"/srv/reports/q1.pdf","limit":1000}`}},
		{"numeric argument over a limit", []string{"--policies", recipes, "--user", "alice", "--agent", "claude",
			"--tool", "payments/transfer", "--args", `{"to":"bob","amount":150}`, "--mandate-covered"}},
		{"numeric argument that is not exact", []string{"--policies", recipes, "--user", "alice", "--agent", "claude",
			"--tool", "payments/transfer", "--args", `{"to":"bob","amount":150.5}`, "--mandate-covered"}},
		{"untrusted agent", []string{"--policies", recipes, "--user", "alice", "--agent", "https://app.example/client.json",
			"--trust", "untrusted", "--tool", "github/delete_repo", "--annotations", "destructive", "--mandate-covered"}},
	}
	var b strings.Builder
	for _, c := range cases {
		r := run(nil, append([]string{"policy", "explain"}, c.args...)...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", c.name, r.code, r.stderr)
		}
		b.WriteString("\n=== " + c.name + "\n" + normaliseVersion(r.stdout))
	}
	checkGolden(t, "policy_explain.golden", policyExplainHeader, b.String())
}

const policyTestHeader = `# Golden report of "mandate policy test testdata/policytest/failing.yaml"
# (exit 1; version normalised). Guards against a failing case printed
# without the explanation an author needs to fix it, against a deny reached
# through an error (a misspelt method) passing as the expected deny, against
# the visibility check being skipped, and against the summary not being the
# last line.
`

func TestPolicyTestFailingGolden(t *testing.T) {
	r := run(nil, "policy", "test", filepath.Join("testdata", "policytest", "failing.yaml"))
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.HasSuffix(r.stdout, "\n2 passed, 3 failed\n") {
		t.Errorf("the summary is not the last line:\n%s", r.stdout)
	}
	checkGolden(t, "policy_test.golden", policyTestHeader, normaliseVersion(r.stdout))
}

// TestPolicyTestFileErrors checks that a test file that cannot test what it
// says is refused as a whole rather than run with cases that pass vacuously.
func TestPolicyTestFileErrors(t *testing.T) {
	dir := t.TempDir()
	def, err := os.ReadFile(filepath.Join(examplePolicies, "default.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"default.cedar": string(def),
		"broken.cedar":  "permit (principal, action, resource) when { context.nope };\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const okCase = "  - {name: c, principal: {agent: a}, target: {upstream: u, name: t}, expect: deny}\n"
	tests := []struct {
		name       string
		yaml       string
		wantStdout string // substring
		wantStderr string // substring
	}{
		{"unknown key", "policies: [default.cedar]\ncases:\n  - {name: c, principal: {agent: a}, expcet: allow, expect: deny}\n",
			"", "field expcet not found"},
		{"bad expect", "policies: [default.cedar]\ncases:\n  - {name: c, principal: {agent: a}, expect: permit}\n",
			"", `case 1 ("c"): expect "permit": want allow, deny or needs_approval`},
		{"no agent", "policies: [default.cedar]\ncases:\n  - {name: c, principal: {user: alice}, expect: deny}\n",
			"", "principal has no agent"},
		{"no name", "policies: [default.cedar]\ncases:\n  - {principal: {agent: a}, expect: deny}\n", "", "case 1 (\"\"): no name"},
		{"no policies", "cases:\n" + okCase, "", "no policies, in the case or the file"},
		{"no cases", "policies: [default.cedar]\n", "", "no cases"},
		{"visible of a server", "policies: [default.cedar]\ncases:\n  - {name: c, principal: {agent: a}, method: initialize, target: {kind: server}, expect: allow, visible: true}\n",
			"", "visible: a server is not listed"},
		{"misspelt trust", "policies: [default.cedar]\ncases:\n  - {name: c, principal: {agent: a, trust: trustworthy}, expect: deny}\n",
			"", `case 1 ("c"): principal trust "trustworthy": want untrusted, standard or trusted`},
		{"missing policy file", "policies: [nope.cedar]\ncases:\n" + okCase, "", "read policies: stat"},
		{"policy with problems", "policies: [broken.cedar]\ncases:\n" + okCase,
			"broken.cedar:1:1: attribute `nope` in context", ""},
		{"not YAML", "policies: [\n", "", "tests.yaml: yaml:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "tests.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			r := run(nil, "policy", "test", file)
			if r.code != 1 || !strings.Contains(r.stdout, tc.wantStdout) || !strings.Contains(r.stderr, tc.wantStderr) ||
				strings.Contains(r.stdout, "passed") {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit 1, stdout with %q, stderr with %q, no summary",
					r.code, r.stdout, r.stderr, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestPolicyCommands(t *testing.T) {
	good := filepath.Join("testdata", "policies", "good")
	def := filepath.Join(examplePolicies, "default.cedar")
	explain := func(extra ...string) []string { return append([]string{"policy", "explain"}, extra...) }
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // exact
		wantStderr string // substring; "" means stderr must be empty
	}{
		{"validate a file", []string{"policy", "validate", def}, 0, "ok (3 policies)\n", ""},
		{"validate files and directories", []string{"policy", "validate", good, def}, 0, "ok (6 policies)\n", ""},
		{"validate the example directory", []string{"policy", "validate", examplePolicies}, 0, "ok (3 policies)\n", ""},
		{"validate a directory without policies", []string{"policy", "validate", filepath.Join("testdata", "policies", "empty")}, 1, "",
			"mandate: read policies: no .cedar files in testdata/policies/empty"},
		{"validate a missing path", []string{"policy", "validate", filepath.Join("testdata", "nope")}, 1, "", "mandate: read policies: stat testdata/nope"},
		{"validate nothing", []string{"policy", "validate"}, 2, "", "usage: mandate policy validate DIR|FILE ..."},
		{"validate unknown flag", []string{"policy", "validate", "--strict", good}, 2, "", "flag provided but not defined: -strict"},
		{"test two files", []string{"policy", "test", "a.yaml", "b.yaml"}, 2, "", "usage: mandate policy test FILE.yaml"},
		{"test missing file", []string{"policy", "test", filepath.Join("testdata", "nope.yaml")}, 1, "", "mandate: read tests: open testdata/nope.yaml"},
		{"explain without flags", explain(), 2, "", "mandate policy explain: --policies, --agent, --tool required"},
		{"explain bad tool", explain("--policies", good, "--agent", "a", "--tool", "read_file"), 2, "", `--tool "read_file" is not UPSTREAM/NAME`},
		{"explain args not an object", explain("--policies", good, "--agent", "a", "--tool", "fs/x", "--args", "[1]"), 2, "", "--args is not a JSON object"},
		{"explain args null", explain("--policies", good, "--agent", "a", "--tool", "fs/x", "--args", "null"), 2, "", "--args is not a JSON object"},
		{"explain unknown trust", explain("--policies", good, "--agent", "a", "--tool", "fs/x", "--trust", "high"), 2, "", `--trust "high": want untrusted, standard or trusted`},
		{"explain unknown annotation", explain("--policies", good, "--agent", "a", "--tool", "fs/x", "--annotations", "dangerous"), 2, "", `--annotations: unknown annotation "dangerous"`},
		{"explain stray argument", explain("--policies", good, "--agent", "a", "--tool", "fs/x", "extra"), 2, "", "usage: mandate policy explain"},
		{"explain -h", explain("-h"), 0, "", "-mandate-covered"},
		{"no verb", []string{"policy"}, 2, "", "mandate policy validate DIR|FILE"},
		{"unknown verb", []string{"policy", "lint"}, 2, "", `mandate policy: unknown command "lint"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(nil, tc.args...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout {
				t.Errorf("got exit %d, stdout %q; want exit %d, stdout %q (stderr %q)", r.code, r.stdout, tc.wantCode, tc.wantStdout, r.stderr)
			}
			switch {
			case tc.wantStderr == "" && r.stderr != "":
				t.Errorf("stderr = %q, want it empty", r.stderr)
			case !strings.Contains(r.stderr, tc.wantStderr):
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.wantStderr)
			}
		})
	}
}

// TestPolicyExplainProblems checks that explain reports policies that do not
// compile as validate does, rather than explaining a decision of no policy.
func TestPolicyExplainProblems(t *testing.T) {
	r := run(nil, "policy", "explain", "--policies", filepath.Join("testdata", "policies", "bad"), "--agent", "a", "--tool", "fs/x")
	if r.code != 1 || r.stderr != "" || !strings.HasSuffix(r.stdout, "\n5 problem(s)\n") || strings.Contains(r.stdout, "decision:") {
		t.Errorf("got exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestPolicyHelp(t *testing.T) {
	r := run(nil, "policy", "help")
	for _, s := range []string{"mandate policy validate", "mandate policy test", "mandate policy explain", "mandate_covered", "expect:", "visible:", "N passed, M failed"} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Errorf("policy help lacks %q (exit %d)", s, r.code)
		}
	}
}
