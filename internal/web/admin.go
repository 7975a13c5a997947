// Package web serves what Mandate shows to people rather than to agents:
// the admin JSON API, and the pages where people grant and revoke mandates
// and decide approval requests; later the admin UI on top of the API.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/users"
)

// AdminAPIPath is where the admin API is mounted; NewAdminAPI's handler
// serves every path under it.
const AdminAPIPath = "/admin/api/"

// ScopeAdmin is the scope a token needs for the admin API. It is
// deliberately not one of the MCP baseline scopes (authn.BaselineScopes):
// an agent that asks for what /mcp needs must not end up holding the keys
// to Mandate itself.
const ScopeAdmin = "mandate:admin"

// maxBodyBytes bounds the body of a state-changing request: a mandate
// with its grants and constraints is the largest.
const maxBodyBytes = 64 << 10

// AdminStore is the part of the storage contract the admin API reads and
// changes.
type AdminStore interface {
	GetAgent(ctx context.Context, id string) (store.Agent, error)
	ListAgents(ctx context.Context) ([]store.Agent, error)
	SetAgentStatus(ctx context.Context, id, status string) error

	GetUser(ctx context.Context, id string) (store.User, error)
	GetUserByUsername(ctx context.Context, username string) (store.User, error)
	GetUserBySubject(ctx context.Context, issuer, subject string) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	UpdateUser(ctx context.Context, u store.User) error
}

// Interface guard.
var _ AdminStore = (store.Store)(nil)

// AdminOptions configures NewAdminAPI.
type AdminOptions struct {
	// Store holds the agents and users. Nil answers every request with
	// 503: an admin API that cannot check who is asking must not answer.
	Store AdminStore
	// LocalIssuer is the issuer of the embedded authorization server,
	// whose tokens name their user by Mandate's user id (sub = store.User
	// ID). A token of any other issuer names its user by (issuer, subject),
	// which must match a stored user's Issuer and Subject. Empty means no
	// issuer is local.
	LocalIssuer string
	// InsufficientScope answers a token without ScopeAdmin; required is
	// [ScopeAdmin]. Nil writes a 403 with a plain Bearer
	// error="insufficient_scope" challenge naming the scope.
	InsufficientScope func(w http.ResponseWriter, required []string)
	// Mandates grants, reads and revokes mandates for the mandates routes.
	// Nil answers those routes with 503 and leaves the others working.
	Mandates MandateService
	// Approvals lists and decides approval requests for the approvals
	// routes. Nil answers those routes with 503 and leaves the others
	// working.
	Approvals ApprovalService
	// Audit is the audit log the audit routes read. Nil answers those
	// routes with 404, saying the audit log is disabled, and leaves the
	// others working.
	Audit *AuditLog
	// Now is the clock a mandate's status is judged by; nil means
	// time.Now.
	Now func() time.Time
	// Log receives one record per change (who changed what, from what to
	// what) and per refused request. Nil discards.
	Log *slog.Logger
	// RecordChange, if set, durably records each agent suspended or
	// resumed and each account disabled or enabled (the audit log), once
	// the store has made the change. An error answers 500, saying the
	// change was made but not recorded, so no administrator takes an
	// unrecorded change for a recorded one. Nil records them in Log only.
	// Mandates and approvals are recorded by their services' own events.
	RecordChange func(ctx context.Context, c Change) error
}

// Change is one administrative change made through the admin API.
type Change struct {
	// Action is "agent.suspend", "agent.resume", "user.disable" or
	// "user.enable".
	Action string
	// Target is the agent's id or the account's username.
	Target string
	// From and To are the states before and after ("active",
	// "suspended", "enabled", "disabled"); equal when the target already
	// was in the state asked for.
	From, To string
	// ByUser is the administrator's user id, ByAgent the client they
	// used.
	ByUser, ByAgent string
}

