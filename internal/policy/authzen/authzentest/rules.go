package authzentest

import "slices"

// ApprovalKey is the member of a decision's context by which Mandate's
// AuthZEN contract asks for a human's approval of one call; its value is
// ApprovalRequired.
const (
	ApprovalKey      = "dev.mandate/approval"
	ApprovalRequired = "required"
)

// sessionActions are the methods the default policy's "session" permit
// names.
var sessionActions = []string{
	"initialize", "server/discover", "logging/setLevel", "subscriptions/listen",
	"tools/list", "prompts/list", "resources/list", "resources/templates/list",
	"tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
}

// itemActions are the methods the "delegated-with-mandate" permit names.
var itemActions = []string{
	"tools/call", "prompts/get", "resources/read", "resources/subscribe",
	"resources/unsubscribe", "completion/complete",
}

// MandateRules decides what Mandate's default Cedar policy
// (examples/policies/default.cedar) decides, over Mandate's AuthZEN
// mapping, so the same scenarios can run against either decision point:
//
//   - "session": any principal may open a session and ask for lists;
//   - "delegated-with-mandate": a human's agent may use an item when the
//     human's mandate covers the call (for a listing question, the item);
//   - "destructive-needs-approval": a tools/call of a tool annotated
//     destructive needs a human's approval even then;
//   - autonomous agents get nothing the policy does not name, and the
//     default names none.
//
// Allowing decisions carry the ids of the permits that matched in
// context.policies, as Cedar's reasons do; denials carry none, as a
// default deny has none.
func MandateRules(e Evaluation) (bool, map[string]any) {
	var matched []string
	if slices.Contains(sessionActions, e.Action.Name) {
		matched = append(matched, "session")
	}
	delegatedCovered := e.Subject.Type == "user" &&
		flag(e.Context, "delegated") && flag(e.Context, "mandate", "covered")
	if delegatedCovered && slices.Contains(itemActions, e.Action.Name) {
		matched = append(matched, "delegated-with-mandate")
	}
	approval := delegatedCovered && e.Action.Name == "tools/call" && flag(e.Context, "annotations", "destructive")
	if approval {
		matched = append(matched, "destructive-needs-approval")
	}
	if len(matched) == 0 {
		return false, nil
	}
	ctx := map[string]any{"policies": matched}
	if approval {
		ctx[ApprovalKey] = ApprovalRequired
	}
	return true, ctx
}

// flag reads a boolean at path in a JSON object; anything else is false.
func flag(m map[string]any, path ...string) bool {
	var v any = m
	for _, k := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return false
		}
		v = o[k]
	}
	b, _ := v.(bool)
	return b
}
