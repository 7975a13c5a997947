package consent

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func ptr(f float64) *float64 { return &f }

func TestConstraintCheck(t *testing.T) {
	emailGlob := Constraint{Arg: "to", Glob: "*@example.com"}
	emailSuffix := Constraint{Arg: "to", Suffix: "@example.com"}
	reports := Constraint{Arg: "options.path", Prefix: "/srv/reports/"}
	reportsNoSlash := Constraint{Arg: "path", Prefix: "/srv/reports"}
	reportsGlob := Constraint{Arg: "path", Glob: "/srv/reports/*/summary.pdf"}
	bounds := Constraint{Arg: "n", Min: ptr(1), Max: ptr(100)}
	oneOf := Constraint{Arg: "v", OneOf: []any{1, 2, "three", true}}
	pattern := Constraint{Arg: "s", Pattern: "a|b"}
	both := Constraint{Arg: "path", Prefix: "/srv/reports/", Suffix: ".pdf"}
	tests := []struct {
		name string
		c    Constraint
		args string // JSON, decoded as a request's arguments are
		why  string // "" when the arguments satisfy the constraint
	}{
		// The first example: send_email only to *@example.com.
		{"glob: address in the domain", emailGlob, `{"to":"alice@example.com"}`, ""},
		{"glob: other domain", emailGlob, `{"to":"alice@evil.com"}`, `does not match "*@example.com"`},
		{"glob: domain as a prefix of another", emailGlob, `{"to":"alice@example.com.evil.com"}`, "does not match"},
		{"glob: list of addresses in the domain", emailGlob, `{"to":["a@example.com","b@example.com"]}`, ""},
		{"glob: one address outside the domain", emailGlob, `{"to":["a@example.com","b@evil.com"]}`, "has an element that does not match"},
		{"glob: empty list", emailGlob, `{"to":[]}`, "is an empty list"},
		{"glob: absent", emailGlob, `{"cc":"a@example.com"}`, "is missing"},
		{"glob: not a string", emailGlob, `{"to":42}`, "is not a string"},
		{"glob: object", emailGlob, `{"to":{"addr":"a@example.com"}}`, "is not a string, number, boolean or null"},
		{"suffix: address in the domain", emailSuffix, `{"to":"alice@example.com"}`, ""},
		{"suffix: other domain", emailSuffix, `{"to":"alice@evil.com"}`, `does not end with "@example.com"`},
		{"suffix: domain ending alike", emailSuffix, `{"to":"alice@notexample.com"}`, "does not end with"},
		{"suffix: null", emailSuffix, `{"to":null}`, "is not a string"},

		// The second example: read files only under /srv/reports.
		{"prefix: file under the directory", reports, `{"options":{"path":"/srv/reports/q1.pdf"}}`, ""},
		{"prefix: nested directory", reports, `{"options":{"path":"/srv/reports/2025/q1/"}}`, ""},
		{"prefix: traversal", reports, `{"options":{"path":"/srv/reports/../secrets"}}`, "is not a clean absolute path"},
		{"prefix: traversal at the end", reports, `{"options":{"path":"/srv/reports/.."}}`, "is not a clean absolute path"},
		{"prefix: dot segment", reports, `{"options":{"path":"/srv/reports/./q1.pdf"}}`, "is not a clean absolute path"},
		{"prefix: empty segment", reports, `{"options":{"path":"/srv/reports//q1.pdf"}}`, "is not a clean absolute path"},
		{"prefix: backslash traversal", reports, `{"options":{"path":"/srv/reports/..\\..\\etc\\passwd"}}`, "is not a clean absolute path"},
		{"prefix: relative path", reports, `{"options":{"path":"srv/reports/q1.pdf"}}`, "is not a clean absolute path"},
		{"prefix: elsewhere", reports, `{"options":{"path":"/etc/passwd"}}`, `does not start with "/srv/reports/"`},
		{"prefix: no options", reports, `{"path":"/srv/reports/q1.pdf"}`, "is missing"},
		{"prefix: options not an object", reports, `{"options":"/srv/reports/q1.pdf"}`, "is missing"},
		{"path prefix: the directory itself", reportsNoSlash, `{"path":"/srv/reports"}`, ""},
		{"path prefix: below the directory", reportsNoSlash, `{"path":"/srv/reports/q1.pdf"}`, ""},
		{"path prefix: sibling sharing the prefix", reportsNoSlash, `{"path":"/srv/reports-old/q1.pdf"}`, "does not start with"},
		{"path glob: one level", reportsGlob, `{"path":"/srv/reports/q1/summary.pdf"}`, ""},
		{"path glob: traversal", reportsGlob, `{"path":"/srv/reports/../summary.pdf"}`, "is not a clean absolute path"},
		{"path glob: star stops at a slash", reportsGlob, `{"path":"/srv/reports/a/b/summary.pdf"}`, "does not match"},

		// Numeric bounds are inclusive; JSON numbers decode as float64.
		{"bounds: minimum", bounds, `{"n":1}`, ""},
		{"bounds: maximum", bounds, `{"n":100}`, ""},
		{"bounds: below", bounds, `{"n":0.5}`, "is below the minimum 1"},
		{"bounds: above", bounds, `{"n":100.01}`, "is above the maximum 100"},
		{"bounds: numeric string", bounds, `{"n":"50"}`, "is not a number"},
		{"bounds: boolean", bounds, `{"n":true}`, "is not a number"},

		// OneOf compares by JSON value: Go ints in the grant equal decoded
		// float64s, and never strings.
		{"one of: number", oneOf, `{"v":1}`, ""},
		{"one of: number written as a float", oneOf, `{"v":2.0}`, ""},
		{"one of: string", oneOf, `{"v":"three"}`, ""},
		{"one of: boolean", oneOf, `{"v":true}`, ""},
		{"one of: number as a string", oneOf, `{"v":"1"}`, "is not one of the allowed values"},
		{"one of: other number", oneOf, `{"v":3}`, "is not one of the allowed values"},
		{"one of: false", oneOf, `{"v":false}`, "is not one of the allowed values"},
		{"one of: null", oneOf, `{"v":null}`, "is not one of the allowed values"},
		{"one of: list of allowed values", oneOf, `{"v":[1,"three"]}`, ""},

		// Patterns are anchored, alternation included.
		{"pattern: whole value", pattern, `{"s":"a"}`, ""},
		{"pattern: longer value", pattern, `{"s":"ab"}`, "does not match the pattern"},
		{"pattern: not a string", pattern, `{"s":1}`, "is not a string"},

		// A constraint with several checks requires them all.
		{"all checks: both hold", both, `{"path":"/srv/reports/q1.pdf"}`, ""},
		{"all checks: suffix fails", both, `{"path":"/srv/reports/q1.txt"}`, `does not end with ".pdf"`},
		{"all checks: prefix fails", both, `{"path":"/tmp/q1.pdf"}`, "does not start with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := compileConstraint(tc.c)
			if err != nil {
				t.Fatalf("compileConstraint: %v", err)
			}
			var args map[string]any
			if err := json.Unmarshal([]byte(tc.args), &args); err != nil {
				t.Fatalf("decode args: %v", err)
			}
			why := cc.check(args)
			switch {
			case tc.why == "" && why != "":
				t.Errorf("check = %q, want the arguments accepted", why)
			case tc.why != "" && !strings.Contains(why, tc.why):
				t.Errorf("check = %q, want a refusal containing %q", why, tc.why)
			}
		})
	}
}

