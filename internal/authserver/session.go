package authserver

import (
	"net/http"

	"github.com/mandate-mcp/mandate/internal/store"
)

// SessionUser returns the user signed in to the browser that sent r, if
// any: the login session the sign-in page starts during an agent's
// authorization, for the pages a person uses directly (consent to a
// mandate, "my agents"). A missing, forged, expired or foreign cookie, or a
// user who has since been disabled or deleted, is no session. The server
// has no sign-in page of its own outside an authorization, so a browser
// without a session must first sign in through an agent.
func (s *Server) SessionUser(r *http.Request) (store.User, bool) {
	return s.sessionUser(r.Context(), r)
}
