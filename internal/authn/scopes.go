package authn

import "strings"

// The scopes Mandate's resource server defines. They are coarse on
// purpose — one per MCP feature — because what an agent may do with a
// feature is decided by policy and mandates, not by the token.
const (
	ScopeTools     = "mcp:tools"
	ScopePrompts   = "mcp:prompts"
	ScopeResources = "mcp:resources"
)

// offlineAccess is never challenged or advertised by a resource server
// (MCP 2026-07-28: refresh tokens are between client and authorization
// server).
const offlineAccess = "offline_access"

// BaselineScopes returns the scopes challenged on 401 and listed in
// scopes_supported: enough to use every MCP feature Mandate exposes, each
// still subject to policy.
func BaselineScopes() []string {
	return []string{ScopeTools, ScopePrompts, ScopeResources}
}

// RequiredScopes returns the scopes a JSON-RPC method needs. Lifecycle and
// transport methods (initialize, ping, notifications, server/discover,
// logging/setLevel, subscriptions/listen) need none. completion/complete
// needs the scope of what it completes, which only its params say: the
// caller adds CompletionScopes(ref.type). Methods Mandate does not know
// need no scope here because the gateway refuses them outright.
func RequiredScopes(method string) []string {
	family, _, _ := strings.Cut(method, "/")
	switch family {
	case "tools", "tasks":
		// Tasks are created by task-augmented tools/call.
		return []string{ScopeTools}
	case "prompts":
		return []string{ScopePrompts}
	case "resources":
		return []string{ScopeResources}
	}
	return nil
}

// CompletionScopes returns the scopes completion/complete needs for a
// reference type ("ref/prompt" or "ref/resource"). An unknown type needs
// both, so that it cannot complete either without them.
func CompletionScopes(refType string) []string {
	switch refType {
	case "ref/prompt":
		return []string{ScopePrompts}
	case "ref/resource":
		return []string{ScopeResources}
	}
	return []string{ScopePrompts, ScopeResources}
}
