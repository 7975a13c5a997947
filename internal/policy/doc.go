// Package policy answers Mandate's authorization question with Cedar
// (cedar-go): one pure decision function for every MCP message, fed only by
// explicit inputs, evaluated against an immutable, validated snapshot of the
// policy files that is swapped atomically on reload. It does no I/O during a
// decision and exports none of cedar-go's types.
//
// # Mapping
//
// A Request becomes one Cedar question (principal, action, resource,
// context):
//
//   - principal is User::"<user>" (attributes email and groups, a member of
//     Group::"<g>" for each group) when an agent acts for a human, and
//     Agent::"<agent>" for an autonomous (client-credentials) agent. The
//     agent is always in context.agent as well, so one policy can constrain
//     the human and the agent acting for them ("effective permission is an
//     intersection") without caring which one the principal is; context.delegated
//     says which case applies.
//   - action is Action::"<MCP method>" ("tools/call", "prompts/get",
//     "resources/read", "tools/list", …). A method the schema does not name is
//     denied without evaluation; only "ping" and "notifications/*" pass
//     without a decision.
//   - resource is Tool::"<upstream>/<name>" (and Prompt, Resource likewise),
//     each a child of Upstream::"<upstream>"; session-level methods
//     (initialize, the list methods as a whole, logging/setLevel, tasks/*)
//     are asked of Upstream::"<upstream>", Upstream::"" being the gateway.
//   - context carries args (an Arguments entity whose tags are the call's
//     arguments: strings as given, other JSON values as compact JSON text),
//     annotations and risk from the pinned definition, mandate, intent, time,
//     scopes, authMethod, delegated and sessionTainted. The shipped schema
//     (mandate.cedarschema) gives every type.
//
// # Effects
//
// Cedar's own rules decide Allow or Deny: nothing permitted is denied, any
// satisfied forbid wins. Mandate adds a third effect: when any permit policy
// that determined an Allow is annotated @approval("required"), the decision
// is NeedsApproval, so a narrower approval policy cannot be bypassed by a
// broader plain permit that also matches. Any evaluation error denies (fail
// closed), even when Cedar alone would have skipped the erroring policy.
//
// # Listing
//
// The same function answers tools/list: an item is listed for a principal
// exactly when some use of it (tools/call, prompts/get, resources/read)
// could be allowed. Visible evaluates that use with context.args unknown
// (cedar-go's partial evaluation): a permit whose conditions still depend on
// the arguments counts as possibly satisfied, and a forbid hides the item
// only when it holds whatever the arguments are. Visibility therefore
// over-approximates the allowed calls, which is the property that matters:
// a call of an item that is not listed is always denied
// (TestPropertyListMatchesCall checks it over generated policies).
package policy
