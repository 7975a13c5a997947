package consent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Constraint limits one argument of the calls a Grant covers. Every check it
// sets must hold; a constraint that sets none is refused when granted, so a
// typo cannot silently allow everything.
//
// An argument absent from the call fails every constraint that names it. A
// list value satisfies a constraint when every element does, so "send_email
// only to *@example.com" also holds for a list of recipients; an empty list,
// or a list holding lists or objects, fails.
//
// Path values. A Prefix or Glob that starts with "/" names a filesystem
// path, and the value must then be a clean absolute path: no ".", ".." or
// empty segments and no backslash. Such values are refused rather than
// cleaned: the upstream resolves symbolic links before "..", so cleaning
// lexically could approve "/srv/reports/link/../secret" that the upstream
// reads outside /srv/reports. A path Prefix also ends at a segment boundary:
// "/srv/reports" covers "/srv/reports/q1.pdf" but not "/srv/reports-old".
// Percent-encoded or URL forms of a path are not decoded, so a constraint on
// a file URI must be written as a Prefix on the URI.
type Constraint struct {
	// Arg is a dotted path into the call's arguments: "to", or "options.path"
	// for the key path of the object under options. Keys containing a dot
	// cannot be named.
	Arg string `json:"arg"`
	// OneOf lists the allowed values; nil or empty sets no check. Values are
	// strings, numbers, booleans or null, and compare by JSON value: the
	// number 1 equals 1.0 but not the string "1".
	OneOf []any `json:"one_of,omitempty"`
	// Prefix and Suffix require a string starting or ending with them.
	Prefix string `json:"prefix,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	// Glob requires a string matching it with path.Match syntax: '*' is
	// any run of characters other than '/', '?' one such character, and
	// [...] a class.
	Glob string `json:"glob,omitempty"`
	// Pattern requires a string matching this RE2 expression in full: it is
	// anchored at both ends.
	Pattern string `json:"pattern,omitempty"`
	// Min and Max require a number within these inclusive bounds.
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// compiledConstraint is a Constraint ready to evaluate.
type compiledConstraint struct {
	Constraint
	keys    []string
	pattern *regexp.Regexp
	oneOf   []any // normalised: numbers as float64
}

func compileConstraint(c Constraint) (compiledConstraint, error) {
	cc := compiledConstraint{Constraint: c}
	if c.Arg == "" {
		return cc, errors.New("constraint names no argument")
	}
	cc.keys = strings.Split(c.Arg, ".")
	if invalidText(c.Arg) || containsEmpty(cc.keys) {
		return cc, fmt.Errorf("constraint argument %q is not a dotted path", c.Arg)
	}
	if len(c.OneOf) == 0 && c.Prefix == "" && c.Suffix == "" && c.Glob == "" && c.Pattern == "" &&
		c.Min == nil && c.Max == nil {
		return cc, fmt.Errorf("constraint on %q checks nothing", c.Arg)
	}
	for _, s := range []string{c.Prefix, c.Suffix, c.Glob, c.Pattern} {
		if invalidText(s) {
			return cc, fmt.Errorf("constraint on %q holds invalid text", c.Arg)
		}
	}
	for _, v := range c.OneOf {
		n, err := scalar(v)
		if err != nil {
			return cc, fmt.Errorf("constraint on %q: allowed value: %w", c.Arg, err)
		}
		cc.oneOf = append(cc.oneOf, n)
	}
	if c.Glob != "" {
		if _, err := path.Match(c.Glob, ""); err != nil {
			return cc, fmt.Errorf("constraint on %q: glob %q: %w", c.Arg, c.Glob, err)
		}
	}
	if c.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + c.Pattern + `)$`)
		if err != nil {
			return cc, fmt.Errorf("constraint on %q: pattern: %w", c.Arg, err)
		}
		cc.pattern = re
	}
	for _, b := range []*float64{c.Min, c.Max} {
		if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
			return cc, fmt.Errorf("constraint on %q: bound is not a finite number", c.Arg)
		}
	}
	if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
		return cc, fmt.Errorf("constraint on %q: minimum above maximum", c.Arg)
	}
	return cc, nil
}

// check returns why args fail the constraint, or "" when they satisfy it.
// The reason describes the constraint, never the value, so it can be shown
// to the agent and logged without repeating what the agent sent.
func (c compiledConstraint) check(args map[string]any) string {
	v, ok := lookup(args, c.keys)
	if !ok {
		return "is missing"
	}
	if l, ok := v.([]any); ok {
		if len(l) == 0 {
			return "is an empty list"
		}
		for _, e := range l {
			if why := c.checkValue(e); why != "" {
				return "has an element that " + why
			}
		}
		return ""
	}
	return c.checkValue(v)
}

func (c compiledConstraint) checkValue(v any) string {
	if _, err := scalar(v); err != nil {
		return "is not a string, number, boolean or null"
	}
	if len(c.oneOf) > 0 && !c.isOneOf(v) {
		return "is not one of the allowed values"
	}
	if c.Prefix != "" || c.Suffix != "" || c.Glob != "" || c.Pattern != "" {
		s, ok := v.(string)
		if !ok {
			return "is not a string"
		}
		if why := c.checkString(s); why != "" {
			return why
		}
	}
	if c.Min != nil || c.Max != nil {
		n, ok := number(v)
		if !ok {
			return "is not a number"
		}
		if c.Min != nil && n < *c.Min {
			return "is below the minimum " + strconv.FormatFloat(*c.Min, 'g', -1, 64)
		}
		if c.Max != nil && n > *c.Max {
			return "is above the maximum " + strconv.FormatFloat(*c.Max, 'g', -1, 64)
		}
	}
	return ""
}

func (c compiledConstraint) checkString(s string) string {
	if (isPath(c.Prefix) || isPath(c.Glob)) && !cleanAbsPath(s) {
		return `is not a clean absolute path (".", ".." or empty segments, or a backslash)`
	}
	if c.Prefix != "" && !hasPrefix(s, c.Prefix) {
		return fmt.Sprintf("does not start with %q", c.Prefix)
	}
	if c.Suffix != "" && !strings.HasSuffix(s, c.Suffix) {
		return fmt.Sprintf("does not end with %q", c.Suffix)
	}
	if c.Glob != "" {
		if ok, _ := path.Match(c.Glob, s); !ok {
			return fmt.Sprintf("does not match %q", c.Glob)
		}
	}
	if c.pattern != nil && !c.pattern.MatchString(s) {
		return fmt.Sprintf("does not match the pattern %q", c.Pattern)
	}
	return ""
}

func (c compiledConstraint) isOneOf(v any) bool {
	for _, allowed := range c.oneOf {
		if sameValue(allowed, v) {
			return true
		}
	}
	return false
}

// hasPrefix applies a path prefix at a segment boundary and any other
// prefix bytewise.
func hasPrefix(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	if !isPath(prefix) || strings.HasSuffix(prefix, "/") {
		return true
	}
	return len(s) == len(prefix) || s[len(prefix)] == '/'
}

func isPath(pattern string) bool { return strings.HasPrefix(pattern, "/") }

// cleanAbsPath reports whether s is an absolute path that path.Clean leaves
// unchanged, a single trailing slash aside, and holds no backslash, which
// some upstreams read as a separator.
func cleanAbsPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.ContainsRune(s, '\\') {
		return false
	}
	return s == "/" || path.Clean(s) == strings.TrimSuffix(s, "/")
}

// lookup follows keys through nested JSON objects.
func lookup(args map[string]any, keys []string) (any, bool) {
	var cur any = args
	for _, k := range keys {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalar returns v as a JSON scalar, numbers as float64, or an error for
// anything else.
func scalar(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool:
		return v, nil
	}
	if n, ok := number(v); ok {
		return n, nil
	}
	return nil, fmt.Errorf("%T is not a string, finite number, boolean or null", v)
}

// number converts the numeric types JSON decoding and Go callers produce.
func number(v any) (float64, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int8:
		f = float64(n)
	case int16:
		f = float64(n)
	case int32:
		f = float64(n)
	case int64:
		f = float64(n)
	case uint:
		f = float64(n)
	case uint8:
		f = float64(n)
	case uint16:
		f = float64(n)
	case uint32:
		f = float64(n)
	case uint64:
		f = float64(n)
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(n), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// sameValue compares two JSON scalars by value; numbers compare numerically
// and never equal strings.
func sameValue(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string:
		s, ok := b.(string)
		return ok && a == s
	case bool:
		t, ok := b.(bool)
		return ok && a == t
	}
	return false
}

func containsEmpty(l []string) bool {
	for _, s := range l {
		if s == "" {
			return true
		}
	}
	return false
}
