package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/benchstat"
	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/store/sqlite"
	"github.com/mandate-mcp/mandate/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The benchmarks in this file drive the whole request path of a Gateway —
// Handle, policy, mandates, namespacing, JSON — over one in-process
// upstream offering 500 tools, as `auth: none` runs it (allow-all, no
// mandates) and as an authenticated deployment does (the built-in default
// policy and mandates in a SQLite store): with only the principal's own
// mandate, as bench/run.sh's policy runs have it, and among 10,000.

// benchUpstream is the id of the benchmark's upstream; its tools are
// public under their own names.
const benchUpstream = "svc-07"

// benchPrincipal is the delegated principal of the enforced runs.
var benchPrincipal = &identity.Principal{
	Issuer: "https://idp.example", User: "u-0001", Agent: "agent-12",
	Scopes: []string{"mcp:tools"}, Method: identity.MethodExternal,
}

// benchTools names n tools the way real servers do (list_issues,
// delete_files_3, …) and says which are read-only and which destructive.
func benchTools(n int) []*mcp.Tool {
	verbs := []string{"list", "get", "create", "update", "delete", "search", "export", "archive", "assign", "close"}
	nouns := []string{"issues", "files", "users", "reports", "tickets"}
	yes := true
	out := make([]*mcp.Tool, 0, n)
	for i := range n {
		verb, noun := verbs[i%len(verbs)], nouns[i/len(verbs)%len(nouns)]
		name := verb + "_" + noun
		if area := i / (len(verbs) * len(nouns)); area > 0 {
			name = fmt.Sprintf("%s_%d", name, area)
		}
		t := &mcp.Tool{Name: name, Description: "Does " + verb + " on " + noun + ".",
			InputSchema: json.RawMessage(`{"type":"object","properties":{"repo":{"type":"string"}}}`)}
		switch verb {
		case "list", "get", "search":
			t.Annotations = &mcp.ToolAnnotations{ReadOnlyHint: true}
		case "delete", "archive":
			t.Annotations = &mcp.ToolAnnotations{DestructiveHint: &yes}
		}
		out = append(out, t)
	}
	return out
}

func benchServer(n int) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "0"}, nil)
	for _, t := range benchTools(n) {
		s.AddTool(t, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
		})
	}
	return s
}

// benchSetup is how a benchmark's gateway decides.
type benchSetup struct {
	name      string
	principal *identity.Principal
	policy    func(testing.TB) PolicyDecider
	mandates  func(testing.TB) MandateMatcher
}

var benchSetups = []benchSetup{
	{
		name: "allow-all", principal: identity.Local(),
		policy:   func(testing.TB) PolicyDecider { return policy.AllowAll() },
		mandates: func(testing.TB) MandateMatcher { return nil },
	},
	{
		name: "default-1mandate", principal: benchPrincipal,
		policy:   defaultPolicy,
		mandates: func(tb testing.TB) MandateMatcher { return benchMandates(tb, 1) },
	},
	{
		name: "default-10000mandates", principal: benchPrincipal,
		policy:   defaultPolicy,
		mandates: func(tb testing.TB) MandateMatcher { return benchMandates(tb, 10000) },
	},
}

func defaultPolicy(tb testing.TB) PolicyDecider {
	snap, err := policy.Builtin(policy.BuiltinDefault)
	if err != nil {
		tb.Fatal(err)
	}
	return policy.NewEngine(snap)
}

