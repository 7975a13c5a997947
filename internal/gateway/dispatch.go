package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/catalog"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Protocol versions Mandate speaks with clients, newest first. The
// session-based era is negotiated in initialize; 2026-07-28 is the stateless
// era (server/discover and per-request metadata).
var (
	legacyVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}
	modernVersions = []string{"2026-07-28"}
)

// SupportedVersion reports whether v is a protocol version Mandate speaks.
func SupportedVersion(v string) bool {
	return slices.Contains(legacyVersions, v) || slices.Contains(modernVersions, v)
}

// IsModern reports whether v belongs to the stateless era.
func IsModern(v string) bool { return v >= modernVersions[0] }

// Handle processes one message from the client of sess. It returns the
// response to a request, or nil for notifications, responses and requests the
// client cancelled. related is where messages about this request go (nil
// means the standalone stream).
func (g *Gateway) Handle(ctx context.Context, sess *Session, msg jsonrpc.Message, related Stream) *jsonrpc.Response {
	sess.touch()
	switch m := msg.(type) {
	case *jsonrpc.Response:
		sess.deliverResponse(m)
		return nil
	case *jsonrpc.Request:
		if !m.IsCall() {
			g.clientNotification(ctx, sess, m)
			return nil
		}
		ctx, cancel := context.WithCancel(ctx)
		key := idKey(m.ID)
		sess.mu.Lock()
		if _, dup := sess.inflight[key]; dup {
			sess.mu.Unlock()
			cancel()
			return errorResponse(m.ID, codeInvalidRequest, "request id already in use")
		}
		sess.inflight[key] = cancel
		sess.mu.Unlock()
		defer func() {
			sess.mu.Lock()
			delete(sess.inflight, key)
			sess.mu.Unlock()
			cancel()
		}()
		resp := g.dispatch(ctx, sess, m, related)
		if ctx.Err() != nil && resp != nil && resp.Error != nil {
			// The client cancelled: it expects no response (requirement U-01).
			return nil
		}
		if sess.modern && resp != nil && resp.Result != nil {
			resp.Result = modernResult(m.Method, resp.Result)
		}
		return resp
	}
	return nil
}

// sessionMethods are decided as a whole (target: the gateway); item methods
// are decided per item, with their arguments, where they are handled.
var sessionMethods = map[string]bool{
	"initialize": true, "server/discover": true, "tools/list": true, "prompts/list": true,
	"resources/list": true, "resources/templates/list": true, "logging/setLevel": true,
	"subscriptions/listen": true,
}

// dispatch routes one request and completes its audit trail before the
// response leaves: decisions are recorded where they are made (route and
// the handlers it calls), outcomes and the decisions of lists here.
func (g *Gateway) dispatch(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream) *jsonrpc.Response {
	t := g.newTrail(ctx, sess, req)
	return g.finish(ctx, req, t, g.route(ctx, sess, req, related, t))
}

func (g *Gateway) route(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, t *trail) *jsonrpc.Response {
	if sessionMethods[req.Method] {
		if resp := g.authorizeSession(ctx, sess, req, t); resp != nil {
			return resp
		}
	}
	switch req.Method {
	case "initialize":
		return g.initialize(ctx, sess, req)
	case "ping":
		return resultResponse(req.ID, struct{}{})
	case "server/discover":
		return g.discover(ctx, sess, req)
	}
	sess.mu.Lock()
	ready := sess.version != ""
	sess.mu.Unlock()
	if !ready {
		return errorResponse(req.ID, codeInvalidRequest, "session not initialized")
	}
	switch req.Method {
	case "tools/list":
		return g.listResponse(ctx, sess, req, toolsKind)
	case "prompts/list":
		return g.listResponse(ctx, sess, req, promptsKind)
	case "resources/list":
		return g.listResponse(ctx, sess, req, resourcesKind)
	case "resources/templates/list":
		return g.listResponse(ctx, sess, req, templatesKind)
	case "tools/call":
		return g.callNamed(ctx, sess, req, related, toolsKind, t)
	case "prompts/get":
		return g.callNamed(ctx, sess, req, related, promptsKind, t)
	case "resources/read":
		return g.callURI(ctx, sess, req, related, t)
	case "resources/subscribe":
		return g.subscribeItem(ctx, sess, req, true, t)
	case "resources/unsubscribe":
		return g.subscribeItem(ctx, sess, req, false, t)
	case "completion/complete":
		return g.complete(ctx, sess, req, related, t)
	case "logging/setLevel":
		return g.setLevel(ctx, sess, req)
	case "subscriptions/listen":
		return g.listen(ctx, sess, req, related)
	}
	return errorResponse(req.ID, codeMethodNotFound, "method not found")
}

