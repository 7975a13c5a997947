package policy

import (
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// Target kinds.
const (
	KindTool     = "tool"
	KindPrompt   = "prompt"
	KindResource = "resource"
	// KindServer is an upstream as a whole (or the gateway itself, when
	// Upstream is empty): the target of session-level methods.
	KindServer = "server"
)

// Request is one authorization question, with every input explicit: the
// gateway fills it from the verified principal, the decoded params and the
// pinned definition, never from what the client says about itself.
type Request struct {
	// Principal is who is asking. A nil principal is denied.
	Principal *identity.Principal
	// Method is the MCP method, e.g. "tools/call".
	Method string
	// Target is the item or server the method acts on.
	Target Target
	// Args are the call's decoded arguments (tools/call) or the
	// prompt/completion arguments; nil means none.
	Args map[string]any
	// Annotations come from the pinned definition, never from the call.
	Annotations Annotations
	// Mandate is the consent grant that covers the call, if any.
	Mandate MandateRef
	// Intent is the purpose the agent declared for the call, if any.
	Intent string
	// Time is when the request is decided; the zero time is the Unix
	// epoch to policies, so callers should always set it.
	Time time.Time
	// SessionTainted reports that the session has read untrusted content.
	SessionTainted bool
}

// Target names what a method acts on.
type Target struct {
	// Kind is KindTool, KindPrompt, KindResource or KindServer.
	Kind string
	// Upstream is the gateway-assigned id of the upstream server.
	Upstream string
	// Name is the item's name within its upstream (a resource's URI);
	// empty for KindServer.
	Name string
}

// Annotations are a tool's behaviour hints and the catalog's risk class,
// taken from the pinned definition.
type Annotations struct {
	ReadOnly    bool
	Destructive bool
	Idempotent  bool
	OpenWorld   bool
	// Risk is the catalog's risk class (e.g. "low", "high"); empty if
	// unclassified.
	Risk string
}

// MandateRef is what a decision needs to know about the mandate.
type MandateRef struct {
	// ID is the mandate's id; empty when no mandate applies.
	ID string
	// Covered reports whether the mandate covers this exact call.
	Covered bool
}

// Effect is the outcome of a decision.
type Effect int

// Effects. The zero value is Deny, so a forgotten assignment fails closed.
const (
	Deny Effect = iota
	Allow
	NeedsApproval
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "allow"
	case NeedsApproval:
		return "needs-approval"
	default:
		return "deny"
	}
}

// Decision is the answer to a Request, with what an audit record needs.
type Decision struct {
	Effect Effect
	// Reasons are the ids of the policies that determined the effect: the
	// satisfied forbids of a Deny, the satisfied permits of an Allow or
	// NeedsApproval, the erring policies of a fail-closed Deny. Empty for a
	// default deny and for pass-through methods.
	Reasons []string
	// Errors are the evaluation or mapping errors; any error denies.
	Errors []string
	// Version is the policy snapshot's version.
	Version string
}

// Allowed reports whether the request may proceed without further consent.
func (d Decision) Allowed() bool { return d.Effect == Allow }