// NewAdminAPI returns the admin JSON API. It must be mounted at
// AdminAPIPath behind authentication that puts a verified principal in
// the request context (authn.Require); without one every request is
// refused. It serves, relative to AdminAPIPath:
//
//	GET  agents                   {"agents": [AgentView...]}
//	GET  agents/{id}              AgentView
//	POST agents/{id}/suspend      AgentView, suspended: its next request fails
//	POST agents/{id}/resume       AgentView, active again
//	GET  users                    {"users": [UserView...]}
//	POST users/{username}/disable UserView, unable to log in or administer
//	POST users/{username}/enable  UserView
//	GET  mandates[?user=USERNAME&agent=CLIENT_ID]
//	                              {"mandates": [MandateView...]}, newest first
//	GET  mandates/{id}            MandateView
//	POST mandates                 MandateView of the mandate granted from a
//	                              MandateRequest body
//	POST mandates/{id}/revoke     MandateView, revoked by "admin:<user id>"
//	GET  approvals[?status=STATUS&user=USERNAME&agent=CLIENT_ID]
//	                              {"approvals": [ApprovalView...]}, newest first
//	GET  approvals/{id}           ApprovalView
//	POST approvals/{id}/approve   ApprovalView, approved by "admin:<user id>":
//	                              the agent's retry of exactly that call goes
//	                              through once
//	POST approvals/{id}/deny      ApprovalView, denied by "admin:<user id>"
//	GET  audit[?user=&agent=&tool=&upstream=&decision=&mandate=&kind=&since=&until=&limit=]
//	                              {"records": [AuditRecordView...]}, newest
//	                              first, filtered as mandate audit query
//	                              filters; limit 100 unless given, at most 1000
//	GET  audit/{id}               AuditRecordView
//	GET  audit/{id}/explain       AuditStoryView: the record's story, also as
//	                              the text mandate audit explain prints
//	GET  audit/export             application/x-ndjson: every record and
//	                              checkpoint, as mandate audit export prints them
//	GET  audit/verify             AuditReportView: the chains verified with
//	                              AuditLog.Keys, and where each first fails
//
// Deciding a request that is no longer pending (decided, used or expired)
// is a 409 that changes nothing.
//
// An agent id is one path segment, escaped as url.PathEscape does: a
// Client ID Metadata Document URL such as https://app.example/client.json
// is written https:%2F%2Fapp.example%2Fclient.json.
//
// Every request must come from a person, never from an agent acting for
// nobody, whose token has ScopeAdmin and whose account — read from the
// store on every request, so that disabling it or leaving the group takes
// effect at once — is enabled and in users.AdminGroup. Groups claimed in
// the token count for nothing here. State-changing requests are POST only
// and take an empty body or one of Content-Type application/json, which a
// cross-site HTML form cannot send. Errors are {"error": "..."} with a
// message that names no internals.
func NewAdminAPI(opts AdminOptions) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &adminAPI{opts: opts, log: opts.Log}
	a.handle(http.MethodGet, "agents", a.listAgents)
	a.handle(http.MethodGet, "agents/{id}", a.showAgent)
	a.handle(http.MethodPost, "agents/{id}/suspend", a.setAgentStatus("suspend", store.AgentSuspended))
	a.handle(http.MethodPost, "agents/{id}/resume", a.setAgentStatus("resume", store.AgentActive))
	a.handle(http.MethodGet, "users", a.listUsers)
	a.handle(http.MethodPost, "users/{username}/disable", a.setUserDisabled("disable", true))
	a.handle(http.MethodPost, "users/{username}/enable", a.setUserDisabled("enable", false))
	a.handle(http.MethodGet, "mandates", a.listMandates)
	a.handle(http.MethodGet, "mandates/{id}", a.showMandate)
	a.handle(http.MethodPost, "mandates", a.grantMandate)
	a.handle(http.MethodPost, "mandates/{id}/revoke", a.revokeMandate)
	a.handle(http.MethodGet, "approvals", a.listApprovals)
	a.handle(http.MethodGet, "approvals/{id}", a.showApproval)
	a.handle(http.MethodPost, "approvals/{id}/approve", a.decideApproval("approve", true))
	a.handle(http.MethodPost, "approvals/{id}/deny", a.decideApproval("deny", false))
	// export and verify come before {id}, which would take them too.
	a.handle(http.MethodGet, "audit", a.queryAudit)
	a.handle(http.MethodGet, "audit/export", a.exportAudit)
	a.handle(http.MethodGet, "audit/verify", a.verifyAudit)
	a.handle(http.MethodGet, "audit/{id}", a.showAuditRecord)
	a.handle(http.MethodGet, "audit/{id}/explain", a.explainAuditRecord)
	return a
}

// adminAPI is the handler NewAdminAPI returns.
type adminAPI struct {
	opts      AdminOptions
	log       *slog.Logger
	endpoints []endpoint
}

// endpoint is one method on one path pattern. The API routes by itself
// rather than through http.ServeMux so that every answer, a 404 or 405
// included, is JSON, and so that a path is split at its escaped slashes
// only: an agent id that is a URL stays one segment.
type endpoint struct {
	method  string
	pattern []string // segments; "{name}" takes any one segment
	fn      route
}

// caller is the administrator a request comes from.
type caller struct {
	principal *identity.Principal
	user      store.User
}

