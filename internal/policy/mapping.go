package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// method says what one MCP method is asked of.
type method struct {
	// kinds are the target kinds the method applies to.
	kinds []string
	// lists is the item kind a list method lists; empty otherwise.
	lists string
}

// methods names every MCP method that needs a decision. It must match the
// actions of mandate.cedarschema (TestMethodsMatchSchema); a method missing
// here is denied.
var methods = map[string]method{
	"tools/call":            {kinds: []string{KindTool}},
	"prompts/get":           {kinds: []string{KindPrompt}},
	"resources/read":        {kinds: []string{KindResource}},
	"resources/subscribe":   {kinds: []string{KindResource}},
	"resources/unsubscribe": {kinds: []string{KindResource}},
	"completion/complete":   {kinds: []string{KindPrompt, KindResource}},

	"tools/list":               {kinds: []string{KindServer}, lists: KindTool},
	"prompts/list":             {kinds: []string{KindServer}, lists: KindPrompt},
	"resources/list":           {kinds: []string{KindServer}, lists: KindResource},
	"resources/templates/list": {kinds: []string{KindServer}, lists: KindResource},

	"initialize":           {kinds: []string{KindServer}},
	"server/discover":      {kinds: []string{KindServer}},
	"logging/setLevel":     {kinds: []string{KindServer}},
	"subscriptions/listen": {kinds: []string{KindServer}},
	"tasks/get":            {kinds: []string{KindServer}},
	"tasks/list":           {kinds: []string{KindServer}},
	"tasks/result":         {kinds: []string{KindServer}},
	"tasks/cancel":         {kinds: []string{KindServer}},
}

// useOf is the method whose possible success makes an item of a kind
// visible in its list.
var useOf = map[string]string{
	KindTool:     "tools/call",
	KindPrompt:   "prompts/get",
	KindResource: "resources/read",
}

// PassThrough reports whether method is answered without a decision: only
// ping and notifications, as the MCP authorization profile requires.
func PassThrough(method string) bool {
	return method == "ping" || strings.HasPrefix(method, "notifications/")
}

// Entity types of the schema.
const (
	typeUser      types.EntityType = "User"
	typeGroup     types.EntityType = "Group"
	typeAgent     types.EntityType = "Agent"
	typeUpstream  types.EntityType = "Upstream"
	typeArguments types.EntityType = "Arguments"
	typeAction    types.EntityType = "Action"
)

var itemTypes = map[string]types.EntityType{
	KindTool:     "Tool",
	KindPrompt:   "Prompt",
	KindResource: "Resource",
	KindServer:   typeUpstream,
}

// argsUID names the Arguments entity of the one call being decided.
var argsUID = types.NewEntityUID(typeArguments, "call")

// question is one Request in Cedar's terms.
type question struct {
	principal, action, resource types.EntityUID
	context                     types.RecordMap
	entities                    types.EntityMap
}

var (
	errNoPrincipal = errors.New("no principal")
	errNoAgent     = errors.New("principal has no agent")
)

