package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// whoamiName is the public name of Mandate's built-in tool. It is never
// prefixed: it belongs to the gateway, not to an upstream, and an upstream
// tool that would be published under the same name is left out of lists.
const whoamiName = "mandate__whoami"

// whoamiTool is the definition Mandate lists first in every tools/list.
var whoamiTool = mustJSON(map[string]any{
	"name":  whoamiName,
	"title": "Who am I (Mandate)",
	"description": "Tells you which identity you are acting under through the Mandate gateway: " +
		"your agent (client) id, the user you act for, the delegation chain, your scopes and " +
		"the mandates the user granted you (what they cover, until when, how many uses are left). " +
		"Call it to understand why a call was refused or what you may do. It takes no arguments and changes nothing.",
	"inputSchema": map[string]any{"type": "object", "properties": map[string]any{}},
	"annotations": map[string]bool{
		"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false,
	},
})

// versioned is the optional capability of a PolicyDecider that names the
// policy it decides with; whoami reports it when present.
type versioned interface{ Version() string }

// snapshotted is the same capability reached through the serving snapshot,
// as policy.Engine offers it.
type snapshotted interface{ Snapshot() *policy.Snapshot }

// policyVersion returns the version of the policy g decides with, or "".
func (g *Gateway) policyVersion() string {
	switch p := g.opts.Policy.(type) {
	case versioned:
		return p.Version()
	case snapshotted:
		return p.Snapshot().Version()
	}
	return ""
}

// whoamiResult is what mandate__whoami tells the agent. It is built from
// the verified principal only and never carries a credential: no token,
// no token id.
type whoamiResult struct {
	Agent      string           `json:"agent"`
	User       *string          `json:"user"`
	Chain      []identity.Actor `json:"chain"`
	Scopes     []string         `json:"scopes"`
	AuthMethod identity.Method  `json:"authMethod"`
	// Trust is the agent's trust level in Mandate's registry, which
	// policies may read; an agent refused for it can learn why here.
	Trust         string          `json:"trustLevel"`
	Mandates      []whoamiMandate `json:"mandates"`
	PolicyVersion string          `json:"policyVersion,omitempty"`
}

type whoamiMandate struct {
	ID        string          `json:"id"`
	Purpose   string          `json:"purpose,omitempty"`
	Tools     []consent.Grant `json:"tools"`
	ExpiresAt time.Time       `json:"expiresAt"`
	// UsesLeft is null for a mandate without a use count.
	UsesLeft *int `json:"usesLeft"`
}

// whoami answers a call of mandate__whoami. It is allowed without a policy
// decision or a mandate: it only tells the principal about itself, so
// refusing it would only hide from an agent why it is refused elsewhere.
// Two things still refuse it, as they refuse everything: a gateway without
// a policy (it must not fall open, not even for this) and a session without
// a principal. The call is recorded like any other (t): what an agent
// learned about itself is part of what it did.
func (g *Gateway) whoami(ctx context.Context, sess *Session, req *jsonrpc.Request, t *trail) *jsonrpc.Response {
	p := sess.Principal
	if g.opts.Policy == nil || p == nil {
		return g.recordDecision(ctx, req, t, errorResponse(req.ID, codeDenied, "not allowed"))
	}
	t.decision(policy.Decision{Version: g.policyVersion()})
	if resp := g.recordDecision(ctx, req, t, nil); resp != nil {
		return resp
	}
	res := whoamiResult{
		Agent:         p.Agent,
		Chain:         p.Chain,
		Scopes:        p.Scopes,
		AuthMethod:    p.Method,
		Trust:         p.Trust(),
		Mandates:      []whoamiMandate{},
		PolicyVersion: g.policyVersion(),
	}
	if p.Delegated() {
		res.User = &p.User
	}
	if res.Chain == nil {
		res.Chain = []identity.Actor{}
	}
	if res.Scopes == nil {
		res.Scopes = []string{}
	}
	if g.opts.Mandates != nil && p.Delegated() {
		active, err := g.opts.Mandates.Active(ctx, p)
		if err != nil {
			g.log.Warn("whoami: mandate lookup failed", "agent", p.Agent, "err", err)
			return resultResponse(req.ID, map[string]any{
				"content": []map[string]string{{"type": "text", "text": "Your mandates could not be read; try again later."}},
				"isError": true,
			})
		}
		for _, m := range active {
			wm := whoamiMandate{ID: m.ID, Purpose: m.Purpose, Tools: m.Grants, ExpiresAt: m.ExpiresAt.UTC()}
			if m.UsesLeft != consent.Unlimited {
				wm.UsesLeft = &m.UsesLeft
			}
			if wm.Tools == nil {
				wm.Tools = []consent.Grant{}
			}
			res.Mandates = append(res.Mandates, wm)
		}
	}
	text, _ := json.MarshalIndent(res, "", "  ")
	return resultResponse(req.ID, map[string]any{
		"content":           []map[string]string{{"type": "text", "text": string(text)}},
		"structuredContent": res,
	})
}
