package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Paths of the pages NewPages serves.
const (
	// ConsentPath serves the consent page when its query names an agent
	// (?agent=CLIENT_ID); any other request for it is the embedded
	// authorization server's OAuth consent hand-off (?id=...), which
	// PagesOptions.OAuthConsent serves. The two share the path because both
	// are "the consent page" to the person using them.
	ConsentPath = "/consent"
	// AgentsPath lists the signed-in user's mandates, by agent.
	AgentsPath = "/agents"
	// RevokePath revokes one of them.
	RevokePath = "/agents/revoke"
	// ApprovalsPath lists the approval requests of calls made for the
	// signed-in user: pending ones to decide, and the latest decided. Each
	// request's row has the request's id as its HTML id, so
	// ApprovalsPath+"#"+id links to one request.
	ApprovalsPath = "/approvals"
	// DecideApprovalPath approves or denies one of them.
	DecideApprovalPath = "/approvals/decide"
)

// Tool is one upstream tool as the consent page offers it; see
// gateway.ToolInfo, which the composition root converts.
type Tool struct {
	Upstream    string
	Name        string // the upstream's own name, which the mandate grants
	PublicName  string // the name agents call it by, and the form's key
	Title       string
	Description string
	Destructive bool
	ReadOnly    bool
}

// PagesStore is the part of the storage contract the pages read.
type PagesStore interface {
	GetAgent(ctx context.Context, id string) (store.Agent, error)
}

// Interface guard.
var _ PagesStore = (store.Store)(nil)

