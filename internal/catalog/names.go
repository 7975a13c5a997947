// Package catalog owns what upstreams advertise: it gives every tool, prompt
// and resource a public, collision-free name and maps it back exactly.
package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// MaxNameLen is the longest public name. Major clients reject tool names
// outside ^[A-Za-z0-9_-]{1,64}$, so every public name must fit it.
const MaxNameLen = 64

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether name is acceptable to major clients.
func ValidName(name string) bool { return validName.MatchString(name) }

// Ref names one item of one upstream.
type Ref struct {
	Upstream string
	Name     string
}

// Source is one upstream's contribution to a namespace.
type Source struct {
	Upstream string
	Prefix   string
	Names    []string
}

// Namespace maps public names to upstream items and back. It is immutable
// once built, so readers need no lock.
type Namespace struct {
	sep      string
	prefixes map[string]string // upstream -> prefix
	byPublic map[string]Ref
	byRef    map[Ref]string
}

// Build assigns public names for the sources, in order. A name that is
// valid and free is kept as prefix+sep+name; a name that is invalid, too long
// or already taken gets a deterministic shortened form that ends in a hash of
// (upstream, name), so it never silently replaces another item and is the
// same on every replica and every restart.
func Build(sep string, sources []Source) *Namespace {
	ns := &Namespace{
		sep:      sep,
		prefixes: make(map[string]string, len(sources)),
		byPublic: make(map[string]Ref),
		byRef:    make(map[Ref]string),
	}
	for _, s := range sources {
		ns.prefixes[s.Upstream] = s.Prefix
		for _, n := range s.Names {
			ref := Ref{Upstream: s.Upstream, Name: n}
			if _, dup := ns.byRef[ref]; dup {
				continue
			}
			pub := Qualify(s.Prefix, sep, s.Upstream, n)
			if _, taken := ns.byPublic[pub]; taken {
				pub = shorten(s.Prefix, sep, s.Upstream, n)
			}
			if _, taken := ns.byPublic[pub]; taken {
				continue // a 32-bit hash collision on top of a name collision; the first item wins
			}
			ns.byPublic[pub] = ref
			ns.byRef[ref] = pub
		}
	}
	return ns
}

// Qualify returns the public name of name from upstream with prefix, without
// regard to collisions.
func Qualify(prefix, sep, upstream, name string) string {
	pub := name
	if prefix != "" {
		pub = prefix + sep + name
	}
	if ValidName(pub) {
		return pub
	}
	return shorten(prefix, sep, upstream, name)
}

func shorten(prefix, sep, upstream, name string) string {
	sum := sha256.Sum256([]byte(upstream + "\x00" + name))
	suffix := "_" + hex.EncodeToString(sum[:4])
	var b strings.Builder
	if prefix != "" {
		b.WriteString(prefix)
		b.WriteString(sep)
	}
	for _, r := range name {
		if r < 128 && (r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	base := b.String()
	if len(base) > MaxNameLen-len(suffix) {
		base = base[:MaxNameLen-len(suffix)]
	}
	return base + suffix
}

// Public returns the public name of ref, computing it when ref is not in the
// namespace (an item only a dedicated session has seen).
func (ns *Namespace) Public(ref Ref) string {
	if pub, ok := ns.byRef[ref]; ok {
		return pub
	}
	return Qualify(ns.prefixes[ref.Upstream], ns.sep, ref.Upstream, ref.Name)
}

// Resolve maps a public name back to its upstream item. Names in the
// namespace resolve exactly; otherwise a name of the form prefix+sep+name
// resolves to that upstream, and an unprefixed name to the only upstream
// without a prefix. When prefixes overlap ("a" and "a__b"), the longest
// match wins, so routing never depends on map iteration order.
func (ns *Namespace) Resolve(public string) (Ref, bool) {
	if ref, ok := ns.byPublic[public]; ok {
		return ref, true
	}
	var bare []string
	var best Ref
	bestLen := 0
	for up, p := range ns.prefixes {
		if p == "" {
			bare = append(bare, up)
			continue
		}
		if rest, ok := strings.CutPrefix(public, p+ns.sep); ok && rest != "" && len(p) > bestLen {
			best, bestLen = Ref{Upstream: up, Name: rest}, len(p)
		}
	}
	if bestLen > 0 {
		return best, true
	}
	if len(bare) == 1 {
		return Ref{Upstream: bare[0], Name: public}, true
	}
	return Ref{}, false
}

// URI mapping. A resource URI of an upstream with a prefix is shown as
// "mandate://<prefix>/<original URI>", which is a valid URI, keeps the
// original readable and maps back by stripping the head; URIs of an
// unprefixed upstream are shown unchanged.
const uriScheme = "mandate://"

// PublicURI maps an upstream URI (or URI template) to its public form.
func PublicURI(prefix, uri string) string {
	if prefix == "" {
		return uri
	}
	return uriScheme + prefix + "/" + uri
}

// ResolveURI maps a public URI back to (prefix, original URI). ok is false
// for a URI that carries no prefix; the caller then routes it by lookup.
func ResolveURI(public string) (prefix, uri string, ok bool) {
	rest, found := strings.CutPrefix(public, uriScheme)
	if !found {
		return "", public, false
	}
	prefix, uri, found = strings.Cut(rest, "/")
	if !found || prefix == "" || uri == "" {
		return "", public, false
	}
	return prefix, uri, true
}
