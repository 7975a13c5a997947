package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mandate-mcp/mandate/internal/catalog"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// listKind describes one of the four MCP list methods.
type listKind struct {
	kind   string // catalog kind, also the cursor's scope
	method string
	field  string // array member of the result
	cap    string // server capability that enables it
	key    string // member rewritten per item: "name", "uri" or "uriTemplate"
}

var (
	toolsKind     = listKind{"tools", "tools/list", "tools", "tools", "name"}
	promptsKind   = listKind{"prompts", "prompts/list", "prompts", "prompts", "name"}
	resourcesKind = listKind{"resources", "resources/list", "resources", "resources", "uri"}
	templatesKind = listKind{"resource_templates", "resources/templates/list", "resourceTemplates", "resources", "uriTemplate"}
)

// metaUnavailable lists, in a merged list result, the upstreams that could
// not be reached, so a client can tell "no tools" from "server down". The
// key uses Mandate's own _meta prefix (requirement B-03).
const metaUnavailable = "io.github.mandate-mcp/unavailable"

// maxPages bounds how many pages Mandate reads from one upstream list.
const maxPages = 1000

// fetchList reads every page of one list from s.
func fetchList(ctx context.Context, s *upstream.Session, lk listKind) ([]json.RawMessage, error) {
	if !s.Init.Has(lk.cap) {
		return nil, nil
	}
	var items []json.RawMessage
	cursor := ""
	for range maxPages {
		params := object{}
		if cursor != "" {
			params.set("cursor", cursor)
		}
		resp, err := s.Call(ctx, lk.method, params.encode(), nil)
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("%s: %w", lk.method, resp.Error)
		}
		var page struct {
			Items      []json.RawMessage `json:"-"`
			NextCursor string            `json:"nextCursor"`
		}
		res, err := decodeObject(resp.Result)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lk.method, err)
		}
		if err := json.Unmarshal(orNull(res[lk.field]), &page.Items); err != nil {
			return nil, fmt.Errorf("%s: %w", lk.method, err)
		}
		_ = json.Unmarshal(orNull(res["nextCursor"]), &page.NextCursor)
		items = append(items, page.Items...)
		if page.NextCursor == "" || page.NextCursor == cursor {
			return items, nil
		}
		cursor = page.NextCursor
	}
	return items, errors.New("too many pages")
}

func orNull(r json.RawMessage) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	return r
}

// list returns one upstream's items of a kind: from the session's dedicated
// upstream session in per-client mode, else from the shared session, cached
// until the upstream reports a change or reconnects.
func (u *upState) list(ctx context.Context, sess *Session, lk listKind) ([]json.RawMessage, error) {
	if u.spec.PerClient && sess != nil {
		ds, err := sess.dedicated(ctx, u)
		if err != nil {
			return nil, err
		}
		return fetchList(ctx, ds, lk)
	}
	s, err := u.spec.Conn.Session(ctx)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.lastInit = &s.Init
	if c := u.lists[lk.kind]; c != nil && c.sess == s {
		u.mu.Unlock()
		return c.items, nil
	}
	u.mu.Unlock()
	items, err := fetchList(ctx, s, lk)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.lists[lk.kind] = &cachedList{items: items, sess: s}
	u.mu.Unlock()
	u.g.invalidate(lk.kind)
	u.g.recordCatalog(u.id, lk.kind, items)
	return items, nil
}

// invalidateList drops the cached list of kind after an upstream change.
func (u *upState) invalidateList(kind string) {
	u.mu.Lock()
	delete(u.lists, kind)
	u.mu.Unlock()
	u.g.invalidate(kind)
}

func (g *Gateway) invalidate(kind string) {
	g.nsMu.Lock()
	delete(g.ns, kind)
	g.nsMu.Unlock()
}

func (g *Gateway) recordCatalog(id, kind string, items []json.RawMessage) {
	if g.opts.Catalog == nil {
		return
	}
	body := mustJSON(items)
	if err := g.opts.Catalog.RecordCatalog(context.Background(), id, kind, body); err != nil {
		g.log.Warn("record catalog snapshot", "upstream", id, "kind", kind, "err", err)
	}
}

// namespace returns the public-name mapping for tools or prompts, built
// from the shared lists of every reachable upstream.
func (g *Gateway) namespace(ctx context.Context, lk listKind) *catalog.Namespace {
	g.nsMu.Lock()
	ns := g.ns[lk.kind]
	g.nsMu.Unlock()
	if ns != nil {
		return ns
	}
	sources := make([]catalog.Source, 0, len(g.ups))
	for _, u := range g.ups {
		src := catalog.Source{Upstream: u.id, Prefix: u.spec.Prefix}
		if items, err := u.list(ctx, nil, lk); err == nil {
			src.Names = itemKeys(items, lk.key)
		}
		sources = append(sources, src)
	}
	ns = catalog.Build(g.opts.Separator, sources)
	g.nsMu.Lock()
	g.ns[lk.kind] = ns
	g.nsMu.Unlock()
	return ns
}

