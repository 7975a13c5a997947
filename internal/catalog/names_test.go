package catalog

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// clientName is the pattern major clients enforce, written out again here so
// that a change to the package's own pattern cannot make these tests agree
// with it by accident.
var clientName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// shortened matches the deterministic form of a name that could not be kept:
// a sanitized head and "_" plus eight hex digits of the hash.
var shortened = regexp.MustCompile(`_[0-9a-f]{8}$`)

func TestQualify(t *testing.T) {
	long64 := strings.Repeat("a", 64)
	long65 := strings.Repeat("b", 65)
	tests := []struct {
		name     string
		prefix   string
		upstream string
		item     string
		want     string // exact public name; "" when only the shape is checked
		head     string // for shortened names: the sanitized head before the hash
	}{
		{name: "prefixed", prefix: "gh", upstream: "github", item: "create_issue", want: "gh__create_issue"},
		{name: "unprefixed passthrough", prefix: "", upstream: "fs", item: "read_file", want: "read_file"},
		{name: "hyphen and digits kept", prefix: "a-1", upstream: "a", item: "Tool-2_x", want: "a-1__Tool-2_x"},
		{name: "dot", prefix: "fs", upstream: "fs", item: "read.file", head: "fs__read_file"},
		{name: "space", prefix: "", upstream: "fs", item: "read file", head: "read_file"},
		{name: "slash", prefix: "x", upstream: "x", item: "a/b", head: "x__a_b"},
		{name: "cyrillic homoglyph", prefix: "", upstream: "u", item: "\u0435cho", head: "_cho"},
		{name: "fullwidth homoglyph", prefix: "p", upstream: "u", item: "\uff45cho", head: "p___cho"},
		{name: "NUL", prefix: "p", upstream: "u", item: "a\x00b", head: "p__a_b"},
		{name: "newline and tab", prefix: "", upstream: "u", item: "a\nb\tc", head: "a_b_c"},
		{name: "escape sequence", prefix: "", upstream: "u", item: "\x1b[31mred", head: "__31mred"},
		{name: "invalid UTF-8", prefix: "", upstream: "u", item: "a\xffb", head: "a_b"},
		{name: "empty unprefixed", prefix: "", upstream: "u", item: "", head: ""},
		{name: "64 chars kept", prefix: "", upstream: "u", item: long64, want: long64},
		{name: "65 chars shortened", prefix: "", upstream: "u", item: long65, head: strings.Repeat("b", 55)},
		{name: "prefix pushes over 64", prefix: "p", upstream: "u", item: strings.Repeat("c", 62), head: "p__" + strings.Repeat("c", 52)},
		{name: "prefix fits exactly", prefix: "p", upstream: "u", item: strings.Repeat("c", 61), want: "p__" + strings.Repeat("c", 61)},
		{name: "long invalid", prefix: "", upstream: "u", item: strings.Repeat("é", 100), head: strings.Repeat("_", 55)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Qualify(tt.prefix, "__", tt.upstream, tt.item)
			if !clientName.MatchString(got) {
				t.Fatalf("Qualify(%q) = %q, not a valid client name", tt.item, got)
			}
			if again := Qualify(tt.prefix, "__", tt.upstream, tt.item); again != got {
				t.Fatalf("Qualify is not deterministic: %q then %q", got, again)
			}
			if tt.want != "" {
				if got != tt.want {
					t.Errorf("Qualify(%q, %q) = %q, want %q", tt.prefix, tt.item, got, tt.want)
				}
				return
			}
			if !shortened.MatchString(got) {
				t.Errorf("Qualify(%q) = %q, want the shortened form ending in _<8 hex>", tt.item, got)
			}
			if head := got[:len(got)-9]; head != tt.head {
				t.Errorf("Qualify(%q) head = %q, want %q", tt.item, head, tt.head)
			}
			if got == tt.prefix+"__"+tt.item || got == tt.item {
				t.Errorf("Qualify(%q) kept an invalid name", tt.item)
			}
		})
	}
}

// TestQualifyHashDependsOnUpstream guards the collision rule: the same
// invalid name from two upstreams must get two different public names, or
// Build would have to drop one of them.
func TestQualifyHashDependsOnUpstream(t *testing.T) {
	a := Qualify("", "__", "one", "read.file")
	b := Qualify("", "__", "two", "read.file")
	if a == b {
		t.Fatalf("two upstreams' read.file both map to %q", a)
	}
	if c := Qualify("", "__", "one", "read file"); c == a {
		t.Fatalf("read.file and read file of one upstream both map to %q", a)
	}
}

