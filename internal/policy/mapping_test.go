package policy

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/mandate-mcp/mandate/internal/identity"
)

func TestMethodsMatchSchema(t *testing.T) {
	r, err := shippedSchema()
	if err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for uid := range r.Actions {
		inSchema = append(inSchema, string(uid.ID))
	}
	slices.Sort(inSchema)
	inTable := slices.Sorted(maps.Keys(methods))
	if !slices.Equal(inSchema, inTable) {
		t.Errorf("schema actions %v\nmethod table %v", inSchema, inTable)
	}
	for kind, use := range useOf {
		if !slices.Contains(methods[use].kinds, kind) {
			t.Errorf("use of %s is %s, which does not apply to it", kind, use)
		}
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		name                        string
		req                         Request
		principal, action, resource string
		parents                     []string
		delegated                   bool
	}{
		{
			name:      "delegated user is the principal, member of groups",
			req:       call(alice, "github", "create_issue", nil),
			principal: `User::"alice"`, action: `Action::"tools/call"`, resource: `Tool::"github/create_issue"`,
			parents: []string{`Group::"eng"`}, delegated: true,
		},
		{
			name:      "autonomous agent is the principal",
			req:       call(robot, "github", "list_issues", nil),
			principal: `Agent::"nightly-report"`, action: `Action::"tools/call"`, resource: `Tool::"github/list_issues"`,
		},
		{
			name: "prompt",
			req: Request{Principal: bob, Method: "prompts/get",
				Target: Target{Kind: KindPrompt, Upstream: "docs", Name: "summarize"}},
			principal: `User::"bob"`, action: `Action::"prompts/get"`, resource: `Prompt::"docs/summarize"`, delegated: true,
		},
		{
			name: "resource",
			req: Request{Principal: bob, Method: "resources/read",
				Target: Target{Kind: KindResource, Upstream: "fs", Name: "file:///etc/hosts"}},
			principal: `User::"bob"`, action: `Action::"resources/read"`, resource: `Resource::"fs/file:///etc/hosts"`, delegated: true,
		},
		{
			name:      "server",
			req:       Request{Principal: robot, Method: "initialize", Target: Target{Kind: KindServer, Upstream: "fs"}},
			principal: `Agent::"nightly-report"`, action: `Action::"initialize"`, resource: `Upstream::"fs"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ask(tt.req, tt.req.Method, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := q.principal.String(); got != tt.principal {
				t.Errorf("principal = %s, want %s", got, tt.principal)
			}
			if got := q.action.String(); got != tt.action {
				t.Errorf("action = %s, want %s", got, tt.action)
			}
			if got := q.resource.String(); got != tt.resource {
				t.Errorf("resource = %s, want %s", got, tt.resource)
			}
			var parents []string
			for p := range entityOf(q, q.principal).Parents.All() {
				parents = append(parents, p.String())
			}
			if !slices.Equal(parents, tt.parents) {
				t.Errorf("principal parents = %v, want %v", parents, tt.parents)
			}
			agent := types.NewEntityUID(typeAgent, types.String(tt.req.Principal.Agent))
			if q.context["agent"] != agent {
				t.Errorf("context.agent = %v, want %v", q.context["agent"], agent)
			}
			if q.context["delegated"] != types.Boolean(tt.delegated) {
				t.Errorf("context.delegated = %v", q.context["delegated"])
			}
			if tt.req.Target.Kind != KindServer {
				want := types.NewEntityUID(typeUpstream, types.String(tt.req.Target.Upstream))
				if !entityOf(q, q.resource).Parents.Contains(want) {
					t.Errorf("resource parents lack %s", want)
				}
			}
		})
	}
}

func TestMappingErrors(t *testing.T) {
	tests := []struct {
		name string
		req  Request
	}{
		{"no principal", Request{Method: "tools/call", Target: Target{Kind: KindTool, Upstream: "a", Name: "b"}}},
		{"no agent", call(&identity.Principal{User: "u"}, "a", "b", nil)},
		{"unknown kind", Request{Principal: alice, Method: "tools/call", Target: Target{Kind: "widget"}}},
		{"kind the method does not take", Request{Principal: alice, Method: "tools/call", Target: Target{Kind: KindPrompt, Upstream: "a", Name: "b"}}},
		{"unencodable argument", call(alice, "a", "b", map[string]any{"f": func() {}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ask(tt.req, tt.req.Method, false); err == nil {
				t.Fatal("ask succeeded")
			}
		})
	}
}

func TestArgTags(t *testing.T) {
	got, err := argEntities(map[string]any{"s": "x", "n": 10, "f": 1.5, "b": true, "o": map[string]any{"z": 1, "a": nil}, "l": []any{"a", 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "x", "n": "10", "f": "1.5", "b": "true", "o": `{"a":null,"z":1}`, "l": `["a",2]`}
	if len(got.tags) != len(want) {
		t.Errorf("%d tags, want %d", len(got.tags), len(want))
	}
	for k, w := range want {
		if v := got.tags[types.String(k)]; v != types.String(w) {
			t.Errorf("tag %s = %v, want %q", k, v, w)
		}
	}
}

// TestArgNumbers pins which arguments become numbers and decimals: only
// values the agent sent as JSON numbers, and only those whose value the
// decision can know exactly. A value left out is absent, never rounded.
func TestArgNumbers(t *testing.T) {
	dec := func(s string) types.Value {
		d, err := types.ParseDecimal(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		name    string
		value   any
		number  types.Value // nil: not in numbers
		decimal types.Value // nil: not in decimals
	}{
		{"int", 150, types.Long(150), dec("150.0")},
		{"float64 from JSON", float64(150), types.Long(150), dec("150.0")},
		{"integral float", 1e2, types.Long(100), dec("100.0")},
		{"negative", -42.0, types.Long(-42), dec("-42.0")},
		{"zero", 0.0, types.Long(0), dec("0.0")},
		{"json.Number", json.Number("7"), types.Long(7), dec("7.0")},
		{"fraction", 99.99, nil, dec("99.99")},
		{"four places", -0.0001, nil, dec("-0.0001")},
		{"five places", 0.00001, nil, nil},
		{"largest exact integer", float64(1<<53 - 1), types.Long(1<<53 - 1), nil},
		{"beyond exact integers", float64(1 << 53), nil, nil},
		{"int64 beyond exact", int64(1<<62 + 1), nil, nil},
		{"largest decimal integer", 922337203685477.0, types.Long(922337203685477), dec("922337203685477.0")},
		{"beyond decimal", 922337203685478.0, types.Long(922337203685478), nil},
		{"huge", 1e300, nil, nil},
		{"numeric string", "150", nil, nil},
		{"bool", true, nil, nil},
		{"null", nil, nil, nil},
		{"list of numbers", []any{1.0, 2.0}, nil, nil},
		{"object", map[string]any{"n": 1.0}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := argEntities(map[string]any{"v": tt.value})
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := a.numbers["v"]; (tt.number == nil) == ok || (ok && got != tt.number) {
				t.Errorf("numbers: %v (present %v), want %v", got, ok, tt.number)
			}
			if got, ok := a.decimals["v"]; (tt.decimal == nil) == ok || (ok && got != tt.decimal) {
				t.Errorf("decimals: %v (present %v), want %v", got, ok, tt.decimal)
			}
		})
	}
}

func TestMappingTrust(t *testing.T) {
	tests := []struct {
		name string
		p    *identity.Principal
		want string
	}{
		{"registry level", &identity.Principal{User: "u", Agent: "a", TrustLevel: identity.TrustStandard}, "standard"},
		{"trusted autonomous agent", &identity.Principal{Agent: "a", TrustLevel: identity.TrustTrusted}, "trusted"},
		{"unknown level is untrusted", &identity.Principal{Agent: "a"}, "untrusted"},
		{"misspelt level is untrusted", &identity.Principal{Agent: "a", TrustLevel: "TRUSTED"}, "untrusted"},
		{"local principal", identity.Local(), "trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, unknownArgs := range []bool{false, true} {
				q, err := ask(call(tt.p, "fs", "read", nil), "tools/call", unknownArgs)
				if err != nil {
					t.Fatal(err)
				}
				agent := types.NewEntityUID(typeAgent, types.String(tt.p.Agent))
				got, ok := entityOf(q, agent).Attributes.Get("trust")
				if !ok || got != types.String(tt.want) {
					t.Errorf("Agent trust = %v, want %q", got, tt.want)
				}
			}
		})
	}
}

// TestMappingUnknownArgs: a visibility question knows nothing of the
// arguments, in any of their views; a call question knows all of them.
func TestMappingUnknownArgs(t *testing.T) {
	r := call(alice, "pay", "transfer", map[string]any{"amount": 150.0, "memo": "rent"})
	q, err := ask(r, "tools/call", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []types.String{"args", "numbers", "decimals"} {
		if v := q.context[name]; v != unknown(string(name)) {
			t.Errorf("visibility: context.%s = %v, want unknown", name, v)
		}
	}
	for _, uid := range []types.EntityUID{argsUID, numbersUID, decimalsUID} {
		if _, ok := q.entities.Get(uid); ok {
			t.Errorf("visibility question holds %s", uid)
		}
	}
	q, err = ask(r, "tools/call", false)
	if err != nil {
		t.Fatal(err)
	}
	for name, uid := range map[types.String]types.EntityUID{"args": argsUID, "numbers": numbersUID, "decimals": decimalsUID} {
		if q.context[name] != uid {
			t.Errorf("call: context.%s = %v, want %v", name, q.context[name], uid)
		}
	}
	if n, _ := entityOf(q, numbersUID).Tags.Get("amount"); n != types.Long(150) {
		t.Errorf("numbers amount = %v", n)
	}
	if _, ok := entityOf(q, numbersUID).Tags.Get("memo"); ok {
		t.Error("a string argument is a number")
	}
}

// FuzzArgNumbers feeds call arguments, the agent's untrusted JSON, to the
// mapping: numbers and decimals must hold exactly the values the JSON text
// of args says, never a rounded one, and every integer that fits must be
// there.
func FuzzArgNumbers(f *testing.F) {
	for _, s := range []string{`{"n":150}`, `{"n":-0.0001,"m":1e300}`, `{"n":9007199254740993}`,
		`{"p":99.99,"q":"100","r":[1],"s":1.23456}`, `{"n":922337203685477.5807}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var args map[string]any
		if json.Unmarshal(raw, &args) != nil {
			return
		}
		a, err := argEntities(args)
		if err != nil {
			t.Fatalf("argEntities: %v", err)
		}
		for k, tag := range a.tags {
			v, isNumber := args[string(k)].(float64)
			n, inNumbers := a.numbers[k]
			d, inDecimals := a.decimals[k]
			if !isNumber {
				if inNumbers || inDecimals {
					t.Fatalf("%s = %v (%s) is not a number", k, args[string(k)], tag)
				}
				continue
			}
			if text, _ := json.Marshal(v); types.String(text) != tag {
				t.Fatalf("tag %s = %s, want %s", k, tag, text)
			}
			exactInt := v >= -(1<<53-1) && v <= 1<<53-1 && v == float64(int64(v))
			if inNumbers != exactInt || (inNumbers && float64(n.(types.Long)) != v) {
				t.Fatalf("numbers %s = %v (present %v) for %v", k, n, inNumbers, v)
			}
			if inDecimals {
				if back, err := strconv.ParseFloat(d.(types.Decimal).String(), 64); err != nil || back != v {
					t.Fatalf("decimals %s = %v for %v", k, d, v)
				}
			}
		}
	})
}

// entityOf returns q's entity uid, or the zero entity.
func entityOf(q question, uid types.EntityUID) types.Entity {
	e, _ := q.entities.Get(uid)
	return e
}
