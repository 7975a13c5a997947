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
	for name, example := range map[string]string{BuiltinAllowAll: "local/allow-all.cedar", BuiltinDefault: "default.cedar"} {
		if _, err := Builtin(name); err != nil {
			t.Fatal(err)
		}
		embedded, _ := builtinFS.ReadFile("builtin/" + name + ".cedar")
		want, err := os.ReadFile(filepath.Join("..", "..", "examples", "policies", example))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(embedded, want) {
			t.Errorf("internal/policy/builtin/%s.cedar differs from examples/policies/%s", name, example)
		}
	}
	if _, err := Builtin("nope"); err == nil {
		t.Error("unknown built-in compiled")
	}
}
