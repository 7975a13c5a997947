package authzen_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/policy/authzen"
	"github.com/mandate-mcp/mandate/internal/policy/authzen/authzentest"
)

var (
	alice = &identity.Principal{
		Issuer: "https://idp.example", User: "alice", Email: "alice@example.com",
		Groups: []string{"eng"}, Agent: "claude", Scopes: []string{"mcp"},
		Chain:  []identity.Actor{{Subject: "claude", ClientID: "claude"}},
		Method: identity.MethodAuthorizationCode,
	}
	robot = &identity.Principal{
		Issuer: "https://idp.example", Agent: "nightly-report",
		Method: identity.MethodClientCredentials,
	}
	noon = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func toolCall(p *identity.Principal, tool string, args map[string]any) policy.Request {
	return policy.Request{
		Principal: p, Method: "tools/call",
		Target: policy.Target{Kind: policy.KindTool, Upstream: "github", Name: tool},
		Args:   args, Mandate: policy.MandateRef{ID: "mnd_1", Covered: true}, Time: noon,
	}
}

func session(p *identity.Principal, method string) policy.Request {
	return policy.Request{Principal: p, Method: method, Target: policy.Target{Kind: policy.KindServer}, Time: noon}
}

// start runs a PDP deciding with rule and a client of it.
func start(t *testing.T, rule authzentest.Rule, opts *authzen.Options) (*authzentest.PDP, *authzen.Client) {
	t.Helper()
	pdp := authzentest.New(rule, nil)
	t.Cleanup(pdp.Close)
	c, err := authzen.New(pdp.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return pdp, c
}

func allowAll(authzentest.Evaluation) (bool, map[string]any) { return true, nil }
func denyAll(authzentest.Evaluation) (bool, map[string]any)  { return false, nil }

// listingDenied allows every call but no listing: a PDP author's mistake
// the client must not turn into calls of unlisted items.
func listingDenied(e authzentest.Evaluation) (bool, map[string]any) {
	listing, _ := e.Context["listing"].(bool)
	return !listing, nil
}

func TestDecide(t *testing.T) {
	approval := func(authzentest.Evaluation) (bool, map[string]any) {
		return true, map[string]any{"dev.mandate/approval": "required", "policies": []any{"destructive"}}
	}
	explained := func(authzentest.Evaluation) (bool, map[string]any) {
		return false, map[string]any{
			"policies":     []any{"no-weekends", 7},
			"reason_admin": map[string]any{"fr": "pas le week-end", "en": "not on weekends"},
			"reason_user":  map[string]any{"en": "ask your admin"},
		}
	}
	reasonString := func(authzentest.Evaluation) (bool, map[string]any) {
		return true, map[string]any{"reason_admin": "office hours"}
	}
	for _, tc := range []struct {
		name    string
		rule    authzentest.Rule
		faults  authzentest.Faults
		opts    *authzen.Options
		req     policy.Request
		effect  policy.Effect
		reasons []string
		// errs is a substring of the decision's one error; "" for none.
		errs string
		// single and batch are the evaluation requests the PDP must get.
		single, batch int
	}{
		{name: "allow", rule: allowAll, req: toolCall(alice, "create_issue", nil), effect: policy.Allow, batch: 1},
		{name: "deny", rule: denyAll, req: toolCall(alice, "create_issue", nil), effect: policy.Deny, batch: 1},
		{name: "approval", rule: approval, req: toolCall(alice, "delete_repo", nil), effect: policy.NeedsApproval, reasons: []string{"destructive"}, batch: 1},
		{name: "reasons", rule: explained, req: toolCall(alice, "x", nil), effect: policy.Deny, reasons: []string{"no-weekends", "not on weekends", "pas le week-end"}, batch: 1},
		{name: "reason string", rule: reasonString, req: toolCall(alice, "x", nil), effect: policy.Allow, reasons: []string{"office hours"}, batch: 1},
		{name: "session method", rule: allowAll, req: session(alice, "initialize"), effect: policy.Allow, single: 1},
		{name: "session method denied", rule: denyAll, req: session(robot, "tools/list"), effect: policy.Deny, single: 1},
		{name: "list method of an item", rule: approval, req: policy.Request{
			Principal: alice, Method: "tools/list", Target: policy.Target{Kind: policy.KindTool, Upstream: "github", Name: "x"},
		}, effect: policy.Allow, reasons: []string{"destructive"}, single: 1},
		{name: "autonomous agent", rule: allowAll, req: toolCall(robot, "list_issues", nil), effect: policy.Allow, batch: 1},

		{name: "timeout", rule: allowAll, faults: authzentest.Faults{Delay: 300 * time.Millisecond},
			opts: &authzen.Options{Timeout: 30 * time.Millisecond}, req: toolCall(alice, "x", nil), errs: "deadline exceeded"},
		{name: "status 500", rule: allowAll, faults: authzentest.Faults{Status: 500}, req: toolCall(alice, "x", nil), errs: "status 500", batch: 1},
		{name: "status 401", rule: allowAll, faults: authzentest.Faults{Status: 401}, req: session(alice, "initialize"), errs: "status 401", single: 1},
		{name: "garbage", rule: allowAll, faults: authzentest.Faults{Garbage: true}, req: toolCall(alice, "x", nil), errs: "malformed response", batch: 1},
		{name: "wrong batch length", rule: allowAll, faults: authzentest.Faults{DropResults: 1}, req: toolCall(alice, "x", nil), errs: "answered 1 of 2", batch: 1},
		{name: "empty batch answer", rule: denyAll, faults: authzentest.Faults{DropResults: 1}, req: toolCall(alice, "x", nil), errs: "answered 0 of 2", batch: 1},
		{name: "no decision", rule: allowAll, faults: authzentest.Faults{NoDecision: true}, req: toolCall(alice, "x", nil), errs: "no boolean decision", batch: 1},
		{name: "no decision, single", rule: allowAll, faults: authzentest.Faults{NoDecision: true}, req: session(alice, "initialize"), errs: "no boolean decision", single: 1},
		{name: "metadata mismatch", rule: allowAll, faults: authzentest.Faults{MetadataPDP: "https://evil.example"}, req: toolCall(alice, "x", nil), errs: "mix-up"},
		{name: "request id mismatch", rule: allowAll, faults: authzentest.Faults{RequestID: "someone-else"}, req: toolCall(alice, "x", nil), errs: "X-Request-ID", batch: 1},

		{name: "no batch endpoint", rule: allowAll, faults: authzentest.Faults{NoBatch: true}, req: toolCall(alice, "x", nil), effect: policy.Allow, single: 2},
		{name: "no batch endpoint, listing denied", rule: listingDenied, faults: authzentest.Faults{NoBatch: true}, req: toolCall(alice, "x", nil), effect: policy.Deny, single: 1},
		{name: "no metadata", rule: allowAll, faults: authzentest.Faults{NoMetadata: true}, req: toolCall(alice, "x", nil), effect: policy.Allow, batch: 1},
		{name: "no metadata, no batch", rule: allowAll, faults: authzentest.Faults{NoMetadata: true, NoBatch: true}, req: toolCall(alice, "x", nil), effect: policy.Allow, single: 2},
		{name: "no metadata, single", rule: allowAll, faults: authzentest.Faults{NoMetadata: true}, req: session(alice, "initialize"), effect: policy.Allow, single: 1},

		{name: "unlisted item call denied", rule: listingDenied, req: toolCall(alice, "x", nil), effect: policy.Deny, batch: 1},
		{name: "nil principal", rule: allowAll, req: toolCall(nil, "x", nil), errs: "no principal"},
		{name: "no agent", rule: allowAll, req: toolCall(&identity.Principal{User: "alice"}, "x", nil), errs: "no agent"},
		{name: "unknown method", rule: allowAll, req: policy.Request{Principal: alice, Method: "tools/destroy", Target: policy.Target{Kind: policy.KindServer}}, errs: "unknown method"},
		{name: "wrong kind", rule: allowAll, req: policy.Request{Principal: alice, Method: "tools/call", Target: policy.Target{Kind: policy.KindPrompt, Upstream: "a", Name: "b"}}, errs: "does not apply"},
		{name: "ping", rule: denyAll, req: session(nil, "ping"), effect: policy.Allow},
		{name: "notification", rule: denyAll, req: session(nil, "notifications/cancelled"), effect: policy.Allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pdp, c := start(t, tc.rule, tc.opts)
			pdp.SetFaults(tc.faults)
			d := c.DecideContext(context.Background(), tc.req)
			if d.Effect != tc.effect {
				t.Errorf("effect = %v, want %v (errors %q)", d.Effect, tc.effect, d.Errors)
			}
			if !slices.Equal(d.Reasons, tc.reasons) {
				t.Errorf("reasons = %q, want %q", d.Reasons, tc.reasons)
			}
			switch {
			case tc.errs == "" && len(d.Errors) > 0:
				t.Errorf("errors = %q, want none", d.Errors)
			case tc.errs != "" && (len(d.Errors) != 1 || !strings.Contains(d.Errors[0], tc.errs)):
				t.Errorf("errors = %q, want one containing %q", d.Errors, tc.errs)
			}
			for _, e := range d.Errors {
				if strings.Contains(e, "injected failure") || strings.Contains(e, "not a decision") {
					t.Errorf("error %q quotes the PDP's body", e)
				}
			}
			if d.Version != authzen.VersionOf(pdp.URL) {
				t.Errorf("version = %q", d.Version)
			}
			if s := pdp.Stats(); s.Single != tc.single || s.Batch != tc.batch {
				t.Errorf("PDP got %d single and %d batch requests, want %d and %d", s.Single, s.Batch, tc.single, tc.batch)
			}
		})
	}
}

// TestItemCallIsOneBatch: an item call is the listing question and the
// call in one request, with deny_on_first_deny, so the PDP may stop at the
// listing question.
func TestItemCallIsOneBatch(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	pdp, c := start(t, func(e authzentest.Evaluation) (bool, map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, fmt.Sprintf("%s listing=%v args=%v", e.Action.Name, e.Context["listing"], e.Context["arguments"]))
		return !strings.HasSuffix(e.Resource.ID, "hidden"), nil
	}, nil)
	r := policy.Request{
		Principal: alice, Method: "resources/subscribe",
		Target: policy.Target{Kind: policy.KindResource, Upstream: "fs", Name: "file:///a"},
		Args:   map[string]any{"uri": "file:///a"}, Time: noon,
	}
	if d := c.DecideContext(context.Background(), r); d.Effect != policy.Allow {
		t.Fatalf("subscribe: %v %q", d.Effect, d.Errors)
	}
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := asked
		asked = nil
		return out
	}
	want := []string{"resources/read listing=true args=<nil>", "resources/subscribe listing=false args=map[uri:file:///a]"}
	if got := taken(); !slices.Equal(got, want) {
		t.Errorf("PDP was asked %q, want %q", got, want)
	}
	r.Target.Name = "hidden"
	if d := c.DecideContext(context.Background(), r); d.Effect != policy.Deny || len(d.Errors) > 0 {
		t.Fatalf("subscribe of a hidden resource: %v %q", d.Effect, d.Errors)
	}
	if got := taken(); len(got) != 1 {
		t.Errorf("PDP evaluated %q, want the listing question only", got)
	}
	if s := pdp.Stats(); s.Batch != 2 || s.Single != 0 {
		t.Errorf("stats %+v, want two batch requests", s)
	}
}

