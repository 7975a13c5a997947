package policy

import "testing"

// FuzzCompile feeds policy files, untrusted operator input, to Compile: it
// must never panic, and it returns either a snapshot or problems.
func FuzzCompile(f *testing.F) {
	for _, b := range exampleFiles(f, "default.cedar", "local/allow-all.cedar") {
		f.Add(b)
	}
	f.Add([]byte(testPolicies))
	f.Add([]byte(`permit (principal, action, resource) when { (`))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, problems := Compile(map[string][]byte{"f.cedar": src})
		if (s == nil) == (len(problems) == 0) {
			t.Fatalf("snapshot %v with %d problems", s != nil, len(problems))
		}
		if s != nil {
			s.Decide(call(alice, "a", "b", map[string]any{"path": "/tmp/x"}))
			s.Visible(Request{Principal: robot, Target: Target{Kind: KindTool, Upstream: "a", Name: "b"}})
		}
	})
}
