package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

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

// argsValue, numbersValue and decimalsValue are the argument entities'
// uids as context values, boxed once.
var argsValue, numbersValue, decimalsValue types.Value = argsUID, numbersUID, decimalsUID

// argContext names the context attributes that hold the call's arguments.
// Visibility leaves every one of them unknown: an item is listed when some
// arguments could make its use allowed, so no view of the arguments may be
// known while deciding that.
var argContext = []string{"args", "numbers", "decimals"}

// question is one Request in Cedar's terms.
type question struct {
	principal, action, resource types.EntityUID
	agent                       types.EntityUID
	context                     types.RecordMap
	entities                    *entities
}

var (
	errNoPrincipal = errors.New("no principal")
	errNoAgent     = errors.New("principal has no agent")
)

// subject is the part of a question that depends on the principal alone:
// its entities and the context attributes it gives. A list builds it once
// for all of its items.
//
// The entities of a delegated principal (the user, with their email and
// groups, and the groups) are built on first use: the scope index finds
// the groups of the user without them, and many decisions read nothing
// else of the user.
type subject struct {
	p                *identity.Principal
	principal, agent types.EntityUID
	agentEntity      types.Entity
	// groups are the user's groups, the parents of a delegated
	// principal.
	groups []types.EntityUID
	// user holds the user and their groups once built.
	user       types.EntityMap
	delegated  bool
	authMethod types.String
	scopes     types.Set
}

func subjectOf(p *identity.Principal) (*subject, error) {
	if p == nil {
		return nil, errNoPrincipal
	}
	if p.Agent == "" {
		return nil, errNoAgent
	}
	s := &subject{
		p:          p,
		agent:      types.NewEntityUID(typeAgent, types.String(p.Agent)),
		delegated:  p.Delegated(),
		authMethod: types.String(p.Method),
	}
	s.agentEntity = types.Entity{UID: s.agent, Attributes: agentAttributes(p.Trust())}
	s.principal = s.agent
	if s.delegated {
		s.principal = types.NewEntityUID(typeUser, types.String(p.User))
		s.groups = make([]types.EntityUID, len(p.Groups))
		for i, g := range p.Groups {
			s.groups[i] = types.NewEntityUID(typeGroup, types.String(g))
		}
	}
	scopes := make([]types.Value, 0, len(p.Scopes))
	for _, sc := range p.Scopes {
		scopes = append(scopes, types.String(sc))
	}
	s.scopes = types.NewSet(scopes...)
	return s, nil
}

// get returns the subject's entity uid: the agent, and for a delegated
// principal the user and their groups.
func (s *subject) get(uid types.EntityUID) (types.Entity, bool) {
	if uid == s.agent {
		return s.agentEntity, true
	}
	if !s.delegated {
		return types.Entity{}, false
	}
	if s.user == nil {
		s.user = make(types.EntityMap, 1+len(s.groups))
		groups := make([]types.Value, 0, len(s.groups))
		for i, gid := range s.groups {
			groups = append(groups, types.String(s.p.Groups[i]))
			s.user[gid] = types.Entity{UID: gid}
		}
		s.user[s.principal] = types.Entity{
			UID:     s.principal,
			Parents: types.NewEntityUIDSet(s.groups...),
			Attributes: types.NewRecord(types.RecordMap{
				"email":  types.String(s.p.Email),
				"groups": types.NewSet(groups...),
			}),
		}
	}
	e, ok := s.user[uid]
	return e, ok
}

// parents returns the parents of the subject's entity uid: the user's
// groups; the agent and the groups have none.
func (s *subject) parents(uid types.EntityUID) []types.EntityUID {
	if s.delegated && uid == s.principal {
		return s.groups
	}
	return nil
}

// entities are a question's entities: the subject's, shared by every item
// of a list, and the few of the one request (the target and its upstream,
// the argument entities). No two of them can share a uid: each kind of
// entity has its own type.
//
// The target item's entity and the argument entities are built on first
// use: many questions are answered without looking them up (see
// compiled.itemFree), and building them costs more than the rest of the
// question.
type entities struct {
	sub *subject
	own [5]types.Entity
	n   int
	// item is the target item's uid, with its name and upstream, while
	// its entity is not yet built.
	item               types.EntityUID
	pending            bool
	upstream, itemName string
	// itemParents is the item's one parent, its upstream.
	itemParents [1]types.EntityUID
	// args are the call's arguments while their entities are not yet
	// built.
	args        []argText
	argsPending bool
}

