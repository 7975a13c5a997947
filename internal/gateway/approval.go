package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// ApprovalGate obtains a human's approval of one exact call: principal,
// upstream, item, canonical argument hash (consent.ArgsHash) and policy
// version. consent.Approvals implements it.
type ApprovalGate interface {
	// Request returns a pending approval request for the call.
	Request(ctx context.Context, p *identity.Principal, upstream, tool string, args map[string]any, policyVersion string) (store.Approval, error)
	// Find returns the approved, unused, unexpired approval of the call.
	Find(ctx context.Context, p *identity.Principal, upstream, tool, argsHash, policyVersion string) (store.Approval, bool, error)
	// Use consumes an approval; only one call can use it.
	Use(ctx context.Context, id string) (store.Approval, error)
	// Decide records a human's decision on a pending request.
	Decide(ctx context.Context, id string, approve bool, by string) (store.Approval, error)
	// Get returns a request with its effective status (a request past its
	// expiry is expired).
	Get(ctx context.Context, id string) (store.Approval, error)
}

// Interface guards.
var _ ApprovalGate = (*consent.Approvals)(nil)

// approve settles a call the policy decided NeedsApproval. It returns nil
// when the call may proceed, having consumed the one approval that covers
// it, and the refusal otherwise. In order:
//
//  1. an approval a human already gave for exactly this call is used (an
//     agent retrying after an out-of-band approval, with or without the
//     requestState of an earlier question);
//  2. the answer a stateless-era retry (rt) carries to Mandate's approval
//     question under this policy version decides, as in band;
//  3. a delegated client that can be asked is asked: a stateless-era
//     client that declared form elicitation gets an input_required result
//     (tools/call, resources/read and prompts/get only, C-10), a
//     session-based one an in-band elicitation whose answer decides at once;
//  4. otherwise a pending request is left for an approver (CLI, approvals
//     page, webhook) and the call is held for up to Options.ApprovalWait:
//     approved in that time it proceeds, denied or expired it is refused;
//     still pending, it is refused with codeNeedsApproval and the
//     request's id, so the agent can retry once it is approved.
//
// Only a delegated client is asked, since the approval is recorded as its
// user's. Every store error denies: an approval that cannot be checked,
// requested or used is no approval.
//
// t records the approval request the call was held for, asked about or
// used.
func (g *Gateway) approve(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, kind string, u *upState, name string, args map[string]any, policyVersion string, rt *retry, t *trail) *jsonrpc.Response {
	gate, p := g.opts.Approvals, sess.Principal
	if gate == nil {
		return errorResponse(req.ID, codeNeedsApproval, "this call needs a human's approval, which is not available yet")
	}
	hash, err := consent.ArgsHash(args)
	if err != nil {
		g.log.Info("call denied: arguments cannot be bound to an approval", "upstream", u.id, "name", name, "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: these arguments cannot be approved")
	}
	found, ok, err := gate.Find(ctx, p, u.id, name, hash, policyVersion)
	if err != nil {
		g.log.Warn("approval lookup failed; denying", "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: the approval could not be checked")
	}
	if ok {
		t.approval(found.ID)
		return g.useApproval(ctx, req, gate, found.ID)
	}
	// An answer given under another policy version is about an approval
	// that can no longer cover this call, and no answer at all is no
	// decline: either way the question is asked anew below.
	if rt.answers(purposeApproval, policyVersion) && p.Delegated() {
		a, ok, err := rt.answer(approvalInputKey)
		switch {
		case err != nil:
			return errorResponse(req.ID, codeInvalidParams, "inputResponses: "+err.Error())
		case ok:
			t.approval(rt.state.Approval)
			return g.settleAnswer(ctx, req, gate, rt.state.Approval, p, a)
		}
	}
	rec, err := gate.Request(ctx, p, u.id, name, args, policyVersion)
	if err != nil {
		g.log.Warn("approval request failed; denying", "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: an approval could not be requested")
	}
	g.log.Info("approval requested", "approval", rec.ID, "upstream", u.id, "name", name, "agent", p.Agent)
	t.approval(rec.ID)
	switch {
	case !p.Delegated():
	case sess.modernElicitation("form") && inputRequiredMethods[req.Method]:
		return g.askApproval(sess, req, rec, g.displayName(kind, u, name))
	case sess.formElicitation():
		return g.elicitApproval(ctx, sess, req, related, gate, rec, g.displayName(kind, u, name))
	}
	if resp, settled := g.awaitApproval(ctx, req, gate, rec); settled {
		return resp
	}
	return pendingApproval(req.ID, rec)
}

