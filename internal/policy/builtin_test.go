package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestBuiltinsMatchExamples: the shipped examples are exactly what the
// binary decides with when no policy directory is configured.
func TestBuiltinsMatchExamples(t *testing.T) {
	for _, name := range []string{BuiltinAllowAll, BuiltinDefault} {
		if _, err := Builtin(name); err != nil {
			t.Fatal(err)
		}
		embedded, _ := builtinFS.ReadFile("builtin/" + name + ".cedar")
		example, err := os.ReadFile(filepath.Join("..", "..", "examples", "policies", name+".cedar"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(embedded, example) {
			t.Errorf("internal/policy/builtin/%s.cedar differs from examples/policies/%s.cedar", name, name)
		}
	}
	if _, err := Builtin("nope"); err == nil {
		t.Error("unknown built-in compiled")
	}
}
