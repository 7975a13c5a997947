package web_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/web"
)

func decodeMandate(t *testing.T, r response) web.MandateView {
	t.Helper()
	var v web.MandateView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return v
}

func listMandates(t *testing.T, e *env, tok, query string) (int, []web.MandateView) {
	t.Helper()
	r := e.do(t, request{method: "GET", path: "mandates" + query, token: tok})
	var body struct{ Mandates []web.MandateView }
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
	}
	return r.status, body.Mandates
}

func TestAdminAPIMandates(t *testing.T) {
	e := newEnv(t)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	expires := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	spec := func(user, agent string, extra string) string {
		return `{"user":"` + user + `","agent":"` + agent + `","purpose":"reports",` +
			`"grants":[{"upstream":"fs","tool":"read_*","constraints":[{"arg":"path","prefix":"/srv/reports"}]}],` +
			`"expires_at":"` + expires.Format(time.RFC3339) + `"` + extra + `}`
	}
	post := func(body string) response {
		return e.do(t, request{method: "POST", path: "mandates", token: admin, contentType: "application/json", body: body})
	}

	r := post(spec("bob", cimdAgent, `,"uses":3`))
	if r.status != 200 {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	m := decodeMandate(t, r)
	if m.User != "u-bob" || m.Username != "bob" || m.Agent != cimdAgent || m.Status != "active" ||
		m.UsesLeft == nil || *m.UsesLeft != 3 || m.Purpose != "reports" || m.ExpiresAt == nil || !m.ExpiresAt.Equal(expires) ||
		len(m.Grants) != 1 || m.Grants[0].Constraints[0].Prefix != "/srv/reports" {
		t.Errorf("granted %+v", m)
	}
	if !strings.Contains(e.log.String(), `"action":"mandate.grant"`) {
		t.Error("grant not logged")
	}
	r = post(spec("root", "console", ""))
	if r.status != 200 {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	unlimited := decodeMandate(t, r)
	if unlimited.UsesLeft != nil {
		t.Errorf("uses absent: uses_left %v, want null (unlimited)", *unlimited.UsesLeft)
	}

	for query, want := range map[string]int{
		"": 2, "?user=bob": 1, "?user=root": 1, "?agent=" + url.QueryEscape(cimdAgent): 1,
		"?user=bob&agent=console": 0, "?agent=ci-bot": 0,
	} {
		status, list := listMandates(t, e, admin, query)
		if status != 200 || len(list) != want {
			t.Errorf("list%s: %d, %d mandates, want %d", query, status, len(list), want)
		}
	}
	if status, _ := listMandates(t, e, admin, "?user=nobody"); status != 404 {
		t.Errorf("list for an unknown user: %d, want 404", status)
	}

	r = e.do(t, request{method: "GET", path: "mandates/" + m.ID, token: admin})
	if got := decodeMandate(t, r); r.status != 200 || got.ID != m.ID || got.Username != "bob" {
		t.Errorf("show: %d %+v", r.status, got)
	}
	if r := e.do(t, request{method: "GET", path: "mandates/mnd_nope", token: admin}); r.status != 404 {
		t.Errorf("show unknown: %d", r.status)
	}

	r = e.do(t, request{method: "POST", path: "mandates/" + m.ID + "/revoke", token: admin})
	revoked := decodeMandate(t, r)
	if r.status != 200 || revoked.Status != "revoked" || revoked.RevokedBy != "admin:u-root" || revoked.RevokedAt == nil {
		t.Errorf("revoke: %d %+v", r.status, revoked)
	}
	if r := e.do(t, request{method: "POST", path: "mandates/mnd_nope/revoke", token: admin}); r.status != 404 {
		t.Errorf("revoke unknown: %d", r.status)
	}

	for name, body := range map[string]string{
		"unknown user":    spec("nobody", "console", ""),
		"disabled user":   spec("eve", "console", ""),
		"unknown agent":   spec("bob", "no-such-agent", ""),
		"zero uses":       spec("bob", "console", `,"uses":0`),
		"unknown member":  spec("bob", "console", `,"user_id":"u-root"`),
		"no grants":       `{"user":"bob","agent":"console","expires_at":"` + expires.Format(time.RFC3339) + `"}`,
		"past expiry":     `{"user":"bob","agent":"console","grants":[{"upstream":"*","tool":"*"}],"expires_at":"2020-01-01T00:00:00Z"}`,
		"empty body":      ``,
		"trailing data":   spec("bob", "console", "") + `{}`,
		"bad constraint":  `{"user":"bob","agent":"console","grants":[{"upstream":"*","tool":"*","constraints":[{"arg":"x"}]}],"expires_at":"` + expires.Format(time.RFC3339) + `"}`,
		"missing agent":   `{"user":"bob"}`,
		"not even object": `[]`,
	} {
		if r := post(body); r.status != 400 {
			t.Errorf("%s: %d, want 400: %s", name, r.status, r.body)
		}
	}
	if r := e.do(t, request{method: "POST", path: "mandates", token: admin, contentType: "application/x-www-form-urlencoded",
		body: "user=bob"}); r.status != 415 {
		t.Errorf("form body: %d, want 415", r.status)
	}
	if status, list := listMandates(t, e, admin, ""); status != 200 || len(list) != 2 {
		t.Errorf("refused requests granted mandates: %d mandates", len(list))
	}
}

func TestAdminAPIMandatesNeedAdmin(t *testing.T) {
	e := newEnv(t)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	r := e.do(t, request{method: "POST", path: "mandates", token: admin, contentType: "application/json",
		body: `{"user":"bob","agent":"console","grants":[{"upstream":"*","tool":"*"}],"expires_at":"` +
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`})
	if r.status != 200 {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	id := decodeMandate(t, r).ID
	nonAdmin := token(t, localIssuer, "u-bob", "console", web.ScopeAdmin)
	for _, req := range []request{
		{method: "GET", path: "mandates"},
		{method: "GET", path: "mandates?user=bob"},
		{method: "GET", path: "mandates/" + id},
		{method: "POST", path: "mandates", contentType: "application/json",
			body: `{"user":"bob","agent":"console","grants":[{"upstream":"*","tool":"*"}],"expires_at":"2099-01-01T00:00:00Z"}`},
		{method: "POST", path: "mandates/" + id + "/revoke"},
	} {
		req.token = nonAdmin
		if r := e.do(t, req); r.status != 403 {
			t.Errorf("%s %s by a non-admin: %d, want 403", req.method, req.path, r.status)
		}
	}
	_, list := listMandates(t, e, admin, "")
	if len(list) != 1 || list[0].Status != "active" {
		t.Errorf("a non-admin changed mandates: %+v", list)
	}
}
