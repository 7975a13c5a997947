package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodeVisits bounds the work done walking one document. Aliases are kept
// as pointers in a yaml.Node tree, so a walker that follows them can be made
// to do exponential work (or loop forever on an anchor that contains itself);
// the budget turns both into a problem report instead of a hang.
const maxNodeVisits = 1 << 17

var (
	durationType = reflect.TypeFor[time.Duration]()
	upstreamType = reflect.TypeFor[Upstream]()
)

// position is a 1-based line and column in the source file.
type position struct{ line, col int }

// origin records, for one Config or one Upstream, where each parsed value
// sat in the file and which values came from secrets. Validate uses it to
// point at the offending line, Redacted uses it to know what to hide, and
// Expand uses it to aim its messages. Paths are relative to the owner
// ("stdio.args[1]", "store.dsn"); "" is the owner itself. An origin is
// written while parsing and expanding and only read afterwards.
type origin struct {
	file string
	// pos holds the position of every value given explicitly (not null).
	pos map[string]position
	// secret holds the paths whose value was filled from ${env:…} or
	// ${file:…}.
	secret map[string]bool
	// bad holds the paths already reported, so that later checks do not
	// report a consequence of the same mistake a second time.
	bad map[string]bool
}

func newOrigin(file string) *origin {
	return &origin{
		file:   file,
		pos:    map[string]position{},
		secret: map[string]bool{},
		bad:    map[string]bool{},
	}
}

// has reports whether the value at rel was given explicitly in the file.
func (o *origin) has(rel string) bool {
	if o == nil {
		return false
	}
	_, ok := o.pos[rel]
	return ok
}

// at returns the position of rel, or of its nearest ancestor given in the
// file, so that a missing key is reported where its parent is.
func (o *origin) at(rel string) position {
	if o == nil {
		return position{}
	}
	for {
		if p, ok := o.pos[rel]; ok {
			return p
		}
		if rel == "" {
			return position{}
		}
		rel = parentPath(rel)
	}
}

// quiet reports whether rel or one of its ancestors was already reported.
func (o *origin) quiet(rel string) bool {
	if o == nil {
		return false
	}
	for {
		if o.bad[rel] {
			return true
		}
		if rel == "" {
			return false
		}
		rel = parentPath(rel)
	}
}

func (o *origin) isSecret(rel string) bool {
	return o != nil && o.secret[rel]
}