// approvalPoll is how often a held call reads its request's status. The
// store is the only channel between approvers and the replica holding the
// call (an approver may use another replica, or the CLI), so it is read;
// a few reads a second per held call is nothing next to a human's pace.
const approvalPoll = 200 * time.Millisecond

// awaitApproval holds a call while rec is decided out of band, for up to
// Options.ApprovalWait and never past rec's expiry. settled is false when
// the wait ended with rec still pending; otherwise resp is the outcome (nil:
// approved and used, the call proceeds).
func (g *Gateway) awaitApproval(ctx context.Context, req *jsonrpc.Request, gate ApprovalGate, rec store.Approval) (resp *jsonrpc.Response, settled bool) {
	wait := g.opts.ApprovalWait
	if wait <= 0 {
		return nil, false
	}
	deadline := time.Now().Add(wait)
	expires := !rec.ExpiresAt.After(deadline)
	if expires {
		deadline = rec.ExpiresAt
	}
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return errorResponse(req.ID, codeDenied, "not allowed: the call ended before it was approved"), true
		case <-end.C:
			if !expires {
				return nil, false
			}
			// The request expired while the call waited: a timeout is a
			// denial, and one last read tells an approval that made it in
			// time from one that did not.
		case <-tick.C:
		}
		cur, err := gate.Get(ctx, rec.ID)
		if err != nil {
			g.log.Warn("approval status unreadable; denying", "approval", rec.ID, "err", err)
			return errorResponse(req.ID, codeDenied, "not allowed: the approval could not be checked"), true
		}
		switch cur.Status {
		case store.ApprovalApproved:
			return g.useApproval(ctx, req, gate, rec.ID), true
		case store.ApprovalDenied:
			g.log.Info("call denied: approval denied", "approval", rec.ID, "by", cur.DecidedBy)
			return errorResponse(req.ID, codeDenied, "not allowed: the approval was denied"), true
		case store.ApprovalPending:
			if time.Now().Before(deadline) {
				continue
			}
			if !expires {
				return nil, false
			}
			fallthrough // pending at its expiry is expired
		default: // expired, or used by another call
			g.log.Info("call denied: approval not given in time", "approval", rec.ID, "status", cur.Status)
			return errorResponse(req.ID, codeDenied, "not allowed: the approval request expired before anyone approved it"), true
		}
	}
}

func (g *Gateway) useApproval(ctx context.Context, req *jsonrpc.Request, gate ApprovalGate, id string) *jsonrpc.Response {
	if _, err := gate.Use(ctx, id); err != nil {
		g.log.Info("call denied: approval not usable", "approval", id, "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: the approval is no longer usable")
	}
	g.log.Info("approval used", "approval", id)
	return nil
}

// pendingApproval is the refusal that tells the agent which request a human
// must approve before it retries the very same call.
func pendingApproval(id jsonrpc.ID, rec store.Approval) *jsonrpc.Response {
	msg := fmt.Sprintf("this call needs a human's approval: request %s is pending until %s; "+
		"retry the same call with the same arguments once it is approved", rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339))
	data := mustJSON(map[string]any{"approvalId": rec.ID, "expiresAt": rec.ExpiresAt.UTC()})
	return &jsonrpc.Response{ID: id, Error: &jsonrpc.Error{Code: codeNeedsApproval, Message: msg, Data: data}}
}

// approvalQuestion is the form elicitation that asks the human at the
// client to approve rec, the same in band and in an input_required result:
// who asks, the item (display) and upstream, the redacted argument preview
// the approval was requested with, and a single yes/no field.
func approvalQuestion(p *identity.Principal, display string, rec store.Approval) map[string]any {
	return map[string]any{
		"message": fmt.Sprintf("The agent %q asks to call %s (upstream %q) with these arguments:\n%s\nApprove this one call? "+
			"(request %s, open until %s)", p.Agent, display, rec.Upstream, rec.ArgsPreview, rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339)),
		"requestedSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"approve": map[string]any{
					"type": "boolean", "title": "Approve",
					"description": "Allow this one call with exactly these arguments",
				},
			},
			"required": []string{"approve"},
		},
	}
}

// askApproval answers a stateless-era call with an input_required result
// asking its human to approve rec, with a requestState bound to rec and to
// this exact call that lives as long as rec does. rec stays pending, visible
// to every approver, until the retry's answer or someone else decides it.
// If no state can be sealed, the out-of-band refusal stands in.
func (g *Gateway) askApproval(sess *Session, req *jsonrpc.Request, rec store.Approval, display string) *jsonrpc.Response {
	params := approvalQuestion(sess.Principal, display, rec)
	params["mode"] = "form"
	st := newState(purposeApproval, sess.Principal, req.Method, rec.Upstream, rec.Tool, rec.ArgsHash, rec.PolicyVersion, rec.ExpiresAt)
	st.Approval = rec.ID
	resp, err := g.inputRequired(req, approvalInputKey, params, st)
	if err != nil {
		g.log.Warn("approval question could not be sealed", "approval", rec.ID, "err", err)
		return pendingApproval(req.ID, rec)
	}
	return resp
}

