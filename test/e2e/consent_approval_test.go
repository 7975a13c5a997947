package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// These tests drive the two places where a person answers for an agent
// while it works: the consent page, reached from the refusal of a call no
// mandate covers, and the approval of a single call a policy holds for a
// human. Everything goes through a running `mandate serve`: the agent is
// the Go SDK client with a token from the embedded authorization server,
// alice is a browser signed in there, and the administrator is the CLI.

// Error codes of refused calls (internal/gateway).
const (
	codeDenied        = -31403
	codeNeedsApproval = -31428
)

// TestConsentPageGrantEndToEnd: the refusal of a call no mandate covers
// links alice to the consent page; she grants the mandate there, in the
// browser she signed in with for the agent, limited to echo and to
// messages starting with "ok". The agent's retry under the same access
// token goes through within that limit and not beyond it, and her
// revocation on the agents page denies the very next call although the
// token stays valid (AT-51).
func TestConsentPageGrantEndToEnd(t *testing.T) {
	t.Parallel()
	redirect := loopbackRedirect(t)
	m := startAuthMandate(t, authServe{Policy: defaultPolicy(t), Auth: webappClient(redirect)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The authorization server has no sign-in page of its own: alice signs
	// in when her agent sends her there, and the consent pages share that
	// session, so her browser is the one the code flow went through.
	browser := m.alice(nil)
	tok, err := CodeFlow{Meta: m.Meta, ClientID: "webapp", RedirectURI: redirect, Resource: m.URL}.Run(ctx, browser)
	if err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: bearerClient(tok.AccessToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	// The refusal carries the consent page's address.
	re := refusal(t, echo(ctx, cs, "ok, before consent"), codeDenied)
	if !strings.Contains(re.Message, "no mandate covers this call") {
		t.Errorf("refusal message %q", re.Message)
	}
	consentURL := errorData(t, re)["consentUrl"]
	if !strings.HasPrefix(consentURL, m.Issuer+"/consent?agent=webapp") {
		t.Fatalf("consentUrl %q, want %s/consent?agent=webapp…", consentURL, m.Issuer)
	}
	t.Logf("refusal: %s; consent page %s", re.Message, consentURL)

	page := getPage(ctx, t, browser.Client, consentURL)
	grant := findForm(t, page, consentURL, func(f pageForm) bool { return slices.Contains(f.offered["tool"], "demo__echo") })
	for _, name := range []string{"csrf", "arg.demo__echo", "kind.demo__echo", "value.demo__echo", "purpose", "expiry", "uses"} {
		if !grant.names[name] {
			t.Fatalf("the consent form has no field %q: %v", name, grant.names)
		}
	}
	if grant.values.Get("csrf") == "" {
		t.Fatal("the consent form carries no CSRF token")
	}
	if !slices.Contains(grant.values["tool"], "demo__echo") {
		t.Errorf("demo__echo, which the link names, is not ticked: %v", grant.values["tool"])
	}
	if !slices.Contains(grant.offered["kind.demo__echo"], "prefix") {
		t.Fatalf("the consent form offers no prefix check: %v", grant.offered["kind.demo__echo"])
	}
	form := cloneValues(grant.values)
	form["tool"] = []string{"demo__echo"}
	form.Set("arg.demo__echo", "message")
	form.Set("kind.demo__echo", "prefix")
	form.Set("value.demo__echo", "ok")
	form.Set("purpose", "e2e consent page")

	forged := cloneValues(form)
	forged.Del("csrf")
	if resp, body := postForm(ctx, t, browser.Client, grant.action, forged); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("grant without the CSRF token: %d %s", resp.StatusCode, pageText(body))
	}
	if err := echo(ctx, cs, "ok, after a forged grant"); err == nil {
		t.Fatal("a grant posted without the CSRF token let the call through")
	}

	resp, body := postForm(ctx, t, browser.Client, grant.action, form)
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/agents" || loc.Query().Get("granted") == "" {
		t.Fatalf("grant: %d to %v: %s", resp.StatusCode, loc, pageText(body))
	}
	mandateID := loc.Query().Get("granted")
	agents := getPage(ctx, t, browser.Client, loc.String())
	if !strings.Contains(agents, `id="`+mandateID+`"`) || !strings.Contains(agents, "demo / echo; message starts with ok") {
		t.Errorf("the agents page does not show mandate %s for echo with messages starting with ok: %s", mandateID, pageText(agents))
	}

	// The agent retries under the same token: no new login.
	if err := echo(ctx, cs, "ok, after consent"); err != nil {
		t.Fatalf("call the mandate covers: %v", err)
	}
	re = refusal(t, echo(ctx, cs, "not ok"), codeDenied)
	if !strings.Contains(re.Message, "message") {
		t.Errorf("refusal of a call breaking the limit: %q, want it to name the argument", re.Message)
	}
	if _, ok := errorData(t, re)["consentUrl"]; ok {
		t.Errorf("a call breaking the mandate's limit was sent to the consent page: %s", re.Data)
	}

	agentsURL := m.Issuer + "/agents"
	revoke := findForm(t, getPage(ctx, t, browser.Client, agentsURL), agentsURL, func(f pageForm) bool {
		return f.values.Get("mandate") == mandateID
	})
	if revoke.values.Get("csrf") == "" {
		t.Fatal("the revoke form carries no CSRF token")
	}
	resp, body = postForm(ctx, t, browser.Client, revoke.action, revoke.values)
	if loc, _ := resp.Location(); resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("revoked") != mandateID {
		t.Fatalf("revoke: %d to %v: %s", resp.StatusCode, loc, pageText(body))
	}
	re = refusal(t, echo(ctx, cs, "ok, after revocation"), codeDenied)
	if !strings.Contains(re.Message, "revoked") {
		t.Errorf("call after revocation: %q, want the revocation named", re.Message)
	}
	if status, challenge := mcpProbe(t, m.URL, tok.AccessToken); status != http.StatusOK {
		t.Errorf("the access token after revocation: %d %q, want still valid", status, challenge)
	}
}

// approvalPolicy is the default policy's shape with demo's echo in the
// place of a destructive tool: alice's agent may call it under her
// mandate, and each call needs a human's approval.
const approvalPolicy = `@id("session")
permit (
  principal,
  action in [Action::"initialize", Action::"server/discover", Action::"tools/list"],
  resource
);

@id("delegated-with-mandate")
permit (principal is User, action == Action::"tools/call", resource)
when { context.delegated && context.mandate.covered };

@id("echo-needs-approval")
@approval("required")
permit (principal is User, action == Action::"tools/call", resource == Tool::"demo/echo")
when { context.delegated && context.mandate.covered };
`

// TestApprovalEndToEnd: a call the policy holds for approval goes through
// once an administrator approves its request, exactly once and for exactly
// its arguments; a request denied, or decided by nobody before it expires,
// denies the call. The Go SDK client declares no elicitation, so nobody can
// be asked in band: the call is held for policy.approval_wait, and when
// that ends first it is refused with the request's id to retry with.
func TestApprovalEndToEnd(t *testing.T) {
	t.Parallel()

	t.Run("held", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		m, cs := startApprovalMandate(ctx, t, "20s", "")

		start := time.Now()
		first, err := whileHeld(ctx, t, m, "approve", "held call", nil, func() error { return echo(ctx, cs, "held call") })
		if err != nil {
			t.Fatalf("call approved while held: %v", err)
		}
		t.Logf("request %s approved while the call was held; the call returned after %v", first, time.Since(start).Round(time.Millisecond))
		if got := approvalStatus(t, m, first); got != "used" {
			t.Errorf("approvals list shows %s as %q, want used", first, got)
		}

		// The used approval does not cover the same call again: a new
		// request is made, and denying it denies the call.
		second, err := whileHeld(ctx, t, m, "deny", "held call", []string{first}, func() error { return echo(ctx, cs, "held call") })
		re := refusal(t, err, codeDenied)
		t.Logf("same call again: new request %s, denied: %s", second, re.Message)
		if !strings.Contains(re.Message, "denied") {
			t.Errorf("call whose request was denied: %q", re.Message)
		}
		if got := approvalStatus(t, m, second); got != "denied" {
			t.Errorf("approvals list shows %s as %q, want denied", second, got)
		}
		if got := approvalStatus(t, m, first); got != "used" {
			t.Errorf("approvals list shows %s as %q after the second call, want used", first, got)
		}
	})

	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		m, cs := startApprovalMandate(ctx, t, "1s", "")

		pending := func(msg string) string {
			t.Helper()
			re := refusal(t, echo(ctx, cs, msg), codeNeedsApproval)
			id := errorData(t, re)["approvalId"]
			if !strings.HasPrefix(id, "apr_") || !strings.Contains(re.Message, id) {
				t.Fatalf("pending refusal %q with data %s: want the request's id in both", re.Message, re.Data)
			}
			return id
		}
		a := pending("approve me")
		if out, err := m.admin("approvals", "approve", a); err != nil {
			t.Fatalf("approvals approve %s: %v\n%s", a, err, out)
		}
		// An approval covers its arguments only.
		if b := pending("other arguments"); b == a {
			t.Fatalf("a call with other arguments got the approved request %s", a)
		}
		if err := echo(ctx, cs, "approve me"); err != nil {
			t.Fatalf("retry of the approved call: %v", err)
		}
		if again := pending("approve me"); again == a {
			t.Fatalf("the used request %s was offered again", a)
		}
		if got := approvalStatus(t, m, a); got != "used" {
			t.Errorf("approvals list shows %s as %q, want used", a, got)
		}
	})

	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		const lifetime = 2 * time.Second
		m, cs := startApprovalMandate(ctx, t, "20s", lifetime.String())

		start := time.Now()
		re := refusal(t, echo(ctx, cs, "nobody decides"), codeDenied)
		took := time.Since(start)
		t.Logf("refused after %v: %s", took.Round(time.Millisecond), re.Message)
		if !strings.Contains(re.Message, "expired") {
			t.Errorf("call whose request nobody decided: %q", re.Message)
		}
		// Refused when the request expired, not when the wait ended.
		if took < lifetime-200*time.Millisecond || took > 15*time.Second {
			t.Errorf("refused after %v, want about the request's lifetime %v", took, lifetime)
		}
		id := ""
		for _, r := range listApprovals(t, m, "") {
			if strings.Contains(r.line, `"nobody decides"`) {
				id = r.id
				if r.status != "expired" {
					t.Errorf("approvals list shows the request as %q, want expired:\n%s", r.status, r.line)
				}
			}
		}
		if id == "" {
			t.Fatal("approvals list lacks the expired request")
		}
		if out, err := m.admin("approvals", "approve", id); err == nil || !strings.Contains(out, "expired") {
			t.Errorf("approving the expired request %s: %v\n%s", id, err, out)
		}
	})
}