// PagesOptions configures NewPages.
type PagesOptions struct {
	// Store holds the agents. Required.
	Store PagesStore
	// Mandates grants, lists and revokes mandates. Required.
	Mandates MandateService
	// Approvals lists and decides approval requests for the approvals
	// page. Nil answers that page 404 and leaves it out of the agents
	// page's links.
	Approvals ApprovalService
	// Tools lists the tools a mandate may grant. Nil offers none, so
	// nothing can be granted.
	Tools func(ctx context.Context) []Tool
	// SessionUser returns the person signed in to the browser that sent
	// the request: the embedded authorization server's login session
	// ((*authserver.Server).SessionUser). Nil means nobody is ever signed
	// in and every page asks the visitor to sign in.
	SessionUser func(r *http.Request) (store.User, bool)
	// CSRFKey keys the forms' CSRF tokens; at least 32 bytes, and the same
	// on every replica so that a form rendered by one can be posted to
	// another. Required.
	CSRFKey []byte
	// SecureCookies marks the CSRF cookie Secure and gives it the __Host-
	// prefix; set it when the pages are served over https. False suits a
	// plain-http loopback listener only.
	SecureCookies bool
	// OAuthConsent serves the ConsentPath requests that name no agent.
	// Nil answers them 404.
	OAuthConsent http.Handler
	// Log receives grants, revocations and failures. Nil discards.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var pageTemplates embed.FS

// Form limits.
const (
	maxFormBytes   = 64 << 10
	maxPurposeLen  = 500 // bytes
	maxUses        = 1_000_000
	csrfTTL        = time.Hour
	minCSRFKeySize = 32
	csrfCookieBase = "mandate_pages_csrf"
)

// expiries are the lifetimes the consent form offers, in its order.
var expiries = []struct {
	Value, Label string
	d            time.Duration
}{
	{"1h", "1 hour", time.Hour},
	{"24h", "24 hours", 24 * time.Hour},
	{"7d", "7 days", 7 * 24 * time.Hour},
	{"30d", "30 days", 30 * 24 * time.Hour},
}

// constraintKinds are the checks the consent form can put on one argument.
var constraintKinds = []string{"prefix", "suffix", "glob", "pattern", "oneof", "min", "max"}

// NewPages returns the pages people use in a browser, signed in through the
// embedded authorization server's session:
//
//	GET  /consent?agent=CLIENT_ID[&tool=PUBLIC_NAME...]  the consent form
//	POST /consent?agent=CLIENT_ID                        grant a mandate, then 303 to /agents
//	GET  /agents                                         the user's mandates, by agent
//	POST /agents/revoke                                  revoke one of them, then 303 to /agents
//	GET  /approvals                                      the user's approval requests
//	POST /approvals/decide                               approve or deny one, then 303 to /approvals
//
// A mandate is always granted and revoked for the session's user, never
// for a user the form names; an approval request is shown to and decided
// by the user whose agent made the call only, and another user's request
// is answered as one that does not exist. Every POST must be same-origin
// (Sec-Fetch-Site or Origin, http.CrossOriginProtection) and carry a CSRF
// token bound to a cookie of the browser, the session's user, the form's
// purpose and an expiry. Without a session a page explains how to get
// one: the authorization server has no sign-in page of its own outside an
// agent's authorization, so the visitor signs in through an agent first.
// No page may be framed or cached.
func NewPages(opts PagesOptions) (http.Handler, error) {
	switch {
	case opts.Store == nil || opts.Mandates == nil:
		return nil, errors.New("pages: a store and a mandate service are required")
	case len(opts.CSRFKey) < minCSRFKeySize:
		return nil, fmt.Errorf("pages: the CSRF key must be at least %d bytes", minCSRFKeySize)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionUser == nil {
		opts.SessionUser = func(*http.Request) (store.User, bool) { return store.User{}, false }
	}
	if opts.Tools == nil {
		opts.Tools = func(context.Context) []Tool { return nil }
	}
	funcs := template.FuncMap{"when": formatTime, "at": formatInstant}
	tmpl, err := template.New("pages").Funcs(funcs).ParseFS(pageTemplates, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	p := &pages{opts: opts, log: opts.Log, tmpl: tmpl, origin: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	mux.HandleFunc(ConsentPath, p.consent)
	mux.HandleFunc("GET "+AgentsPath, p.agents)
	mux.HandleFunc("POST "+RevokePath, p.revoke)
	mux.HandleFunc("GET "+ApprovalsPath, p.approvals)
	mux.HandleFunc("POST "+DecideApprovalPath, p.decideApproval)
	return pageHeaders(mux), nil
}

type pages struct {
	opts   PagesOptions
	log    *slog.Logger
	tmpl   *template.Template
	origin *http.CrossOriginProtection
}

// pageHeaders sets what the authorization server's pages carry: none may
// be framed (a framed consent form could be clickjacked into granting),
// none cached, and no URL leaks through Referer.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "frame-ancestors 'none'; default-src 'self'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// render writes a page; a template failure becomes a plain 500.
func (p *pages) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.Error("pages: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (p *pages) message(w http.ResponseWriter, status int, title, text string) {
	p.render(w, status, "message", struct{ Title, Message string }{title, text})
}

func (p *pages) failed(w http.ResponseWriter, what string, err error) {
	p.log.Error("pages: "+what, "err", err)
	p.message(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

// signedIn returns the session's user, or answers with the sign-in page.
func (p *pages) signedIn(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	u, ok := p.opts.SessionUser(r)
	if !ok {
		p.render(w, http.StatusForbidden, "signin", nil)
	}
	return u, ok
}

// postable checks what every POST must pass before its form is read: a
// session, a same-origin request and a body that parses.
func (p *pages) postable(w http.ResponseWriter, r *http.Request) (store.User, bool) {
	u, ok := p.signedIn(w, r)
	if !ok {
		return u, false
	}
	if err := p.origin.Check(r); err != nil {
		p.message(w, http.StatusForbidden, "Request refused", "The form did not come from this site.")
		return u, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.message(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return u, false
	}
	return u, true
}

// CSRF tokens: a random HttpOnly cookie per browser, and in each form
// "expiry.mac" where mac is an HMAC over the form's purpose, the session's
// user, the cookie and the expiry. A page on another site can make the
// browser send the cookie but can neither read it nor compute the MAC, and
// a token minted for one user or one form is worthless for another.
func (p *pages) cookieName() string {
	if p.opts.SecureCookies {
		return "__Host-" + csrfCookieBase
	}
	return csrfCookieBase
}

// csrfToken returns a token for purpose, setting the browser's cookie when
// it has none. Call it once per response.
func (p *pages) csrfToken(w http.ResponseWriter, r *http.Request, userID, purpose string) string {
	c, err := r.Cookie(p.cookieName())
	value := ""
	if err == nil && len(c.Value) >= 32 {
		value = c.Value
	} else {
		value = rand.Text() + rand.Text()
		http.SetCookie(w, &http.Cookie{
			Name: p.cookieName(), Value: value, Path: "/",
			Secure: p.opts.SecureCookies, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
	exp := p.opts.Now().Add(csrfTTL).Unix()
	return strconv.FormatInt(exp, 10) + "." + p.csrfMAC(purpose, userID, value, exp)
}

func (p *pages) csrfOK(r *http.Request, userID, purpose string) bool {
	c, err := r.Cookie(p.cookieName())
	if err != nil || len(c.Value) < 32 {
		return false
	}
	expText, mac, ok := strings.Cut(r.PostForm.Get("csrf"), ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil || exp <= p.opts.Now().Unix() {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(p.csrfMAC(purpose, userID, c.Value, exp)))
}

func (p *pages) csrfMAC(purpose, userID, cookie string, exp int64) string {
	m := hmac.New(sha256.New, p.opts.CSRFKey)
	fmt.Fprintf(m, "mandate pages csrf\x00%s\x00%s\x00%s\x00%d", purpose, userID, cookie, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *pages) refuseCSRF(w http.ResponseWriter) {
	p.message(w, http.StatusForbidden, "Request refused",
		"The form expired or did not come from this page. Go back, reload and try again.")
}

// agentView is what the pages show of an agent: the verified identity the
// store holds, never anything the agent says about itself in a request.
type agentView struct {
	ID, Name, Registration, TrustLevel, Status string
	NameUnverified, Suspended, Unknown         bool
}

func viewAgentPage(a store.Agent) agentView {
	name := a.Name
	if name == "" {
		name = a.ID
	}
	return agentView{
		ID: a.ID, Name: name, Registration: registrationText(a.Registration), TrustLevel: a.TrustLevel,
		Status: a.Status, NameUnverified: a.Registration != store.RegistrationConfig,
		Suspended: a.Status != store.AgentActive,
	}
}

func registrationText(kind string) string {
	switch kind {
	case store.RegistrationConfig:
		return "Pre-registered by your Mandate administrator."
	case store.RegistrationCIMD:
		return "Identified by the metadata document at its client ID URL; its name comes from that document."
	case store.RegistrationDCR:
		return "Registered itself with Mandate (dynamic registration); its name is its own claim."
	case store.RegistrationExternal:
		return "Registered by a trusted external identity provider."
	default:
		return fmt.Sprintf("Unknown (%s).", kind)
	}
}

// consentView is the consent form's data.
type consentView struct {
	Username string
	Agent    agentView
	Action   string // the form's URL, which names the agent
	CSRF     string
	Tools    []toolRow
	Kinds    []string
	Expiries any
	Purpose  string
	Expiry   string
	Limited  bool
	UsesN    string
	Error    string
}

type toolRow struct {
	Tool
	Checked            bool
	Arg, Kind, Value   string
	Risk               string // "destructive", "read-only" or "may-modify"
	RiskLabel, RiskWhy string
}

// risk classifies a tool for its badge. A tool that declares neither hint
// is shown as one that may change data: the MCP specification's default
// for a tool that is not read-only.
func risk(t Tool) (class, label, why string) {
	switch {
	case t.Destructive:
		return "destructive", "destructive", "The server says this tool may delete or overwrite data."
	case t.ReadOnly:
		return "read-only", "read-only", "The server says this tool only reads."
	}
	return "may-modify", "may change data", "The server does not say this tool only reads."
}

func (p *pages) consent(w http.ResponseWriter, r *http.Request) {
	if !r.URL.Query().Has("agent") {
		if p.opts.OAuthConsent == nil {
			p.message(w, http.StatusNotFound, "Not found", "")
			return
		}
		p.opts.OAuthConsent.ServeHTTP(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		p.consentForm(w, r)
	case http.MethodPost:
		p.consentSubmit(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		p.message(w, http.StatusMethodNotAllowed, "Method not allowed", "")
	}
}

// agentFor reads the agent a consent request names, or answers with why
// not.
func (p *pages) agentFor(w http.ResponseWriter, r *http.Request) (store.Agent, bool) {
	id := r.URL.Query().Get("agent")
	a, err := p.opts.Store.GetAgent(r.Context(), id)
	switch {
	case id != "" && err == nil:
		return a, true
	case id == "" || errors.Is(err, store.ErrNotFound):
		p.message(w, http.StatusNotFound, "Unknown agent", "No agent is registered with Mandate under this client ID.")
	default:
		p.failed(w, "get agent", err)
	}
	return store.Agent{}, false
}

func (p *pages) consentForm(w http.ResponseWriter, r *http.Request) {
	u, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	a, ok := p.agentFor(w, r)
	if !ok {
		return
	}
	want := map[string]bool{}
	for _, t := range r.URL.Query()["tool"] {
		want[t] = true
	}
	v := consentView{Expiry: "24h"}
	for _, t := range p.opts.Tools(r.Context()) {
		v.Tools = append(v.Tools, toolRow{Tool: t, Checked: want[t.PublicName]})
	}
	p.showConsent(w, r, http.StatusOK, u, a, v)
}

func (p *pages) showConsent(w http.ResponseWriter, r *http.Request, status int, u store.User, a store.Agent, v consentView) {
	v.Username, v.Agent = u.Username, viewAgentPage(a)
	v.Action = ConsentPath + "?" + url.Values{"agent": {a.ID}}.Encode()
	v.CSRF = p.csrfToken(w, r, u.ID, "consent:"+a.ID)
	v.Kinds, v.Expiries = constraintKinds, expiries
	for i := range v.Tools {
		v.Tools[i].Risk, v.Tools[i].RiskLabel, v.Tools[i].RiskWhy = risk(v.Tools[i].Tool)
	}
	p.render(w, status, "consent", v)
}

// errForm is a problem with what the person entered, shown on the form.
type errForm string

func (e errForm) Error() string { return string(e) }

func (p *pages) consentSubmit(w http.ResponseWriter, r *http.Request) {
	u, ok := p.postable(w, r)
	if !ok {
		return
	}
	a, ok := p.agentFor(w, r)
	if !ok {
		return
	}
	if !p.csrfOK(r, u.ID, "consent:"+a.ID) {
		p.refuseCSRF(w)
		return
	}
	ctx := r.Context()
	// The form's own fields only: a "user" field, or any other, is never
	// read. The mandate is the session user's.
	f := r.PostForm
	v := consentView{Purpose: f.Get("purpose"), Expiry: f.Get("expiry"), Limited: f.Get("uses") == "limited", UsesN: f.Get("uses_n")}
	chosen := map[string]bool{}
	for _, name := range f["tool"] {
		chosen[name] = true
	}
	var grants []consent.Grant
	var problem error
	known := map[string]bool{}
	for _, t := range p.opts.Tools(ctx) {
		known[t.PublicName] = true
		row := toolRow{Tool: t, Checked: chosen[t.PublicName],
			Arg: f.Get("arg." + t.PublicName), Kind: f.Get("kind." + t.PublicName), Value: f.Get("value." + t.PublicName)}
		v.Tools = append(v.Tools, row)
		if !row.Checked {
			continue
		}
		g := consent.Grant{Upstream: escapeGlob(t.Upstream), Tool: escapeGlob(t.Name)}
		c, err := formConstraint(row.Arg, row.Kind, row.Value)
		if err != nil && problem == nil {
			problem = fmt.Errorf("%s: %w", t.PublicName, err)
		}
		if c != nil {
			g.Constraints = []consent.Constraint{*c}
		}
		grants = append(grants, g)
	}
	for name := range chosen {
		if !known[name] && problem == nil {
			problem = errForm("a chosen tool is no longer offered; review the list and try again")
		}
	}
	spec := consent.Spec{User: u.ID, Agent: a.ID, Grants: grants, Purpose: v.Purpose, Uses: consent.Unlimited}
	if problem == nil {
		problem = p.formSpec(&spec, v)
	}
	var m consent.Mandate
	if problem == nil {
		var err error
		m, err = p.opts.Mandates.Grant(ctx, spec)
		switch {
		case errors.Is(err, consent.ErrInvalid):
			problem = errForm(strings.TrimPrefix(err.Error(), "grant mandate: "))
		case err != nil:
			p.failed(w, "grant mandate", err)
			return
		}
	}
	if problem != nil {
		v.Error = problem.Error()
		p.showConsent(w, r, http.StatusBadRequest, u, a, v)
		return
	}
	p.log.Info("mandate granted", "mandate", m.ID, "user", u.ID, "agent", a.ID, "via", "consent page")
	http.Redirect(w, r, AgentsPath+"?"+url.Values{"granted": {m.ID}}.Encode(), http.StatusSeeOther)
}

// formSpec completes spec from the form's purpose, expiry and uses.
func (p *pages) formSpec(spec *consent.Spec, v consentView) error {
	if len(spec.Grants) == 0 {
		return errForm("choose at least one tool")
	}
	if len(v.Purpose) > maxPurposeLen || !utf8.ValidString(v.Purpose) {
		return errForm(fmt.Sprintf("the purpose must be at most %d characters", maxPurposeLen))
	}
	for _, e := range expiries {
		if e.Value == v.Expiry {
			spec.ExpiresAt = p.opts.Now().Add(e.d)
		}
	}
	if spec.ExpiresAt.IsZero() {
		return errForm("choose when the mandate expires")
	}
	if v.Limited {
		n, err := strconv.Atoi(strings.TrimSpace(v.UsesN))
		if err != nil || n < 1 || n > maxUses {
			return errForm(fmt.Sprintf("the number of uses must be a whole number from 1 to %d", maxUses))
		}
		spec.Uses = n
	}
	return nil
}

// formConstraint reads the one constraint the form allows per tool; none
// when both the argument and the value are empty.
func formConstraint(arg, kind, value string) (*consent.Constraint, error) {
	arg, value = strings.TrimSpace(arg), strings.TrimSpace(value)
	switch {
	case arg == "" && value == "":
		return nil, nil
	case arg == "" || value == "":
		return nil, errForm("a constraint needs both an argument and a value")
	}
	c := &consent.Constraint{Arg: arg}
	switch kind {
	case "prefix":
		c.Prefix = value
	case "suffix":
		c.Suffix = value
	case "glob":
		c.Glob = value
	case "pattern":
		c.Pattern = value
	case "oneof":
		for _, s := range strings.Split(value, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.OneOf = append(c.OneOf, s)
			}
		}
	case "min", "max":
		n, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
			return nil, errForm(fmt.Sprintf("%s needs a number", kind))
		}
		if kind == "min" {
			c.Min = &n
		} else {
			c.Max = &n
		}
	default:
		return nil, errForm("unknown kind of constraint")
	}
	return c, nil
}

// escapeGlob makes name a path.Match pattern that matches name only: a
// tool the person ticked must not become a wildcard because its name
// happens to hold '*', '?', '[' or '\'.
func escapeGlob(name string) string {
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// agentsView is the "my agents" page's data.
type agentsView struct {
	Username         string
	CSRF             string
	Groups           []agentGroup
	Granted, Revoked *mandateRow
	Approvals        bool // whether to link the approvals page
}

type agentGroup struct {
	Agent    agentView
	Mandates []mandateRow
}

type mandateRow struct {
	ID, Status, Purpose, UsesLeft, AgentName string
	Grants                                   []string
	CreatedAt, ExpiresAt                     time.Time
	Revocable                                bool
}

func (p *pages) agents(w http.ResponseWriter, r *http.Request) {
	u, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	list, err := p.opts.Mandates.List(ctx, u.ID, "")
	if err != nil {
		p.failed(w, "list mandates", err)
		return
	}
	now := p.opts.Now()
	v := agentsView{Username: u.Username, CSRF: p.csrfToken(w, r, u.ID, "revoke"), Approvals: p.opts.Approvals != nil}
	byAgent := map[string]int{}
	q := r.URL.Query()
	for _, m := range list {
		i, seen := byAgent[m.Agent]
		if !seen {
			av, err := p.agentOf(ctx, m.Agent)
			if err != nil {
				p.failed(w, "get agent", err)
				return
			}
			i = len(v.Groups)
			byAgent[m.Agent] = i
			v.Groups = append(v.Groups, agentGroup{Agent: av})
		}
		row := viewMandateRow(m, now)
		row.AgentName = v.Groups[i].Agent.Name
		v.Groups[i].Mandates = append(v.Groups[i].Mandates, row)
		if m.ID == q.Get("granted") {
			v.Granted = &row
		}
		if m.ID == q.Get("revoked") {
			v.Revoked = &row
		}
	}
	p.render(w, http.StatusOK, "agents", v)
}

// agentOf is the view of a mandate's agent, which may have been deleted
// since.
func (p *pages) agentOf(ctx context.Context, id string) (agentView, error) {
	a, err := p.opts.Store.GetAgent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return agentView{ID: id, Name: id, Unknown: true}, nil
	}
	if err != nil {
		return agentView{}, err
	}
	return viewAgentPage(a), nil
}

func viewMandateRow(m consent.Mandate, now time.Time) mandateRow {
	row := mandateRow{
		ID: m.ID, Status: MandateStatus(m, now), Purpose: m.Purpose, UsesLeft: "unlimited",
		CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt, Revocable: m.RevokedAt.IsZero(),
	}
	if m.UsesLeft != consent.Unlimited {
		row.UsesLeft = strconv.Itoa(m.UsesLeft)
	}
	for _, g := range m.Grants {
		row.Grants = append(row.Grants, grantText(g))
	}
	return row
}

// grantText renders a grant as "upstream / tool", then its constraints.
func grantText(g consent.Grant) string {
	s := g.Upstream + " / " + g.Tool
	for _, c := range g.Constraints {
		s += "; " + constraintText(c)
	}
	return s
}

func constraintText(c consent.Constraint) string {
	var checks []string
	if len(c.OneOf) > 0 {
		vals := make([]string, 0, len(c.OneOf))
		for _, v := range c.OneOf {
			vals = append(vals, fmt.Sprint(v))
		}
		checks = append(checks, "one of "+strings.Join(vals, ", "))
	}
	for _, t := range []struct{ what, v string }{
		{"starts with", c.Prefix}, {"ends with", c.Suffix}, {"matches", c.Glob}, {"matches the pattern", c.Pattern},
	} {
		if t.v != "" {
			checks = append(checks, t.what+" "+t.v)
		}
	}
	if c.Min != nil {
		checks = append(checks, "at least "+strconv.FormatFloat(*c.Min, 'g', -1, 64))
	}
	if c.Max != nil {
		checks = append(checks, "at most "+strconv.FormatFloat(*c.Max, 'g', -1, 64))
	}
	return c.Arg + " " + strings.Join(checks, " and ")
}

func (p *pages) revoke(w http.ResponseWriter, r *http.Request) {
	u, ok := p.postable(w, r)
	if !ok {
		return
	}
	if !p.csrfOK(r, u.ID, "revoke") {
		p.refuseCSRF(w)
		return
	}
	ctx := r.Context()
	id := r.PostForm.Get("mandate")
	m, err := p.opts.Mandates.Get(ctx, id)
	// Another user's mandate is answered exactly as a missing one, so the
	// form cannot be used to learn which ids exist.
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.User != u.ID) || id == "" {
		p.message(w, http.StatusNotFound, "No such mandate", "It may have been removed. Go back to your agents and reload.")
		return
	}
	if err != nil {
		p.failed(w, "get mandate", err)
		return
	}
	if _, err := p.opts.Mandates.Revoke(ctx, m.ID, "user:"+u.ID); err != nil {
		p.failed(w, "revoke mandate", err)
		return
	}
	p.log.Info("mandate revoked", "mandate", m.ID, "user", u.ID, "agent", m.Agent, "via", "agents page")
	http.Redirect(w, r, AgentsPath+"?"+url.Values{"revoked": {m.ID}}.Encode(), http.StatusSeeOther)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// formatInstant is formatTime to the second, for approval requests, which
// live for minutes.
func formatInstant(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
