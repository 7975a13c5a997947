package web

import (
	"encoding/json"
	"time"

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
