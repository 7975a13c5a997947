package authserver

import (
	"context"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Events hears of what the authorization server did that an audit trail
// must show: sign-ins and agents it stored for the first time. Methods are
// called after the fact, on the request path, and must not block for long.
type Events interface {
	// Login reports a sign-in attempt. An error for a successful attempt
	// refuses the sign-in, so nobody is signed in whose sign-in went
	// unrecorded; for a failed attempt it is only logged, since the
	// attempt is refused anyway.
	Login(ctx context.Context, l Login) error
	// AgentRegistered reports an agent stored for the first time, by
	// dynamic registration, a Client ID Metadata Document or the
	// configuration (a.Registration says which). An error fails the
	// registration: the client learns no credentials, a document is not
	// accepted, a configuration does not start.
	AgentRegistered(ctx context.Context, a store.Agent) error
}

// Sign-in methods, the Method of a Login.
const (
	LoginPassword  = "password"
	LoginFederated = "federated"
)

// Login is one sign-in attempt at the embedded server.
type Login struct {
	// OK reports whether the attempt signed someone in.
	OK bool
	// Method is LoginPassword or LoginFederated.
	Method string
	// User is who signed in or, for a refused federated sign-in of a
	// disabled account, who tried; zero otherwise.
	User store.User
	// Username is what was typed into the password form; people do type
	// passwords there, so a recorder must redact it like any free text.
	Username string
	// Issuer is the provider of a federated sign-in.
	Issuer string
	// Remote is the address the attempt came from.
	Remote string
}

// loginEvent reports l to Options.Events, logging a failure to record it.
func (s *Server) loginEvent(ctx context.Context, l Login) error {
	if s.opts.Events == nil {
		return nil
	}
	if err := s.opts.Events.Login(ctx, l); err != nil {
		s.log.Error("authserver: sign-in not recorded", "method", l.Method, "ok", l.OK, "user", l.User.ID, "err", err)
		return err
	}
	return nil
}

// agentRegistered reports a new agent to Options.Events, logging a failure
// to record it.
func (s *Server) agentRegistered(ctx context.Context, a store.Agent) error {
	if s.opts.Events == nil {
		return nil
	}
	if err := s.opts.Events.AgentRegistered(ctx, a); err != nil {
		s.log.Error("authserver: agent registration not recorded", "client_id", a.ID, "registration", a.Registration, "err", err)
		return err
	}
	return nil
}