func (g *Gateway) listResponse(ctx context.Context, sess *Session, req *jsonrpc.Request, lk listKind) *jsonrpc.Response {
	res, err := g.handleList(ctx, sess, lk, req.Params)
	if err != nil {
		return &jsonrpc.Response{ID: req.ID, Error: err}
	}
	if sess.modern {
		res = withCacheHints(res)
	}
	return &jsonrpc.Response{ID: req.ID, Result: res}
}

// modernResult completes a result for a stateless-era (2026-07-28) client.
// Upstream legs are negotiated by Mandate in an older version, so their
// results lack what the new era requires of every server: a resultType
// ("complete" unless Mandate itself answered input_required) and, on
// resources/read, cache hints — private, since what Mandate returns is
// decided per principal (U-08). Members already present are kept as sent,
// and the rest of the result is copied byte for byte.
func modernResult(method string, res json.RawMessage) json.RawMessage {
	body := bytes.TrimSpace(res)
	if len(body) < 2 || body[0] != '{' {
		return res
	}
	o, err := decodeObject(body)
	if err != nil {
		return res
	}
	add := make([]string, 0, 3)
	if _, ok := o["resultType"]; !ok {
		add = append(add, `"resultType":"complete"`)
	}
	if method == "resources/read" {
		if _, ok := o["ttlMs"]; !ok {
			add = append(add, `"ttlMs":0`)
		}
		if _, ok := o["cacheScope"]; !ok {
			add = append(add, `"cacheScope":"private"`)
		}
	}
	if len(add) == 0 {
		return res
	}
	rest := bytes.TrimSpace(body[1:]) // after '{': members, then '}'
	out := make([]byte, 0, len(body)+64)
	out = append(out, '{')
	out = append(out, strings.Join(add, ",")...)
	if len(rest) > 1 {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// withCacheHints marks a list as private to this caller: Mandate may filter
// lists per principal, so shared caches must not reuse them (U-08).
func withCacheHints(res json.RawMessage) json.RawMessage {
	o, err := decodeObject(res)
	if err != nil {
		return res
	}
	o.set("ttlMs", 0)
	o.set("cacheScope", "private")
	return o.encode()
}

// initialize negotiates the client leg. Upstream sessions are negotiated
// separately by Mandate; the capabilities offered here are the honest union
// of what reachable upstreams offer.
func (g *Gateway) initialize(ctx context.Context, sess *Session, req *jsonrpc.Request) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil {
		return errorResponse(req.ID, codeInvalidParams, "invalid initialize params")
	}
	want := p.str("protocolVersion")
	version := legacyVersions[0]
	if slices.Contains(legacyVersions, want) {
		version = want
	}
	sess.mu.Lock()
	if sess.version != "" {
		sess.mu.Unlock()
		return errorResponse(req.ID, codeInvalidRequest, "session already initialized")
	}
	sess.version = version
	sess.caps = p.sub("capabilities")
	sess.mu.Unlock()

	caps, instructions := g.mergedCapabilities(ctx)
	res := object{}
	res.set("protocolVersion", version)
	res.set("capabilities", caps)
	res.set("serverInfo", map[string]string{"name": g.opts.Name, "version": g.opts.Version})
	if instructions != "" {
		res.set("instructions", instructions)
	}
	return &jsonrpc.Response{ID: req.ID, Result: res.encode()}
}

// discover answers the stateless era's server/discover (requirement L-05).
func (g *Gateway) discover(ctx context.Context, sess *Session, req *jsonrpc.Request) *jsonrpc.Response {
	caps, instructions := g.mergedCapabilities(ctx)
	res := object{}
	res.set("supportedVersions", append(slices.Clone(modernVersions), legacyVersions...))
	res.set("capabilities", caps)
	if instructions != "" {
		res.set("instructions", instructions)
	}
	res.set("ttlMs", 0)
	res.set("cacheScope", "private")
	res.set("_meta", map[string]any{"io.modelcontextprotocol/serverInfo": map[string]string{"name": g.opts.Name, "version": g.opts.Version}})
	return &jsonrpc.Response{ID: req.ID, Result: res.encode()}
}

// ModernVersion returns the stateless-era protocol version a request
// declares in its _meta, or "" for a session-era request.
func ModernVersion(params json.RawMessage) string {
	p, err := decodeObject(params)
	if err != nil {
		return ""
	}
	v := p.sub("_meta").str("io.modelcontextprotocol/protocolVersion")
	if v == "" || !IsModern(v) {
		return ""
	}
	return v
}

// BeginModern prepares sess (a per-request session) for one stateless-era
// request from its _meta; it returns a JSON-RPC error for missing metadata
// (requirement B-04).
func (g *Gateway) BeginModern(sess *Session, params json.RawMessage, version string) *jsonrpc.Error {
	p, err := decodeObject(params)
	if err != nil {
		return rpcError(codeInvalidParams, "invalid params")
	}
	meta := p.sub("_meta")
	if _, ok := meta["io.modelcontextprotocol/clientCapabilities"]; !ok {
		return rpcError(codeInvalidParams, "missing _meta io.modelcontextprotocol/clientCapabilities")
	}
	if v := meta.str("io.modelcontextprotocol/protocolVersion"); v != version {
		return &jsonrpc.Error{Code: -32020, Message: "HeaderMismatch: MCP-Protocol-Version does not match _meta protocolVersion"}
	}
	sess.mu.Lock()
	sess.version = version
	sess.modern = true
	sess.caps = meta.sub("io.modelcontextprotocol/clientCapabilities")
	sess.mu.Unlock()
	return nil
}

func (g *Gateway) mergedCapabilities(ctx context.Context) (map[string]any, string) {
	ctx, cancel := context.WithTimeout(ctx, g.opts.StartupWait)
	defer cancel()
	caps := map[string]any{}
	var instr []string
	subscribe := false
	for _, u := range g.ups {
		info := u.initInfo(ctx)
		if info == nil {
			continue
		}
		for _, k := range []string{"tools", "prompts"} {
			if info.Has(k) {
				caps[k] = map[string]bool{"listChanged": true}
			}
		}
		if info.Has("resources") {
			var r struct {
				Subscribe bool `json:"subscribe"`
			}
			_ = json.Unmarshal(info.Capabilities["resources"], &r)
			subscribe = subscribe || r.Subscribe
			caps["resources"] = map[string]bool{"listChanged": true, "subscribe": subscribe}
		}
		for _, k := range []string{"completions", "logging"} {
			if info.Has(k) {
				caps[k] = struct{}{}
			}
		}
		if info.Instructions != "" {
			instr = append(instr, u.id, info.Instructions)
		}
	}
	switch len(instr) {
	case 0:
		return caps, ""
	case 2:
		return caps, instr[1]
	}
	var b strings.Builder
	for i := 0; i < len(instr); i += 2 {
		fmt.Fprintf(&b, "## %s\n%s\n\n", instr[i], instr[i+1])
	}
	return caps, strings.TrimSpace(b.String())
}

// initInfo is the upstream's initialize result: current if connected, else
// the last one seen.
func (u *upState) initInfo(ctx context.Context) *upstream.InitInfo {
	if s, err := u.spec.Conn.Session(ctx); err == nil {
		u.mu.Lock()
		u.lastInit = &s.Init
		u.mu.Unlock()
		return &s.Init
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastInit
}

// upstreamSession picks the session a request of sess goes to on u.
func (g *Gateway) upstreamSession(ctx context.Context, sess *Session, u *upState) (*upstream.Session, error) {
	if u.spec.PerClient && !sess.modern {
		return sess.dedicated(ctx, u)
	}
	return u.spec.Conn.Session(ctx)
}

// forward sends one request to u and maps its response back to the client's
// id. The upstream's result, including an isError tool result, is passed on
// unchanged.
//
// params is the decoded request params; dirty says whether the caller changed
// them. Unchanged params are forwarded as the bytes the client sent. t, if
// set, learns how the upstream leg failed, for the call's outcome record.
func (g *Gateway) forward(ctx context.Context, sess *Session, u *upState, req *jsonrpc.Request, params object, dirty bool, related Stream, t *trail) *jsonrpc.Response {
	ctx, cancel := context.WithTimeout(ctx, u.spec.Timeout)
	defer cancel()
	s, err := g.upstreamSession(ctx, sess, u)
	if err != nil {
		g.log.Warn("upstream unavailable", "upstream", u.id, "method", req.Method, "err", err)
		t.upstreamFailed(statusError, "upstream unavailable")
		return errorResponse(req.ID, codeInternal, fmt.Sprintf("upstream %q is unavailable", u.id))
	}
	if sess.modern && stripModernMeta(params) {
		dirty = true
	}
	if sess.modern && stripRetryFields(params) {
		dirty = true
	}
	if tok := g.mapProgressToken(sess, related, params); tok != "" {
		defer g.dropProgressToken(tok)
		dirty = true
	}
	raw := req.Params
	if dirty {
		raw = params.encode()
	}
	resp, err := s.Call(ctx, req.Method, raw, &route{sess: sess, stream: related})
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			t.upstreamFailed(statusTimeout, fmt.Sprintf("no answer within %s", u.spec.Timeout))
			return errorResponse(req.ID, codeInternal, fmt.Sprintf("upstream %q timed out", u.id))
		case errors.Is(err, context.Canceled):
			t.upstreamFailed(statusError, "cancelled by the client")
			return errorResponse(req.ID, codeInternal, "request cancelled")
		default:
			t.upstreamFailed(statusError, "upstream failed while handling the request")
			g.log.Warn("upstream call failed", "upstream", u.id, "method", req.Method, "err", err)
			return errorResponse(req.ID, codeInternal, fmt.Sprintf("upstream %q failed while handling the request", u.id))
		}
	}
	return &jsonrpc.Response{ID: req.ID, Result: resp.Result, Error: resp.Error}
}

