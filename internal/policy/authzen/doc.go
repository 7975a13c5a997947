// Package authzen lets an external policy decision point (PDP) that speaks
// the OpenID AuthZEN Authorization API 1.0 take the place of the embedded
// Cedar engine: Client answers the same two questions the gateway asks of
// policy.Engine (may this call proceed, which items are listed) by POSTing
// evaluations to the PDP. Nothing is cached: a decision is the PDP's answer
// to this request, so a change of policy at the PDP applies to the next
// call.
//
// # Failing closed
//
// Anything but a well-formed answer denies: the PDP unreachable, too slow
// (Options.Timeout), a status other than 200, a body that is not JSON or
// is larger than 1 MiB, a result without a boolean decision, a batch
// answer with the wrong number of results, an X-Request-ID echoed back for
// another request, metadata naming another PDP. The cause goes into
// policy.Decision.Errors, which the gateway logs and never shows a client;
// PDP response bodies are never copied anywhere. A failed discovery is
// retried by a later decision (Options.RetryDiscovery), not at once by
// every request.
//
// # Discovery
//
// The configured URL is the PDP identifier. Its metadata is read once, on
// first use (or by Discover), from the identifier with
// /.well-known/authzen-configuration inserted after the host; its
// policy_decision_point must be the identifier itself, or the metadata is
// refused (the specification's protection against PDP mix-up).
// access_evaluation_endpoint and access_evaluations_endpoint are used as
// given, when https (or http to a loopback host). A PDP that publishes no
// metadata (404) is reached at <identifier>/access/v1/evaluation and
// <identifier>/access/v1/evaluations. A PDP without the batch endpoint (its
// metadata names none, or the default path answers 404) is asked one
// evaluation per request instead.
//
// # The mapping: a contract for PDP authors
//
// A policy.Request becomes one AuthZEN evaluation carrying the same facts
// as the Cedar question of package policy, so a Cedar policy can be ported
// to another PDP rule by rule:
//
//   - subject is the human when an agent acts for one:
//     {"type": "user", "id": <user subject>, "properties": {"issuer",
//     "email" (if known), "groups" (if any)}}; otherwise the autonomous
//     agent: {"type": "agent", "id": <agent client id>, "properties":
//     {"issuer"}}.
//   - action is {"name": <MCP method>} ("tools/call", "prompts/get",
//     "resources/read", "initialize", "tools/list", …).
//   - resource is the item: {"type": "tool" | "prompt" | "resource",
//     "id": "<upstream>/<name>", "properties": {"upstream", "name",
//     "annotations", "risk"}}, a resource's name being its URI; for
//     session-level methods (initialize, the lists as a whole,
//     logging/setLevel, subscriptions/listen, tasks/*) it is the upstream
//     as a whole, {"type": "mcp_server", "id": <upstream id>, "properties":
//     {"upstream"}}, the id "" being Mandate itself.
//   - context holds: agent (the agent's client id, also when the subject
//     is the human, so one rule can constrain both), agentTrust (the agent's
//     level in Mandate's agent registry: "untrusted", "standard" or
//     "trusted"; a level the registry did not give reads as "untrusted"),
//     delegated (whether the subject is a human), chain (the token's
//     delegation chain, current actor first: [{"sub", "client_id"}];
//     earlier actors are informational only), scopes, authMethod ("authorization_code", "client_credentials",
//     "token_exchange", …), arguments (the call's arguments as JSON; absent
//     from a listing question), annotations ({"readOnly", "destructive",
//     "idempotent", "openWorld"} from the pinned definition, never from the
//     call), risk (the catalog's risk class, "" if unclassified), mandate
//     ({"id", "covered"}: the consent grant and whether it covers this
//     call, or for a listing question the item), intent (what the agent
//     declared the call is for, its own unverified words), time (RFC 3339),
//     sessionTainted (the session has read untrusted content) and listing.
//
// # Listing questions
//
// An item is listed exactly when some call of it could be allowed, and a
// call of an item that is not listed is always denied. The listing
// question of an item is its use (tools/call for a tool, prompts/get for a
// prompt, resources/read for a resource) asked with context.listing true
// and no arguments; a PDP answers true when some arguments could be
// allowed. tools/list filtering asks the listing questions of a whole list
// in batch requests of Options.BatchSize evaluations ("execute_all"). Every
// item call (tools/call, prompts/get, resources/read, resources/subscribe,
// resources/unsubscribe, completion/complete) is one batch request of two
// evaluations, the item's listing question and then the call, with
// "deny_on_first_deny", and is allowed only when both decisions are true:
// whatever a PDP's rules, a call of an item it would not list is denied.
//
// # Answers
//
// A decision true allows; true with "dev.mandate/approval": "required" in
// its context asks a human to approve this one call first
// (policy.NeedsApproval); false denies. The strings of context.policies
// (the ids of the rules that decided) and context.reason_admin (a string,
// or an object of language tag to string) become the decision's reasons,
// which the audit record keeps; reason_user is not shown to agents. ping
// and notifications/* pass without asking the PDP; a method Mandate does
// not know, a missing principal and a target the method does not apply to
// are denied without asking it.
package authzen
