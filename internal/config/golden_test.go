package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// checkHeader opens testdata/check.golden. The report is what an operator
// reads, so its exact text is pinned.
const checkHeader = `# Golden report for testdata/bad.yaml: every problem of a broken file in one
# run, in file order, each at its file:line:col, and no secret value echoed.
# Guards against stopping at the first problem, lost positions, and a
# secret from ${env:...} leaking into a message, from an upstream, from the
# auth section (a client's redirect URI, an unset client secret) or from
# policy.authzen (its URL, an unset header). Also guards against an audit
# redaction rule that does not compile reaching the audit log at start,
# and against a YAML 1.1 boolean ("trust_annotations: no") passing
# silently as the default, which would trust a server meant to be
# distrusted.
# Refresh with -update.
`

func TestCheckGolden(t *testing.T) {
	unsetenv(t, "MANDATE_TEST_UNSET")
	t.Setenv("MANDATE_TEST_SECRET_URL", "gopher://user:golden-secret@host/")

	path := filepath.Join("testdata", "bad.yaml")
	_, err := Load(path)
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Load(%s) = %v, want *Error", path, err)
	}
	got := checkHeader + err.Error() + "\n"
	if strings.Contains(got, "golden-secret") {
		t.Fatalf("report shows the secret:\n%s", got)
	}

	golden := filepath.Join("testdata", "check.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("report differs from %s (run with -update to refresh):\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}