var _ types.EntityGetter = (*entities)(nil)

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	if e.pending && uid == e.item {
		e.pending = false
		e.add(types.Entity{
			UID:     e.item,
			Parents: types.NewEntityUIDSet(e.itemParents[0]),
			Attributes: types.NewRecord(types.RecordMap{
				"upstream": types.String(e.upstream),
				"name":     types.String(e.itemName),
			}),
		})
	}
	if e.argsPending && (uid == argsUID || uid == numbersUID || uid == decimalsUID) {
		a := callArgsOf(e.args)
		e.argsPending = false
		e.add(types.Entity{UID: argsUID, Tags: types.NewRecord(a.tags)})
		e.add(types.Entity{UID: numbersUID, Tags: types.NewRecord(a.numbers)})
		e.add(types.Entity{UID: decimalsUID, Tags: types.NewRecord(a.decimals)})
	}
	for i := range e.n {
		if e.own[i].UID == uid {
			return e.own[i], true
		}
	}
	return e.sub.get(uid)
}

func (e *entities) add(ent types.Entity) {
	e.own[e.n] = ent
	e.n++
}

// parents returns the parents of uid without building the target item's
// entity (its one parent is its upstream) or the user's.
func (e *entities) parents(uid types.EntityUID) []types.EntityUID {
	if e.pending && uid == e.item {
		return e.itemParents[:]
	}
	for i := range e.n {
		if e.own[i].UID == uid {
			return slices.Collect(e.own[i].Parents.All())
		}
	}
	return e.sub.parents(uid)
}

// target checks that action applies to t and sets the question's
// principal, action and resource, with its entities in ents: the
// subject's, the upstream, and the item as its child.
func (s *subject) target(q *question, ents *entities, t Target, action string) error {
	itemType, ok := itemTypes[t.Kind]
	if !ok {
		return fmt.Errorf("unknown target kind %q", t.Kind)
	}
	if !slices.Contains(methods[action].kinds, t.Kind) {
		return fmt.Errorf("method %s does not apply to a %s", action, t.Kind)
	}
	q.principal, q.agent = s.principal, s.agent
	q.action = types.NewEntityUID(typeAction, types.String(action))
	*ents = entities{sub: s}
	q.entities = ents
	upstream := types.NewEntityUID(typeUpstream, types.String(t.Upstream))
	q.entities.add(types.Entity{UID: upstream})
	if t.Kind == KindServer {
		q.resource = upstream
		return nil
	}
	q.resource = types.NewEntityUID(itemType, types.String(t.Upstream+"/"+t.Name))
	q.entities.item, q.entities.pending = q.resource, true
	q.entities.upstream, q.entities.itemName = t.Upstream, t.Name
	q.entities.itemParents[0] = upstream
	return nil
}

// contextMaps recycles the maps contexts are built in: types.NewRecord
// copies its map, so the map is garbage as soon as the context is a
// record, and a decision's allocations are what its latency tail comes
// from (garbage collection). See releaseContext.
var contextMaps = sync.Pool{New: func() any { return make(types.RecordMap, 10+len(argContext)) }}

// releaseContext returns a context map that has been made a record, and
// is not used again, to contextMaps.
func releaseContext(ctx types.RecordMap) {
	clear(ctx)
	contextMaps.Put(ctx)
}

// context returns the context of r for this subject, without the
// arguments, in a map from contextMaps.
func (s *subject) context(r *Request) types.RecordMap {
	ctx := contextMaps.Get().(types.RecordMap)
	ctx["agent"] = s.agent
	ctx["delegated"] = types.Boolean(s.delegated)
	ctx["authMethod"] = s.authMethod
	ctx["scopes"] = s.scopes
	ctx["annotations"] = annotationRecords[annotationBits(r.Annotations)]
	ctx["risk"] = types.String(r.Annotations.Risk)
	ctx["mandate"] = types.NewRecord(types.RecordMap{
		"id":      types.String(r.Mandate.ID),
		"covered": types.Boolean(r.Mandate.Covered),
	})
	ctx["intent"] = types.String(r.Intent)
	ctx["time"] = types.NewDatetime(r.Time)
	ctx["sessionTainted"] = types.Boolean(r.SessionTainted)
	return ctx
}

