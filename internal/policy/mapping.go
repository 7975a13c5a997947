package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
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
	typeNumbers   types.EntityType = "Numbers"
	typeDecimals  types.EntityType = "Decimals"
	typeAction    types.EntityType = "Action"
)

var itemTypes = map[string]types.EntityType{
	KindTool:     "Tool",
	KindPrompt:   "Prompt",
	KindResource: "Resource",
	KindServer:   typeUpstream,
}

// argsUID, numbersUID and decimalsUID name the entities that hold the
// arguments of the one call being decided.
var (
	argsUID     = types.NewEntityUID(typeArguments, "call")
	numbersUID  = types.NewEntityUID(typeNumbers, "call")
	decimalsUID = types.NewEntityUID(typeDecimals, "call")
)

// argContext names the context attributes that hold the call's arguments.
// Visibility leaves every one of them unknown: an item is listed when some
// arguments could make its use allowed, so no view of the arguments may be
// known while deciding that.
var argContext = []string{"args", "numbers", "decimals"}

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
// set, the arguments (context.args, numbers and decimals) are left unknown
// for partial evaluation.
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
	q.entities[agent] = types.Entity{
		UID:        agent,
		Attributes: types.NewRecord(types.RecordMap{"trust": types.String(p.Trust())}),
	}
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

	scopes := make([]types.Value, 0, len(p.Scopes))
	for _, s := range p.Scopes {
		scopes = append(scopes, types.String(s))
	}
	q.context = types.RecordMap{
		"agent":      agent,
		"delegated":  types.Boolean(p.Delegated()),
		"authMethod": types.String(p.Method),
		"scopes":     types.NewSet(scopes...),
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
	if unknownArgs {
		for _, name := range argContext {
			q.context[types.String(name)] = unknown(name)
		}
		return q, nil
	}
	a, err := argEntities(r.Args)
	if err != nil {
		return question{}, err
	}
	q.context["args"], q.context["numbers"], q.context["decimals"] = argsUID, numbersUID, decimalsUID
	q.entities[argsUID] = types.Entity{UID: argsUID, Tags: types.NewRecord(a.tags)}
	q.entities[numbersUID] = types.Entity{UID: numbersUID, Tags: types.NewRecord(a.numbers)}
	q.entities[decimalsUID] = types.Entity{UID: decimalsUID, Tags: types.NewRecord(a.decimals)}
	return q, nil
}

// callArgs are the tags of the three entities a call's arguments become.
type callArgs struct {
	tags, numbers, decimals types.RecordMap
}

// argEntities turns call arguments into the tags of the Arguments entity
// (context.args) and, for numbers, of Numbers and Decimals: a string as
// itself, any other JSON value as its compact JSON text (objects with
// sorted keys), so "n": 10 is the tag "10" of args, the Long 10 of numbers
// and the decimal 10.0 of decimals. A number is read from that JSON text
// as a float64, as mandate constraints and the approval hash read it, so
// the three never disagree on what the agent sent.
func argEntities(args map[string]any) (callArgs, error) {
	a := callArgs{tags: make(types.RecordMap, len(args))}
	for k, v := range args {
		key := types.String(k)
		if s, ok := v.(string); ok {
			a.tags[key] = types.String(s)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return callArgs{}, fmt.Errorf("argument %q: %w", k, err)
		}
		a.tags[key] = types.String(b)
		if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			continue
		}
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			continue
		}
		if n, ok := exactLong(f); ok {
			if a.numbers == nil {
				a.numbers = types.RecordMap{}
			}
			a.numbers[key] = n
		}
		if d, ok := exactDecimal(f); ok {
			if a.decimals == nil {
				a.decimals = types.RecordMap{}
			}
			a.decimals[key] = d
		}
	}
	return a, nil
}

// maxExactInt is the largest integer that float64 tells apart from its
// neighbours (2^53-1). A JSON integer beyond it may decode to a float64
// that is not the integer the agent wrote (2^53+1 reads as 2^53), so it is
// no Long a policy could trust.
const maxExactInt = 1<<53 - 1

// exactLong returns f as a Long when it is an integer no larger in
// magnitude than maxExactInt.
func exactLong(f float64) (types.Long, bool) {
	if f != math.Trunc(f) || math.Abs(f) > maxExactInt {
		return 0, false
	}
	return types.Long(f), true
}

// maxDecimal bounds the magnitude of Cedar's decimal, which holds an int64
// count of ten-thousandths.
const maxDecimal = 922337203685477.5807

// exactDecimal returns f as a Cedar decimal when its shortest decimal form
// has at most four decimal places and lies within decimal's range. A
// number with more places is left out rather than rounded: a limit on
// 0.00001 must not see 0.0.
func exactDecimal(f float64) (types.Decimal, bool) {
	if math.IsNaN(f) || math.Abs(f) > maxDecimal {
		return types.Decimal{}, false
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	whole, frac, ok := strings.Cut(s, ".")
	if !ok {
		frac = "0"
	}
	if len(frac) > 4 {
		return types.Decimal{}, false
	}
	d, err := types.ParseDecimal(whole + "." + frac)
	return d, err == nil
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