// ask maps r, asked as action, to a Cedar question. When unknownArgs is
// set, context.args is left unknown for partial evaluation.
func ask(r Request, action string, unknownArgs bool) (question, error) {
	p := r.Principal
	if p == nil {
		return question{}, errNoPrincipal
	}
	if p.Agent == "" {
		return question{}, errNoAgent
	}
	itemType, ok := itemTypes[r.Target.Kind]
	if !ok {
		return question{}, fmt.Errorf("unknown target kind %q", r.Target.Kind)
	}
	if !slices.Contains(methods[action].kinds, r.Target.Kind) {
		return question{}, fmt.Errorf("method %s does not apply to a %s", action, r.Target.Kind)
	}
	q := question{
		action:   types.NewEntityUID(typeAction, types.String(action)),
		entities: make(types.EntityMap, 8),
	}

	agent := types.NewEntityUID(typeAgent, types.String(p.Agent))
	q.entities[agent] = types.Entity{UID: agent}
	if p.Delegated() {
		q.principal = types.NewEntityUID(typeUser, types.String(p.User))
		groups := make([]types.Value, 0, len(p.Groups))
		parents := make([]types.EntityUID, 0, len(p.Groups))
		for _, g := range p.Groups {
			groups = append(groups, types.String(g))
			gid := types.NewEntityUID(typeGroup, types.String(g))
			parents = append(parents, gid)
			q.entities[gid] = types.Entity{UID: gid}
		}
		q.entities[q.principal] = types.Entity{
			UID:     q.principal,
			Parents: types.NewEntityUIDSet(parents...),
			Attributes: types.NewRecord(types.RecordMap{
				"email":  types.String(p.Email),
				"groups": types.NewSet(groups...),
			}),
		}
	} else {
		q.principal = agent
	}

	upstream := types.NewEntityUID(typeUpstream, types.String(r.Target.Upstream))
	q.entities[upstream] = types.Entity{UID: upstream}
	if r.Target.Kind == KindServer {
		q.resource = upstream
	} else {
		q.resource = types.NewEntityUID(itemType, types.String(r.Target.Upstream+"/"+r.Target.Name))
		q.entities[q.resource] = types.Entity{
			UID:     q.resource,
			Parents: types.NewEntityUIDSet(upstream),
			Attributes: types.NewRecord(types.RecordMap{
				"upstream": types.String(r.Target.Upstream),
				"name":     types.String(r.Target.Name),
			}),
		}
	}

	var args types.Value = argsUID
	if unknownArgs {
		args = unknown("args")
	} else {
		tags, err := argTags(r.Args)
		if err != nil {
			return question{}, err
		}
		q.entities[argsUID] = types.Entity{UID: argsUID, Tags: tags}
	}

	scopes := make([]types.Value, 0, len(p.Scopes))
	for _, s := range p.Scopes {
		scopes = append(scopes, types.String(s))
	}
	q.context = types.RecordMap{
		"agent":      agent,
		"delegated":  types.Boolean(p.Delegated()),
		"authMethod": types.String(p.Method),
		"scopes":     types.NewSet(scopes...),
		"args":       args,
		"annotations": types.NewRecord(types.RecordMap{
			"readOnly":    types.Boolean(r.Annotations.ReadOnly),
			"destructive": types.Boolean(r.Annotations.Destructive),
			"idempotent":  types.Boolean(r.Annotations.Idempotent),
			"openWorld":   types.Boolean(r.Annotations.OpenWorld),
		}),
		"risk": types.String(r.Annotations.Risk),
		"mandate": types.NewRecord(types.RecordMap{
			"id":      types.String(r.Mandate.ID),
			"covered": types.Boolean(r.Mandate.Covered),
		}),
		"intent":         types.String(r.Intent),
		"time":           types.NewDatetime(r.Time),
		"sessionTainted": types.Boolean(r.SessionTainted),
	}
	return q, nil
}

// argTags turns call arguments into the tags of the Arguments entity: a
// string as itself, any other JSON value as its compact JSON text (objects
// with sorted keys), so "n": 10 is the tag "10".
func argTags(args map[string]any) (types.Record, error) {
	m := make(types.RecordMap, len(args))
	for k, v := range args {
		if s, ok := v.(string); ok {
			m[types.String(k)] = types.String(s)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return types.Record{}, fmt.Errorf("argument %q: %w", k, err)
		}
		m[types.String(k)] = types.String(b)
	}
	return types.NewRecord(m), nil
}

// principalName is the principal's Cedar name, for explanations.
func principalName(p *identity.Principal) string {
	if p == nil {
		return "<none>"
	}
	if p.Delegated() {
		return types.NewEntityUID(typeUser, types.String(p.User)).String()
	}
	return types.NewEntityUID(typeAgent, types.String(p.Agent)).String()
}