// route handles one authorized request and returns the value to answer
// with (status 200, as JSON unless it is a *stream), or an error: an
// *apiError says what the client is told, any other error is logged and
// answered with 500.
type route func(ctx context.Context, in *call) (any, error)

// call is what a route gets of one authorized request.
type call struct {
	args  []string   // the values of the pattern's {name} segments, in order
	query url.Values // the request's query parameters
	body  []byte     // a POST's body, checked to be empty or JSON
	*caller
}

// apiError is an error for two audiences: msg is safe to show the client,
// err (if any) is for the log only.
type apiError struct {
	status int
	msg    string
	err    error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *apiError) Unwrap() error { return e.err }

// ServeHTTP authorizes the request before anything else, so that nothing —
// not even whether a route exists — is answered to someone who is not an
// administrator.
func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	c, ok := a.authorize(w, r)
	if !ok {
		return
	}
	e, args, allowed := a.match(r)
	switch {
	case e == nil && len(allowed) == 0:
		writeError(w, &apiError{status: http.StatusNotFound, msg: "no such endpoint"})
		return
	case e == nil:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, msg: "method not allowed"})
		return
	}
	in := &call{args: args, query: r.URL.Query(), caller: c}
	if e.method == http.MethodPost {
		body, err := checkBody(r)
		if err != nil {
			writeError(w, err)
			return
		}
		in.body = body
	}
	v, err := e.fn(r.Context(), in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if s, ok := v.(*stream); ok {
		a.stream(w, r, s)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// fail answers a request whose route failed.
func (a *adminAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, msg: "internal error", err: err}
	}
	if ae.status >= http.StatusInternalServerError {
		a.log.Error("admin API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, ae)
}

// stream is a route's answer written as it is read, for a body too large
// to hold in memory: the audit export.
type stream struct {
	contentType string
	write       func(ctx context.Context, w io.Writer) error
}

// stream writes s. The status is sent with the first bytes, so a failure
// before them is still a JSON error. A failure after them aborts the
// response: only a broken response tells the client the body is
// incomplete, where a short export ending at a checkpoint would still
// verify and pass for the whole log.
func (a *adminAPI) stream(w http.ResponseWriter, r *http.Request, s *stream) {
	sw := &streamWriter{w: w, contentType: s.contentType}
	if r.Method == http.MethodHead {
		sw.start()
		return
	}
	if err := s.write(r.Context(), sw); err != nil {
		if !sw.started {
			a.fail(w, r, err)
			return
		}
		a.log.Error("admin API response aborted", "method", r.Method, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
	sw.start()
}

// streamWriter sends the status and headers of a stream with its first
// bytes.
type streamWriter struct {
	w           http.ResponseWriter
	contentType string
	started     bool
}

func (s *streamWriter) start() {
	if s.started {
		return
	}
	s.started = true
	s.w.Header().Set("Content-Type", s.contentType)
	s.w.WriteHeader(http.StatusOK)
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.start()
	return s.w.Write(p)
}

// match finds the endpoint for r and the values of its {name} segments.
// Without one it returns the methods the path does allow, if any. GET
// endpoints answer HEAD too.
func (a *adminAPI) match(r *http.Request) (*endpoint, []string, []string) {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), AdminAPIPath)
	if !ok {
		return nil, nil, nil
	}
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return nil, nil, nil
		}
		segs[i] = v
	}
	var allowed []string
	for i := range a.endpoints {
		e := &a.endpoints[i]
		args, ok := e.matches(segs)
		if !ok {
			continue
		}
		if r.Method == e.method || (r.Method == http.MethodHead && e.method == http.MethodGet) {
			return e, args, nil
		}
		if slices.Contains(allowed, e.method) {
			continue
		}
		allowed = append(allowed, e.method)
		if e.method == http.MethodGet {
			allowed = append(allowed, http.MethodHead)
		}
	}
	return nil, nil, allowed
}

func (e *endpoint) matches(segs []string) ([]string, bool) {
	if len(segs) != len(e.pattern) {
		return nil, false
	}
	var args []string
	for i, p := range e.pattern {
		switch {
		case strings.HasPrefix(p, "{"):
			args = append(args, segs[i])
		case p != segs[i]:
			return nil, false
		}
	}
	return args, true
}

