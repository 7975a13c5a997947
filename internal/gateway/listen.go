package gateway

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// listenFlags is what a stateless-era client asked to hear on its
// subscriptions/listen stream; a server must not push anything else.
type listenFlags struct {
	tools, prompts, resources bool
	id                        json.RawMessage // the listen request's id, echoed in _meta
}

// metaSubscriptionID tags notifications with the listen request they belong
// to.
const metaSubscriptionID = "io.modelcontextprotocol/subscriptionId"

// listen serves subscriptions/listen, the stateless era's replacement for
// the GET stream and resources/subscribe: the request stays open, the first
// message acknowledges what will be delivered, and list changes and resource
// updates follow on the same stream until the client goes away.
func (g *Gateway) listen(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream) *jsonrpc.Response {
	if !sess.modern || related == nil {
		return errorResponse(req.ID, codeMethodNotFound, "method not found")
	}
	p, err := decodeObject(req.Params)
	if err != nil {
		return errorResponse(req.ID, codeInvalidParams, "invalid params")
	}
	n := p.sub("notifications")
	var want struct {
		Tools     bool     `json:"toolsListChanged"`
		Prompts   bool     `json:"promptsListChanged"`
		Resources bool     `json:"resourcesListChanged"`
		URIs      []string `json:"resourceSubscriptions"`
	}
	if err := json.Unmarshal(n.encode(), &want); err != nil {
		return errorResponse(req.ID, codeInvalidParams, "invalid notifications")
	}
	id, _ := json.Marshal(req.ID.Raw())
	sess.mu.Lock()
	sess.listen = &listenFlags{tools: want.Tools, prompts: want.Prompts, resources: want.Resources, id: id}
	sess.standalone = related
	sess.mu.Unlock()

	acked := []string{}
	for _, uri := range want.URIs {
		sub := &jsonrpc.Request{ID: req.ID, Method: "resources/subscribe", Params: mustJSON(map[string]string{"uri": uri})}
		if resp := g.subscribe(ctx, sess, sub, true); resp.Error == nil {
			acked = append(acked, uri)
		}
	}
	ack := object{}
	ack.set("notifications", map[string]any{
		"toolsListChanged": want.Tools, "promptsListChanged": want.Prompts,
		"resourcesListChanged": want.Resources, "resourceSubscriptions": acked,
	})
	ack.set("_meta", map[string]json.RawMessage{metaSubscriptionID: id})
	if err := related.Send(ctx, &jsonrpc.Request{Method: "notifications/subscriptions/acknowledged", Params: ack.encode()}); err != nil {
		return nil
	}
	g.mu.Lock()
	g.sessions[sess] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.sessions, sess)
		g.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return nil // the client closed the stream: no response (T-33)
	case <-sess.Done():
		return &jsonrpc.Response{ID: req.ID, Result: mustJSON(map[string]any{"_meta": map[string]any{}})}
	}
}

// wantsListChange reports whether sess should hear about a change to the
// list kind ("tools", "prompts", "resources"). Session-era clients hear
// every change; stateless-era clients only what they listened for.
func (s *Session) wantsListChange(kind string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.modern {
		return true
	}
	if s.listen == nil {
		return false
	}
	switch kind {
	case "tools":
		return s.listen.tools
	case "prompts":
		return s.listen.prompts
	}
	return s.listen.resources
}

// tagged adds the listen request's id to a notification for a
// stateless-era session, so the client can tell which stream it belongs to.
func (s *Session) tagged(n *jsonrpc.Request) *jsonrpc.Request {
	s.mu.Lock()
	l := s.listen
	s.mu.Unlock()
	if l == nil {
		return n
	}
	p, err := decodeObject(n.Params)
	if err != nil {
		return n
	}
	meta := p.sub("_meta")
	meta[metaSubscriptionID] = l.id
	p["_meta"] = meta.encode()
	return &jsonrpc.Request{Method: n.Method, Params: p.encode()}
}
