package policy

import (
	"maps"
	"slices"
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
			for p := range q.entities[q.principal].Parents.All() {
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
				if !q.entities[q.resource].Parents.Contains(want) {
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
	got, err := argTags(map[string]any{"s": "x", "n": 10, "f": 1.5, "b": true, "o": map[string]any{"z": 1, "a": nil}, "l": []any{"a", 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s": "x", "n": "10", "f": "1.5", "b": "true", "o": `{"a":null,"z":1}`, "l": `["a",2]`}
	for k, w := range want {
		v, ok := got.Get(types.String(k))
		if !ok || v != types.String(w) {
			t.Errorf("tag %s = %v, want %q", k, v, w)
		}
	}
}