func TestHomoglyphNeverImpersonates(t *testing.T) {
	ns := Build("__", []Source{
		{Upstream: "evil", Names: []string{"\u0435cho", "ech\u043e", "\uff45cho"}},
		{Upstream: "good", Prefix: "good", Names: []string{"echo"}},
	})
	for _, n := range []string{"\u0435cho", "ech\u043e", "\uff45cho"} {
		pub := ns.Public(Ref{Upstream: "evil", Name: n})
		if strings.EqualFold(pub, "echo") || pub == "good__echo" {
			t.Errorf("homoglyph %q got the public name %q", n, pub)
		}
	}
	if ref, ok := ns.Resolve("good__echo"); !ok || ref != (Ref{Upstream: "good", Name: "echo"}) {
		t.Errorf("Resolve(good__echo) = %v, %v", ref, ok)
	}
}

func TestBuild(t *testing.T) {
	hashed := func(up, name string) string { return shorten("", "__", up, name) }
	tests := []struct {
		name    string
		sources []Source
		want    map[string]Ref // public -> ref; every item of the namespace
	}{
		{
			name: "prefixes keep equal names apart",
			sources: []Source{
				{Upstream: "github", Prefix: "gh", Names: []string{"search", "create_issue"}},
				{Upstream: "gitlab", Prefix: "gl", Names: []string{"search"}},
			},
			want: map[string]Ref{
				"gh__search":       {"github", "search"},
				"gh__create_issue": {"github", "create_issue"},
				"gl__search":       {"gitlab", "search"},
			},
		},
		{
			name: "unprefixed collision hashes the second",
			sources: []Source{
				{Upstream: "one", Names: []string{"echo", "add"}},
				{Upstream: "two", Names: []string{"echo", "sub"}},
			},
			want: map[string]Ref{
				"echo":                {"one", "echo"},
				"add":                 {"one", "add"},
				hashed("two", "echo"): {"two", "echo"},
				"sub":                 {"two", "sub"},
			},
		},
		{
			name: "three unprefixed with one name",
			sources: []Source{
				{Upstream: "one", Names: []string{"x"}},
				{Upstream: "two", Names: []string{"x"}},
				{Upstream: "three", Names: []string{"x"}},
			},
			want: map[string]Ref{
				"x":                  {"one", "x"},
				hashed("two", "x"):   {"two", "x"},
				hashed("three", "x"): {"three", "x"},
			},
		},
		{
			name: "unprefixed name equal to another's prefixed name",
			sources: []Source{
				{Upstream: "bare", Names: []string{"gh__search"}},
				{Upstream: "github", Prefix: "gh", Names: []string{"search"}},
			},
			want: map[string]Ref{
				"gh__search":                            {"bare", "gh__search"},
				shorten("gh", "__", "github", "search"): {"github", "search"},
			},
		},
		{
			name: "sanitized name next to its valid twin",
			sources: []Source{
				{Upstream: "u", Names: []string{"a.b", "a_b"}},
			},
			want: map[string]Ref{
				hashed("u", "a.b"): {"u", "a.b"},
				"a_b":              {"u", "a_b"},
			},
		},
		{
			name: "duplicate names of one upstream count once",
			sources: []Source{
				{Upstream: "u", Prefix: "p", Names: []string{"x", "x", "y"}},
			},
			want: map[string]Ref{
				"p__x": {"u", "x"},
				"p__y": {"u", "y"},
			},
		},
		{
			name:    "no sources",
			sources: nil,
			want:    map[string]Ref{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := Build("__", tt.sources)
			if len(ns.byPublic) != len(tt.want) {
				t.Errorf("namespace has %d names, want %d: %v", len(ns.byPublic), len(tt.want), ns.byPublic)
			}
			for pub, ref := range tt.want {
				if got, ok := ns.Resolve(pub); !ok || got != ref {
					t.Errorf("Resolve(%q) = %v, %v; want %v", pub, got, ok, ref)
				}
				if got := ns.Public(ref); got != pub {
					t.Errorf("Public(%v) = %q, want %q", ref, got, pub)
				}
			}
			checkNamespace(t, ns, tt.sources)
		})
	}
}