// TestUnlistedItemIsNeverCallable: for a PDP that allows calls but no
// listing, nothing is listed and every item call is denied, with and
// without the batch endpoint.
func TestUnlistedItemIsNeverCallable(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatch=%v", noBatch), func(t *testing.T) {
			pdp, c := start(t, listingDenied, nil)
			pdp.SetFaults(authzentest.Faults{NoBatch: noBatch})
			ctx := context.Background()
			reqs := []policy.Request{
				toolCall(alice, "a", map[string]any{"x": 1}),
				{Principal: alice, Method: "prompts/get", Target: policy.Target{Kind: policy.KindPrompt, Upstream: "p", Name: "q"}, Time: noon},
				{Principal: alice, Method: "resources/read", Target: policy.Target{Kind: policy.KindResource, Upstream: "fs", Name: "file:///x"}, Time: noon},
				{Principal: robot, Method: "completion/complete", Target: policy.Target{Kind: policy.KindPrompt, Upstream: "p", Name: "q"}, Time: noon},
			}
			vis, err := c.VisibleAll(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range reqs {
				if vis[i] {
					t.Errorf("%s %s listed", r.Method, r.Target.Name)
				}
				if d := c.DecideContext(ctx, r); d.Effect != policy.Deny {
					t.Errorf("%s %s of an unlisted item: %v", r.Method, r.Target.Name, d.Effect)
				}
			}
		})
	}
}