// parentPath strips the last ".key" or "[i]" from a path.
func parentPath(rel string) string {
	i := strings.LastIndexAny(rel, ".[")
	if i < 0 {
		return ""
	}
	return rel[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// cursor is where the decoder stands: a path inside an origin, and the full
// path shown to the operator ("upstreams[1].stdio.command").
type cursor struct {
	o    *origin
	rel  string
	full string
}

func (c cursor) key(k string) cursor {
	return cursor{o: c.o, rel: joinPath(c.rel, k), full: joinPath(c.full, k)}
}

func (c cursor) index(i int) cursor {
	s := fmt.Sprintf("[%d]", i)
	return cursor{o: c.o, rel: c.rel + s, full: c.full + s}
}

// decoder turns a yaml.Node tree into typed values, guided by the yaml
// struct tags so that the tags stay the single statement of the file's shape.
// It keeps going after a problem so that one run reports all of them.
type decoder struct {
	file     string
	problems []Problem
	// upstreams are the origins of the decoded upstream entries, in order.
	upstreams []*origin
	visits    int
	exhausted bool
}

func (d *decoder) problem(n *yaml.Node, c cursor, format string, args ...any) {
	c.o.bad[c.rel] = true
	d.problems = append(d.problems, Problem{
		File:  d.file,
		Line:  n.Line,
		Col:   n.Column,
		Field: c.full,
		Msg:   fmt.Sprintf(format, args...),
	})
}

// syntaxLine matches the "yaml: line N: msg" form of yaml.v3 parse errors.
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeFile parses data into a Config. Problems in the YAML itself (syntax,
// unknown keys, wrong types) are returned; the Config holds whatever could
// be decoded around them. fatal means the document could not be walked to
// its end, so checking the partial Config would only add noise.
func decodeFile(file string, data []byte) (cfg *Config, problems []Problem, fatal bool) {
	cfg = &Config{src: newOrigin(file)}
	d := &decoder{file: file}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil, false
		}
		return cfg, []Problem{syntaxProblem(file, err)}, true
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.problem(&extra, cursor{o: cfg.src}, "a configuration file holds one YAML document")
	case !errors.Is(err, io.EOF):
		d.problems = append(d.problems, syntaxProblem(file, err))
		fatal = true
	}

	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	d.decode(root, reflect.ValueOf(cfg).Elem(), cursor{o: cfg.src})

	for i := range cfg.Upstreams {
		o := d.upstreams[i]
		cfg.Upstreams[i].src = o
		cfg.Upstreams[i].Line = o.pos[""].line
	}
	return cfg, d.problems, fatal || d.exhausted
}

func syntaxProblem(file string, err error) Problem {
	p := Problem{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	return p
}

// decode stores n into v. A null node leaves v at its zero value, which is
// how the file says "absent".
func (d *decoder) decode(n *yaml.Node, v reflect.Value, c cursor) {
	for n.Kind == yaml.AliasNode && d.spend() {
		n = n.Alias
	}
	if !d.spend() {
		if !d.exhausted {
			d.exhausted = true
			d.problem(n, c, "document too large after expanding aliases")
		}
		return
	}
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") {
		return
	}
	c.o.pos[c.rel] = position{n.Line, n.Column}

	t := v.Type()
	switch {
	case t == durationType:
		d.duration(n, v, c)
	case t.Kind() == reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), c)
		v.Set(p)
	case t.Kind() == reflect.Struct:
		d.structure(n, v, c)
	case t.Kind() == reflect.Slice:
		d.sequence(n, v, c)
	case t.Kind() == reflect.Map:
		d.mapping(n, v, c)
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.problem(n, c, "want a string, got %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		d.integer(n, v, c)
	case t.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.problem(n, c, "want true or false")
			return
		}
		v.SetBool(b)
	default:
		// Reaching here means a field was added to a config type without
		// teaching the decoder its kind; fail loudly rather than ignore it.
		panic(fmt.Sprintf("config: cannot decode into %s", t))
	}
}

// spend takes one visit from the budget and reports whether any was left.
func (d *decoder) spend() bool {
	d.visits++
	return d.visits <= maxNodeVisits
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, c cursor) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, c, "want a mapping, got %s", kindName(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, c, "keys must be strings")
			continue
		}
		kc := c.key(k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problem(k, kc, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		idx, ok := fields[k.Value]
		if !ok {
			d.problem(k, kc, "unknown key (want one of %s)", strings.Join(names, ", "))
			continue
		}
		d.decode(val, v.Field(idx), kc)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, c cursor) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n, c, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ic := c.index(i)
		if v.Type().Elem() == upstreamType {
			// Each upstream keeps its own origin so that its positions
			// and secrets travel with it, whatever the slice it ends in.
			o := newOrigin(d.file)
			d.upstreams = append(d.upstreams, o)
			ic = cursor{o: o, full: ic.full}
			if item.Kind != yaml.MappingNode {
				o.pos[""] = position{item.Line, item.Column}
			}
		}
		d.decode(item, s.Index(i), ic)
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, c cursor) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, c, "want a mapping, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k, c, "keys must be strings")
			continue
		}
		kc := c.key(k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problem(k, kc, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, kc)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

func (d *decoder) integer(n *yaml.Node, v reflect.Value, c cursor) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.problem(n, c, "want an integer")
		return
	}
	if v.OverflowInt(i) {
		d.problem(n, c, "integer out of range")
		return
	}
	v.SetInt(i)
}

// duration accepts Go duration syntax. A bare number is refused, except 0,
// because "timeout: 30" is ambiguous and yaml.v3 would read it as 30ns.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, c cursor) {
	const want = `want a duration such as "30s" or "5m"`
	if n.Kind != yaml.ScalarNode {
		d.problem(n, c, "%s, got %s", want, kindName(n))
		return
	}
	if n.Value == "0" {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.problem(n, c, "%s", want)
		return
	}
	v.SetInt(int64(dur))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "nothing"
}
