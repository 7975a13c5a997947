package authzen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
)

// method says what one MCP method is asked of. The table is the same as
// package policy's (TestMethodsMatchCedar keeps them equal): a method
// Cedar does not decide is not sent to a PDP either.
type method struct {
	// kinds are the target kinds the method applies to.
	kinds []string
	// lists is the item kind a list method lists; empty otherwise.
	lists string
}

var methods = map[string]method{
	"tools/call":            {kinds: []string{policy.KindTool}},
	"prompts/get":           {kinds: []string{policy.KindPrompt}},
	"resources/read":        {kinds: []string{policy.KindResource}},
	"resources/subscribe":   {kinds: []string{policy.KindResource}},
	"resources/unsubscribe": {kinds: []string{policy.KindResource}},
	"completion/complete":   {kinds: []string{policy.KindPrompt, policy.KindResource}},

	"tools/list":               {kinds: []string{policy.KindServer}, lists: policy.KindTool},
	"prompts/list":             {kinds: []string{policy.KindServer}, lists: policy.KindPrompt},
	"resources/list":           {kinds: []string{policy.KindServer}, lists: policy.KindResource},
	"resources/templates/list": {kinds: []string{policy.KindServer}, lists: policy.KindResource},

	"initialize":           {kinds: []string{policy.KindServer}},
	"server/discover":      {kinds: []string{policy.KindServer}},
	"logging/setLevel":     {kinds: []string{policy.KindServer}},
	"subscriptions/listen": {kinds: []string{policy.KindServer}},
	"tasks/get":            {kinds: []string{policy.KindServer}},
	"tasks/list":           {kinds: []string{policy.KindServer}},
	"tasks/result":         {kinds: []string{policy.KindServer}},
	"tasks/cancel":         {kinds: []string{policy.KindServer}},
}

// useOf is the method whose possible success lists an item of a kind.
var useOf = map[string]string{
	policy.KindTool:     "tools/call",
	policy.KindPrompt:   "prompts/get",
	policy.KindResource: "resources/read",
}

// resourceTypes are the AuthZEN resource types of the target kinds.
var resourceTypes = map[string]string{
	policy.KindTool:     "tool",
	policy.KindPrompt:   "prompt",
	policy.KindResource: "resource",
	policy.KindServer:   "mcp_server",
}

var (
	errNoPrincipal = errors.New("no principal")
	errNoAgent     = errors.New("principal has no agent")
)

// entity is an AuthZEN subject or resource.
type entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// action is an AuthZEN action.
type action struct {
	Name string `json:"name"`
}

// annotations are a definition's behaviour hints, as sent.
type annotations struct {
	ReadOnly    bool `json:"readOnly"`
	Destructive bool `json:"destructive"`
	Idempotent  bool `json:"idempotent"`
	OpenWorld   bool `json:"openWorld"`
}

type mandateRef struct {
	ID      string `json:"id"`
	Covered bool   `json:"covered"`
}

// evalContext is the context of one evaluation; the field order is the
// order on the wire, which the golden files pin.
type evalContext struct {
	Agent string `json:"agent"`
	// AgentTrust is the agent's level in Mandate's agent registry; an
	// agent the registry gave no level is "untrusted".
	AgentTrust string           `json:"agentTrust"`
	Delegated  bool             `json:"delegated"`
	Chain      []identity.Actor `json:"chain"`
	Scopes     []string         `json:"scopes"`
	AuthMethod identity.Method  `json:"authMethod"`
	// Arguments is nil, and absent on the wire, for a listing question;
	// a call without arguments sends {}.
	Arguments      *map[string]any `json:"arguments,omitempty"`
	Annotations    annotations     `json:"annotations"`
	Risk           string          `json:"risk"`
	Mandate        mandateRef      `json:"mandate"`
	Intent         string          `json:"intent"`
	Time           string          `json:"time"`
	SessionTainted bool            `json:"sessionTainted"`
	Listing        bool            `json:"listing"`
}

// evaluation is one AuthZEN 4-tuple. In a batch request, members equal
// across all evaluations are sent once at the top level as defaults and
// left out of each item (nil).
type evaluation struct {
	Subject  *entity      `json:"subject,omitempty"`
	Action   *action      `json:"action,omitempty"`
	Resource *entity      `json:"resource,omitempty"`
	Context  *evalContext `json:"context,omitempty"`
}

type batchOptions struct {
	Semantic string `json:"evaluations_semantic"`
}

// batchRequest is the body of an Access Evaluations request.
type batchRequest struct {
	Subject     *entity      `json:"subject,omitempty"`
	Action      *action      `json:"action,omitempty"`
	Resource    *entity      `json:"resource,omitempty"`
	Evaluations []evaluation `json:"evaluations"`
	Options     batchOptions `json:"options"`
}

// Evaluation semantics (options.evaluations_semantic).
const (
	executeAll      = "execute_all"
	denyOnFirstDeny = "deny_on_first_deny"
)