func itemKeys(items []json.RawMessage, key string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		var v map[string]json.RawMessage
		if json.Unmarshal(it, &v) != nil {
			continue
		}
		var s string
		if json.Unmarshal(orNull(v[key]), &s) == nil && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// publicItem rewrites the naming member of one item and leaves every other
// member exactly as the upstream sent it. It returns the item as listed and
// its public name; nil and "" for an item that is not a JSON object.
func (g *Gateway) publicItem(ns *catalog.Namespace, lk listKind, c listCandidate) (json.RawMessage, string) {
	var pub string
	if lk.key == "name" {
		pub = ns.Public(catalog.Ref{Upstream: c.u.id, Name: c.name})
	} else {
		pub = catalog.PublicURI(c.u.spec.Prefix, c.name)
	}
	if pub == c.name {
		return c.item, pub
	}
	o, err := decodeObject(c.item)
	if err != nil {
		return nil, ""
	}
	o.set(lk.key, pub)
	return o.encode(), pub
}

// handleList answers one of the list methods with the merged, namespaced,
// deterministically ordered list (configuration order, then upstream order),
// paginated with Mandate's own cursors. A tools list starts with Mandate's
// own mandate__whoami, and every tools page is recorded as shown to the
// session (see interrogate).
//
// Each upstream item is read once per list (itemFields): its name and
// annotations for the decision, and its public name for the
// mandate__whoami check and the record of what was shown. Only an item
// that is listed under another name is decoded again, to rename it.
func (g *Gateway) handleList(ctx context.Context, sess *Session, lk listKind, params json.RawMessage) (json.RawMessage, *jsonrpc.Error) {
	p, err := decodeObject(params)
	if err != nil {
		return nil, rpcError(codeInvalidParams, "invalid params")
	}
	offset := 0
	if c := p.str("cursor"); c != "" {
		offset, err = g.cursors.decode(lk.kind, c)
		if err != nil {
			return nil, rpcError(codeInvalidParams, "invalid cursor")
		}
	}
	var ns *catalog.Namespace
	if lk.key == "name" {
		ns = g.namespace(ctx, lk)
	}
	var items []json.RawMessage
	var names []string // the public name of each item
	if lk.kind == toolsKind.kind {
		items, names = append(items, whoamiTool), append(names, whoamiName)
	}
	var unavailable []string
	var cands []listCandidate
	for _, u := range g.ups {
		list, err := u.list(ctx, sess, lk)
		if err != nil {
			g.log.Warn("list from upstream failed", "upstream", u.id, "method", lk.method, "err", err)
			unavailable = append(unavailable, u.id)
			continue
		}
		for _, it := range list {
			if name, ann := itemFields(it, lk.key); name != "" {
				cands = append(cands, listCandidate{u: u, item: it, name: name, annotations: ann})
			}
		}
	}
	visible, err := g.filterList(ctx, sess, lk, cands)
	if err != nil {
		g.log.Warn("list denied", "method", lk.method, "err", err)
		return nil, rpcError(codeDenied, "not allowed")
	}
	for _, c := range visible {
		pub, name := g.publicItem(ns, lk, c)
		if pub == nil || lk.kind == toolsKind.kind && name == whoamiName {
			// The built-in mandate__whoami shadows an upstream
			// tool published under that name.
			continue
		}
		items, names = append(items, pub), append(names, name)
	}
	if offset > len(items) {
		return nil, rpcError(codeInvalidParams, "invalid cursor")
	}
	end := min(offset+g.opts.PageSize, len(items))
	res := object{}
	page := items[offset:end]
	if page == nil {
		page = []json.RawMessage{}
	}
	if arr, ok := encodeList(page); ok {
		res[lk.field] = arr
	} else {
		res.set(lk.field, page)
	}
	if lk.kind == toolsKind.kind && (!g.opts.AllowUnlisted || g.opts.Audit != nil) {
		// Interrogation needs what the session was shown, and so does the
		// audit record of each call (the hash of the definitions seen).
		recordShown(sess, names[offset:end])
	}
	if end < len(items) {
		res.set("nextCursor", g.cursors.encode(lk.kind, end))
	}
	if len(unavailable) > 0 {
		res.set("_meta", map[string]any{metaUnavailable: unavailable})
	}
	return res.encode(), nil
}

// itemFields returns what a list needs of one upstream item: the string
// value of its naming member key ("" when it has none, or the item is not
// a JSON object, as decodeObject and object.str read it) and its
// annotations (as annotationsOf reads them). It reads both in one pass
// over the top-level members, without decoding the rest of the item (an
// input schema is most of a tool), and falls back to decodeObject and
// annotationsOf for what that pass does not read the same way: a member
// name with an escape or a non-ASCII byte. Like encoding/json, it takes
// the last of duplicate naming members, and annotations merged from every
// member whose name matches "annotations" case-insensitively, none at all
// if any of them is malformed.
func itemFields(raw json.RawMessage, key string) (string, policy.Annotations) {
	if !json.Valid(raw) {
		return "", policy.Annotations{}
	}
	i := skipSpace(raw, 0)
	if raw[i] != '{' {
		return "", policy.Annotations{}
	}
	var name json.RawMessage
	var hints toolHints
	badHints := false
	for i = skipSpace(raw, i+1); raw[i] != '}'; i = skipSpace(raw, i+1) {
		end := stringEnd(raw, i)
		k := raw[i+1 : end-1]
		if !plainASCII(k) {
			return itemFieldsDecoded(raw, key)
		}
		i = skipSpace(raw, skipSpace(raw, end)+1)
		end = valueEnd(raw, i)
		switch v := raw[i:end]; {
		case string(k) == key:
			name = v
		case strings.EqualFold(string(k), "annotations"):
			badHints = badHints || !readHints(v, &hints)
		}
		if i = skipSpace(raw, end); raw[i] == '}' {
			break
		}
	}
	var ann policy.Annotations
	if !badHints {
		ann = hints.annotations()
	}
	if len(name) > 2 && name[0] == '"' && plainString(name[1:len(name)-1]) {
		return string(name[1 : len(name)-1]), ann
	}
	var s string
	if len(name) > 0 {
		_ = json.Unmarshal(name, &s)
	}
	return s, ann
}

// readHints reads one annotations member's value v into h as
// encoding/json decodes it into the toolHints of annotationsOf, and
// reports whether that succeeds: member names match case-insensitively,
// the last of duplicates wins, null changes nothing, and any other value
// than true, false or null for a hint, or than an object or null for v,
// is an error. A member name with an escape or a non-ASCII byte is left
// to encoding/json.
func readHints(v []byte, h *toolHints) bool {
	if string(v) == "null" {
		return true
	}
	if v[0] != '{' {
		return false
	}
	before := *h
	for i := skipSpace(v, 1); v[i] != '}'; i = skipSpace(v, i+1) {
		end := stringEnd(v, i)
		k := string(v[i+1 : end-1])
		if !plainASCII(v[i+1 : end-1]) {
			*h = before
			return json.Unmarshal(v, h) == nil
		}
		i = skipSpace(v, skipSpace(v, end)+1)
		end = valueEnd(v, i)
		var field *bool
		switch {
		case strings.EqualFold(k, "readOnlyHint"):
			field = &h.ReadOnly
		case strings.EqualFold(k, "destructiveHint"):
			field = &h.Destructive
		case strings.EqualFold(k, "idempotentHint"):
			field = &h.Idempotent
		case strings.EqualFold(k, "openWorldHint"):
			field = &h.OpenWorld
		}
		if field != nil {
			switch string(v[i:end]) {
			case "true":
				*field = true
			case "false":
				*field = false
			case "null":
			default:
				return false
			}
		}
		if i = skipSpace(v, end); v[i] == '}' {
			break
		}
	}
	return true
}

// itemFieldsDecoded is itemFields by decoding the whole item.
func itemFieldsDecoded(raw json.RawMessage, key string) (string, policy.Annotations) {
	o, err := decodeObject(raw)
	if err != nil {
		return "", policy.Annotations{}
	}
	return o.str(key), annotationsOf(raw)
}

// encodeList writes items as a JSON array exactly as object.set writes a
// []json.RawMessage (json.Marshal without HTML escaping: each item
// compacted), copying an item that is compact already, as upstreams send
// them, without scanning it again. The items must be valid JSON, as every
// listed item is (itemFields checks the upstream's); it reports false if
// compacting one fails.
func encodeList(items []json.RawMessage) (json.RawMessage, bool) {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		if compact(it) {
			buf.Write(it)
		} else if json.Compact(buf, it) != nil {
			return nil, false
		}
	}
	buf.WriteByte(']')
	return buf.Bytes(), true
}