// authorize returns the administrator r comes from, or answers the
// request with why not. Every path that cannot prove an administrator
// refuses.
func (a *adminAPI) authorize(w http.ResponseWriter, r *http.Request) (*caller, bool) {
	p, ok := identity.FromContext(r.Context())
	refuse := func(e *apiError) (*caller, bool) {
		a.logRefusal(r, e, p)
		writeError(w, e)
		return nil, false
	}
	switch {
	case !ok:
		// Authentication is missing from the wiring, not from the request.
		return refuse(&apiError{status: http.StatusUnauthorized, msg: "authentication required"})
	case p.Method == identity.MethodNone:
		return refuse(&apiError{status: http.StatusForbidden, msg: "the admin API needs authentication to be on"})
	case p.Method == identity.MethodClientCredentials || !p.Delegated():
		return refuse(&apiError{status: http.StatusForbidden, msg: "the admin API is for people, not for agents acting on their own"})
	case !p.HasScope(ScopeAdmin):
		a.logRefusal(r, &apiError{status: http.StatusForbidden, msg: "token lacks scope " + ScopeAdmin}, p)
		a.insufficientScope(w)
		return nil, false
	case a.opts.Store == nil:
		return refuse(&apiError{status: http.StatusServiceUnavailable, msg: "temporarily unavailable", err: errors.New("no store")})
	}
	u, err := a.lookupUser(r.Context(), p)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(&apiError{status: http.StatusForbidden, msg: "not an administrator", err: err})
	case err != nil:
		return refuse(&apiError{status: http.StatusServiceUnavailable, msg: "temporarily unavailable", err: err})
	case u.Disabled:
		return refuse(&apiError{status: http.StatusForbidden, msg: "account disabled"})
	case !slices.Contains(u.Groups, users.AdminGroup):
		return refuse(&apiError{status: http.StatusForbidden, msg: "not an administrator"})
	}
	return &caller{principal: p, user: u}, true
}

// logRefusal records a refused request: who asked (never the token) and
// the reason, with the internal cause.
func (a *adminAPI) logRefusal(r *http.Request, e *apiError, p *identity.Principal) {
	attrs := []any{"status", e.status, "method", r.Method, "path", r.URL.Path, "reason", e.Error()}
	if p != nil {
		attrs = append(attrs, "issuer", p.Issuer, "user", p.User, "agent", p.Agent, "token_id", p.TokenID)
	}
	level := slog.LevelInfo
	if e.status >= http.StatusInternalServerError {
		level = slog.LevelWarn
	}
	a.log.Log(r.Context(), level, "admin API request refused", slog.Group("admin", attrs...))
}

// lookupUser finds the stored account behind p; see AdminOptions.LocalIssuer.
func (a *adminAPI) lookupUser(ctx context.Context, p *identity.Principal) (store.User, error) {
	if a.opts.LocalIssuer != "" && p.Issuer == a.opts.LocalIssuer {
		return a.opts.Store.GetUser(ctx, p.User)
	}
	return a.opts.Store.GetUserBySubject(ctx, p.Issuer, p.User)
}

func (a *adminAPI) insufficientScope(w http.ResponseWriter) {
	required := []string{ScopeAdmin}
	if a.opts.InsufficientScope != nil {
		a.opts.InsufficientScope(w, required)
		return
	}
	h := w.Header()
	h.Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+ScopeAdmin+`"`)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"error": "insufficient_scope", "error_description": "this operation requires scope " + ScopeAdmin,
	})
}

// handle registers fn for method at pattern, relative to AdminAPIPath.
func (a *adminAPI) handle(method, pattern string, fn route) {
	a.endpoints = append(a.endpoints, endpoint{method: method, pattern: strings.Split(pattern, "/"), fn: fn})
}

// checkBody returns the body of a state-changing request, refusing one
// that a cross-site HTML form could have sent: any Content-Type other than
// application/json, or a body without one. Routes that take no parameters
// ignore what a JSON body says, but it must be JSON.
func checkBody(r *http.Request) ([]byte, *apiError) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			return nil, &apiError{status: http.StatusBadRequest, msg: "unreadable body", err: err}
		}
		body = b
	}
	if len(body) > maxBodyBytes {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, msg: "body too large"}
	}
	const wantType = "Content-Type must be application/json"
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, msg: wantType}
		}
	} else if len(body) > 0 {
		return nil, &apiError{status: http.StatusUnsupportedMediaType, msg: wantType}
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		return nil, &apiError{status: http.StatusBadRequest, msg: "body is not JSON"}
	}
	return body, nil
}