// startApprovalMandate starts a server deciding with approvalPolicy, the
// given policy.approval_wait and policy.approval_timeout ("" keeps the
// default), gets alice's agent webapp a token, grants it a mandate for
// echo with the CLI and connects it.
func startApprovalMandate(ctx context.Context, t *testing.T, wait, lifetime string) (*authMandate, *mcp.ClientSession) {
	t.Helper()
	redirect := loopbackRedirect(t)
	pol := fmt.Sprintf("{dir: %q, require_listing: true, approval_wait: %s", writePolicyDir(t, approvalPolicy), wait)
	if lifetime != "" {
		pol += ", approval_timeout: " + lifetime
	}
	m := startAuthMandate(t, authServe{Auth: webappClient(redirect), PolicySection: pol + "}"})
	tok, err := CodeFlow{Meta: m.Meta, ClientID: "webapp", RedirectURI: redirect, Resource: m.URL}.Run(ctx, m.alice(nil))
	if err != nil {
		t.Fatalf("alice's token: %v", err)
	}
	if out, err := m.admin("mandates", "grant", "--user", "alice", "--agent", "webapp", "--upstream", "demo", "--tool", "echo",
		"--purpose", "e2e approvals"); err != nil {
		t.Fatalf("mandates grant: %v\n%s", err, out)
	}
	cs, err := connectMCP(ctx, &mcp.StreamableClientTransport{Endpoint: m.URL, HTTPClient: bearerClient(tok.AccessToken)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return m, cs
}

// whileHeld runs call, which the server holds for approval, while an
// administrator finds its pending request (the one for message msg whose
// id is not in skip) and decides it with verb ("approve" or "deny"). It
// returns the request's id and what call returned.
func whileHeld(ctx context.Context, t *testing.T, m *authMandate, verb, msg string, skip []string, call func() error) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type decision struct {
		id  string
		err error
	}
	decided := make(chan decision, 1)
	go func() {
		id, err := decidePending(ctx, m, verb, msg, skip)
		decided <- decision{id, err}
	}()
	callErr := call()
	cancel() // a call that came back on its own needs no decision
	d := <-decided
	if d.err != nil {
		t.Fatalf("the call came back (%v) before its request was decided: %v", callErr, d.err)
	}
	return d.id, callErr
}

// decidePending polls `mandate approvals list --status pending` until the
// request for msg shows up, then decides it with `mandate approvals VERB`.
func decidePending(ctx context.Context, m *authMandate, verb, msg string, skip []string) (string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		rows, err := approvalsList(m, "pending")
		if err != nil {
			return "", err
		}
		for _, r := range rows {
			if strings.Contains(r.line, fmt.Sprintf(`{"message":%q}`, msg)) && !slices.Contains(skip, r.id) {
				if out, err := m.admin("approvals", verb, r.id); err != nil {
					return "", fmt.Errorf("approvals %s %s: %w\n%s", verb, r.id, err, out)
				}
				return r.id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no pending request for %q: %w", msg, ctx.Err())
		case <-tick.C:
		}
	}
}

// approvalLine is one request in `mandate approvals list`.
type approvalLine struct{ id, status, line string }

var approvalStatuses = []string{"pending", "approved", "denied", "used", "expired"}

// approvalsList runs `mandate approvals list [--status STATUS]`. A row is
// "ID USER AGENT CALL ARGUMENTS STATUS EXPIRES DECIDED-BY"; the arguments
// preview may hold spaces, so the status is the first field after it that
// names one.
func approvalsList(m *authMandate, status string) ([]approvalLine, error) {
	args := []string{"approvals", "list"}
	if status != "" {
		args = append(args, "--status", status)
	}
	out, err := m.admin(args...)
	if err != nil {
		return nil, fmt.Errorf("approvals list: %w\n%s", err, out)
	}
	var rows []approvalLine
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "apr_") {
			continue
		}
		r := approvalLine{id: f[0], line: line}
		for i := len(f) - 1; i > 0; i-- {
			if slices.Contains(approvalStatuses, f[i]) {
				r.status = f[i]
				break
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func listApprovals(t *testing.T, m *authMandate, status string) []approvalLine {
	t.Helper()
	rows, err := approvalsList(m, status)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// approvalStatus is the status `mandate approvals list` shows for id.
func approvalStatus(t *testing.T, m *authMandate, id string) string {
	t.Helper()
	for _, r := range listApprovals(t, m, "") {
		if r.id == id {
			return r.status
		}
	}
	t.Fatalf("approvals list lacks %s", id)
	return ""
}

// refusal is the JSON-RPC error a refused call came back with, which must
// have code.
func refusal(t *testing.T, err error, code int64) *jsonrpc.Error {
	t.Helper()
	var re *jsonrpc.Error
	if !errors.As(err, &re) {
		t.Fatalf("want a refusal with code %d, got %v", code, err)
	}
	if re.Code != code {
		t.Fatalf("refusal %d %q (data %s), want code %d", re.Code, re.Message, re.Data, code)
	}
	return re
}

// errorData decodes a refusal's data, an object of strings; none is empty.
func errorData(t *testing.T, re *jsonrpc.Error) map[string]string {
	t.Helper()
	data := map[string]string{}
	if len(re.Data) == 0 {
		return data
	}
	var raw map[string]any
	if err := json.Unmarshal(re.Data, &raw); err != nil {
		t.Fatalf("refusal data %s: %v", re.Data, err)
	}
	for k, v := range raw {
		if s, ok := v.(string); ok {
			data[k] = s
		}
	}
	return data
}

// pageForm is one form of a page as a browser would submit it unchanged.
type pageForm struct {
	// action is where it posts, resolved against the page's URL.
	action string
	// names are its named controls.
	names map[string]bool
	// values are what it submits untouched: hidden and text inputs, ticked
	// boxes and radios, selected options.
	values url.Values
	// offered lists, by name, the values of checkboxes, radios and
	// options the person can choose from.
	offered map[string][]string
}

var (
	selectRE = regexp.MustCompile(`(?is)<select\b([^>]*)>(.*?)</select>`)
	optionRE = regexp.MustCompile(`(?is)<option\b([^>]*)>`)
	// bareAttrRE finds a valueless boolean attribute such as checked.
	bareAttrRE = regexp.MustCompile(`(?i)\s(checked|selected)(\s|/|$)`)
)

// pageForms reads every POST form of page, which was served at base.
func pageForms(page, base string) ([]pageForm, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var forms []pageForm
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		fa := attrs(m[1])
		if !strings.EqualFold(fa["method"], "post") {
			continue
		}
		to, err := b.Parse(fa["action"])
		if err != nil {
			return nil, fmt.Errorf("form action %q: %w", fa["action"], err)
		}
		f := pageForm{action: to.String(), names: map[string]bool{}, values: url.Values{}, offered: map[string][]string{}}
		for _, in := range fieldRE.FindAllStringSubmatch(m[2], -1) {
			a := attrs(in[2])
			name := a["name"]
			if name == "" || !strings.EqualFold(in[1], "input") {
				continue
			}
			f.names[name] = true
			switch typ := strings.ToLower(a["type"]); typ {
			case "checkbox", "radio":
				f.offered[name] = append(f.offered[name], a["value"])
				if bareAttrRE.MatchString(in[2]) {
					f.values.Add(name, a["value"])
				}
			case "submit", "button":
			default:
				f.values.Set(name, a["value"])
			}
		}
		for _, sel := range selectRE.FindAllStringSubmatch(m[2], -1) {
			name := attrs(sel[1])["name"]
			if name == "" {
				continue
			}
			f.names[name] = true
			for _, opt := range optionRE.FindAllStringSubmatch(sel[2], -1) {
				v := attrs(opt[1])["value"]
				f.offered[name] = append(f.offered[name], v)
				if bareAttrRE.MatchString(opt[1]) {
					f.values.Set(name, v)
				}
			}
		}
		forms = append(forms, f)
	}
	return forms, nil
}

// findForm returns the one form of page (served at base) that match
// accepts.
func findForm(t *testing.T, page, base string, match func(pageForm) bool) pageForm {
	t.Helper()
	forms, err := pageForms(page, base)
	if err != nil {
		t.Fatal(err)
	}
	var found []pageForm
	for _, f := range forms {
		if match(f) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d matching forms among %d, want 1: %s", base, len(found), len(forms), pageText(page))
	}
	return found[0]
}

// getPage GETs target with c and returns the page, which must be 200.
func getPage(ctx context.Context, t *testing.T, c *http.Client, target string) string {
	t.Helper()
	resp, body := browse(ctx, t, c, http.MethodGet, target, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, resp.StatusCode, pageText(body))
	}
	return body
}

// postForm submits form to target with c, as the page's own origin does.
func postForm(ctx context.Context, t *testing.T, c *http.Client, target string, form url.Values) (*http.Response, string) {
	t.Helper()
	return browse(ctx, t, c, http.MethodPost, target, form)
}

// browse sends one browser request: HTML accepted, cookies from c's jar,
// redirects not followed, and on a POST the Origin a browser sends, which
// the pages check.
func browse(ctx context.Context, t *testing.T, c *http.Client, method, target string, form url.Values) (*http.Response, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", u.Scheme+"://"+u.Host)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	return resp, string(raw)
}
