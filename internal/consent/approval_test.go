package consent_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
)

var approver = &identity.Principal{Issuer: "test", User: "alice", Agent: "agent-a", Method: identity.MethodAuthorizationCode}

func newApprovals(t *testing.T, o *consent.ApprovalOptions) (*consent.Approvals, *clock, store.Store) {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	c := &clock{now: t0}
	if o == nil {
		o = &consent.ApprovalOptions{}
	}
	o.Now = c.Now
	return consent.NewApprovals(st, o), c, st
}

func args(t *testing.T, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustHash(t *testing.T, m map[string]any) string {
	t.Helper()
	h, err := consent.ArgsHash(m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestArgsHashCanonical: the hash an approval is bound to depends on the
// arguments' values only, not on how the agent spelled the JSON.
func TestArgsHashCanonical(t *testing.T) {
	want := sha256.Sum256([]byte(`{"a":[true,null,"x<&>"],"b":{"c":1,"d":0.5},"e":""}`))
	for _, text := range []string{
		`{"a":[true,null,"x<&>"],"b":{"c":1,"d":0.5},"e":""}`,
		`{ "e" : "", "b" : { "d" : 5e-1, "c" : 1.0 }, "a" : [ true , null , "x\u003c&>" ] }`,
		`{"b":{"c":10e-1,"d":0.50},"e":"","a":[true,null,"x<&>"]}`,
	} {
		if got := mustHash(t, args(t, text)); got != hex.EncodeToString(want[:]) {
			t.Errorf("ArgsHash(%s) = %s, want the hash of the canonical form", text, got)
		}
	}
	if mustHash(t, nil) != mustHash(t, map[string]any{}) {
		t.Error("no arguments and {} hash differently")
	}
	base := mustHash(t, args(t, `{"amount":100,"to":"bob"}`))
	for _, text := range []string{
		`{"amount":101,"to":"bob"}`, `{"amount":"100","to":"bob"}`, `{"amount":100,"to":"bob "}`,
		`{"amount":100,"to":"bob","cc":null}`, `{"amount":100}`, `{"amount":[100],"to":"bob"}`,
	} {
		if mustHash(t, args(t, text)) == base {
			t.Errorf("ArgsHash(%s) equals the hash of a different call", text)
		}
	}
	// Go values built in code hash as the JSON they encode to.
	if got := mustHash(t, map[string]any{"n": 3, "l": []string{"x"}}); got != mustHash(t, args(t, `{"l":["x"],"n":3}`)) {
		t.Error("typed Go values hash differently from their JSON")
	}
}

func TestArgsHashRefusesNonFinite(t *testing.T) {
	for _, v := range []any{nan(), make(chan int)} {
		if _, err := consent.ArgsHash(map[string]any{"x": v}); err == nil {
			t.Errorf("ArgsHash(%v) succeeded, want an error", v)
		}
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestArgsPreviewRedactsAndTruncates(t *testing.T) {
	long := strings.Repeat("é", 70)
	got := consent.ArgsPreview(args(t, `{
		"to": "bob@example.com", "Password": "hunter2", "api_key": "k", "nested": {"access_token": "t", "n": 3},
		"header": "Bearer abcdefghijklmnop", "body": "`+long+`", "list": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22]
	}`))
	want := `{"Password":"[redacted]","api_key":"[redacted]","body":"` + strings.Repeat("é", 64) + `…","header":"[redacted]",` +
		`"list":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,"… 2 more"],"nested":{"access_token":"[redacted]","n":3},"to":"bob@example.com"}`
	if got != want {
		t.Errorf("ArgsPreview =\n\t%s\nwant\n\t%s", got, want)
	}
	if got := consent.ArgsPreview(nil); got != `{}` {
		t.Errorf("ArgsPreview(nil) = %s", got)
	}
	huge := map[string]any{}
	for i := range 200 {
		huge[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("v", 60)
	}
	if got := consent.ArgsPreview(huge); !json.Valid([]byte(got)) || len(got) > 4096 {
		t.Errorf("ArgsPreview of large arguments = %d bytes, valid JSON %v", len(got), json.Valid([]byte(got)))
	}
}

// TestApprovalBoundToExactCall: an approval matches only the call it was
// given for; a change to any one of principal, upstream, tool, arguments or
// policy version needs a new approval.
func TestApprovalBoundToExactCall(t *testing.T) {
	svc, _, _ := newApprovals(t, nil)
	ctx := t.Context()
	call := args(t, `{"to":"bob","amount":100}`)
	rec, err := svc.Request(ctx, approver, "bank", "transfer", call, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.ApprovalPending || !strings.HasPrefix(rec.ID, "apr_") || rec.ExpiresAt.Sub(rec.CreatedAt) != consent.DefaultApprovalTimeout {
		t.Fatalf("new request = %+v", rec)
	}
	hash := mustHash(t, call)
	if _, ok, err := svc.Find(ctx, approver, "bank", "transfer", hash, "v1"); err != nil || ok {
		t.Fatalf("Find before approval = %v, %v; want none", ok, err)
	}
	if _, err := svc.Decide(ctx, rec.ID, true, "cli"); err != nil {
		t.Fatal(err)
	}
	otherUser, otherAgent := *approver, *approver
	otherUser.User, otherAgent.Agent = "bob", "agent-b"
	tests := []struct {
		name                 string
		p                    *identity.Principal
		upstream, tool, hash string
		version              string
		want                 bool
	}{
		{"exact call", approver, "bank", "transfer", hash, "v1", true},
		{"other user", &otherUser, "bank", "transfer", hash, "v1", false},
		{"other agent", &otherAgent, "bank", "transfer", hash, "v1", false},
		{"other upstream", approver, "bank2", "transfer", hash, "v1", false},
		{"other tool", approver, "bank", "transfer_all", hash, "v1", false},
		{"other arguments", approver, "bank", "transfer", mustHash(t, args(t, `{"to":"bob","amount":1000}`)), "v1", false},
		{"other policy version", approver, "bank", "transfer", hash, "v2", false},
		{"no principal", nil, "bank", "transfer", hash, "v1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := svc.Find(ctx, tc.p, tc.upstream, tc.tool, tc.hash, tc.version)
			if err != nil || ok != tc.want || (ok && got.ID != rec.ID) {
				t.Errorf("Find = %s, %v, %v; want found %v", got.ID, ok, err, tc.want)
			}
		})
	}
}

// TestApprovalSingleUse: an approval lets exactly one call through.
func TestApprovalSingleUse(t *testing.T) {
	svc, _, _ := newApprovals(t, nil)
	ctx := t.Context()
	rec, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/tmp/x"}`), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Use(ctx, rec.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Use of a pending approval: %v, want ErrConflict", err)
	}
	if _, err := svc.Decide(ctx, rec.ID, true, "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, rec.ID, false, "someone-else"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second decision: %v, want ErrConflict", err)
	}
	used, err := svc.Use(ctx, rec.ID)
	if err != nil || used.Status != store.ApprovalUsed {
		t.Fatalf("Use = %+v, %v", used, err)
	}
	if _, err := svc.Use(ctx, rec.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second Use: %v, want ErrConflict", err)
	}
	if _, ok, err := svc.Find(ctx, approver, "fs", "delete", rec.ArgsHash, "v1"); ok || err != nil {
		t.Fatalf("Find after use = %v, %v; want none", ok, err)
	}
	// The same call again needs a new approval.
	again, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/tmp/x"}`), "v1")
	if err != nil || again.ID == rec.ID {
		t.Fatalf("Request after use = %s, %v; want a new approval", again.ID, err)
	}
}

// TestApprovalTimeoutDenies: a request nobody decided in time cannot be
// approved any more, and an approval not used in time cannot be used.
func TestApprovalTimeoutDenies(t *testing.T) {
	svc, c, _ := newApprovals(t, &consent.ApprovalOptions{Timeout: time.Minute})
	ctx := t.Context()
	late, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/a"}`), "v1")
	if err != nil {
		t.Fatal(err)
	}
	unused, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/b"}`), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Decide(ctx, unused.ID, true, "cli"); err != nil {
		t.Fatal(err)
	}
	c.Set(t0.Add(time.Minute))
	if _, err := svc.Decide(ctx, late.ID, true, "cli"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("decision after the timeout: %v, want ErrConflict", err)
	}
	if _, ok, err := svc.Find(ctx, approver, "fs", "delete", unused.ArgsHash, "v1"); ok || err != nil {
		t.Fatalf("Find of an expired approval = %v, %v", ok, err)
	}
	if _, err := svc.Use(ctx, unused.ID); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Use after the timeout: %v, want ErrConflict", err)
	}
	expired, err := svc.List(ctx, store.ApprovalExpired)
	if err != nil {
		t.Fatal(err)
	}
	if len(expired) != 2 {
		t.Fatalf("List(expired) = %d approvals, want 2", len(expired))
	}
	if pending, err := svc.List(ctx, store.ApprovalPending); err != nil || len(pending) != 0 {
		t.Fatalf("List(pending) = %d, %v; want none", len(pending), err)
	}
	if got, err := svc.Get(ctx, late.ID); err != nil || got.Status != store.ApprovalExpired {
		t.Fatalf("Get = %s, %v", got.Status, err)
	}
	// A retry after the timeout asks again.
	again, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/a"}`), "v1")
	if err != nil || again.ID == late.ID {
		t.Fatalf("Request after the timeout = %s, %v; want a new approval", again.ID, err)
	}
}

// TestApprovalRequestReusesPending: an agent retrying before anyone
// decided gets the same request, not a new one per retry.
func TestApprovalRequestReusesPending(t *testing.T) {
	svc, _, _ := newApprovals(t, nil)
	ctx := t.Context()
	first, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/a"}`), "v1")
	if err != nil {
		t.Fatal(err)
	}
	second, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{ "path" : "/a" }`), "v1")
	if err != nil || second.ID != first.ID {
		t.Fatalf("retry = %s, %v; want %s", second.ID, err, first.ID)
	}
	other, err := svc.Request(ctx, approver, "fs", "delete", args(t, `{"path":"/b"}`), "v1")
	if err != nil || other.ID == first.ID {
		t.Fatalf("other arguments = %s, %v; want a new request", other.ID, err)
	}
	all, err := svc.List(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("List = %d, %v; want 2", len(all), err)
	}
}

// TestApprovalStoreFailureFailsClosed (invariant 1): when approvals cannot
// be read, nothing is found approved and nothing can be requested.
func TestApprovalStoreFailureFailsClosed(t *testing.T) {
	svc, _, st := newApprovals(t, nil)
	st.Close()
	ctx := t.Context()
	if _, ok, err := svc.Find(ctx, approver, "fs", "delete", mustHash(t, nil), "v1"); ok || !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Find on a closed store = %v, %v", ok, err)
	}
	if _, err := svc.Request(ctx, approver, "fs", "delete", nil, "v1"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Request on a closed store: %v", err)
	}
	if _, err := svc.Use(ctx, "apr_x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Use on a closed store: %v", err)
	}
}

func TestApprovalWebhook(t *testing.T) {
	got := make(chan consent.Webhook, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var wh consent.Webhook
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &wh) != nil {
			t.Errorf("webhook %s %s: %s", r.Method, r.Header.Get("Content-Type"), b)
		}
		if strings.Contains(string(b), "hunter2") {
			t.Errorf("webhook carries a secret: %s", b)
		}
		got <- wh
	}))
	defer srv.Close()
	svc, _, _ := newApprovals(t, &consent.ApprovalOptions{
		WebhookURL: srv.URL, ApproveURL: func(id string) string { return "https://mandate.example/approvals/" + id },
	})
	rec, err := svc.Request(t.Context(), approver, "db", "drop", args(t, `{"table":"users","password":"hunter2"}`), "v1")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case wh := <-got:
		want := consent.Webhook{
			ID: rec.ID, User: "alice", Agent: "agent-a", Upstream: "db", Tool: "drop",
			ArgsPreview: json.RawMessage(`{"password":"[redacted]","table":"users"}`), ExpiresAt: rec.ExpiresAt,
			ApproveURL: "https://mandate.example/approvals/" + rec.ID,
		}
		gb, _ := json.Marshal(wh)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("webhook =\n\t%s\nwant\n\t%s", gb, wb)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook")
	}
}

// TestApprovalWebhookFailureIsNotFatal: a receiver that is down or slow
// neither fails nor holds up the request.
func TestApprovalWebhookFailureIsNotFatal(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	for _, url := range []string{srv.URL, "http://127.0.0.1:1/unreachable"} {
		svc, _, _ := newApprovals(t, &consent.ApprovalOptions{WebhookURL: url, WebhookTimeout: 100 * time.Millisecond})
		start := time.Now()
		if _, err := svc.Request(t.Context(), approver, "db", "drop", nil, "v1"); err != nil {
			t.Fatalf("Request with webhook %s: %v", url, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Request waited %v for webhook %s", d, url)
		}
	}
}

// FuzzArgsHash: for any arguments an agent can send, the hash does not
// depend on the spelling of the JSON, and the preview is storable JSON.
func FuzzArgsHash(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"b":[1,2,{"c":null}],"a":"x"}`, `{"n":1e308,"m":-0,"s":"\u0000\ud800"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var m map[string]any
		if json.Unmarshal([]byte(text), &m) != nil {
			return
		}
		h1, err := consent.ArgsHash(m)
		if err != nil {
			t.Fatalf("ArgsHash(%s): %v", text, err)
		}
		respelled, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		var again map[string]any
		if err := json.Unmarshal(respelled, &again); err != nil {
			t.Fatal(err)
		}
		if h2, err := consent.ArgsHash(again); err != nil || h2 != h1 {
			t.Fatalf("ArgsHash(%s) = %s, of its re-encoding %s = %s, %v", text, h1, respelled, h2, err)
		}
		p := consent.ArgsPreview(m)
		if !json.Valid([]byte(p)) || len(p) > 4096 || strings.ContainsRune(p, 0) {
			t.Fatalf("ArgsPreview(%s) = %q", text, p)
		}
	})
}