// modernMetaKeys are the stateless era's per-request metadata. Mandate
// negotiates the upstream leg itself, so they describe the client leg only
// and are not passed on (an upstream session would read them as a version
// mismatch).
var modernMetaKeys = []string{
	"io.modelcontextprotocol/protocolVersion",
	"io.modelcontextprotocol/clientCapabilities",
	"io.modelcontextprotocol/clientInfo",
	"io.modelcontextprotocol/logLevel",
}

// stripModernMeta removes modernMetaKeys from params and reports whether it
// changed anything.
func stripModernMeta(params object) bool {
	raw, ok := params["_meta"]
	if !ok {
		return false
	}
	meta, err := decodeObject(raw)
	if err != nil {
		return false
	}
	n := len(meta)
	for _, k := range modernMetaKeys {
		delete(meta, k)
	}
	switch {
	case len(meta) == n:
		return false
	case len(meta) == 0:
		delete(params, "_meta")
	default:
		params["_meta"] = meta.encode()
	}
	return true
}

func (g *Gateway) callNamed(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, lk listKind, t *trail) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil {
		return errorResponse(req.ID, codeInvalidParams, "invalid params")
	}
	name := p.str("name")
	if name == "" {
		return errorResponse(req.ID, codeInvalidParams, "missing name")
	}
	if lk.kind == toolsKind.kind {
		// Interrogation comes before the name is resolved, so a tool the
		// session was not shown and a tool that does not exist are refused
		// alike; the record names the tool as the agent asked for it.
		if resp := g.interrogate(sess, req, name); resp != nil {
			t.item(sess, "", name, argsOf(p, "arguments"), p.sub("_meta").str(metaIntent))
			return g.recordDecision(ctx, req, t, resp)
		}
		if name == whoamiName {
			t.item(sess, "", whoamiName, nil, p.sub("_meta").str(metaIntent))
			return g.whoami(ctx, sess, req, t)
		}
	}
	ref, ok := g.namespace(ctx, lk).Resolve(name)
	u := g.upstream(ref.Upstream)
	if !ok || u == nil {
		return errorResponse(req.ID, codeInvalidParams, fmt.Sprintf("unknown %s: %s", strings.TrimSuffix(lk.kind, "s"), name))
	}
	var def json.RawMessage
	if lk.kind == toolsKind.kind {
		def = u.itemDefinition(ctx, lk, ref.Name)
	}
	if resp := g.authorizeItem(ctx, sess, req, related, itemKind[lk.kind], u, ref.Name, p, def, t); resp != nil {
		return resp
	}
	dirty := ref.Name != name
	if dirty {
		p.set("name", ref.Name)
	}
	return g.forward(ctx, sess, u, req, p, dirty, related, t)
}

