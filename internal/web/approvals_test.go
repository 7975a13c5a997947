package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

// request files an approval request as the gateway does when a policy
// says a call of user's agent needs approval, and returns it.
func (e *pagesEnv) request(user, agent, upstream, tool string, args map[string]any) (store.Approval, *identity.Principal) {
	e.t.Helper()
	p := &identity.Principal{Issuer: e.url, User: user, Agent: agent, Method: identity.MethodAuthorizationCode}
	a, err := e.approvals.Request(context.Background(), p, upstream, tool, args, "sha256:v1")
	if err != nil {
		e.t.Fatal(err)
	}
	return a, p
}

func decide(id, decision, csrf string) url.Values {
	return url.Values{"csrf": {csrf}, "approval": {id}, "decision": {decision}}
}

// TestApprovalsPageListsOwnOnly: the page shows the signed-in user's
// requests, with the agent as the registry knows it, and nobody else's.
func TestApprovalsPageListsOwnOnly(t *testing.T) {
	e := newPagesEnv(t)
	own, _ := e.request("usr_alice", pagesAgent, "fs", "wipe", map[string]any{"path": "/srv/reports", "force": true})
	dcr, _ := e.request("usr_alice", "dcr-7", "mail", "send", map[string]any{"to": "x@example.com"})
	bobs, _ := e.request("usr_bob", pagesAgent, "fs", "wipe", map[string]any{"path": "/home/bob"})
	robots, _ := e.approvals.Request(context.Background(), &identity.Principal{Agent: "dcr-7",
		Method: identity.MethodClientCredentials}, "fs", "wipe", nil, "sha256:v1")

	b := e.browser()
	b.login("alice")
	p := b.get(web.ApprovalsPath)
	if p.status != http.StatusOK {
		t.Fatalf("approvals page: %d %s", p.status, p.body)
	}
	wantPageHeaders(t, p)
	for _, want := range []string{
		"Signed in as <strong>alice</strong>",
		`id="` + own.ID + `"`, `id="` + dcr.ID + `"`,
		"<strong>Public Agent</strong>", "trust: standard", "Pre-registered by your Mandate administrator.",
		"<strong>Self-named</strong> <span class=\"tag\">name not verified</span>", "trust: untrusted",
		"<code>fs / wipe</code>", `&#34;path&#34;: &#34;/srv/reports&#34;`, `&#34;force&#34;: true`,
		"sha256:v1", formatInstant(own.CreatedAt), formatInstant(own.ExpiresAt),
		`name="decision" value="approve"`, `name="decision" value="deny"`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("approvals page lacks %q", want)
		}
	}
	for _, other := range []string{bobs.ID, robots.ID, "/home/bob"} {
		if strings.Contains(p.body, other) {
			t.Errorf("approvals page shows another principal's request (%s)", other)
		}
	}

	bob := e.browser()
	bob.login("bob")
	if got := bob.get(web.ApprovalsPath); !strings.Contains(got.body, bobs.ID) || strings.Contains(got.body, own.ID) {
		t.Error("bob's page does not show exactly bob's request")
	}
	if agents := b.get(web.AgentsPath); !strings.Contains(agents.body, `<a href="/approvals" id="approvals-link">`) {
		t.Error("the agents page does not link the approvals page")
	}
}

// TestApprovalsPageEscapesArguments: arguments are the agent's words, shown
// to a person; they must never become markup.
func TestApprovalsPageEscapesArguments(t *testing.T) {
	e := newPagesEnv(t)
	e.request("usr_alice", pagesAgent, "fs", "write", map[string]any{
		"content": `<script>alert(1)</script>`, `<img src=x onerror=alert(2)>`: "k",
	})
	b := e.browser()
	b.login("alice")
	p := b.get(web.ApprovalsPath)
	if p.status != http.StatusOK {
		t.Fatalf("approvals page: %d %s", p.status, p.body)
	}
	for _, raw := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(p.body, raw) {
			t.Errorf("page contains unescaped %q", raw)
		}
	}
	for _, escaped := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;"} {
		if !strings.Contains(p.body, escaped) {
			t.Errorf("page lacks escaped %q", escaped)
		}
	}
}

