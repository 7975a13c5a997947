package web

import (
	"encoding/json"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Redacted stands in for a secret hash in every view: a hash is said to
// exist, never shown, because it is the one field that helps an offline
// guess at the secret behind it.
const Redacted = "[redacted]"

// AgentView is the one JSON representation of an agent, shared by the
// admin API and "mandate agents show": every field of store.Agent under a
// stable snake_case name, with every key present (null when unset) so that
// scripts need not guess.
type AgentView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Registration string          `json:"registration"`
	Owner        string          `json:"owner"`
	TrustLevel   string          `json:"trust_level"`
	Status       string          `json:"status"`
	RedirectURIs []string        `json:"redirect_uris"`
	GrantTypes   []string        `json:"grant_types"`
	AuthMethod   string          `json:"auth_method"`
	SecretHash   *string         `json:"secret_hash"` // Redacted, or null without a secret
	JWKS         json.RawMessage `json:"jwks"`
	JWKSURL      string          `json:"jwks_url"`
	Scopes       []string        `json:"scopes"`
	Metadata     json.RawMessage `json:"metadata"`
	CreatedAt    *time.Time      `json:"created_at"`
	FirstSeen    *time.Time      `json:"first_seen"`
	LastSeen     *time.Time      `json:"last_seen"`
}

// ViewAgent returns the view of a.
func ViewAgent(a store.Agent) AgentView {
	v := AgentView{
		ID: a.ID, Name: a.Name, Registration: a.Registration, Owner: a.Owner,
		TrustLevel: a.TrustLevel, Status: a.Status,
		RedirectURIs: nonNil(a.RedirectURIs), GrantTypes: nonNil(a.GrantTypes),
		AuthMethod: a.AuthMethod, JWKS: rawJSON(a.JWKS), JWKSURL: a.JWKSURL,
		Scopes: nonNil(a.Scopes), Metadata: rawJSON(a.Metadata),
		CreatedAt: timeOrNil(a.CreatedAt), FirstSeen: timeOrNil(a.FirstSeen), LastSeen: timeOrNil(a.LastSeen),
	}
	if a.SecretHash != "" {
		v.SecretHash = new(Redacted)
	}
	return v
}

// UserView is the JSON representation of a user, in the manner of
// AgentView: every field of store.User, every key present, and the
// password hash only said to exist (null for a federated user, who has
// none).
type UserView struct {
	ID           string     `json:"id"`
	Username     string     `json:"username"`
	Email        string     `json:"email"`
	Groups       []string   `json:"groups"`
	PasswordHash *string    `json:"password_hash"` // Redacted, or null without a password
	Issuer       string     `json:"issuer"`
	Subject      string     `json:"subject"`
	Disabled     bool       `json:"disabled"`
	CreatedAt    *time.Time `json:"created_at"`
	LastLogin    *time.Time `json:"last_login"`
}

// ViewUser returns the view of u.
func ViewUser(u store.User) UserView {
	v := UserView{
		ID: u.ID, Username: u.Username, Email: u.Email, Groups: nonNil(u.Groups),
		Issuer: u.Issuer, Subject: u.Subject, Disabled: u.Disabled,
		CreatedAt: timeOrNil(u.CreatedAt), LastLogin: timeOrNil(u.LastLogin),
	}
	if u.PasswordHash != "" {
		v.PasswordHash = new(Redacted)
	}
	return v
}

// MandateView is the JSON representation of a mandate, in the manner of
// AgentView and of "mandate mandates show": every field under a stable
// snake_case name, every key present. The grants are consent.Grant as
// stored, so a reader sees exactly what calls are matched against.
type MandateView struct {
	ID string `json:"id"`
	// User is the user's id, which mandates are keyed by; Username is ""
	// when that user no longer exists.
	User     string          `json:"user"`
	Username string          `json:"username"`
	Agent    string          `json:"agent"`
	Status   string          `json:"status"`
	Grants   []consent.Grant `json:"grants"`
	Purpose  string          `json:"purpose"`
	// UsesLeft is null for a mandate without a use count.
	UsesLeft  *int       `json:"uses_left"`
	CreatedAt *time.Time `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by"`
}

// ViewMandate returns the view of m at now; username is its user's.
func ViewMandate(m consent.Mandate, username string, now time.Time) MandateView {
	v := MandateView{
		ID: m.ID, User: m.User, Username: username, Agent: m.Agent, Status: MandateStatus(m, now),
		Grants: m.Grants, Purpose: m.Purpose, CreatedAt: timeOrNil(m.CreatedAt),
		ExpiresAt: timeOrNil(m.ExpiresAt), RevokedAt: timeOrNil(m.RevokedAt), RevokedBy: m.RevokedBy,
	}
	if v.Grants == nil {
		v.Grants = []consent.Grant{}
	}
	if m.UsesLeft != consent.Unlimited {
		v.UsesLeft = &m.UsesLeft
	}
	return v
}

// MandateStatus is "revoked", "expired", "exhausted" (no uses left) or
// "active", checked in that order, as consent.Service.Match does.
func MandateStatus(m consent.Mandate, now time.Time) string {
	switch {
	case !m.RevokedAt.IsZero():
		return "revoked"
	case !m.ExpiresAt.After(now):
		return "expired"
	case m.UsesLeft == 0:
		return "exhausted"
	}
	return "active"
}

// rawJSON embeds stored JSON as it is. The store only keeps valid JSON;
// anything else is shown as a string rather than breaking the output.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