func TestBuildSeparator(t *testing.T) {
	ns := Build("-", []Source{{Upstream: "u", Prefix: "p", Names: []string{"x"}}})
	if got := ns.Public(Ref{Upstream: "u", Name: "x"}); got != "p-x" {
		t.Errorf("Public = %q, want p-x", got)
	}
	if ref, ok := ns.Resolve("p-y"); !ok || ref != (Ref{Upstream: "u", Name: "y"}) {
		t.Errorf("Resolve(p-y) = %v, %v", ref, ok)
	}
}

// TestBuildDeterministic guards against map-order effects: two gateways
// built from the same configuration (replicas, or one after a restart) must
// give every item the same public name, or clients and policies that name a
// tool break.
func TestBuildDeterministic(t *testing.T) {
	sources := []Source{
		{Upstream: "one", Names: []string{"echo", "read.file", "x", strings.Repeat("z", 70)}},
		{Upstream: "two", Names: []string{"echo", "read.file", "x"}},
		{Upstream: "three", Prefix: "t", Names: []string{"echo", "wéird"}},
		{Upstream: "four", Names: []string{"t__echo", "echo"}},
	}
	first := Build("__", sources)
	for range 20 {
		again := Build("__", sources)
		if fmt.Sprint(again.byPublic) != fmt.Sprint(first.byPublic) {
			t.Fatalf("second build differs:\n%v\n%v", first.byPublic, again.byPublic)
		}
	}
	checkNamespace(t, first, sources)
}

func TestResolveFallback(t *testing.T) {
	tests := []struct {
		name    string
		sources []Source
		public  string
		want    Ref
		ok      bool
	}{
		{
			name:    "unlisted name of a prefixed upstream",
			sources: []Source{{Upstream: "github", Prefix: "gh", Names: []string{"search"}}},
			public:  "gh__new_tool", want: Ref{"github", "new_tool"}, ok: true,
		},
		{
			name:    "prefix without a name",
			sources: []Source{{Upstream: "github", Prefix: "gh"}},
			public:  "gh__", ok: false,
		},
		{
			name:    "unknown prefix and no bare upstream",
			sources: []Source{{Upstream: "github", Prefix: "gh"}},
			public:  "gl__search", ok: false,
		},
		{
			name: "the one bare upstream takes unprefixed names",
			sources: []Source{
				{Upstream: "github", Prefix: "gh"},
				{Upstream: "fs"},
			},
			public: "read_file", want: Ref{"fs", "read_file"}, ok: true,
		},
		{
			name: "prefixed upstream wins over the bare one",
			sources: []Source{
				{Upstream: "fs"},
				{Upstream: "github", Prefix: "gh"},
			},
			public: "gh__search", want: Ref{"github", "search"}, ok: true,
		},
		{
			name: "two bare upstreams are ambiguous",
			sources: []Source{
				{Upstream: "one", Names: []string{"a"}},
				{Upstream: "two", Names: []string{"b"}},
			},
			public: "c", ok: false,
		},
		{
			name:    "unknown upstream id",
			sources: nil,
			public:  "x", ok: false,
		},
		{
			name: "longest prefix wins",
			sources: []Source{
				{Upstream: "short", Prefix: "a"},
				{Upstream: "long", Prefix: "a__b"},
			},
			public: "a__b__x", want: Ref{"long", "x"}, ok: true,
		},
		{
			name: "longest prefix wins whatever the order",
			sources: []Source{
				{Upstream: "long", Prefix: "a__b"},
				{Upstream: "short", Prefix: "a"},
			},
			public: "a__b__x", want: Ref{"long", "x"}, ok: true,
		},
		{
			name: "shorter prefix still reachable",
			sources: []Source{
				{Upstream: "short", Prefix: "a"},
				{Upstream: "long", Prefix: "a__b"},
			},
			public: "a__c", want: Ref{"short", "c"}, ok: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several fresh builds, so that an answer that depends on map
			// iteration order shows up as a difference.
			for range 32 {
				ns := Build("__", tt.sources)
				got, ok := ns.Resolve(tt.public)
				if ok != tt.ok || got != tt.want {
					t.Fatalf("Resolve(%q) = %v, %v; want %v, %v", tt.public, got, ok, tt.want, tt.ok)
				}
			}
		})
	}
}

