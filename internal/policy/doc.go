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
//     says which case applies. The agent's one attribute, trust, is its level
//     in the agent registry ("untrusted", "standard" or "trusted"; see
//     identity.Principal.Trust): a level the registry did not give reads as
//     "untrusted", so forgetting to look it up never grants trust.
//   - action is Action::"<MCP method>" ("tools/call", "prompts/get",
//     "resources/read", "tools/list", …). A method the schema does not name is
//     denied without evaluation; only "ping" and "notifications/*" pass
//     without a decision.
//   - resource is Tool::"<upstream>/<name>" (and Prompt, Resource likewise),
//     each a child of Upstream::"<upstream>"; session-level methods
//     (initialize, the list methods as a whole, logging/setLevel, tasks/*)
//     are asked of Upstream::"<upstream>", Upstream::"" being the gateway.
//   - context carries the call's arguments three ways (below), annotations
//     and risk from the pinned definition, mandate, intent, time, scopes,
//     authMethod, delegated and sessionTainted. The shipped schema
//     (mandate.cedarschema) gives every type.
//
// # Arguments
//
// context.args is an Arguments entity whose tags are the call's top-level
// arguments: strings as given, other JSON values as compact JSON text. Text
// cannot be compared as a number, so numeric arguments are offered twice
// more, read from that same JSON text as float64 (as mandate constraints and
// the approval hash read them):
//
//   - context.numbers (Numbers, tags Long): every integer from -(2^53-1) to
//     2^53-1. Beyond that, distinct integers share one float64, and the value
//     decided on might not be the one the agent sent.
//   - context.decimals (Decimals, tags decimal): every number whose shortest
//     decimal form has at most four decimal places and fits Cedar's decimal
//     range (about ±9.2e14), integers included, so a limit such as
//     decimal("9.99") applies whether the agent sends 3 or 3.5.
//
// A number that does not fit is left out, never rounded: rounding 100.00001
// to 100.0 would pass a "≤ 100" limit the agent exceeded. A string that
// looks like a number ("150") stays a string. Write limits to fail closed,
// as a permit that needs the tag and the bound, or as a forbid of a present
// argument that is not in numbers:
//
//	when { context.numbers.hasTag("amount") && context.numbers.getTag("amount") <= 100 }
//	forbid … when { context.args.hasTag("amount") && !context.numbers.hasTag("amount") }
//
// A forbid of "amount > 100" alone lets 1e300 through, since that amount
// is not in numbers.
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
// # Evaluation
//
// A decision evaluates only the policies that can match its request,
// found by an index built when the snapshot is compiled: by principal,
// action and resource scope, and by a first condition that starts with
// context.agent == Agent::"…". Cedar never looks past a scope, or a first
// conjunct, that is false, so such a policy is neither a reason nor an
// error, and the decision is the one evaluating the whole set gives,
// reasons and errors included (TestIndexedDecisionMatchesFullEvaluation).
//
// # Listing
//
// The same function answers tools/list: an item is listed for a principal
// exactly when some use of it (tools/call, prompts/get, resources/read)
// could be allowed. Visible evaluates that use with the arguments unknown
// (context.args, numbers and decimals, by cedar-go's partial evaluation): a
// permit whose conditions still depend on them counts as possibly
// satisfied, and a forbid hides the item only when it holds whatever the
// arguments are. A policy that never reads the arguments is evaluated as
// for a call, its value being the same for every argument map; one that
// names an argument entity itself (Arguments::"call", …), which partial
// evaluation cannot leave unknown, counts as possibly satisfied whenever
// its scope matches. Visibility therefore over-approximates the allowed
// calls, which is the property that matters: a call of an item that is
// not listed is always denied (TestPropertyListMatchesCall and
// TestPropertyListMatchesCallWide check it over generated policies).
//
// Engine.VisibleAll answers a whole list at once and builds what its items
// share once: the principal's entities, each distinct context, and the
// outcome of every policy that cannot depend on the item.
package policy