// benchMandates returns a consent service over a SQLite store holding n
// mandates: n-1 of 2,000 users to 80 agents and the one by which
// benchPrincipal's user lets its agent use the read-only tools (list_*,
// get_*, search_*) of benchUpstream.
func benchMandates(tb testing.TB, n int) MandateMatcher {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "mandate.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	svc := consent.New(st, nil, nil)
	grant := func(user, agent string, grants ...consent.Grant) {
		_, err := svc.Grant(ctx, consent.Spec{User: user, Agent: agent, Grants: grants, Purpose: "benchmark",
			ExpiresAt: time.Now().Add(24 * time.Hour), Uses: consent.Unlimited})
		if err != nil {
			tb.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(3, 10000))
	tools := []string{"list_issues", "create_issue", "search_*", "get_*", "*"}
	for range n - 1 {
		grant(fmt.Sprintf("u-%04d", r.IntN(2000)), fmt.Sprintf("agent-%02d", r.IntN(80)),
			consent.Grant{Upstream: fmt.Sprintf("svc-%02d", r.IntN(40)), Tool: tools[r.IntN(len(tools))]})
	}
	grant(benchPrincipal.User, benchPrincipal.Agent,
		consent.Grant{Upstream: benchUpstream, Tool: "list_*"},
		consent.Grant{Upstream: benchUpstream, Tool: "get_*"},
		consent.Grant{Upstream: benchUpstream, Tool: "search_*"})
	return svc
}

// benchGateway starts a gateway over one in-process upstream serving srv,
// deciding as setup says, and returns it with an initialised session of
// setup's principal.
func benchGateway(b *testing.B, srv *mcp.Server, setup benchSetup) (*Gateway, *Session) {
	b.Helper()
	u := upstream.New(upstream.Options{
		ID: benchUpstream,
		Connect: func(ctx context.Context) (mcp.Connection, error) {
			ct, st := mcp.NewInMemoryTransports()
			if _, err := srv.Connect(ctx, st, nil); err != nil {
				return nil, err
			}
			return ct.Connect(ctx)
		},
		Client:     upstream.ClientInfo{Name: "mandate-bench", Version: "0"},
		MaxBackoff: 50 * time.Millisecond,
	})
	g := New(Options{
		Upstreams: []UpstreamSpec{{Conn: u, Timeout: 10 * time.Second}},
		PageSize:  1000, StartupWait: 5 * time.Second,
		Policy: setup.policy(b), Mandates: setup.mandates(b),
	})
	u.SetHandler(g.SharedHandler(u.ID()))
	u.Start()
	b.Cleanup(func() {
		g.Close()
		u.Close()
	})
	sess := g.NewSession("bench", "client-bench")
	sess.Principal = setup.principal
	benchOK(b, g.Handle(context.Background(), sess, benchRequest(b, "init", "initialize", map[string]any{
		"protocolVersion": "2025-11-25", "capabilities": map[string]any{},
		"clientInfo": map[string]string{"name": "bench", "version": "0"},
	}), nil))
	return g, sess
}

func benchRequest(b *testing.B, id any, method string, params any) *jsonrpc.Request {
	b.Helper()
	jid, err := jsonrpc.MakeID(id)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		b.Fatal(err)
	}
	return &jsonrpc.Request{ID: jid, Method: method, Params: raw}
}

func benchOK(b *testing.B, resp *jsonrpc.Response) json.RawMessage {
	b.Helper()
	if resp == nil || resp.Error != nil {
		b.Fatalf("response %+v", resp)
	}
	return resp.Result
}

// listedCount returns the number of tools of a tools/list result.
func listedCount(b *testing.B, raw json.RawMessage) int {
	b.Helper()
	var res struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		b.Fatal(err)
	}
	return len(res.Tools)
}

// BenchmarkFilterList500 is target (b) through the gateway: answering
// tools/list over an upstream offering 500 tools — its cached list,
// namespaced, filtered item by item by the policy (one VisibleAll batch,
// after one read of the principal's mandates) — within 3 ms.
func BenchmarkFilterList500(b *testing.B) {
	srv := benchServer(500)
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			g, sess := benchGateway(b, srv, setup)
			ctx := context.Background()
			list := benchRequest(b, float64(1), "tools/list", map[string]any{})
			b.Logf("%d tools listed", listedCount(b, benchOK(b, g.Handle(ctx, sess, list, nil)))-1)
			var lat benchstat.Latencies
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				resp := g.Handle(ctx, sess, list, nil)
				lat.Add(time.Since(t))
				benchOK(b, resp)
			}
			lat.Report(b)
		})
	}
}