// TestPublicOfUnlistedItem covers items the namespace was not built with
// (one only a dedicated session has seen): they get the name Qualify gives
// them, and a plain one resolves back by its prefix.
func TestPublicOfUnlistedItem(t *testing.T) {
	ns := Build("__", []Source{
		{Upstream: "github", Prefix: "gh", Names: []string{"search"}},
		{Upstream: "fs"},
	})
	tests := []struct {
		ref      Ref
		want     string
		resolves bool
	}{
		{Ref{"github", "later"}, "gh__later", true},
		{Ref{"fs", "later"}, "later", true},
		{Ref{"nobody", "x"}, "x", false},
		// A shortened name cannot be mapped back without the namespace.
		{Ref{"github", "bad.name"}, shorten("gh", "__", "github", "bad.name"), false},
	}
	for _, tt := range tests {
		if got := ns.Public(tt.ref); got != tt.want {
			t.Errorf("Public(%v) = %q, want %q", tt.ref, got, tt.want)
		}
		if !tt.resolves {
			continue
		}
		if got, ok := ns.Resolve(tt.want); !ok || got != tt.ref {
			t.Errorf("Resolve(%q) = %v, %v; want %v", tt.want, got, ok, tt.ref)
		}
	}
}

// checkNamespace asserts the invariants every namespace keeps: every item of
// the sources is present, every public name is valid and unique, and
// Public and Resolve are inverse.
func checkNamespace(t *testing.T, ns *Namespace, sources []Source) {
	t.Helper()
	seen := map[string]Ref{}
	for _, s := range sources {
		for _, n := range s.Names {
			ref := Ref{Upstream: s.Upstream, Name: n}
			pub, ok := ns.byRef[ref]
			if !ok {
				t.Errorf("item %v was dropped", ref)
				continue
			}
			if !clientName.MatchString(pub) {
				t.Errorf("public name %q of %v is not a valid client name", pub, ref)
			}
			if other, dup := seen[pub]; dup && other != ref {
				t.Errorf("public name %q given to %v and %v", pub, other, ref)
			}
			seen[pub] = ref
			if got := ns.Public(ref); got != pub {
				t.Errorf("Public(%v) = %q, want %q", ref, got, pub)
			}
			if got, ok := ns.Resolve(pub); !ok || got != ref {
				t.Errorf("Resolve(Public(%v)) = %v, %v", ref, got, ok)
			}
		}
	}
	if len(ns.byPublic) != len(ns.byRef) {
		t.Errorf("byPublic has %d entries, byRef %d", len(ns.byPublic), len(ns.byRef))
	}
}

// goldenHeader opens testdata/names.golden.
const goldenHeader = `# Golden public names for awkward upstream names. A public name is part of
# the contract with clients and with policies that name tools, and replicas
# must agree on it, so the shortened form (sanitized head, "_", 8 hex digits
# of sha256(upstream NUL name)) must never change by accident. Guards against
# a rename on upgrade and against per-process or map-order randomness.
# Refresh with -update only for a deliberate, announced change.
`