func (a *adminAPI) listAgents(ctx context.Context, _ *call) (any, error) {
	list, err := a.opts.Store.ListAgents(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	views := make([]AgentView, 0, len(list))
	for _, ag := range list {
		views = append(views, ViewAgent(ag))
	}
	return map[string][]AgentView{"agents": views}, nil
}

func (a *adminAPI) showAgent(ctx context.Context, in *call) (any, error) {
	ag, err := a.agent(ctx, in.args[0])
	if err != nil {
		return nil, err
	}
	return ViewAgent(ag), nil
}

// agent reads one agent; an unknown one is a 404.
func (a *adminAPI) agent(ctx context.Context, id string) (store.Agent, error) {
	ag, err := a.opts.Store.GetAgent(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Agent{}, &apiError{status: http.StatusNotFound, msg: "no such agent"}
	}
	if err != nil {
		return store.Agent{}, fmt.Errorf("get agent: %w", err)
	}
	return ag, nil
}

// setAgentStatus suspends or resumes an agent and answers with the agent
// as stored afterwards. Suspension takes effect on the agent's next
// request: the authentication gate reads the status every time.
func (a *adminAPI) setAgentStatus(verb, status string) route {
	return func(ctx context.Context, in *call) (any, error) {
		id, c := in.args[0], in.caller
		before, err := a.agent(ctx, id)
		if err != nil {
			return nil, err
		}
		if err := a.opts.Store.SetAgentStatus(ctx, id, status); errors.Is(err, store.ErrNotFound) {
			return nil, &apiError{status: http.StatusNotFound, msg: "no such agent"}
		} else if err != nil {
			return nil, fmt.Errorf("%s agent: %w", verb, err)
		}
		after, err := a.agent(ctx, id)
		if err != nil {
			return nil, err
		}
		a.logChange(ctx, c, "agent."+verb, id, before.Status, after.Status)
		if err := a.recordChange(ctx, c, "agent."+verb, id, before.Status, after.Status); err != nil {
			return nil, err
		}
		return ViewAgent(after), nil
	}
}

func (a *adminAPI) listUsers(ctx context.Context, _ *call) (any, error) {
	list, err := a.opts.Store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	views := make([]UserView, 0, len(list))
	for _, u := range list {
		views = append(views, ViewUser(u))
	}
	return map[string][]UserView{"users": views}, nil
}

// setUserDisabled disables or enables an account and answers with the
// account as stored afterwards. A disabled account can neither log in nor
// use this API; tokens it already holds are not revoked here.
func (a *adminAPI) setUserDisabled(verb string, disabled bool) route {
	return func(ctx context.Context, in *call) (any, error) {
		name, c := in.args[0], in.caller
		u, err := a.opts.Store.GetUserByUsername(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &apiError{status: http.StatusNotFound, msg: "no such user"}
		}
		if err != nil {
			return nil, fmt.Errorf("get user: %w", err)
		}
		was := u.Disabled
		if u.Disabled != disabled {
			u.Disabled = disabled
			if err := a.opts.Store.UpdateUser(ctx, u); errors.Is(err, store.ErrNotFound) {
				return nil, &apiError{status: http.StatusNotFound, msg: "no such user"}
			} else if err != nil {
				return nil, fmt.Errorf("%s user: %w", verb, err)
			}
		}
		after, err := a.opts.Store.GetUser(ctx, u.ID)
		if err != nil {
			return nil, fmt.Errorf("read back user: %w", err)
		}
		a.logChange(ctx, c, "user."+verb, after.Username, userState(was), userState(after.Disabled))
		if err := a.recordChange(ctx, c, "user."+verb, after.Username, userState(was), userState(after.Disabled)); err != nil {
			return nil, err
		}
		return ViewUser(after), nil
	}
}

func userState(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

// logChange records who changed what. Every successful state-changing
// request is recorded, also one that found the target already in the
// state asked for (from equals to), since the attempt is itself of
// interest to whoever reads the record.
func (a *adminAPI) logChange(ctx context.Context, c *caller, action, target, from, to string) {
	a.log.LogAttrs(ctx, slog.LevelInfo, "admin change",
		slog.String("action", action), slog.String("target", target),
		slog.String("from", from), slog.String("to", to),
		slog.Group("by",
			slog.String("user_id", c.user.ID), slog.String("username", c.user.Username),
			slog.String("agent", c.principal.Agent), slog.String("token_id", c.principal.TokenID)))
}

// recordChange passes a change to Options.RecordChange. Its failure is the
// request's: the change stands, and the administrator is told it went
// unrecorded.
func (a *adminAPI) recordChange(ctx context.Context, c *caller, action, target, from, to string) error {
	if a.opts.RecordChange == nil {
		return nil
	}
	err := a.opts.RecordChange(ctx, Change{
		Action: action, Target: target, From: from, To: to, ByUser: c.user.ID, ByAgent: c.principal.Agent,
	})
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, msg: "the change was made but could not be recorded in the audit log", err: err}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]string{"error": e.msg})
}
