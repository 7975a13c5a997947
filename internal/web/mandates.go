package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

// MandateService is what the admin API and the pages need of
// consent.Service.
type MandateService interface {
	Grant(ctx context.Context, spec consent.Spec) (consent.Mandate, error)
	Get(ctx context.Context, id string) (consent.Mandate, error)
	List(ctx context.Context, user, agent string) ([]consent.Mandate, error)
	Revoke(ctx context.Context, id, by string) (consent.Mandate, error)
}

// Interface guard.
var _ MandateService = (*consent.Service)(nil)

// MandateRequest is the body of POST mandates. User is a username, as in
// "mandate mandates grant --user"; the user must exist and be enabled, and
// the agent must be registered. Uses absent or null means unlimited;
// otherwise it must be at least 1. Unknown members are refused, so a
// misspelt "expires" cannot pass unnoticed.
type MandateRequest struct {
	User      string          `json:"user"`
	Agent     string          `json:"agent"`
	Grants    []consent.Grant `json:"grants"`
	Purpose   string          `json:"purpose"`
	ExpiresAt time.Time       `json:"expires_at"`
	Uses      *int            `json:"uses"`
}

var errNoMandates = &apiError{status: http.StatusServiceUnavailable, msg: "temporarily unavailable", err: errors.New("no mandate service")}

func (a *adminAPI) listMandates(ctx context.Context, in *call) (any, error) {
	if a.opts.Mandates == nil {
		return nil, errNoMandates
	}
	userID := ""
	if name := in.query.Get("user"); name != "" {
		u, err := a.userByName(ctx, name, http.StatusNotFound)
		if err != nil {
			return nil, err
		}
		userID = u.ID
	}
	list, err := a.opts.Mandates.List(ctx, userID, in.query.Get("agent"))
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", err)
	}
	names := a.usernames()
	now := a.opts.Now()
	views := make([]MandateView, 0, len(list))
	for _, m := range list {
		name, err := names(ctx, m.User)
		if err != nil {
			return nil, err
		}
		views = append(views, ViewMandate(m, name, now))
	}
	return map[string][]MandateView{"mandates": views}, nil
}

func (a *adminAPI) showMandate(ctx context.Context, in *call) (any, error) {
	m, err := a.mandate(ctx, in.args[0])
	if err != nil {
		return nil, err
	}
	return a.viewMandate(ctx, m)
}

// grantMandate grants a mandate on a user's behalf. The administrator is
// recorded in the log, not in the mandate, which is the user's consent as
// far as matching is concerned.
func (a *adminAPI) grantMandate(ctx context.Context, in *call) (any, error) {
	if a.opts.Mandates == nil {
		return nil, errNoMandates
	}
	var req MandateRequest
	dec := json.NewDecoder(bytes.NewReader(in.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return nil, &apiError{status: http.StatusBadRequest, msg: "body is not a mandate request", err: err}
	}
	if req.User == "" || req.Agent == "" {
		return nil, &apiError{status: http.StatusBadRequest, msg: "user and agent are required"}
	}
	u, err := a.userByName(ctx, req.User, http.StatusBadRequest)
	if err != nil {
		return nil, err
	}
	// A disabled account cannot sign in to use a mandate; granting one in
	// its name is more likely a mistaken username than an intent.
	if u.Disabled {
		return nil, &apiError{status: http.StatusBadRequest, msg: "user is disabled"}
	}
	if _, err := a.opts.Store.GetAgent(ctx, req.Agent); errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{status: http.StatusBadRequest, msg: "no such agent"}
	} else if err != nil {
		return nil, fmt.Errorf("get agent: %w", err)
	}
	uses := consent.Unlimited
	if req.Uses != nil {
		if *req.Uses < 1 {
			return nil, &apiError{status: http.StatusBadRequest, msg: "uses must be at least 1, or absent for unlimited"}
		}
		uses = *req.Uses
	}
	m, err := a.opts.Mandates.Grant(ctx, consent.Spec{
		User: u.ID, Agent: req.Agent, Grants: req.Grants, Purpose: req.Purpose, ExpiresAt: req.ExpiresAt, Uses: uses,
	})
	if errors.Is(err, consent.ErrInvalid) {
		// What is wrong with the request the administrator wrote is safe
		// to tell them: it names only their own patterns and values.
		return nil, &apiError{status: http.StatusBadRequest, msg: strings.TrimPrefix(err.Error(), "grant mandate: ")}
	}
	if err != nil {
		return nil, err
	}
	a.logChange(ctx, in.caller, "mandate.grant", m.ID, "", MandateStatus(m, a.opts.Now()))
	return ViewMandate(m, u.Username, a.opts.Now()), nil
}

func (a *adminAPI) revokeMandate(ctx context.Context, in *call) (any, error) {
	before, err := a.mandate(ctx, in.args[0])
	if err != nil {
		return nil, err
	}
	m, err := a.opts.Mandates.Revoke(ctx, before.ID, "admin:"+in.user.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &apiError{status: http.StatusNotFound, msg: "no such mandate"}
	}
	if err != nil {
		return nil, err
	}
	now := a.opts.Now()
	a.logChange(ctx, in.caller, "mandate.revoke", m.ID, MandateStatus(before, now), MandateStatus(m, now))
	return a.viewMandate(ctx, m)
}

// mandate reads one mandate; an unknown one is a 404.
func (a *adminAPI) mandate(ctx context.Context, id string) (consent.Mandate, error) {
	if a.opts.Mandates == nil {
		return consent.Mandate{}, errNoMandates
	}
	m, err := a.opts.Mandates.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return consent.Mandate{}, &apiError{status: http.StatusNotFound, msg: "no such mandate"}
	}
	if err != nil {
		return consent.Mandate{}, err
	}
	return m, nil
}

func (a *adminAPI) viewMandate(ctx context.Context, m consent.Mandate) (MandateView, error) {
	name, err := a.usernames()(ctx, m.User)
	if err != nil {
		return MandateView{}, err
	}
	return ViewMandate(m, name, a.opts.Now()), nil
}

// userByName reads the user called name; an unknown one is answered with
// status.
func (a *adminAPI) userByName(ctx context.Context, name string, status int) (store.User, error) {
	u, err := a.opts.Store.GetUserByUsername(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, &apiError{status: status, msg: "no such user"}
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

// usernames returns a lookup of usernames by user id, once each; a user
// who no longer exists has "" (a mandate outlives its user's deletion).
func (a *adminAPI) usernames() func(ctx context.Context, id string) (string, error) {
	byID := map[string]string{}
	return func(ctx context.Context, id string) (string, error) {
		if name, ok := byID[id]; ok {
			return name, nil
		}
		u, err := a.opts.Store.GetUser(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return "", fmt.Errorf("get user: %w", err)
		default:
			byID[id] = u.Username
		}
		return byID[id], nil
	}
}