// question maps r, asked as the method name, to one evaluation. A listing
// question leaves the arguments out and says so in context.listing.
func question(r policy.Request, name string, listing bool) (evaluation, error) {
	p := r.Principal
	if p == nil {
		return evaluation{}, errNoPrincipal
	}
	if p.Agent == "" {
		return evaluation{}, errNoAgent
	}
	typ, ok := resourceTypes[r.Target.Kind]
	if !ok {
		return evaluation{}, fmt.Errorf("unknown target kind %q", r.Target.Kind)
	}
	if !slices.Contains(methods[name].kinds, r.Target.Kind) {
		return evaluation{}, fmt.Errorf("method %s does not apply to a %s", name, r.Target.Kind)
	}

	subject := &entity{Type: "agent", ID: p.Agent, Properties: map[string]any{"issuer": p.Issuer}}
	if p.Delegated() {
		subject = &entity{Type: "user", ID: p.User, Properties: map[string]any{"issuer": p.Issuer}}
		if p.Email != "" {
			subject.Properties["email"] = p.Email
		}
		if len(p.Groups) > 0 {
			subject.Properties["groups"] = p.Groups
		}
	}

	ann := annotations{
		ReadOnly:    r.Annotations.ReadOnly,
		Destructive: r.Annotations.Destructive,
		Idempotent:  r.Annotations.Idempotent,
		OpenWorld:   r.Annotations.OpenWorld,
	}
	resource := &entity{Type: typ, ID: r.Target.Upstream, Properties: map[string]any{"upstream": r.Target.Upstream}}
	if r.Target.Kind != policy.KindServer {
		resource.ID = r.Target.Upstream + "/" + r.Target.Name
		resource.Properties["name"] = r.Target.Name
		resource.Properties["annotations"] = ann
		resource.Properties["risk"] = r.Annotations.Risk
	}

	ctx := &evalContext{
		Agent:          p.Agent,
		AgentTrust:     p.Trust(),
		Delegated:      p.Delegated(),
		Chain:          p.Chain,
		Scopes:         p.Scopes,
		AuthMethod:     p.Method,
		Annotations:    ann,
		Risk:           r.Annotations.Risk,
		Mandate:        mandateRef{ID: r.Mandate.ID, Covered: r.Mandate.Covered},
		Intent:         r.Intent,
		Time:           r.Time.UTC().Format(time.RFC3339),
		SessionTainted: r.SessionTainted,
		Listing:        listing,
	}
	if ctx.Chain == nil {
		ctx.Chain = []identity.Actor{}
	}
	if ctx.Scopes == nil {
		ctx.Scopes = []string{}
	}
	if !listing {
		args := r.Args
		if args == nil {
			args = map[string]any{}
		}
		ctx.Arguments = &args
	}
	return evaluation{Subject: subject, Action: &action{Name: name}, Resource: resource, Context: ctx}, nil
}

// listingQuestion is the question whose answer lists r.Target: its use,
// with no arguments.
func listingQuestion(r policy.Request) (evaluation, error) {
	use, ok := useOf[r.Target.Kind]
	if !ok {
		return evaluation{}, fmt.Errorf("target kind %q has no list", r.Target.Kind)
	}
	return question(r, use, true)
}

// newBatch builds a batch request of evals, sending once at the top level
// each of subject, action and resource that all evaluations share. The
// evaluations are copied; evals is not changed.
func newBatch(evals []evaluation, semantic string) (batchRequest, error) {
	b := batchRequest{Evaluations: slices.Clone(evals), Options: batchOptions{Semantic: semantic}}
	if len(evals) < 2 {
		return b, nil
	}
	hoist := func(get func(*evaluation) any, set func(*evaluation)) (bool, error) {
		first, err := json.Marshal(get(&b.Evaluations[0]))
		if err != nil {
			return false, err
		}
		for i := 1; i < len(b.Evaluations); i++ {
			other, err := json.Marshal(get(&b.Evaluations[i]))
			if err != nil {
				return false, err
			}
			if !bytes.Equal(first, other) {
				return false, nil
			}
		}
		for i := range b.Evaluations {
			set(&b.Evaluations[i])
		}
		return true, nil
	}
	subject, action, resource := b.Evaluations[0].Subject, b.Evaluations[0].Action, b.Evaluations[0].Resource
	ok, err := hoist(func(e *evaluation) any { return e.Subject }, func(e *evaluation) { e.Subject = nil })
	if err != nil {
		return b, err
	}
	if ok {
		b.Subject = subject
	}
	if ok, err = hoist(func(e *evaluation) any { return e.Action }, func(e *evaluation) { e.Action = nil }); err != nil {
		return b, err
	}
	if ok {
		b.Action = action
	}
	if ok, err = hoist(func(e *evaluation) any { return e.Resource }, func(e *evaluation) { e.Resource = nil }); err != nil {
		return b, err
	}
	if ok {
		b.Resource = resource
	}
	return b, nil
}
