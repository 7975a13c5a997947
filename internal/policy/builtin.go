package policy

import (
	"embed"
	"fmt"
)

// builtinFS holds the policies Mandate decides with when no policy
// directory is configured; examples/policies/default.cedar and
// examples/policies/local/allow-all.cedar are the same files for operators
// to copy (a test keeps them identical). allow-all sits in its own folder
// so that pointing policy.dir at examples/policies never loads it.
//
//go:embed builtin/*.cedar
var builtinFS embed.FS

// Built-in policy sets.
const (
	// BuiltinAllowAll permits everything: the default of `auth: none` and
	// of `mandate stdio`, where the only principal is the local operator.
	BuiltinAllowAll = "allow-all"
	// BuiltinDefault denies by default, lets delegated agents act within a
	// mandate, and sends destructive tools to approval.
	BuiltinDefault = "default"
)

// Builtin compiles one of the built-in policy sets.
func Builtin(name string) (*Snapshot, error) {
	src, err := builtinFS.ReadFile("builtin/" + name + ".cedar")
	if err != nil {
		return nil, fmt.Errorf("no built-in policy %q", name)
	}
	snap, problems := Compile(map[string][]byte{"builtin/" + name + ".cedar": src})
	if len(problems) > 0 {
		return nil, fmt.Errorf("built-in policy %q: %v", name, problems[0])
	}
	return snap, nil
}

// AllowAll returns an engine over the allow-all set, for `auth: none`,
// stdio and tests of everything but policy.
func AllowAll() *Engine {
	snap, err := Builtin(BuiltinAllowAll)
	if err != nil {
		panic(err) // the embedded set is compiled by the tests
	}
	return NewEngine(snap)
}
