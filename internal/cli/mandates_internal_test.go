package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
)

// TestAddConstraint pins the syntax of --constraint ARG:KIND=VALUE: what each
// kind sets, how several flags on one argument combine, and every malformed
// flag being refused rather than read as a weaker constraint.
func TestAddConstraint(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		want    string // the grant's constraints as JSON
		wantErr string
	}{
		{name: "prefix", flags: []string{"path:prefix=/srv/reports"}, want: `[{"arg":"path","prefix":"/srv/reports"}]`},
		{name: "suffix", flags: []string{"to:suffix=@example.com"}, want: `[{"arg":"to","suffix":"@example.com"}]`},
		{name: "glob", flags: []string{"path:glob=/srv/*.pdf"}, want: `[{"arg":"path","glob":"/srv/*.pdf"}]`},
		{name: "pattern keeps = and :", flags: []string{"q:pattern=a=b:[0-9]+"}, want: `[{"arg":"q","pattern":"a=b:[0-9]+"}]`},
		{name: "min and max", flags: []string{"n:min=-1.5", "n:max=100"}, want: `[{"arg":"n","min":-1.5,"max":100}]`},
		{name: "oneof strings", flags: []string{`to:oneof="a@x.com","b,c@x.com"`}, want: `[{"arg":"to","one_of":["a@x.com","b,c@x.com"]}]`},
		{name: "oneof scalars", flags: []string{`v:oneof=1, 2.50 ,true,null`}, want: `[{"arg":"v","one_of":[1,2.50,true,null]}]`},
		{name: "dotted argument", flags: []string{"options.path:prefix=/tmp"}, want: `[{"arg":"options.path","prefix":"/tmp"}]`},
		{name: "same argument combines", flags: []string{"path:prefix=/srv", "to:suffix=.org", "path:suffix=.pdf"},
			want: `[{"arg":"path","prefix":"/srv","suffix":".pdf"},{"arg":"to","suffix":".org"}]`},

		{name: "no colon", flags: []string{"path=/srv"}, wantErr: `"path=/srv" is not ARG:KIND=VALUE`},
		{name: "no equals", flags: []string{"path:prefix"}, wantErr: `"path:prefix" is not ARG:KIND=VALUE`},
		{name: "empty argument", flags: []string{":prefix=/srv"}, wantErr: `argument "" is not a dotted path`},
		{name: "empty segment", flags: []string{"a..b:prefix=/srv"}, wantErr: `argument "a..b" is not a dotted path`},
		{name: "empty value", flags: []string{"path:prefix="}, wantErr: "path:prefix has no value"},
		{name: "unknown kind", flags: []string{"path:startswith=/srv"}, wantErr: `unknown constraint kind "startswith"`},
		{name: "kind is case-sensitive", flags: []string{"path:Prefix=/srv"}, wantErr: `unknown constraint kind "Prefix"`},
		{name: "kind twice", flags: []string{"path:prefix=/a", "path:prefix=/b"}, wantErr: "path:prefix given twice"},
		{name: "oneof twice", flags: []string{"v:oneof=1", "v:oneof=2"}, wantErr: "v:oneof given twice"},
		{name: "max twice", flags: []string{"n:max=1", "n:max=2"}, wantErr: "n:max given twice"},
		{name: "oneof bare word", flags: []string{"to:oneof=alice,bob"}, wantErr: "is not a list of JSON values"},
		{name: "oneof trailing comma", flags: []string{`to:oneof="a",`}, wantErr: "is not a list of JSON values"},
		{name: "oneof escapes the list", flags: []string{`to:oneof=1],[2`}, wantErr: "is not a list of JSON values"},
		{name: "oneof object", flags: []string{`to:oneof={"a":1}`}, wantErr: "strings, numbers, booleans or null"},
		{name: "oneof list", flags: []string{`to:oneof=[1]`}, wantErr: "strings, numbers, booleans or null"},
		{name: "min not a number", flags: []string{"n:min=ten"}, wantErr: `n:min: "ten" is not a finite number`},
		{name: "max infinite", flags: []string{"n:max=Inf"}, wantErr: `n:max: "Inf" is not a finite number`},
		{name: "max NaN", flags: []string{"n:max=NaN"}, wantErr: `n:max: "NaN" is not a finite number`},
		{name: "bad glob", flags: []string{"p:glob=[a"}, wantErr: `p:glob: bad pattern "[a"`},
		{name: "bad pattern", flags: []string{"p:pattern=(a"}, wantErr: "p:pattern: error parsing regexp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := consent.Grant{Upstream: "*", Tool: "t"}
			var err error
			for _, f := range tc.flags {
				if err = addConstraint(&g, f); err != nil {
					break
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(g.Constraints)
			if string(got) != tc.want {
				t.Errorf("constraints = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestGrantFlags pins how --tool, --upstream and --constraint pair up:
// upstreams by position whichever comes first, constraints with the --tool
// before them, and a missing --upstream refused rather than read as "*".
func TestGrantFlags(t *testing.T) {
	tests := []struct {
		name    string
		flags   [][2]string // flag name, value
		want    string      // the grants as JSON
		wantErr string
	}{
		{name: "no upstream means any", flags: [][2]string{{"tool", "a"}, {"tool", "b"}},
			want: `[{"upstream":"*","tool":"a"},{"upstream":"*","tool":"b"}]`},
		{name: "upstream after its tool", flags: [][2]string{{"tool", "a"}, {"upstream", "fs"}, {"tool", "b"}, {"upstream", "gh"}},
			want: `[{"upstream":"fs","tool":"a"},{"upstream":"gh","tool":"b"}]`},
		{name: "upstream before its tool", flags: [][2]string{{"upstream", "fs"}, {"tool", "a"}, {"upstream", "gh"}, {"tool", "b"}},
			want: `[{"upstream":"fs","tool":"a"},{"upstream":"gh","tool":"b"}]`},
		{name: "constraints follow their tool", flags: [][2]string{{"upstream", "fs"}, {"tool", "a"}, {"constraint", "p:prefix=/x"},
			{"upstream", "gh"}, {"constraint", "p:suffix=.md"}, {"tool", "b"}, {"constraint", "n:max=3"}},
			want: `[{"upstream":"fs","tool":"a","constraints":[{"arg":"p","prefix":"/x","suffix":".md"}]},` +
				`{"upstream":"gh","tool":"b","constraints":[{"arg":"n","max":3}]}]`},
		{name: "explicit any", flags: [][2]string{{"tool", "a"}, {"upstream", "*"}, {"tool", "b"}, {"upstream", "fs"}},
			want: `[{"upstream":"*","tool":"a"},{"upstream":"fs","tool":"b"}]`},

		{name: "no tool", flags: [][2]string{{"upstream", "fs"}}, wantErr: "--tool required"},
		{name: "fewer upstreams", flags: [][2]string{{"tool", "a"}, {"tool", "b"}, {"upstream", "fs"}},
			wantErr: "2 --tool but 1 --upstream"},
		{name: "more upstreams", flags: [][2]string{{"upstream", "fs"}, {"upstream", "gh"}, {"tool", "a"}},
			wantErr: "1 --tool but 2 --upstream"},
		{name: "constraint before any tool", flags: [][2]string{{"constraint", "p:prefix=/x"}, {"tool", "a"}},
			wantErr: "give the --tool it applies to before --constraint"},
		{name: "empty tool", flags: [][2]string{{"tool", ""}}, wantErr: "empty pattern"},
		{name: "bad upstream glob", flags: [][2]string{{"tool", "a"}, {"upstream", "[fs"}}, wantErr: `bad pattern "[fs"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g grantFlags
			values := map[string]interface{ Set(string) error }{
				"tool": toolFlag{&g}, "upstream": upstreamFlag{&g}, "constraint": constraintFlag{&g},
			}
			var err error
			for _, f := range tc.flags {
				if err = values[f[0]].Set(f[1]); err != nil {
					break
				}
			}
			var grants []consent.Grant
			if err == nil {
				grants, err = g.result()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(grants); string(got) != tc.want {
				t.Errorf("grants = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestGrantFlagsFailedSetLeavesNoTrace checks that a refused --constraint
// changes nothing, so a parse error cannot leave half a constraint behind.
func TestGrantFlagsFailedSetLeavesNoTrace(t *testing.T) {
	var g grantFlags
	if err := (toolFlag{&g}).Set("t"); err != nil {
		t.Fatal(err)
	}
	if err := (constraintFlag{&g}).Set("n:min=1"); err != nil {
		t.Fatal(err)
	}
	if err := (constraintFlag{&g}).Set("n:min=2"); err == nil {
		t.Fatal("second min accepted")
	}
	if err := (constraintFlag{&g}).Set("m:max=x"); err == nil {
		t.Fatal("bad max accepted")
	}
	if got, _ := json.Marshal(g.grants); string(got) != `[{"upstream":"","tool":"t","constraints":[{"arg":"n","min":1}]}]` {
		t.Errorf("grants = %s", got)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"24h", now.Add(24 * time.Hour), ""},
		{"90m", now.Add(90 * time.Minute), ""},
		{"7d", now.AddDate(0, 0, 7), ""},
		{"2026-04-01T00:00:00+02:00", time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC), ""},
		{"0d", time.Time{}, "must be in the future"},
		{"0s", time.Time{}, "must be in the future"},
		{"-2h", time.Time{}, "must be in the future"},
		{"1.5d", time.Time{}, "neither a duration"},
		{"2026-04-01", time.Time{}, "neither a duration"},
		{"", time.Time{}, "neither a duration"},
	}
	for _, tc := range tests {
		got, err := parseExpiry(tc.in, now)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !got.Equal(tc.want)):
			t.Errorf("%q = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