// TestConstraintCheckGoValues covers arguments built by Go callers rather
// than decoded from JSON.
func TestConstraintCheckGoValues(t *testing.T) {
	cc, err := compileConstraint(Constraint{Arg: "n", OneOf: []any{1.0, 2.0}, Max: ptr(2)})
	if err != nil {
		t.Fatalf("compileConstraint: %v", err)
	}
	tests := []struct {
		name string
		v    any
		ok   bool
	}{
		{"int", 1, true},
		{"uint8", uint8(2), true},
		{"json.Number", json.Number("2"), true},
		{"float32", float32(1), true},
		{"not allowed", int64(3), false},
		{"NaN", math.NaN(), false},
		{"infinity", math.Inf(1), false},
		{"bad json.Number", json.Number("x"), false},
		{"[]string", []string{"1"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			why := cc.check(map[string]any{"n": tc.v})
			if (why == "") != tc.ok {
				t.Errorf("check(%v) = %q, want accepted %v", tc.v, why, tc.ok)
			}
		})
	}
}

func TestCompileConstraintRefuses(t *testing.T) {
	tests := []struct {
		name string
		c    Constraint
	}{
		{"no argument", Constraint{Prefix: "/srv/"}},
		{"empty path segment", Constraint{Arg: "options..path", Prefix: "/srv/"}},
		{"trailing dot", Constraint{Arg: "options.", Prefix: "/srv/"}},
		{"NUL in argument", Constraint{Arg: "a\x00", Prefix: "/srv/"}},
		{"checks nothing", Constraint{Arg: "to"}},
		{"empty one-of checks nothing", Constraint{Arg: "to", OneOf: []any{}}},
		{"bad glob", Constraint{Arg: "to", Glob: "[a-"}},
		{"bad pattern", Constraint{Arg: "to", Pattern: "(a"}},
		{"non-RE2 pattern", Constraint{Arg: "to", Pattern: `(?=a)`}},
		{"minimum above maximum", Constraint{Arg: "n", Min: ptr(2), Max: ptr(1)}},
		{"NaN bound", Constraint{Arg: "n", Min: ptr(math.NaN())}},
		{"infinite bound", Constraint{Arg: "n", Max: ptr(math.Inf(1))}},
		{"object in one-of", Constraint{Arg: "v", OneOf: []any{map[string]any{"a": 1}}}},
		{"list in one-of", Constraint{Arg: "v", OneOf: []any{[]any{1}}}},
		{"invalid UTF-8 prefix", Constraint{Arg: "v", Prefix: "\xff"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := compileConstraint(tc.c); err == nil {
				t.Errorf("compileConstraint(%+v) succeeded", tc.c)
			}
		})
	}
}

func TestGrantCovers(t *testing.T) {
	tests := []struct {
		upstream, tool string // patterns
		callUp, callT  string
		want           bool
	}{
		{"*", "*", "mail", "send_email", true},
		{"mail", "send_*", "mail", "send_email", true},
		{"mail", "send_*", "mail", "send", false},
		{"mail", "send_*", "mail2", "send_email", false},
		{"mail", "send_email", "mail", "send_email_bulk", false},
		{"m?il", "read_[a-f]*", "mail", "read_file", true},
		{"m?il", "read_[a-e]*", "mail", "read_file", false},
		{"*", "read_file", "", "read_file", true},
		{"fs", "*", "fs-other", "read_file", false},
	}
	for _, tc := range tests {
		g, err := compileGrant(Grant{Upstream: tc.upstream, Tool: tc.tool})
		if err != nil {
			t.Fatalf("compileGrant: %v", err)
		}
		if got := g.covers(tc.callUp, tc.callT); got != tc.want {
			t.Errorf("grant %s/%s covers %s/%s = %v, want %v", tc.upstream, tc.tool, tc.callUp, tc.callT, got, tc.want)
		}
	}
}
