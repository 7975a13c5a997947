package policy

import "testing"

func BenchmarkDecide(b *testing.B) {
	s, problems := Compile(exampleFiles(b, "default.cedar"))
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	r := call(alice, "github", "create_issue", map[string]any{"repo": "mandate", "title": "x", "labels": []any{"bug"}})
	r.Mandate = MandateRef{ID: "m1", Covered: true}
	b.ReportAllocs()
	for b.Loop() {
		if d := s.Decide(r); d.Effect != Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkVisible(b *testing.B) {
	s, problems := Compile(exampleFiles(b, "default.cedar"))
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	r := Request{Principal: alice, Target: Target{Kind: KindTool, Upstream: "github", Name: "create_issue"},
		Mandate: MandateRef{ID: "m1", Covered: true}}
	b.ReportAllocs()
	for b.Loop() {
		if !s.Visible(r) {
			b.Fatal("not visible")
		}
	}
}