// compact reports non-empty JSON text with no whitespace outside its
// strings, which compacting leaves as it is.
func compact(b []byte) bool {
	in := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return len(b) > 0
}

// The scanning helpers below read JSON that json.Valid accepted; each
// returns the index just past what it skips.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd skips the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd skips the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// plainASCII reports printable ASCII without escapes: text that
// encoding/json decodes to itself and folds by ASCII case alone.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}

// plainString reports string content without escapes that is valid
// UTF-8, which encoding/json decodes to itself.
func plainString(b []byte) bool {
	return bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b)
}

// cursorCodec mints opaque, tamper-evident cursors (requirement U-05): a
// cursor is bound to its list kind and MACed with a per-process key.
type cursorCodec struct{ key []byte }

func (c *cursorCodec) mac(s string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

func (c *cursorCodec) encode(kind string, offset int) string {
	body := kind + ":" + strconv.Itoa(offset)
	return base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + c.mac(body)
}

func (c *cursorCodec) decode(kind, cursor string) (int, error) {
	b64, mac, ok := strings.Cut(cursor, ".")
	if !ok {
		return 0, errors.New("malformed cursor")
	}
	body, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || !hmac.Equal([]byte(mac), []byte(c.mac(string(body)))) {
		return 0, errors.New("forged cursor")
	}
	k, off, ok := strings.Cut(string(body), ":")
	if !ok || k != kind {
		return 0, errors.New("cursor of another list")
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 {
		return 0, errors.New("malformed cursor")
	}
	return n, nil
}
