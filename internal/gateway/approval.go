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
}

// Interface guards.
var _ ApprovalGate = (*consent.Approvals)(nil)

// approve settles a call the policy decided NeedsApproval. It returns nil
// when the call may proceed, having consumed the one approval that covers
// it, and the refusal otherwise. In order:
//
//  1. an approval a human already gave for exactly this call is used (an
//     agent retrying after an out-of-band approval);
//  2. a delegated session-based client that declared form elicitation is
//     asked in band, and the human's answer decides at once;
//  3. otherwise a pending request is left for an approver (CLI, approvals
//     page, webhook) and the call refused with codeNeedsApproval and the
//     request's id, so the agent can retry once it is approved.
//
// Every store error denies: an approval that cannot be checked, requested
// or used is no approval.
func (g *Gateway) approve(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, kind string, u *upState, name string, args map[string]any, policyVersion string) *jsonrpc.Response {
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
		return g.useApproval(ctx, req, gate, found.ID)
	}
	rec, err := gate.Request(ctx, p, u.id, name, args, policyVersion)
	if err != nil {
		g.log.Warn("approval request failed; denying", "err", err)
		return errorResponse(req.ID, codeDenied, "not allowed: an approval could not be requested")
	}
	g.log.Info("approval requested", "approval", rec.ID, "upstream", u.id, "name", name, "agent", p.Agent)
	if sess.formElicitation() && p.Delegated() {
		return g.elicitApproval(ctx, sess, req, related, gate, rec, g.displayName(kind, u, name))
	}
	return pendingApproval(req.ID, rec)
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

// elicitApproval asks the human at the client, with a form elicitation, to
// approve rec, and waits at most until rec expires. Only an explicit yes
// (action "accept" with approve true) approves; a decline or a no is
// recorded as a denial; a cancel, an error or the timeout denies and leaves
// the request to expire. A client that cannot be reached at all (no open
// stream) gets the out-of-band refusal instead, so a human can still
// approve rec elsewhere.
//
// The question travels on the stream of the call being decided (related),
// falling back to the session's standalone stream once that has ended.
func (g *Gateway) elicitApproval(ctx context.Context, sess *Session, req *jsonrpc.Request, related Stream, gate ApprovalGate, rec store.Approval, display string) *jsonrpc.Response {
	p := sess.Principal
	params := map[string]any{
		"message": fmt.Sprintf("The agent %q asks to call %s with these arguments:\n%s\nApprove this one call? "+
			"(request %s, open until %s)", p.Agent, display, rec.ArgsPreview, rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339)),
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
	var answer struct {
		Action  string `json:"action"`
		Content struct {
			Approve bool `json:"approve"`
		} `json:"content"`
	}
	if err := json.Unmarshal(resp.Result, &answer); err != nil {
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved")
	}
	by := "in-band:" + p.User
	approved := answer.Action == "accept" && answer.Content.Approve
	if answer.Action != "accept" && answer.Action != "decline" {
		g.log.Info("call denied: in-band approval cancelled", "approval", rec.ID, "action", answer.Action)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was not approved")
	}
	if _, err := gate.Decide(ctx, rec.ID, approved, by); err != nil && !(approved && errors.Is(err, store.ErrConflict)) {
		// A conflict on a yes means someone decided first, out of band;
		// Use below finds out whether that was an approval.
		g.log.Warn("recording in-band decision failed", "approval", rec.ID, "err", err)
		if approved {
			return errorResponse(req.ID, codeDenied, "not allowed: the approval could not be recorded")
		}
	}
	if !approved {
		g.log.Info("call denied: declined in band", "approval", rec.ID)
		return errorResponse(req.ID, codeDenied, "not allowed: the call was declined")
	}
	return g.useApproval(ctx, req, gate, rec.ID)
}

// formElicitation reports whether the session can be asked a form
// elicitation: a session-based client (server-to-client requests need a
// session) that declared elicitation with form mode, which an empty
// elicitation capability implies.
func (s *Session) formElicitation() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.modern {
		return false
	}
	if _, ok := s.caps["elicitation"]; !ok {
		return false
	}
	e := s.caps.sub("elicitation")
	_, form := e["form"]
	_, url := e["url"]
	return form || !url
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