// TestApprovalsPageApprove: approving on the page is approving as the CLI
// does: the agent's retry of exactly that call finds the approval and uses
// it once.
func TestApprovalsPageApprove(t *testing.T) {
	e := newPagesEnv(t)
	ctx := context.Background()
	args := map[string]any{"path": "/srv/reports"}
	a, principal := e.request("usr_alice", pagesAgent, "fs", "wipe", args)
	b := e.browser()
	b.login("alice")
	csrf := csrfOf(t, b.get(web.ApprovalsPath))

	r := b.post(web.DecideApprovalPath, decide(a.ID, "approve", csrf))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != web.ApprovalsPath+"?approved="+a.ID {
		t.Fatalf("approve: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	wantPageHeaders(t, r)
	got, err := e.approvals.Get(ctx, a.ID)
	if err != nil || got.Status != store.ApprovalApproved || got.DecidedBy != "user:usr_alice" {
		t.Fatalf("after approving: %+v, %v", got, err)
	}
	hash, _ := consent.ArgsHash(args)
	found, ok, err := e.approvals.Find(ctx, principal, "fs", "wipe", hash, "sha256:v1")
	if err != nil || !ok || found.ID != a.ID {
		t.Fatalf("the retried call finds no approval: %v %v", ok, err)
	}
	if _, err := e.approvals.Use(ctx, a.ID); err != nil {
		t.Fatalf("use: %v", err)
	}
	if _, err := e.approvals.Use(ctx, a.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second use: %v, want a conflict: an approval covers one call", err)
	}

	done := b.get(r.header.Get("Location"))
	if !strings.Contains(done.body, `id="approved"`) || !strings.Contains(done.body, "badge used") ||
		!strings.Contains(done.body, "by you, on this page") || !strings.Contains(done.body, `id="none-pending"`) {
		t.Errorf("the decision is not shown: %s", done.body)
	}
	// A decision is final.
	if r := b.post(web.DecideApprovalPath, decide(a.ID, "deny", csrf)); r.status != http.StatusConflict ||
		!strings.Contains(r.body, "This request is used") {
		t.Errorf("deciding again: %d %s", r.status, r.body)
	}
}

func TestApprovalsPageDeny(t *testing.T) {
	e := newPagesEnv(t)
	ctx := context.Background()
	args := map[string]any{"path": "/srv"}
	a, principal := e.request("usr_alice", pagesAgent, "fs", "wipe", args)
	b := e.browser()
	b.login("alice")
	r := b.post(web.DecideApprovalPath, decide(a.ID, "deny", csrfOf(t, b.get(web.ApprovalsPath))))
	if r.status != http.StatusSeeOther || r.header.Get("Location") != web.ApprovalsPath+"?denied="+a.ID {
		t.Fatalf("deny: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if got, _ := e.approvals.Get(ctx, a.ID); got.Status != store.ApprovalDenied {
		t.Errorf("status %s, want denied", got.Status)
	}
	hash, _ := consent.ArgsHash(args)
	if _, ok, _ := e.approvals.Find(ctx, principal, "fs", "wipe", hash, "sha256:v1"); ok {
		t.Error("a denied call finds an approval")
	}
	if done := b.get(r.header.Get("Location")); !strings.Contains(done.body, `id="denied"`) {
		t.Errorf("the denial is not shown: %s", done.body)
	}
}

// TestApprovalsPageExpiry: a request nobody decided in time is denied and
// cannot be approved late.
func TestApprovalsPageExpiry(t *testing.T) {
	e := newPagesEnv(t)
	a, principal := e.request("usr_alice", pagesAgent, "fs", "wipe", nil)
	b := e.browser()
	b.login("alice")
	csrf := csrfOf(t, b.get(web.ApprovalsPath))
	e.clock.Advance(e.approvals.Timeout() + time.Second)

	if r := b.post(web.DecideApprovalPath, decide(a.ID, "approve", csrf)); r.status != http.StatusConflict ||
		!strings.Contains(r.body, "This request is expired") {
		t.Errorf("approving an expired request: %d %s", r.status, r.body)
	}
	hash, _ := consent.ArgsHash(nil)
	if _, ok, _ := e.approvals.Find(context.Background(), principal, "fs", "wipe", hash, "sha256:v1"); ok {
		t.Error("an expired request was approved")
	}
	p := b.get(web.ApprovalsPath)
	if !strings.Contains(p.body, `id="none-pending"`) || !strings.Contains(p.body, "badge expired") ||
		!strings.Contains(p.body, "by nobody, in time") {
		t.Errorf("the expired request is not shown as decided: %s", p.body)
	}
}

// TestApprovalsPageOtherUsersRequest: another user's request, like a
// missing one, is a 404 and stays pending.
func TestApprovalsPageOtherUsersRequest(t *testing.T) {
	e := newPagesEnv(t)
	bobs, _ := e.request("usr_bob", pagesAgent, "fs", "wipe", nil)
	robots, err := e.approvals.Request(context.Background(), &identity.Principal{Agent: "dcr-7",
		Method: identity.MethodClientCredentials}, "fs", "wipe", nil, "sha256:v1")
	if err != nil {
		t.Fatal(err)
	}
	// The page has a form (and so a token) once alice has a request too.
	e.request("usr_alice", pagesAgent, "fs", "read", nil)
	b := e.browser()
	b.login("alice")
	csrf := csrfOf(t, b.get(web.ApprovalsPath))
	var notFound string
	for _, id := range []string{bobs.ID, robots.ID, "apr_nonexistent", ""} {
		for _, decision := range []string{"approve", "deny"} {
			r := b.post(web.DecideApprovalPath, decide(id, decision, csrf))
			if r.status != http.StatusNotFound {
				t.Errorf("%s %q: %d, want 404", decision, id, r.status)
			}
			if notFound == "" {
				notFound = r.body
			} else if r.body != notFound {
				t.Errorf("%s %q: the answer differs from a missing request's", decision, id)
			}
		}
	}
	for _, id := range []string{bobs.ID, robots.ID} {
		if a, _ := e.approvals.Get(context.Background(), id); a.Status != store.ApprovalPending {
			t.Errorf("alice decided %s: %s", id, a.Status)
		}
	}
}

func TestApprovalsPageCSRF(t *testing.T) {
	e := newPagesEnv(t)
	a, _ := e.request("usr_alice", pagesAgent, "fs", "wipe", nil)
	b := e.browser()
	b.login("alice")
	valid := csrfOf(t, b.get(web.ApprovalsPath))
	// The agents page's revoke token is for another form.
	if _, err := e.mandates.Grant(context.Background(), consent.Spec{User: "usr_alice", Agent: pagesAgent, Uses: 1,
		Grants: []consent.Grant{{Upstream: "*", Tool: "*"}}, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	revokeToken := csrfOf(t, b.get(web.AgentsPath))
	e.request("usr_bob", pagesAgent, "fs", "wipe", nil)
	bob := e.browser()
	bob.login("bob")
	bobToken := csrfOf(t, bob.get(web.ApprovalsPath))
	_, mac, _ := strings.Cut(valid, ".")

	for _, tt := range []struct {
		name   string
		form   url.Values
		header http.Header
	}{
		{"missing", url.Values{"approval": {a.ID}, "decision": {"approve"}}, nil},
		{"empty", decide(a.ID, "approve", ""), nil},
		{"wrong", decide(a.ID, "approve", "9999999999."+strings.Repeat("A", len(mac))), nil},
		{"tampered expiry", decide(a.ID, "approve", "9999999999."+mac), nil},
		{"the revoke form's", decide(a.ID, "approve", revokeToken), nil},
		{"another user's", decide(a.ID, "approve", bobToken), nil},
		{"cross-site", decide(a.ID, "approve", valid), http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		{"foreign origin", decide(a.ID, "approve", valid), http.Header{"Origin": {"https://evil.example"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(http.MethodPost, web.DecideApprovalPath, tt.form, tt.header)
			if r.status != http.StatusForbidden {
				t.Errorf("%d, want 403: %s", r.status, r.body)
			}
			wantPageHeaders(t, r)
		})
	}
	if got, _ := e.approvals.Get(context.Background(), a.ID); got.Status != store.ApprovalPending {
		t.Fatalf("decided without a valid token: %s", got.Status)
	}
	if r := b.post(web.DecideApprovalPath, decide(a.ID, "maybe", valid)); r.status != http.StatusBadRequest {
		t.Errorf("unknown decision: %d, want 400", r.status)
	}
	if r := b.post(web.DecideApprovalPath, decide(a.ID, "approve", valid)); r.status != http.StatusSeeOther {
		t.Errorf("the valid token was refused: %d %s", r.status, r.body)
	}
}

// TestApprovalsPageWithoutService: pages built without an approval service
// have no approvals page and do not link one.
func TestApprovalsPageWithoutService(t *testing.T) {
	st := newPagesEnv(t).st
	pages, err := web.NewPages(web.PagesOptions{
		Store: st, Mandates: consent.New(st, nil, nil), CSRFKey: make([]byte, 32),
		SessionUser: func(*http.Request) (store.User, bool) { return store.User{ID: "usr_alice", Username: "alice"}, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{web.ApprovalsPath: http.StatusNotFound, web.AgentsPath: http.StatusOK} {
		w := httptest.NewRecorder()
		pages.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != want || strings.Contains(w.Body.String(), "approvals-link") {
			t.Errorf("GET %s: %d, want %d, and no link: %s", path, w.Code, want, w.Body.String())
		}
	}
}

func formatInstant(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// Admin API.

func decodeApproval(t *testing.T, r response) web.ApprovalView {
	t.Helper()
	var v web.ApprovalView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return v
}

func TestAdminAPIApprovals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := consent.NewApprovals(e.st, nil)
	file := func(user, agent string, args map[string]any) store.Approval {
		a, err := svc.Request(ctx, &identity.Principal{User: user, Agent: agent}, "fs", "wipe", args, "sha256:v1")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	bobs := file("u-bob", cimdAgent, map[string]any{"path": "/srv", "api_key": "sk-live-0123456789abcdef"})
	roots := file("u-root", "console", nil)
	robots := file("", "robot", map[string]any{"n": 1})
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	list := func(query string) (int, []web.ApprovalView) {
		r := e.do(t, request{method: "GET", path: "approvals" + query, token: admin})
		var body struct{ Approvals []web.ApprovalView }
		if r.status == 200 {
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatal(err)
			}
		}
		return r.status, body.Approvals
	}

	for query, want := range map[string]int{
		"": 3, "?status=pending": 3, "?status=approved": 0, "?user=bob": 1,
		"?agent=robot": 1, "?agent=" + url.QueryEscape(cimdAgent): 1, "?user=bob&agent=console": 0,
	} {
		if status, got := list(query); status != 200 || len(got) != want {
			t.Errorf("list%s: %d, %d approvals, want %d", query, status, len(got), want)
		}
	}
	for query, want := range map[string]int{"?status=maybe": 400, "?user=nobody": 404} {
		if status, _ := list(query); status != want {
			t.Errorf("list%s: %d, want %d", query, status, want)
		}
	}

	r := e.do(t, request{method: "GET", path: "approvals/" + bobs.ID, token: admin})
	v := decodeApproval(t, r)
	if r.status != 200 || v.ID != bobs.ID || v.Username != "bob" || v.Agent != cimdAgent || v.Status != "pending" ||
		v.Upstream != "fs" || v.Tool != "wipe" || v.PolicyVersion != "sha256:v1" || v.ArgsHash != bobs.ArgsHash ||
		v.ExpiresAt == nil || v.DecidedAt != nil {
		t.Errorf("show: %d %+v", r.status, v)
	}
	if strings.Contains(string(r.body), "sk-live") || !strings.Contains(string(v.ArgsPreview), "[redacted]") {
		t.Errorf("the view shows more than the redacted preview: %s", v.ArgsPreview)
	}
	if r := e.do(t, request{method: "GET", path: "approvals/" + robots.ID, token: admin}); decodeApproval(t, r).User != "" {
		t.Errorf("an autonomous agent's request names a user: %s", r.body)
	}

	r = e.do(t, request{method: "POST", path: "approvals/" + bobs.ID + "/approve", token: admin})
	if v := decodeApproval(t, r); r.status != 200 || v.Status != "approved" || v.DecidedBy != "admin:u-root" || v.DecidedAt == nil {
		t.Errorf("approve: %d %+v", r.status, v)
	}
	hash, _ := consent.ArgsHash(map[string]any{"path": "/srv", "api_key": "sk-live-0123456789abcdef"})
	if _, ok, err := svc.Find(ctx, &identity.Principal{User: "u-bob", Agent: cimdAgent}, "fs", "wipe", hash, "sha256:v1"); !ok || err != nil {
		t.Errorf("the approved call finds no approval: %v", err)
	}
	if !strings.Contains(e.log.String(), `"action":"approval.approve"`) {
		t.Error("approval not logged")
	}
	r = e.do(t, request{method: "POST", path: "approvals/" + roots.ID + "/deny", token: admin})
	if v := decodeApproval(t, r); r.status != 200 || v.Status != "denied" {
		t.Errorf("deny: %d %+v", r.status, v)
	}
	r = e.do(t, request{method: "POST", path: "approvals/" + bobs.ID + "/deny", token: admin})
	if r.status != 409 || r.decode(t)["error"] != "approval request is approved, not pending; nothing changed" {
		t.Errorf("deciding twice: %d %s", r.status, r.body)
	}
	for _, req := range []request{
		{method: "GET", path: "approvals/apr_nope"},
		{method: "POST", path: "approvals/apr_nope/approve"},
		{method: "POST", path: "approvals/apr_nope/deny"},
	} {
		req.token = admin
		if r := e.do(t, req); r.status != 404 {
			t.Errorf("%s %s: %d, want 404", req.method, req.path, r.status)
		}
	}
	if r := e.do(t, request{method: "POST", path: "approvals/" + robots.ID + "/approve", token: admin,
		contentType: "application/x-www-form-urlencoded", body: "x=1"}); r.status != 415 {
		t.Errorf("form body: %d, want 415", r.status)
	}

	nonAdmin := token(t, localIssuer, "u-bob", "console", web.ScopeAdmin)
	for _, req := range []request{
		{method: "GET", path: "approvals"},
		{method: "GET", path: "approvals/" + robots.ID},
		{method: "POST", path: "approvals/" + robots.ID + "/approve"},
		{method: "POST", path: "approvals/" + robots.ID + "/deny"},
	} {
		req.token = nonAdmin
		if r := e.do(t, req); r.status != 403 {
			t.Errorf("%s %s by a non-admin: %d, want 403", req.method, req.path, r.status)
		}
	}
	if a, _ := svc.Get(ctx, robots.ID); a.Status != store.ApprovalPending {
		t.Errorf("refused requests decided %s: %s", robots.ID, a.Status)
	}
}

// TestAdminAPIApprovalsUnavailable: without an approval service the routes
// answer 503 and decide nothing.
func TestAdminAPIApprovalsUnavailable(t *testing.T) {
	e := newEnvWith(t, func(o *web.AdminOptions) { o.Approvals = nil })
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	for _, req := range []request{
		{method: "GET", path: "approvals"},
		{method: "GET", path: "approvals/apr_x"},
		{method: "POST", path: "approvals/apr_x/approve"},
	} {
		req.token = admin
		if r := e.do(t, req); r.status != 503 {
			t.Errorf("%s %s: %d, want 503", req.method, req.path, r.status)
		}
	}
}
