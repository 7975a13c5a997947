package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// PolicyDecider is the organisation's policy: one decision function for
// what a principal may do and, with unknown arguments, what it may see.
// The embedded Cedar engine (policy.Engine) and an AuthZEN PDP client both
// serve it; the second is why both methods take a context and why a whole
// list is asked at once (one batch evaluation per list, not one round trip
// per item).
type PolicyDecider interface {
	DecideContext(ctx context.Context, r policy.Request) policy.Decision
	// VisibleAll reports, for each request in order, whether its target is
	// listed. An error refuses the whole list (fail closed).
	VisibleAll(ctx context.Context, rs []policy.Request) ([]bool, error)
}

// MandateMatcher finds the consent a user gave an agent.
type MandateMatcher interface {
	Match(ctx context.Context, p *identity.Principal, upstream, tool string, args map[string]any) (consent.Match, error)
	Active(ctx context.Context, p *identity.Principal) ([]consent.Mandate, error)
	Consume(ctx context.Context, id string) (consent.Mandate, error)
}

// Error codes of refused requests. They lie outside the JSON-RPC and MCP
// reserved ranges (B-07), so no client mistakes them for protocol errors.
const (
	codeDenied        = -31403 // policy or mandate says no
	codeNeedsApproval = -31428 // a human must approve this exact call first
)

// itemMethod is the call that a list item stands for: an item is listed
// exactly when some call of it could be allowed.
var itemMethod = map[string]string{
	toolsKind.kind:     "tools/call",
	promptsKind.kind:   "prompts/get",
	resourcesKind.kind: "resources/read",
	templatesKind.kind: "resources/read",
}

var itemKind = map[string]string{
	toolsKind.kind:     policy.KindTool,
	promptsKind.kind:   policy.KindPrompt,
	resourcesKind.kind: policy.KindResource,
	templatesKind.kind: policy.KindResource,
}

// authorizeSession decides a session-level method (initialize, the lists as
// a whole, logging, subscriptions). Only ping passes without a decision.
// Every decision is recorded in t: an allowed one before the method takes
// effect, or, for a list, once the list is built (see finish), so its
// record can say how many items it showed.
func (g *Gateway) authorizeSession(ctx context.Context, sess *Session, req *jsonrpc.Request, t *trail) *jsonrpc.Response {
	if policy.PassThrough(req.Method) {
		return nil
	}
	if g.opts.Policy == nil || sess.Principal == nil {
		return g.recordDecision(ctx, req, t, errorResponse(req.ID, codeDenied, "not allowed"))
	}
	d := g.opts.Policy.DecideContext(ctx, policy.Request{
		Principal: sess.Principal, Method: req.Method,
		Target: policy.Target{Kind: policy.KindServer}, Time: time.Now(),
	})
	t.decision(d)
	if d.Effect != policy.Allow {
		g.log.Info("request denied", "method", req.Method, "agent", sess.Principal.Agent, "reasons", d.Reasons, "errors", d.Errors)
		return g.recordDecision(ctx, req, t, errorResponse(req.ID, codeDenied, "not allowed: "+req.Method))
	}
	if _, list := listFields[req.Method]; list {
		t.deferList()
		return nil
	}
	return g.recordDecision(ctx, req, t, nil)
}

// listCandidate is one upstream item a list may show, read once for the
// list (see itemFields): name is its naming member (name or URI) and
// annotations what annotationsOf reads from it.
type listCandidate struct {
	u           *upState
	item        json.RawMessage
	name        string
	annotations policy.Annotations
}

