package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

// ApprovalService is what the approvals page and the admin API need of
// consent.Approvals. Deciding through it is deciding as "mandate approvals
// approve|deny" does: the waiting call's retry goes through once, and a
// request that was decided or expired cannot be decided again.
type ApprovalService interface {
	// List returns the approvals whose effective status is status ("" for
	// any), newest first.
	List(ctx context.Context, status string) ([]store.Approval, error)
	// Get returns one approval with its effective status.
	Get(ctx context.Context, id string) (store.Approval, error)
	// Decide records a decision on a pending approval; store.ErrConflict
	// when it is no longer pending.
	Decide(ctx context.Context, id string, approve bool, by string) (store.Approval, error)
}

// Interface guard.
var _ ApprovalService = (*consent.Approvals)(nil)

// ApprovalView is the JSON representation of an approval request, in the
// manner of MandateView: every field under a stable snake_case name, every
// key present. ArgsPreview is the redacted preview the request was stored
// with, never the arguments themselves.
type ApprovalView struct {
	ID string `json:"id"`
	// User is the id of the user the agent acts for ("" for an
	// autonomous agent); Username is "" when there is none or the user no
	// longer exists.
	User          string          `json:"user"`
	Username      string          `json:"username"`
	Agent         string          `json:"agent"`
	Upstream      string          `json:"upstream"`
	Tool          string          `json:"tool"`
	ArgsHash      string          `json:"args_hash"`
	ArgsPreview   json.RawMessage `json:"args_preview"`
	PolicyVersion string          `json:"policy_version"`
	// Status is the effective status: a pending or approved request past
	// its expiry is "expired".
	Status    string     `json:"status"`
	CreatedAt *time.Time `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	DecidedAt *time.Time `json:"decided_at"`
	DecidedBy string     `json:"decided_by"`
}

// ViewApproval returns the view of a; username is its user's.
func ViewApproval(a store.Approval, username string) ApprovalView {
	return ApprovalView{
		ID: a.ID, User: a.User, Username: username, Agent: a.Agent, Upstream: a.Upstream, Tool: a.Tool,
		ArgsHash: a.ArgsHash, ArgsPreview: rawJSON([]byte(a.ArgsPreview)), PolicyVersion: a.PolicyVersion,
		Status: a.Status, CreatedAt: timeOrNil(a.CreatedAt), ExpiresAt: timeOrNil(a.ExpiresAt),
		DecidedAt: timeOrNil(a.DecidedAt), DecidedBy: a.DecidedBy,
	}
}

// The approvals page.

// recentDecided is how many decided (or expired) requests the approvals
// page shows below the pending ones.
const recentDecided = 20

// approvalsView is the approvals page's data.
type approvalsView struct {
	Username         string
	CSRF             string
	Pending          []approvalRow
	Decided          []approvalRow
	Approved, Denied *approvalRow
}

// approvalRow is one request as the page shows it. Agent is the verified
// identity the registry holds, never what the agent says of itself.
type approvalRow struct {
	ID, Upstream, Tool, Args, PolicyVersion, Status, DecidedBy string
	Agent                                                      agentView
	CreatedAt, ExpiresAt, DecidedAt                            time.Time
}

func (p *pages) approvals(w http.ResponseWriter, r *http.Request) {
	u, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	if p.opts.Approvals == nil {
		p.message(w, http.StatusNotFound, "Not found", "")
		return
	}
	ctx := r.Context()
	list, err := p.opts.Approvals.List(ctx, "")
	if err != nil {
		p.failed(w, "list approvals", err)
		return
	}
	v := approvalsView{Username: u.Username, CSRF: p.csrfToken(w, r, u.ID, "approval")}
	agents := map[string]agentView{}
	q := r.URL.Query()
	for _, a := range list {
		// Only the requests of calls made for this user: another user's
		// are not even counted.
		if a.User != u.ID {
			continue
		}
		pending := a.Status == store.ApprovalPending
		flash := a.ID == q.Get("approved") || a.ID == q.Get("denied")
		if !pending && !flash && len(v.Decided) >= recentDecided {
			continue
		}
		av, seen := agents[a.Agent]
		if !seen {
			if av, err = p.agentOf(ctx, a.Agent); err != nil {
				p.failed(w, "get agent", err)
				return
			}
			agents[a.Agent] = av
		}
		row := viewApprovalRow(a, av, u.ID)
		switch {
		case pending:
			v.Pending = append(v.Pending, row)
		case len(v.Decided) < recentDecided:
			v.Decided = append(v.Decided, row)
		}
		if a.ID == q.Get("approved") && a.Status != store.ApprovalDenied {
			v.Approved = &row
		}
		if a.ID == q.Get("denied") && a.Status == store.ApprovalDenied {
			v.Denied = &row
		}
	}
	p.render(w, http.StatusOK, "approvals", v)
}

func viewApprovalRow(a store.Approval, agent agentView, userID string) approvalRow {
	return approvalRow{
		ID: a.ID, Upstream: a.Upstream, Tool: a.Tool, Args: indentPreview(a.ArgsPreview),
		PolicyVersion: a.PolicyVersion, Status: a.Status, DecidedBy: decidedByText(a, userID),
		Agent: agent, CreatedAt: a.CreatedAt, ExpiresAt: a.ExpiresAt, DecidedAt: a.DecidedAt,
	}
}

// indentPreview lays the stored preview out one argument per line, for
// reading; a preview that is not JSON is shown as it is.
func indentPreview(preview string) string {
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(preview), "", "  "); err != nil {
		return preview
	}
	return buf.String()
}

// decidedByText says who decided a, in the user's terms: the user
// themselves (on this page or asked by their agent), an administrator, or
// the name the deciding tool recorded.
func decidedByText(a store.Approval, userID string) string {
	switch by := a.DecidedBy; {
	case by == "":
		if a.Status == store.ApprovalExpired {
			return "nobody, in time"
		}
		return ""
	case by == "user:"+userID:
		return "you, on this page"
	case by == "in-band:"+userID:
		return "you, when your agent asked"
	case strings.HasPrefix(by, "admin:"), by == "cli":
		return "an administrator"
	default:
		return by
	}
}

// decideApproval records the signed-in user's decision on one of their own
// pending requests, as "mandate approvals approve|deny" would.
func (p *pages) decideApproval(w http.ResponseWriter, r *http.Request) {
	u, ok := p.postable(w, r)
	if !ok {
		return
	}
	if !p.csrfOK(r, u.ID, "approval") {
		p.refuseCSRF(w)
		return
	}
	if p.opts.Approvals == nil {
		p.message(w, http.StatusNotFound, "Not found", "")
		return
	}
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		p.message(w, http.StatusBadRequest, "Bad request", "Choose Approve or Deny.")
		return
	}
	ctx := r.Context()
	id := r.PostForm.Get("approval")
	a, err := p.opts.Approvals.Get(ctx, id)
	// Another user's request is answered exactly as a missing one, so the
	// form cannot be used to learn which ids exist.
	if id == "" || errors.Is(err, store.ErrNotFound) || (err == nil && a.User != u.ID) {
		p.noSuchApproval(w)
		return
	}
	if err != nil {
		p.failed(w, "get approval", err)
		return
	}
	a, err = p.opts.Approvals.Decide(ctx, a.ID, approve, "user:"+u.ID)
	switch {
	case errors.Is(err, store.ErrConflict):
		// A decision is final and a late one changes nothing; say what
		// the request is instead.
		cur, gerr := p.opts.Approvals.Get(ctx, id)
		if gerr != nil {
			p.failed(w, "get approval", gerr)
			return
		}
		p.message(w, http.StatusConflict, "Already "+cur.Status,
			fmt.Sprintf("This request is %s, no longer waiting for a decision; nothing changed.", cur.Status))
		return
	case errors.Is(err, store.ErrNotFound):
		p.noSuchApproval(w)
		return
	case err != nil:
		p.failed(w, "decide approval", err)
		return
	}
	verb := "denied"
	if approve {
		verb = "approved"
	}
	p.log.Info("approval "+verb, "approval", a.ID, "user", u.ID, "agent", a.Agent,
		"upstream", a.Upstream, "tool", a.Tool, "via", "approvals page")
	http.Redirect(w, r, ApprovalsPath+"?"+url.Values{verb: {a.ID}}.Encode(), http.StatusSeeOther)
}

func (p *pages) noSuchApproval(w http.ResponseWriter) {
	p.message(w, http.StatusNotFound, "No such request",
		"It may have been removed. Go back to your approval requests and reload.")
}

// The admin API's approvals routes.

var errNoApprovals = &apiError{status: http.StatusServiceUnavailable, msg: "temporarily unavailable", err: errors.New("no approval service")}

func (a *adminAPI) listApprovals(ctx context.Context, in *call) (any, error) {
	if a.opts.Approvals == nil {
		return nil, errNoApprovals
	}
	status := in.query.Get("status")
	if store.ValidateApprovalFilter(status) != nil {
		return nil, &apiError{status: http.StatusBadRequest, msg: "status must be pending, approved, denied, used or expired"}
	}
	userID, filterUser := "", false
	if name := in.query.Get("user"); name != "" {
		u, err := a.userByName(ctx, name, http.StatusNotFound)
		if err != nil {
			return nil, err
		}
		userID, filterUser = u.ID, true
	}
	agent := in.query.Get("agent")
	list, err := a.opts.Approvals.List(ctx, status)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	names := a.usernames()
	views := make([]ApprovalView, 0, len(list))
	for _, ap := range list {
		if (filterUser && ap.User != userID) || (agent != "" && ap.Agent != agent) {
			continue
		}
		v, err := a.viewApproval(ctx, ap, names)
		if err != nil {
			return nil, err
		}
		views = append(views, v)
	}
	return map[string][]ApprovalView{"approvals": views}, nil
}

func (a *adminAPI) showApproval(ctx context.Context, in *call) (any, error) {
	ap, err := a.approval(ctx, in.args[0])
	if err != nil {
		return nil, err
	}
	return a.viewApproval(ctx, ap, a.usernames())
}

// decideApproval approves or denies a pending request for its user, as
// "mandate approvals approve|deny" does, recorded as decided by
// "admin:<user id>".
func (a *adminAPI) decideApproval(verb string, approve bool) route {
	return func(ctx context.Context, in *call) (any, error) {
		before, err := a.approval(ctx, in.args[0])
		if err != nil {
			return nil, err
		}
		after, err := a.opts.Approvals.Decide(ctx, before.ID, approve, "admin:"+in.user.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, &apiError{status: http.StatusNotFound, msg: "no such approval request"}
		case errors.Is(err, store.ErrConflict):
			cur, gerr := a.approval(ctx, before.ID)
			if gerr != nil {
				return nil, gerr
			}
			return nil, &apiError{status: http.StatusConflict,
				msg: fmt.Sprintf("approval request is %s, not pending; nothing changed", cur.Status)}
		case err != nil:
			return nil, fmt.Errorf("%s approval: %w", verb, err)
		}
		a.logChange(ctx, in.caller, "approval."+verb, after.ID, before.Status, after.Status)
		return a.viewApproval(ctx, after, a.usernames())
	}
}

// approval reads one approval request; an unknown one is a 404.
func (a *adminAPI) approval(ctx context.Context, id string) (store.Approval, error) {
	if a.opts.Approvals == nil {
		return store.Approval{}, errNoApprovals
	}
	ap, err := a.opts.Approvals.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, &apiError{status: http.StatusNotFound, msg: "no such approval request"}
	}
	if err != nil {
		return store.Approval{}, err
	}
	return ap, nil
}

func (a *adminAPI) viewApproval(ctx context.Context, ap store.Approval, names func(context.Context, string) (string, error)) (ApprovalView, error) {
	name := ""
	if ap.User != "" {
		var err error
		if name, err = names(ctx, ap.User); err != nil {
			return ApprovalView{}, err
		}
	}
	return ViewApproval(ap, name), nil
}