func TestShortenedNamesGolden(t *testing.T) {
	cases := []struct{ upstream, prefix, name string }{
		{"fs", "fs", "read.file"},
		{"fs", "", "read file"},
		{"u", "", "\u0435cho"},
		{"u", "p", "a\x00b"},
		{"u", "", strings.Repeat("b", 65)},
		{"u", "p", strings.Repeat("c", 62)},
		{"two", "", "echo"},
		{"u", "", ""},
	}
	var b strings.Builder
	b.WriteString(goldenHeader)
	for _, c := range cases {
		fmt.Fprintf(&b, "%s\t%q\t%q\t%s\n", c.upstream, c.prefix, c.name, shorten(c.prefix, "__", c.upstream, c.name))
	}
	got := b.String()
	golden := filepath.Join("testdata", "names.golden")
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
		t.Errorf("shortened names differ from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}

func TestURIRoundTrip(t *testing.T) {
	tests := []struct {
		prefix, uri string
		public      string
	}{
		{"docs", "file:///etc/motd", "mandate://docs/file:///etc/motd"},
		{"demo", "demo://readme", "mandate://demo/demo://readme"},
		{"demo", "demo://notes/{name}", "mandate://demo/demo://notes/{name}"},
		{"a", "https://example.com/x?y=1#z", "mandate://a/https://example.com/x?y=1#z"},
		{"a", "mandate://b/c", "mandate://a/mandate://b/c"},
		{"a", "/", "mandate://a//"},
		{"a", "no-scheme", "mandate://a/no-scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.public, func(t *testing.T) {
			if got := PublicURI(tt.prefix, tt.uri); got != tt.public {
				t.Fatalf("PublicURI(%q, %q) = %q, want %q", tt.prefix, tt.uri, got, tt.public)
			}
			prefix, uri, ok := ResolveURI(tt.public)
			if !ok || prefix != tt.prefix || uri != tt.uri {
				t.Errorf("ResolveURI(%q) = %q, %q, %v; want %q, %q, true", tt.public, prefix, uri, ok, tt.prefix, tt.uri)
			}
		})
	}
}

func TestPublicURIUnprefixed(t *testing.T) {
	for _, uri := range []string{"demo://readme", "demo://notes/{name}", "", "mandate://x/y"} {
		if got := PublicURI("", uri); got != uri {
			t.Errorf("PublicURI(\"\", %q) = %q, want it unchanged", uri, got)
		}
	}
}

func TestResolveURINotPrefixed(t *testing.T) {
	for _, public := range []string{
		"",
		"mandate://",
		"mandate://docs",
		"mandate:///file.txt",
		"mandate://docs/",
		"mandate:/docs/x",
		"MANDATE://docs/x",
		"demo://readme",
		"file:///mandate://docs/x",
	} {
		prefix, uri, ok := ResolveURI(public)
		if ok || prefix != "" || uri != public {
			t.Errorf("ResolveURI(%q) = %q, %q, %v; want \"\", the input, false", public, prefix, uri, ok)
		}
	}
}

// configPrefix and configSeparator are what config validation admits (the
// separator's length is capped here only to keep fuzz inputs small).
var (
	configPrefix    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	configSeparator = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func FuzzNamespace(f *testing.F) {
	f.Add("echo", "read.file", "\u0435cho", "gh", "__")
	f.Add("", strings.Repeat("x", 65), "a\x00b", "p", "-")
	f.Add("gh__x", "x", "x", "gh", "__")
	f.Add("a_b", "a.b", "a b", strings.Repeat("p", 32), strings.Repeat("_", 40))
	f.Fuzz(func(t *testing.T, a, b, c, prefix, sep string) {
		// Prefixes and separators are validated by config; names are not.
		if !configPrefix.MatchString(prefix) {
			prefix = "p"
		}
		if !configSeparator.MatchString(sep) {
			sep = "__"
		}
		sources := []Source{
			{Upstream: "one", Prefix: prefix, Names: []string{a, b, c}},
			{Upstream: "two", Names: []string{a, b, c}},
			{Upstream: "three", Names: []string{c, b, a, prefix + sep + a}},
		}
		ns := Build(sep, sources)
		checkNamespace(t, ns, sources)
		again := Build(sep, sources)
		for ref, pub := range ns.byRef {
			if again.byRef[ref] != pub {
				t.Fatalf("second build names %v %q, first %q", ref, again.byRef[ref], pub)
			}
		}
		for _, n := range []string{a, b, c} {
			if q := Qualify(prefix, sep, "x", n); !clientName.MatchString(q) {
				t.Fatalf("Qualify(%q) = %q is invalid", n, q)
			}
		}
	})
}

func FuzzResolveURI(f *testing.F) {
	f.Add("mandate://docs/file:///x", "docs", "file:///x")
	f.Add("mandate://", "", "")
	f.Add("mandate://a", "a", "demo://notes/{name}")
	f.Add("mandate:///", "a/b", "/")
	f.Fuzz(func(t *testing.T, public, prefix, uri string) {
		p, u, ok := ResolveURI(public)
		if ok {
			if p == "" || u == "" || strings.Contains(p, "/") {
				t.Fatalf("ResolveURI(%q) = %q, %q, true", public, p, u)
			}
			if back := PublicURI(p, u); back != public {
				t.Fatalf("PublicURI(ResolveURI(%q)) = %q", public, back)
			}
		} else if p != "" || u != public {
			t.Fatalf("ResolveURI(%q) = %q, %q, false; want the input back", public, p, u)
		}

		if prefix == "" {
			if got := PublicURI(prefix, uri); got != uri {
				t.Fatalf("PublicURI(\"\", %q) = %q", uri, got)
			}
			return
		}
		if strings.Contains(prefix, "/") || uri == "" {
			return
		}
		gp, gu, ok := ResolveURI(PublicURI(prefix, uri))
		if !ok || gp != prefix || gu != uri {
			t.Fatalf("ResolveURI(PublicURI(%q, %q)) = %q, %q, %v", prefix, uri, gp, gu, ok)
		}
	})
}