// resolveURI finds the upstream of a public resource URI.
func (g *Gateway) resolveURI(ctx context.Context, sess *Session, public string) (*upState, string, bool) {
	if prefix, uri, ok := catalog.ResolveURI(public); ok {
		for _, u := range g.ups {
			if u.spec.Prefix == prefix {
				return u, uri, true
			}
		}
	}
	var bare []*upState
	for _, u := range g.ups {
		if u.spec.Prefix == "" {
			bare = append(bare, u)
		}
	}
	switch len(bare) {
	case 0:
		return nil, "", false
	case 1:
		return bare[0], public, true
	}
	for _, u := range bare {
		if items, err := u.list(ctx, nil, resourcesKind); err == nil && slices.Contains(itemKeys(items, "uri"), public) {
			return u, public, true
		}
	}
	for _, u := range bare {
		if items, err := u.list(ctx, nil, templatesKind); err == nil {
			for _, t := range itemKeys(items, "uriTemplate") {
				head, _, _ := strings.Cut(t, "{")
				if head != "" && strings.HasPrefix(public, head) {
					return u, public, true
				}
			}
		}
	}
	return bare[0], public, true
}

func (g *Gateway) callURI(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, t *trail) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil || p.str("uri") == "" {
		return errorResponse(req.ID, codeInvalidParams, "missing uri")
	}
	u, uri, ok := g.resolveURI(ctx, sess, p.str("uri"))
	if !ok {
		return errorResponse(req.ID, codeInvalidParams, "unknown resource")
	}
	if resp := g.authorizeItem(ctx, sess, req, related, policy.KindResource, u, uri, p, nil, t); resp != nil {
		return resp
	}
	dirty := uri != p.str("uri")
	if dirty {
		p.set("uri", uri)
	}
	resp := g.forward(ctx, sess, u, req, p, dirty, related, t)
	if resp.Error == nil && u.spec.Prefix != "" {
		resp.Result = publicContentsURIs(u.spec.Prefix, resp.Result)
	}
	return resp
}

