package policy

import (
	"strings"
	"testing"
)

func TestCompileProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings of the problems, in order, each with its position
	}{
		{"parse error", "permit (principal, action, resource)\nwhen { 1 + };",
			[]string{`p.cedar:2:13: parse error`}},
		{"unknown entity type", `permit (principal, action, resource is Widget);`,
			[]string{"p.cedar:1:1: unrecognized entity type `Widget`"}},
		{"unknown action", "\n\npermit (principal, action == Action::\"tools/delete\", resource);",
			[]string{"p.cedar:3:1: unrecognized action `Action::\"tools/delete\"`"}},
		{"unknown context attribute", `permit (principal, action == Action::"tools/call", resource) when { context.user == "x" };`,
			[]string{"p.cedar:1:1: ", "user"}},
		{"unknown principal attribute", `permit (principal is User, action, resource) when { principal.role == "admin" };`,
			[]string{"p.cedar:1:1: attribute `role` on entity type `User` not found"}},
		{"unknown resource attribute", `permit (principal, action == Action::"tools/call", resource) when { resource.owner == "x" };`,
			[]string{"p.cedar:1:1: attribute `owner` on entity type `Tool` not found"}},
		{"unguarded argument", `permit (principal, action == Action::"tools/call", resource) when { context.args.getTag("p") == "x" };`,
			[]string{"p.cedar:1:1: unable to guarantee safety of access to tag"}},
		{"type error", `permit (principal, action == Action::"tools/call", resource) when { context.risk > 3 };`,
			[]string{"p.cedar:1:1: "}},
		{"bad approval", `@approval("maybe") permit (principal, action, resource);`,
			[]string{`p.cedar:1:1: @approval must be "required", not "maybe"`}},
		{"approval on forbid", `@approval("required") forbid (principal, action, resource);`,
			[]string{"p.cedar:1:1: @approval applies to permit policies only"}},
		{"duplicate id", "@id(\"x\") permit (principal, action, resource);\n@id(\"x\") permit (principal, action, resource);",
			[]string{`p.cedar:2:1: policy id "x" already used at p.cedar:1:1`}},
		{"every problem is reported", "permit (principal is Nope, action, resource);\n\nforbid (principal, action == Action::\"nope\", resource);",
			[]string{"p.cedar:1:1: unrecognized entity type `Nope`", "p.cedar:3:1: unrecognized action"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, problems := Compile(map[string][]byte{"p.cedar": []byte(tt.src)})
			if s != nil {
				t.Fatal("Compile returned a snapshot despite problems")
			}
			var got []string
			for _, p := range problems {
				got = append(got, p.String())
			}
			all := strings.Join(got, "\n")
			rest := all
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("problems:\n%s\nlack (in order) %q", all, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestCompileReportsEveryFile(t *testing.T) {
	_, problems := Compile(map[string][]byte{
		"b.cedar":  []byte(`permit (principal is Nope, action, resource);`),
		"a.cedar":  []byte(`permit (principal, action, resource) when { ( };`),
		"ok.cedar": []byte(`permit (principal, action, resource);`),
	})
	if len(problems) < 2 || problems[0].File != "a.cedar" || problems[len(problems)-1].File != "b.cedar" {
		t.Fatalf("problems = %v, want one in a.cedar, then one in b.cedar", problems)
	}
}

func TestVersion(t *testing.T) {
	a := mustCompile(t, map[string]string{"x.cedar": `permit (principal, action, resource);`})
	b := mustCompile(t, map[string]string{"x.cedar": `permit (principal, action, resource);`})
	c := mustCompile(t, map[string]string{"y.cedar": `permit (principal, action, resource);`})
	d := mustCompile(t, map[string]string{"x.cedar": `permit (principal, action, resource); `})
	if a.Version() != b.Version() {
		t.Errorf("same sources, versions %s and %s", a.Version(), b.Version())
	}
	if a.Version() == c.Version() || a.Version() == d.Version() {
		t.Error("different sources share a version")
	}
	if !strings.HasPrefix(a.Version(), "sha256:") {
		t.Errorf("version %q", a.Version())
	}
}

func TestEmptySetDeniesEverything(t *testing.T) {
	s := mustCompile(t, nil)
	if d := s.Decide(call(alice, "a", "b", nil)); d.Effect != Deny {
		t.Errorf("empty set: %v", d.Effect)
	}
}

func TestSchemaIsShipped(t *testing.T) {
	if !strings.Contains(string(Schema()), `action "tools/call"`) {
		t.Error("Schema() lacks tools/call")
	}
}
