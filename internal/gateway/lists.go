package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mandate-mcp/mandate/internal/catalog"
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
// member exactly as the upstream sent it.
func (g *Gateway) publicItem(u *upState, ns *catalog.Namespace, lk listKind, raw json.RawMessage) (json.RawMessage, bool) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, false
	}
	orig := o.str(lk.key)
	if orig == "" {
		return nil, false
	}
	var pub string
	if lk.key == "name" {
		pub = ns.Public(catalog.Ref{Upstream: u.id, Name: orig})
	} else {
		pub = catalog.PublicURI(u.spec.Prefix, orig)
	}
	if pub == orig {
		return raw, true
	}
	o.set(lk.key, pub)
	return o.encode(), true
}

// handleList answers one of the list methods with the merged, namespaced,
// deterministically ordered list (configuration order, then upstream order),
// paginated with Mandate's own cursors. A tools list starts with Mandate's
// own mandate__whoami, and every tools page is recorded as shown to the
// session (see interrogate).
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
	if lk.kind == toolsKind.kind {
		items = append(items, whoamiTool)
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
			if names := itemKeys([]json.RawMessage{it}, lk.key); len(names) == 1 {
				cands = append(cands, listCandidate{u: u, item: it, name: names[0]})
			}
		}
	}
	visible, err := g.filterList(ctx, sess, lk, cands)
	if err != nil {
		g.log.Warn("list denied", "method", lk.method, "err", err)
		return nil, rpcError(codeDenied, "not allowed")
	}
	for _, c := range visible {
		pub, ok := g.publicItem(c.u, ns, lk, c.item)
		if !ok || lk.kind == toolsKind.kind && slices.Contains(itemKeys([]json.RawMessage{pub}, lk.key), whoamiName) {
			// The built-in mandate__whoami shadows an upstream
			// tool published under that name.
			continue
		}
		items = append(items, pub)
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
	res.set(lk.field, page)
	if lk.kind == toolsKind.kind {
		if !g.opts.AllowUnlisted {
			recordShown(sess, page)
		}
	}
	if end < len(items) {
		res.set("nextCursor", g.cursors.encode(lk.kind, end))
	}
	if len(unavailable) > 0 {
		res.set("_meta", map[string]any{metaUnavailable: unavailable})
	}
	return res.encode(), nil
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
