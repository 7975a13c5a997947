package gateway

import (
	"slices"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Interrogation: Mandate remembers which tool definitions it delivered to
// each session and refuses a tools/call of any tool the session was never
// shown. An agent then acts only on definitions Mandate showed it — the ones
// the policy filtered for its principal, with the annotations the decision
// reads — and cannot probe for tools by guessing names: a hidden tool and a
// tool that does not exist get the same answer.
//
// Two requests are exempt. mandate__whoami is Mandate's own tool and is
// always allowed. A stateless-era (2026-07-28) request carries no session,
// so there is nothing to remember a list in; such a call is still decided
// by policy and mandate like any other.
//
// Clients that list before calling never notice. Clients that call without
// listing — the MCP conformance suite's client does, and so may a client
// that re-initializes after its session expired and reuses the tools it
// listed before — are refused unless Options.AllowUnlisted is set.

// msgNotShown is the stable refusal of a call of a tool never listed to the
// session. It names no tool, so it tells the caller nothing about which
// tools exist.
const msgNotShown = "call tools/list first: this tool was not shown to this session"

// recordShown remembers the public names of the tools of one tools/list
// page as delivered to sess. Every page counts: a client that stops paging
// early has been shown only what it read. An empty name shows nothing.
func recordShown(sess *Session, names []string) {
	if sess == nil || sess.modern {
		return
	}
	if slices.Contains(names, "") {
		names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "" })
	}
	sess.markShown(names)
}

// interrogate refuses a tools/call of public name unless the session was
// shown that tool. It returns nil when the call may go on to its decision.
func (g *Gateway) interrogate(sess *Session, req *jsonrpc.Request, name string) *jsonrpc.Response {
	if g.opts.AllowUnlisted || name == whoamiName || sess.modern || sess.wasShown(name) {
		return nil
	}
	g.log.Info("call denied: tool not shown to the session", "session", sess.logID(), "agent", agentOf(sess))
	return errorResponse(req.ID, codeDenied, msgNotShown)
}

// agentOf is the session principal's agent for logs; "" without one.
func agentOf(sess *Session) string {
	if sess.Principal == nil {
		return ""
	}
	return sess.Principal.Agent
}