// elicitApproval asks the human at the client, with a form elicitation, to
// approve rec, and waits at most until rec expires. The answer is settled
// by settleAnswer; a cancel, an error or the timeout denies and leaves the
// request to expire. A client that cannot be reached at all (no open
// stream) gets the out-of-band refusal instead, so a human can still
// approve rec elsewhere.
//
// The question travels on the stream of the call being decided (related),
// falling back to the session's standalone stream once that has ended.
func (g *Gateway) elicitApproval(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, gate ApprovalGate, rec store.Approval, display string) *jsonrpc.Response {
	params := approvalQuestion(sess.Principal, display, rec)
	if sess.Version() >= "2025-11-25" {
		params["mode"] = "form"
	}
	ectx, cancel := context.WithDeadline(ctx, rec.ExpiresAt)
	defer cancel()
	resp, _, err := sess.request(ectx, related, "elicitation/create", mustJSON(params))
	switch {
	case errors.Is(err, ErrNoStream):
		return pendingApproval(req.ID, rec)
	case err != nil:
		g.log.Info("call denied: no in-band approval", "approval", rec.ID, "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved in time")
	case resp.Error != nil:
		g.log.Info("call denied: in-band approval failed", "approval", rec.ID, "err", resp.Error)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved")
	}
	var answer elicitAnswer
	if err := json.Unmarshal(resp.Result, &answer); err != nil {
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved")
	}
	return g.settleAnswer(ctx, req, gate, rec.ID, sess.Principal, answer)
}

// settleAnswer records the human's answer to the approval question about
// approval id and returns nil when the call may proceed, having used the
// approval. Only an explicit yes (action "accept" with approve true)
// approves; a decline or a no is recorded as a denial; a cancel or any
// other action denies the call and leaves the request pending for an
// approver elsewhere. The decision is recorded as the user's, made in band.
func (g *Gateway) settleAnswer(ctx context.Context, req *jsonrpc.Request, gate ApprovalGate, id string, p *identity.Principal, answer elicitAnswer) *jsonrpc.Response {
	if answer.Action != "accept" && answer.Action != "decline" {
		g.log.Info("call denied: in-band approval cancelled", "approval", id, "action", answer.Action)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved")
	}
	approved := answer.Action == "accept" && answer.Content.Approve
	if _, err := gate.Decide(ctx, id, approved, "in-band:"+p.User); err != nil && !(approved && errors.Is(err, store.ErrConflict)) {
		// A conflict on a yes means someone decided first, out of band;
		// Use below finds out whether that was an approval.
		g.log.Warn("recording in-band decision failed", "approval", id, "err", err)
		if approved {
			return errorResponse(req.ID, codeDenied, "not allowed: the approval could not be recorded")
		}
	}
	if !approved {
		g.log.Info("call denied: declined in band", "approval", id)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was declined")
	}
	return g.useApproval(ctx, req, gate, id)
}

// formElicitation reports whether the session can be asked a form
// elicitation in band: a session-based client (server-to-client requests
// need a session) that declared elicitation with form mode.
func (s *Session) formElicitation() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	form, _ := elicitationModes(s.caps)
	return form && !s.modern
}

// modernElicitation reports whether a stateless-era request declared, in
// its own capabilities, elicitation in mode ("form" or "url"): the only
// input requests its input_required results may carry (C-10).
func (s *Session) modernElicitation(mode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.modern {
		return false
	}
	form, url := elicitationModes(s.caps)
	switch mode {
	case "form":
		return form
	case "url":
		return url
	}
	return false
}

// elicitationModes reads the elicitation modes a client declared. An empty
// elicitation capability means form mode only, as the specification has it
// for clients older than URL mode.
func elicitationModes(caps object) (form, url bool) {
	if _, ok := caps["elicitation"]; !ok {
		return false, false
	}
	e := caps.sub("elicitation")
	_, form = e["form"]
	_, url = e["url"]
	return form || !url, url
}

// displayName is the name the client knows the item by.
func (g *Gateway) displayName(kind string, u *upState, name string) string {
	if kind == itemKind[toolsKind.kind] || kind == itemKind[promptsKind.kind] {
		if u.spec.Prefix != "" {
			return u.spec.Prefix + g.opts.Separator + name
		}
	}
	return name
}