// filterList returns the candidates the session's principal may see, in
// order, from one question per item asked of the policy in one batch. It
// reads the principal's mandates once per list; a failure to read them or
// to decide fails the whole list (fail closed).
func (g *Gateway) filterList(ctx context.Context, sess *Session, lk listKind, cands []listCandidate) ([]listCandidate, error) {
	p := sess.Principal
	if g.opts.Policy == nil || p == nil {
		return nil, fmt.Errorf("no policy")
	}
	if len(cands) == 0 {
		return nil, nil
	}
	var active []consent.Mandate
	if g.opts.Mandates != nil && p.Delegated() {
		var err error
		if active, err = g.opts.Mandates.Active(ctx, p); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	reqs := make([]policy.Request, len(cands))
	for i, c := range cands {
		reqs[i] = policy.Request{
			Principal: p, Method: itemMethod[lk.kind],
			Target:      policy.Target{Kind: itemKind[lk.kind], Upstream: c.u.id, Name: c.name},
			Annotations: c.u.hints(c.annotations),
			Mandate:     policy.MandateRef{Covered: consent.Covers(active, c.u.id, c.name)},
			Time:        now,
		}
	}
	ok, err := g.opts.Policy.VisibleAll(ctx, reqs)
	if err != nil {
		return nil, err
	}
	if len(ok) != len(cands) {
		return nil, fmt.Errorf("policy answered %d of %d list items", len(ok), len(cands))
	}
	out := cands[:0:0]
	for i, c := range cands {
		if ok[i] {
			out = append(out, c)
		}
	}
	return out, nil
}

// metaIntent is the _meta key under which an agent may declare, in free
// text, the purpose of one item call: {"_meta": {"dev.mandate/intent":
// "summarise yesterday's tickets"}}. Mandate passes it to every item
// decision as policy.Request.Intent (context.intent in Cedar), so a policy
// can require one for chosen tools, and to the record of the call. It is
// the agent's own statement, decided on and recorded as such, never proof
// of anything (B-03: Mandate puts no verified fact under this key); the
// bytes go upstream unchanged.
const metaIntent = "dev.mandate/intent"

// authorizeItem decides one call of an item (tools/call, prompts/get,
// resources/read, resources/subscribe, completion/complete) with its
// arguments and the intent the agent declared in _meta (metaIntent) and,
// when a mandate covered it, records the use. It returns nil when the call
// may proceed.
//
// A stateless-era retry of a question Mandate asked (see mrtr.go) is
// verified first and refused if its requestState does not verify; then it
// is decided from scratch like any call, and its answer is read only where
// the same question would be asked again.
//
// The decision is recorded in t whatever it is, and an allowed call whose
// record cannot be written is refused: no record, no call. A mandate or
// approval the call used stays used then, which errs on the safe side.
func (g *Gateway) authorizeItem(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, kind string, u *upState, name string, params object, item json.RawMessage, t *trail) *jsonrpc.Response {
	// params is the request's one decoded copy (no parse differentials);
	// the arguments and the declared intent are read from it, not decoded
	// again from the bytes.
	args := argsOf(params, "arguments")
	intent := params.sub("_meta").str(metaIntent)
	t.item(sess, u.id, name, args, intent)
	return g.recordDecision(ctx, req, t, g.decideItem(ctx, sess, req, related, kind, u, name, params, item, args, intent, t))
}

// decideItem is authorizeItem's decision, noting in t what the record
// needs: the mandate, the policies and their version, the approval, and
// whether a refusal waits on someone's consent.
func (g *Gateway) decideItem(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, kind string, u *upState, name string, params object, item json.RawMessage, args map[string]any, intent string, t *trail) *jsonrpc.Response {
	p := sess.Principal
	if g.opts.Policy == nil || p == nil {
		return errorResponse(req.ID, codeDenied, "not allowed")
	}
	rt, resp := g.retryOf(sess, req, params, u.id, name, args)
	if resp != nil {
		return resp
	}
	var match consent.Match
	if g.opts.Mandates != nil && p.Delegated() {
		var err error
		if match, err = g.opts.Mandates.Match(ctx, p, u.id, name, args); err != nil {
			g.log.Warn("mandate lookup failed; denying", "err", err)
			return errorResponse(req.ID, codeDenied, "not allowed: the mandate could not be checked")
		}
	}
	t.mandate(match.Mandate.ID)
	d := g.opts.Policy.DecideContext(ctx, policy.Request{
		Principal: p, Method: req.Method,
		Target:      policy.Target{Kind: kind, Upstream: u.id, Name: name},
		Args:        args,
		Annotations: u.hints(annotationsOf(item)),
		Mandate:     policy.MandateRef{ID: match.Mandate.ID, Covered: match.Covered()},
		Intent:      intent,
		Time:        time.Now(),
	})
	t.decision(d)
	switch d.Effect {
	case policy.Allow:
	case policy.NeedsApproval:
		if resp := g.approve(ctx, sess, req, related, kind, u, name, args, d.Version, rt, t); resp != nil {
			// A question asked (an input_required result) or a request
			// left pending waits on a human; anything else is a denial.
			if resp.Error == nil || errorCode(resp) == codeNeedsApproval {
				t.refusedAs(decisionNeedsApproval)
			}
			return resp
		}
	default:
		g.log.Info("call denied", "method", req.Method, "upstream", u.id, "name", name, "agent", p.Agent, "reasons", d.Reasons, "errors", d.Errors)
		msg := "not allowed"
		if p.Delegated() && !match.Covered() && match.Reason != nil {
			if len(d.Reasons) == 0 && len(d.Errors) == 0 {
				// No policy forbade it: a mandate would let it through.
				t.refusedAs(decisionNeedsMandate)
			}
			// Why no mandate covers the call is the agent's own business:
			// it names no other user's data.
			msg += ": " + match.Reason.String()
			if resp := g.missingMandate(sess, req, kind, u, name, args, match.Reason, d, msg, rt); resp != nil {
				return resp
			}
		}
		return errorResponse(req.ID, codeDenied, msg)
	}
	// Only a mandate with a use count is spent: an unlimited one has
	// nothing to count, so a call under it writes nothing to the store
	// (the audit record of the decision names the mandate it used).
	if match.Covered() && match.Mandate.UsesLeft != consent.Unlimited {
		if _, err := g.opts.Mandates.Consume(ctx, match.Mandate.ID); err != nil {
			return errorResponse(req.ID, codeDenied, "not allowed: the mandate is no longer usable")
		}
	}
	return nil
}

// annotationsOf reads a list item's tool annotations. Only flags the
// upstream set explicitly count: a missing destructiveHint does not make a
// tool destructive here (the specification's default), so policies decide
// on what the definition says. That believes the upstream; decisions take
// them through upState.hints, which does not for an upstream configured
// so.
func annotationsOf(item json.RawMessage) policy.Annotations {
	var v struct {
		Annotations toolHints `json:"annotations"`
	}
	if len(item) == 0 || json.Unmarshal(item, &v) != nil {
		return policy.Annotations{}
	}
	return v.Annotations.annotations()
}

// worstCaseHints are what a tool states when it states nothing, by the
// MCP specification's defaults: not read-only, destructive, not
// idempotent, open world. They stand in for the annotations of an
// upstream whose hints are not believed (UpstreamSpec.DistrustAnnotations),
// so that every rule keyed on a hint errs on the safe side: a destructive
// tool still needs approval, and nothing passes for read-only.
var worstCaseHints = policy.Annotations{Destructive: true, OpenWorld: true}

// hints returns what decisions take as the annotations of one of u's
// items, read from its definition as ann: ann itself when u's hints are
// believed, worstCaseHints otherwise, whatever the item's kind (a prompt
// or resource definition can carry an annotations member as well). Lists
// and calls both decide through it, so an item cannot be listed on hints
// that its call would not get.
func (u *upState) hints(ann policy.Annotations) policy.Annotations {
	if u.spec.DistrustAnnotations {
		return worstCaseHints
	}
	return ann
}

// toolHints are the members of a tool's annotations that decisions read.
type toolHints struct {
	ReadOnly    bool `json:"readOnlyHint"`
	Destructive bool `json:"destructiveHint"`
	Idempotent  bool `json:"idempotentHint"`
	OpenWorld   bool `json:"openWorldHint"`
}

func (h toolHints) annotations() policy.Annotations {
	return policy.Annotations{ReadOnly: h.ReadOnly, Destructive: h.Destructive, Idempotent: h.Idempotent, OpenWorld: h.OpenWorld}
}

// Error code of URLElicitationRequiredError (2025-11-25). The stateless
// era removed it, and Mandate must never send it to such a client (B-07).
const codeURLElicitationRequired = -32042

// missingMandate is the refusal of a delegated tools/call that no mandate
// covers — none exists, or the one that did has expired, was revoked or is
// used up — when Options.ConsentURL says where the user can grant one. It
// returns nil when the plain refusal applies: no consent page, another
// item kind, a mandate whose constraints the arguments fail (a new mandate
// would not change the arguments), or a decision a policy forbid or error
// made (consent would not lift it).
//
// The link names the agent and the public tool. How the client learns it
// depends on what it declared:
//
//   - a 2026-07-28 client that declared URL-mode elicitation in the
//     request's capabilities gets an input_required result (C-10) with one
//     URL elicitation of the link and a requestState sealed for this call
//     (purpose consent, consentStateTTL);
//   - a 2025-11-25 client that declared URL-mode elicitation gets
//     URLElicitationRequiredError (C-07);
//   - any other client gets msg with data {consentUrl, reason}.
//
// Once the user grants, the retry succeeds under the same token: mandates
// are read on every call, and no new login is needed. A stateless-era
// retry is decided from scratch, so its state grants nothing; if still no
// mandate covers it, a user who declined or cancelled the consent page gets
// the plain refusal (no asking again), and any other retry — typically one
// sent as soon as the user agreed to open the page, before granting — a
// fresh input_required with a new state. Mandate does not send
// notifications/elicitation/complete, since it does not learn when the
// user is done; the agent retries.
func (g *Gateway) missingMandate(sess *Session, req *jsonrpc.Request, kind string, u *upState, name string, args map[string]any, reason consent.Reason, d policy.Decision, msg string, rt *retry) *jsonrpc.Response {
	if g.opts.ConsentURL == "" || kind != policy.KindTool || len(d.Reasons) > 0 || len(d.Errors) > 0 {
		return nil
	}
	switch reason.(type) {
	case consent.NoMandate, consent.Expired, consent.Revoked, consent.Exhausted:
	default:
		return nil
	}
	p, err := decodeObject(req.Params)
	if err != nil {
		return nil
	}
	q := url.Values{"agent": {sess.Principal.Agent}, "tool": {p.str("name")}}
	link := g.opts.ConsentURL + "?" + q.Encode()
	message := "This agent needs your consent (a mandate) to use " + p.str("name") + ". Review and grant it, then let the agent retry."
	plain := &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{
		Code: codeDenied, Message: msg, Data: mustJSON(map[string]string{"consentUrl": link, "reason": reason.String()}),
	}}
	switch {
	case sess.modernElicitation("url") && inputRequiredMethods[req.Method]:
		if rt.answers(purposeConsent, "") {
			a, ok, err := rt.answer(consentInputKey)
			switch {
			case err != nil:
				return errorResponse(req.ID, codeInvalidParams, "inputResponses: "+err.Error())
			case ok && a.Action != "accept":
				return plain
			}
		}
		hash, err := consent.ArgsHash(args)
		if err != nil {
			return plain
		}
		st := newState(purposeConsent, sess.Principal, req.Method, u.id, name, hash, d.Version, g.states.now().Add(consentStateTTL))
		resp, err := g.inputRequired(req, consentInputKey, map[string]any{"mode": "url", "message": message, "url": link}, st)
		if err != nil {
			g.log.Warn("consent question could not be sealed", "err", err)
			return plain
		}
		return resp
	case sess.urlElicitation():
		data := mustJSON(map[string]any{"elicitations": []map[string]string{{
			"mode":          "url",
			"elicitationId": "mandate-consent-" + rand.Text(),
			"url":           link,
			"message":       message,
		}}})
		return &jsonrpc.Response{ID: req.ID, Error: &jsonrpc.Error{
			Code: codeURLElicitationRequired, Message: "a mandate is required: " + reason.String(), Data: data,
		}}
	}
	return plain
}

// argsOf decodes a call's arguments once for the decision; the bytes sent
// upstream are the client's own.
func argsOf(p object, key string) map[string]any {
	var args map[string]any
	if raw, ok := p[key]; ok {
		_ = json.Unmarshal(raw, &args)
	}
	return args
}

// itemDefinition returns the shared list's definition of an item, for its
// annotations; nil when unknown. The index is built once per cached list.
func (u *upState) itemDefinition(ctx context.Context, lk listKind, name string) json.RawMessage {
	if _, err := u.list(ctx, nil, lk); err != nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.lists[lk.kind]
	if c == nil {
		return nil
	}
	if c.byName == nil {
		c.byName = make(map[string]json.RawMessage, len(c.items))
		for _, it := range c.items {
			var v map[string]json.RawMessage
			if json.Unmarshal(it, &v) != nil {
				continue
			}
			var n string
			if json.Unmarshal(orNull(v[lk.key]), &n) == nil && n != "" {
				c.byName[n] = it
			}
		}
	}
	return c.byName[name]
}