func items(n int) []policy.Request {
	rs := make([]policy.Request, n)
	for i := range rs {
		rs[i] = policy.Request{
			Principal: alice, Method: "tools/call",
			Target: policy.Target{Kind: policy.KindTool, Upstream: "big", Name: fmt.Sprintf("tool%d", i)},
			Time:   noon,
		}
	}
	return rs
}

// evenTools lists the tools whose number is even.
func evenTools(e authzentest.Evaluation) (bool, map[string]any) {
	var n int
	fmt.Sscanf(e.Resource.Properties["name"].(string), "tool%d", &n)
	return n%2 == 0, nil
}

func TestVisibleAll(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n          int
		faults     authzentest.Faults
		opts       *authzen.Options
		batchSizes []int
		single     int
		err        string
	}{
		{name: "one batch", n: 150, batchSizes: []int{150}},
		{name: "chunked", n: 500, batchSizes: []int{100, 200, 200}},
		{name: "small chunks", n: 10, opts: &authzen.Options{BatchSize: 4, Concurrency: 1}, batchSizes: []int{2, 4, 4}},
		{name: "one item", n: 1, batchSizes: []int{1}},
		{name: "no batch endpoint", n: 30, faults: authzentest.Faults{NoBatch: true}, single: 30},
		{name: "no metadata, no batch", n: 30, faults: authzentest.Faults{NoBatch: true, NoMetadata: true}, single: 30},
		{name: "PDP fails", n: 500, faults: authzentest.Faults{Status: 503}, err: "status 503"},
		{name: "PDP fails, singles", n: 20, faults: authzentest.Faults{NoBatch: true, Status: 503}, err: "status 503"},
		{name: "wrong batch length", n: 50, faults: authzentest.Faults{DropResults: 1}, err: "answered 49 of 50", batchSizes: []int{50}},
		{name: "mix-up", n: 5, faults: authzentest.Faults{MetadataPDP: "https://evil.example"}, err: "mix-up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pdp, c := start(t, evenTools, tc.opts)
			pdp.SetFaults(tc.faults)
			got, err := c.VisibleAll(context.Background(), items(tc.n))
			s := pdp.Stats()
			slices.Sort(s.BatchSizes)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || got != nil {
					t.Fatalf("VisibleAll = %v, %v; want nil and an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range got {
				if v != (i%2 == 0) {
					t.Fatalf("item %d visible = %v", i, v)
				}
			}
			if !slices.Equal(s.BatchSizes, tc.batchSizes) || s.Single != tc.single {
				t.Errorf("PDP got batches %v and %d singles, want %v and %d", s.BatchSizes, s.Single, tc.batchSizes, tc.single)
			}
		})
	}
}

