package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mandate-mcp/mandate/internal/catalog"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// route is what Mandate remembers about a forwarded request, so that what an
// upstream sends about it reaches the same client on the same stream.
type route struct {
	sess   *Session
	stream Stream
}

// progressRoute maps a progress token Mandate issued upstream back to the
// client's own token.
type progressRoute struct {
	sess   *Session
	stream Stream
	orig   json.RawMessage
}

// mapProgressToken replaces the client's progress token with one unique
// across all sessions, since a shared upstream session would otherwise see
// two clients' equal tokens (requirement U-03).
func (g *Gateway) mapProgressToken(sess *Session, related Stream, params object) string {
	meta := params.sub("_meta")
	orig, ok := meta["progressToken"]
	if !ok {
		return ""
	}
	g.mu.Lock()
	g.nextTok++
	tok := fmt.Sprintf("mandate-%d", g.nextTok)
	g.tokens[tok] = &progressRoute{sess: sess, stream: related, orig: orig}
	g.mu.Unlock()
	meta.set("progressToken", tok)
	params["_meta"] = meta.encode()
	return tok
}

func (g *Gateway) dropProgressToken(tok string) {
	g.mu.Lock()
	delete(g.tokens, tok)
	g.mu.Unlock()
}

// relay receives what one upstream session sends on its own initiative.
// owner is set for a dedicated (per-client) session: everything goes to it.
type relay struct {
	g     *Gateway
	up    *upState
	owner *Session
}

var _ upstream.Handler = (*relay)(nil)

// target finds where a server-initiated message belongs: the request it
// relates to (known exactly over Streamable HTTP), the owner of a dedicated
// session, or — over stdio, where messages carry no such link — the one
// session with calls in flight, if there is exactly one.
func (r *relay) target(s *upstream.Session, extra any) *route {
	if rel, ok := extra.(upstream.Related); ok {
		if rt, ok := s.RouteOf(rel.ID); ok {
			if rt, ok := rt.(*route); ok {
				return rt
			}
		}
	}
	if r.owner != nil {
		return &route{sess: r.owner}
	}
	var only *route
	for _, x := range s.InFlightRoutes() {
		rt, ok := x.(*route)
		if !ok {
			continue
		}
		if only != nil && only.sess != rt.sess {
			return nil
		}
		if only == nil {
			only = rt
		}
	}
	return only
}

func (r *relay) Notify(s *upstream.Session, n *jsonrpc.Request) {
	g := r.g
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := decodeObject(n.Params)
	if err != nil {
		return
	}
	switch n.Method {
	case "notifications/progress":
		tok := p.str("progressToken")
		g.mu.Lock()
		pr := g.tokens[tok]
		g.mu.Unlock()
		if pr == nil {
			return // a token Mandate did not issue, or one already finished
		}
		p["progressToken"] = pr.orig
		_ = pr.sess.send(ctx, pr.stream, &jsonrpc.Request{Method: n.Method, Params: p.encode()})
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		if r.owner != nil {
			_ = r.owner.send(ctx, nil, n)
			return
		}
		kind := "resources"
		switch n.Method {
		case "notifications/tools/list_changed":
			kind = "tools"
			r.up.invalidateList(toolsKind.kind)
		case "notifications/prompts/list_changed":
			kind = "prompts"
			r.up.invalidateList(promptsKind.kind)
		default:
			r.up.invalidateList(resourcesKind.kind)
			r.up.invalidateList(templatesKind.kind)
		}
		for _, sess := range g.liveSessions() {
			if sess.wantsListChange(kind) {
				_ = sess.send(ctx, nil, sess.tagged(n))
			}
		}
	case "notifications/resources/updated":
		public := catalog.PublicURI(r.up.spec.Prefix, p.str("uri"))
		if public != p.str("uri") {
			p.set("uri", public)
		}
		msg := &jsonrpc.Request{Method: n.Method, Params: p.encode()}
		if r.owner != nil {
			_ = r.owner.send(ctx, nil, msg)
			return
		}
		for _, sess := range g.liveSessions() {
			sess.mu.Lock()
			subscribed := sess.subs[public]
			sess.mu.Unlock()
			if subscribed {
				_ = sess.send(ctx, nil, sess.tagged(msg))
			}
		}
	case "notifications/message":
		if rt := r.target(s, n.Extra); rt != nil {
			if rt.sess.wantsLog(p.str("level")) {
				_ = rt.sess.send(ctx, rt.stream, n)
			}
			return
		}
		// Unrelated server logs go only to sessions that asked for logs.
		for _, sess := range g.liveSessions() {
			sess.mu.Lock()
			asked := sess.logLevel != ""
			sess.mu.Unlock()
			if asked && sess.wantsLog(p.str("level")) {
				_ = sess.send(ctx, nil, n)
			}
		}
	default:
		if rt := r.target(s, n.Extra); rt != nil {
			_ = rt.sess.send(ctx, rt.stream, n)
		}
	}
}

func (s *Session) wantsLog(level string) bool {
	s.mu.Lock()
	min := s.logLevel
	s.mu.Unlock()
	if min == "" {
		return true
	}
	return logSeverity(level) >= logSeverity(min)
}

func (g *Gateway) liveSessions() []*Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Session, 0, len(g.sessions))
	for s := range g.sessions {
		out = append(out, s)
	}
	return out
}

// requiredCapability is the client capability a server-to-client request
// needs; Mandate never sends a client a request it did not declare (L-02).
var requiredCapability = map[string]string{
	"sampling/createMessage": "sampling",
	"elicitation/create":     "elicitation",
	"roots/list":             "roots",
}

func (r *relay) Request(s *upstream.Session, req *jsonrpc.Request) {
	reply := func(resp *jsonrpc.Response) {
		resp.ID = req.ID
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Reply(ctx, resp); err != nil {
			r.g.log.Warn("reply to upstream", "upstream", r.up.id, "err", err)
		}
	}
	if req.Method == "ping" {
		reply(resultResponse(req.ID, struct{}{}))
		return
	}
	capName, known := requiredCapability[req.Method]
	if !known {
		reply(errorResponse(req.ID, codeMethodNotFound, "method not found"))
		return
	}
	rt := r.target(s, req.Extra)
	if rt == nil {
		reply(errorResponse(req.ID, codeInternal, "no client session to route the request to"))
		return
	}
	if !rt.sess.hasCap(capName) || rt.sess.modern {
		reply(errorResponse(req.ID, codeMethodNotFound, fmt.Sprintf("client does not support %s", req.Method)))
		return
	}
	if req.Method == "elicitation/create" {
		p, _ := decodeObject(req.Params)
		rt.sess.mu.Lock()
		elic := rt.sess.caps.sub("elicitation")
		rt.sess.mu.Unlock()
		if mode := p.str("mode"); mode == "url" {
			if _, ok := elic["url"]; !ok {
				reply(errorResponse(req.ID, codeInvalidParams, "client does not support URL-mode elicitation"))
				return
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.up.spec.Timeout)
	defer cancel()
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, _, err := rt.sess.request(ctx, rt.stream, req.Method, req.Params)
	if err != nil {
		reply(errorResponse(req.ID, codeInternal, "client did not answer"))
		return
	}
	reply(&jsonrpc.Response{Result: resp.Result, Error: resp.Error})
}
