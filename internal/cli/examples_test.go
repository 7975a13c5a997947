package cli_test

import (
	"path/filepath"
	"regexp"
	"testing"
)

// codingAgent is the README's worked example, seen from this package.
var codingAgent = filepath.Join("..", "..", "examples", "coding-agent")

// TestCodingAgentExample keeps the README's worked example honest: its
// configuration loads and its policy decides what the README says (reads
// under a mandate, pull requests only after approval, nothing else).
func TestCodingAgentExample(t *testing.T) {
	t.Setenv("REPO_DIR", t.TempDir())
	t.Setenv("GITHUB_TOKEN", "example-token-not-used")
	if r := run(nil, "config", "check", filepath.Join(codingAgent, "mandate.yaml")); r.code != 0 {
		t.Fatalf("config check: exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
	r := run(nil, "policy", "test", filepath.Join(codingAgent, "policies", "tests.yaml"))
	if r.code != 0 || r.stderr != "" || !regexp.MustCompile(`^[1-9][0-9]* passed, 0 failed\n$`).MatchString(r.stdout) {
		t.Fatalf("policy test: exit %d, stderr %q, stdout:\n%s", r.code, r.stderr, r.stdout)
	}
}