// BenchmarkToolsCall is one tools/call through the gateway to the
// in-process upstream and back: with allow-all, the proxy's own cost; with
// the default policy, that plus authorising the call — the mandate lookup,
// the decision, and recording the mandate's use in the store.
// The difference is what bench/run.sh's policy ratio measures end to end.
func BenchmarkToolsCall(b *testing.B) {
	srv := benchServer(500)
	for _, setup := range benchSetups {
		b.Run(setup.name, func(b *testing.B) {
			g, sess := benchGateway(b, srv, setup)
			ctx := context.Background()
			// Mandate refuses calls of tools the session was not shown.
			benchOK(b, g.Handle(ctx, sess, benchRequest(b, float64(1), "tools/list", map[string]any{}), nil))
			call := benchRequest(b, float64(2), "tools/call", map[string]any{
				"name": "list_issues", "arguments": map[string]any{"repo": "org-07/api"}})
			var lat benchstat.Latencies
			b.ReportAllocs()
			for b.Loop() {
				t := time.Now()
				resp := g.Handle(ctx, sess, call, nil)
				lat.Add(time.Since(t))
				benchOK(b, resp)
			}
			lat.Report(b)
		})
	}
}

// FuzzItemFields checks the one-pass reading of list items that keeps
// BenchmarkFilterList500 within its target against decoding the whole
// item: every input gives the same name and annotations both ways, so a
// list decides on what a call of the same definition decides on.
func FuzzItemFields(f *testing.F) {
	for _, s := range []string{
		`{"name":"list_issues","description":"Lists {issues} \"quoted\" [x]","inputSchema":{"type":"object","properties":{"repo":{"type":"string"}}},"annotations":{"readOnlyHint":true}}`,
		`{"name":"a","annotations":{"destructiveHint":true},"annotations":{"readOnlyHint":true}}`,
		`{"Annotations":{"openWorldHint":true},"name":"b","name":"c"}`,
		`{"name":"d","annotations":{"idempotentHint":"yes"}}`,
		`{"name":"e","annotations":5}`,
		`{"name":"f","annotations":null}`,
		`{"na\u006de":"g","\u0061nnotations":{"readOnlyHint":true}}`,
		`{"name":"h\u00e9","ANNOTATIONS":{"destructiveHint":true}}`,
		`{"name":"\ud800","annotationſ":{"readOnlyHint":true}}`,
		` { "uri" : "file:///a" , "name" : 7 , "x" : [ 1 , { "y" : "}" } ] } `,
		`{"name":"i","nested":{"annotations":{"readOnlyHint":true}}}`,
		`{}`, `null`, `[]`, `"name"`, `{"name":"j"`, ``, `{"name":"\u0000"}`,
		`{"name":"k","annotations":{"READONLYHINT":true,"readOnlyHint":null,"x":{"y":[1,"}"]},"openWorldHint":false}}`,
		`{"name":"l","annotations":{"readOnlyHint":1}}`,
		`{"name":"m","annotations":{"\u0072eadOnlyHint":true,"destructiveHint":true}}`,
		`{"name":"n","annotations":{"destructiveHint":true},"ANNOTATIONS":{"destructiveHint":false,"idempotentHint":true}}`,
	} {
		f.Add([]byte(s), "name")
		f.Add([]byte(s), "uri")
	}
	f.Fuzz(func(t *testing.T, raw []byte, key string) {
		name, ann := itemFields(raw, key)
		wantName, wantAnn := itemFieldsDecoded(raw, key)
		if name != wantName || (name != "" && ann != wantAnn) {
			t.Fatalf("itemFields(%q, %q) = %q %+v, want %q %+v", raw, key, name, ann, wantName, wantAnn)
		}
	})
}

// FuzzEncodeList checks that a list page is written exactly as
// json.Marshal writes it (object.set), compacted.
func FuzzEncodeList(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` { "a" : [ 1 , "x y" ] } `, `"s\" t"`, `[]`, "{\"a\":\"\\\\\"}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		items := []json.RawMessage{raw, json.RawMessage(`{"name":"x"}`)}
		want, err := marshal(items)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := encodeList(items)
		if !ok || string(got) != string(want) {
			t.Fatalf("encodeList(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	})
}