// TestVisibleAllSkipsUnmappable: a request that cannot be asked is not
// listed, and is not sent.
func TestVisibleAllSkipsUnmappable(t *testing.T) {
	pdp, c := start(t, allowAll, nil)
	rs := items(3)
	rs[1].Principal = nil
	rs[2].Target.Kind = policy.KindServer
	got, err := c.VisibleAll(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []bool{true, false, false}) {
		t.Errorf("visible = %v", got)
	}
	if s := pdp.Stats(); s.Evaluations != 1 {
		t.Errorf("PDP evaluated %d questions, want 1", s.Evaluations)
	}
	if got, err := c.VisibleAll(context.Background(), nil); err != nil || len(got) != 0 {
		t.Errorf("empty list: %v, %v", got, err)
	}
}

// TestDiscoveryFailureDeniesAndIsRetried: metadata naming another PDP
// denies every decision until it is fixed, is not fetched again by every
// request, and is fetched again after RetryDiscovery.
func TestDiscoveryFailureDeniesAndIsRetried(t *testing.T) {
	pdp, c := start(t, allowAll, &authzen.Options{RetryDiscovery: time.Second})
	pdp.SetFaults(authzentest.Faults{MetadataPDP: pdp.URL + "/other"})
	ctx := context.Background()
	if err := c.Discover(ctx); err == nil {
		t.Fatal("Discover accepted metadata of another PDP")
	}
	for range 3 {
		if d := c.DecideContext(ctx, session(alice, "initialize")); d.Effect != policy.Deny {
			t.Fatalf("decision with refused metadata: %v", d.Effect)
		}
	}
	if _, err := c.VisibleAll(ctx, items(2)); err == nil {
		t.Fatal("VisibleAll with refused metadata succeeded")
	}
	if s := pdp.Stats(); s.Metadata != 1 || s.Single+s.Batch != 0 {
		t.Errorf("stats %+v: want one metadata request and no evaluation", s)
	}
	pdp.SetFaults(authzentest.Faults{})
	deadline := time.Now().Add(10 * time.Second)
	for c.DecideContext(ctx, session(alice, "initialize")).Effect != policy.Allow {
		if time.Now().After(deadline) {
			t.Fatal("discovery was not retried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Discover(ctx); err != nil {
		t.Errorf("Discover after recovery: %v", err)
	}
}

// TestDiscoveryTenantPath: the metadata of a PDP identifier with a path is
// at the well-known URL with the path after it, and names the identifier.
func TestDiscoveryTenantPath(t *testing.T) {
	pdp := authzentest.New(allowAll, &authzentest.Options{Path: "/tenant1"})
	t.Cleanup(pdp.Close)
	c, err := authzen.New(pdp.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.DecideContext(context.Background(), toolCall(alice, "x", nil)); d.Effect != policy.Allow {
		t.Fatalf("decision: %v %q", d.Effect, d.Errors)
	}
	var paths []string
	for _, r := range pdp.Requests() {
		paths = append(paths, r.Method+" "+r.Path)
	}
	want := []string{"GET /.well-known/authzen-configuration/tenant1", "POST /tenant1/access/v1/evaluations"}
	if !slices.Equal(paths, want) {
		t.Errorf("requests %q, want %q", paths, want)
	}
}

// TestHeaders: configured headers authenticate Mandate to the PDP on every
// request, and every evaluation request has its own X-Request-ID.
func TestHeaders(t *testing.T) {
	pdp, c := start(t, allowAll, &authzen.Options{Headers: map[string]string{"Authorization": "Bearer pep-secret"}})
	ctx := context.Background()
	c.DecideContext(ctx, session(alice, "initialize"))
	c.DecideContext(ctx, session(alice, "initialize"))
	ids := map[string]bool{}
	for _, r := range pdp.Requests() {
		if got := r.Header.Get("Authorization"); got != "Bearer pep-secret" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
		}
		if r.Method == "POST" {
			id := r.Header.Get("X-Request-ID")
			if id == "" || ids[id] {
				t.Errorf("X-Request-ID %q empty or reused", id)
			}
			ids[id] = true
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		}
	}
	if len(ids) != 2 {
		t.Errorf("%d evaluation requests, want 2", len(ids))
	}
}

func TestNewRefusesInsecureIdentifiers(t *testing.T) {
	for _, u := range []string{
		"", "pdp.example.com", "http://pdp.example.com", "ftp://127.0.0.1", "https://user:pw@pdp.example.com",
		"https://pdp.example.com?tenant=1", "https://pdp.example.com#x", "http://10.0.0.1:8080",
	} {
		if _, err := authzen.New(u, nil); err == nil {
			t.Errorf("New(%q) accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q) error quotes the URL: %v", u, err)
		}
	}
	for _, u := range []string{"https://pdp.example.com", "https://pdp.example.com/tenant1/", "http://127.0.0.1:9000", "http://[::1]:9000", "http://localhost:1"} {
		if _, err := authzen.New(u, nil); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

// TestResponseSizeBounded: an answer larger than 1 MiB is refused, not
// read into memory.
func TestResponseSizeBounded(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	_, c := start(t, func(authzentest.Evaluation) (bool, map[string]any) {
		return true, map[string]any{"padding": big}
	}, nil)
	d := c.DecideContext(context.Background(), session(alice, "initialize"))
	if d.Effect != policy.Deny || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "larger than 1 MiB") {
		t.Errorf("oversized answer: %v %q", d.Effect, d.Errors)
	}
}