// publicContentsURIs maps the uri of each item of a resources/read result
// back to its public form, so a client sees the URI it asked for.
func publicContentsURIs(prefix string, res json.RawMessage) json.RawMessage {
	o, err := decodeObject(res)
	if err != nil {
		return res
	}
	var contents []object
	if json.Unmarshal(orNull(o["contents"]), &contents) != nil {
		return res
	}
	for _, c := range contents {
		if uri := c.str("uri"); uri != "" {
			c.set("uri", catalog.PublicURI(prefix, uri))
		}
	}
	o.set("contents", contents)
	return o.encode()
}

// subscribe decides and carries out one resources/subscribe or
// resources/unsubscribe as a request of its own, recorded as such:
// subscriptions/listen subscribes through it, once per URI.
func (g *Gateway) subscribe(ctx context.Context, sess *Session, req *jsonrpc.Request, on bool) *jsonrpc.Response {
	t := g.newTrail(ctx, sess, req)
	return g.finish(ctx, req, t, g.subscribeItem(ctx, sess, req, on, t))
}

func (g *Gateway) subscribeItem(ctx context.Context, sess *Session, req *jsonrpc.Request, on bool, t *trail) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil || p.str("uri") == "" {
		return errorResponse(req.ID, codeInvalidParams, "missing uri")
	}
	public := p.str("uri")
	u, uri, ok := g.resolveURI(ctx, sess, public)
	if !ok {
		return errorResponse(req.ID, codeInvalidParams, "unknown resource")
	}
	if resp := g.authorizeItem(ctx, sess, req, nil, policy.KindResource, u, uri, p, nil, t); resp != nil {
		return resp
	}
	dirty := uri != public
	if dirty {
		p.set("uri", uri)
	}
	if u.spec.PerClient {
		return g.forward(ctx, sess, u, req, p, dirty, nil, t)
	}
	// A shared upstream session is subscribed once per URI, however many
	// clients subscribe; updates fan out to the subscribed sessions only.
	sess.mu.Lock()
	had := sess.subs[public]
	if on {
		sess.subs[public] = true
	} else {
		delete(sess.subs, public)
	}
	sess.mu.Unlock()
	u.mu.Lock()
	n := u.subs[uri]
	switch {
	case on && !had:
		u.subs[uri] = n + 1
	case !on && had:
		u.subs[uri] = n - 1
		if n-1 <= 0 {
			delete(u.subs, uri)
		}
	}
	first, last := on && !had && n == 0, !on && had && n == 1
	u.mu.Unlock()
	if first || last {
		resp := g.forward(ctx, sess, u, req, p, dirty, nil, t)
		if resp.Error != nil && first {
			g.dropSubscription(sess, u, public, uri)
		}
		return resp
	}
	return resultResponse(req.ID, struct{}{})
}