// annotationRecords holds the context.annotations record of every
// combination of the four flags, built once: records are immutable, and
// building one hashes and copies it.
var annotationRecords = func() (out [16]types.Record) {
	for i := range out {
		out[i] = types.NewRecord(types.RecordMap{
			"readOnly":    types.Boolean(i&1 != 0),
			"destructive": types.Boolean(i&2 != 0),
			"idempotent":  types.Boolean(i&4 != 0),
			"openWorld":   types.Boolean(i&8 != 0),
		})
	}
	return out
}()

func annotationBits(a Annotations) int {
	n := 0
	for i, set := range []bool{a.ReadOnly, a.Destructive, a.Idempotent, a.OpenWorld} {
		if set {
			n |= 1 << i
		}
	}
	return n
}

// trustRecords holds the attributes of an agent at each trust level the
// registry gives, built once.
var trustRecords = func() map[string]types.Record {
	out := map[string]types.Record{}
	for _, t := range []string{identity.TrustUntrusted, identity.TrustStandard, identity.TrustTrusted} {
		out[t] = types.NewRecord(types.RecordMap{"trust": types.String(t)})
	}
	return out
}()

func agentAttributes(trust string) types.Record {
	if r, ok := trustRecords[trust]; ok {
		return r
	}
	return types.NewRecord(types.RecordMap{"trust": types.String(trust)})
}

// withUnknownArgs leaves the arguments of ctx unknown, for partial
// evaluation.
func withUnknownArgs(ctx types.RecordMap) types.RecordMap {
	for _, name := range argContext {
		ctx[types.String(name)] = unknown(name)
	}
	return ctx
}

// ask maps r, asked as action, to a Cedar question. When unknownArgs is
// set, the arguments (context.args, numbers and decimals) are left unknown
// for partial evaluation.
func ask(r Request, action string, unknownArgs bool) (question, error) {
	s, err := subjectOf(r.Principal)
	if err != nil {
		return question{}, err
	}
	var q question
	if err := s.target(&q, new(entities), r.Target, action); err != nil {
		return question{}, err
	}
	q.context = s.context(&r)
	if unknownArgs {
		withUnknownArgs(q.context)
		return q, nil
	}
	ts, err := argTexts(r.Args)
	if err != nil {
		return question{}, err
	}
	q.context["args"], q.context["numbers"], q.context["decimals"] = argsValue, numbersValue, decimalsValue
	q.entities.args, q.entities.argsPending = ts, true
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
	ts, err := argTexts(args)
	if err != nil {
		return callArgs{}, err
	}
	return callArgsOf(ts), nil
}

// argText is one argument as its Arguments tag: a string as itself, any
// other value as its JSON text.
type argText struct {
	key, text string
	json      bool
}

// argTexts is the part of argEntities that can fail, done for every call:
// a call whose arguments cannot be written as tags is denied whether or
// not a policy reads them. The entities themselves (callArgsOf) are built
// only when a policy looks them up.
func argTexts(args map[string]any) ([]argText, error) {
	ts := make([]argText, 0, len(args))
	for k, v := range args {
		if s, ok := v.(string); ok {
			ts = append(ts, argText{key: k, text: s})
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", k, err)
		}
		ts = append(ts, argText{key: k, text: string(b), json: true})
	}
	return ts, nil
}

func callArgsOf(ts []argText) callArgs {
	a := callArgs{tags: make(types.RecordMap, len(ts))}
	for _, t := range ts {
		key := types.String(t.key)
		a.tags[key] = types.String(t.text)
		b := t.text
		if !t.json || len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
			continue
		}
		f, err := strconv.ParseFloat(b, 64)
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
	return a
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