func (g *Gateway) dropSubscription(sess *Session, u *upState, public, uri string) {
	sess.mu.Lock()
	delete(sess.subs, public)
	sess.mu.Unlock()
	u.mu.Lock()
	if u.subs[uri]--; u.subs[uri] <= 0 {
		delete(u.subs, uri)
	}
	u.mu.Unlock()
}

// unsubscribeShared releases a closed session's subscription.
func (g *Gateway) unsubscribeShared(public string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, uri, ok := g.resolveURI(ctx, nil, public)
	if !ok || u.spec.PerClient {
		return
	}
	u.mu.Lock()
	n := u.subs[uri] - 1
	if n <= 0 {
		delete(u.subs, uri)
	} else {
		u.subs[uri] = n
	}
	u.mu.Unlock()
	if n > 0 {
		return
	}
	if s, err := u.spec.Conn.Session(ctx); err == nil {
		_, _ = s.Call(ctx, "resources/unsubscribe", mustJSON(map[string]string{"uri": uri}), nil)
	}
}

func (g *Gateway) complete(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, t *trail) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil {
		return errorResponse(req.ID, codeInvalidParams, "invalid params")
	}
	ref := p.sub("ref")
	var u *upState
	switch ref.str("type") {
	case "ref/prompt":
		r, ok := g.namespace(ctx, promptsKind).Resolve(ref.str("name"))
		if !ok {
			return errorResponse(req.ID, codeInvalidParams, "unknown prompt")
		}
		u = g.upstream(r.Upstream)
		ref.set("name", r.Name)
	case "ref/resource":
		var uri string
		var ok bool
		u, uri, ok = g.resolveURI(ctx, sess, ref.str("uri"))
		if !ok {
			return errorResponse(req.ID, codeInvalidParams, "unknown resource")
		}
		ref.set("uri", uri)
	default:
		return errorResponse(req.ID, codeInvalidParams, "invalid ref")
	}
	if u == nil {
		return errorResponse(req.ID, codeInvalidParams, "unknown reference")
	}
	kind, name := policy.KindPrompt, ref.str("name")
	if ref.str("type") == "ref/resource" {
		kind, name = policy.KindResource, ref.str("uri")
	}
	if resp := g.authorizeItem(ctx, sess, req, related, kind, u, name, p, nil, t); resp != nil {
		return resp
	}
	p.set("ref", ref)
	return g.forward(ctx, sess, u, req, p, true, related, t)
}

// setLevel records the session's log level (Mandate filters messages to it)
// and passes it on to upstreams that log.
func (g *Gateway) setLevel(ctx context.Context, sess *Session, req *jsonrpc.Request) *jsonrpc.Response {
	p, err := decodeObject(req.Params)
	if err != nil || logSeverity(p.str("level")) < 0 {
		return errorResponse(req.ID, codeInvalidParams, "invalid log level")
	}
	sess.mu.Lock()
	sess.logLevel = p.str("level")
	sess.mu.Unlock()
	for _, u := range g.ups {
		info := u.initInfo(ctx)
		if info == nil || !info.Has("logging") {
			continue
		}
		if resp := g.forward(ctx, sess, u, req, p, false, nil, nil); resp.Error != nil {
			g.log.Warn("logging/setLevel upstream", "upstream", u.id, "err", resp.Error)
		}
	}
	return resultResponse(req.ID, struct{}{})
}

var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

func logSeverity(level string) int { return slices.Index(logLevels, level) }

// clientNotification handles a notification from the client.
func (g *Gateway) clientNotification(ctx context.Context, sess *Session, n *jsonrpc.Request) {
	switch n.Method {
	case "notifications/initialized":
		sess.mu.Lock()
		sess.initialized = true
		sess.mu.Unlock()
	case "notifications/cancelled":
		p, err := decodeObject(n.Params)
		if err != nil {
			return
		}
		var id any
		if json.Unmarshal(orNull(p["requestId"]), &id) != nil {
			return
		}
		jid, err := jsonrpc.MakeID(id)
		if err != nil {
			return
		}
		sess.mu.Lock()
		cancel := sess.inflight[idKey(jid)]
		sess.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case "notifications/roots/list_changed":
		for _, u := range g.ups {
			var s *upstream.Session
			if u.spec.PerClient {
				sess.mu.Lock()
				d := sess.ded[u.id]
				sess.mu.Unlock()
				if d != nil && d.mu.TryLock() {
					s = d.s
					d.mu.Unlock()
				}
			} else {
				s, _ = u.spec.Conn.Session(ctx)
			}
			if s != nil {
				_ = s.Notify(ctx, n.Method, n.Params)
			}
		}
	}
}
