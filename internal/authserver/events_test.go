package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store"
)

// recordedEvents keeps what the server reports and fails on demand.
type recordedEvents struct {
	mu     sync.Mutex
	logins []Login
	agents []store.Agent
	fail   bool
}

var errNotRecorded = errors.New("not recorded by design")

func (r *recordedEvents) Login(_ context.Context, l Login) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logins = append(r.logins, l)
	if r.fail {
		return errNotRecorded
	}
	return nil
}

func (r *recordedEvents) AgentRegistered(_ context.Context, a store.Agent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agents = append(r.agents, a)
	if r.fail {
		return errNotRecorded
	}
	return nil
}

// TestLoginEvents: failed and successful password sign-ins are reported,
// and a successful one that cannot be recorded is refused (fail closed).
func TestLoginEvents(t *testing.T) {
	ev := &recordedEvents{}
	e := newEnv(t, func(o *Options) { o.Events = ev })
	_, challenge := pkce()
	b := e.browser()
	loc := location(t, b.get("/authorize?"+e.authParams(challenge).Encode()))
	id := loc.Query().Get("id")
	lp := b.get(loc.String())
	p := b.post(loginPath, url.Values{"id": {id}, "csrf": {csrfOf(t, lp)}, "username": {testUser}, "password": {"wrong"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", p.status)
	}

	ev.fail = true
	p = b.post(loginPath, url.Values{"id": {id}, "csrf": {csrfOf(t, p)}, "username": {testUser}, "password": {testPassword}})
	if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "could not record") {
		t.Fatalf("sign-in that cannot be recorded: %d %s", p.status, p.body)
	}

	// The login page is shown again, not skipped: no session was started.
	ev.fail = false
	b.login(e.authParams(challenge))
	if len(ev.logins) != 3 {
		t.Fatalf("logins reported: %+v", ev.logins)
	}
	failed, refused, ok := ev.logins[0], ev.logins[1], ev.logins[2]
	if failed.OK || failed.Method != LoginPassword || failed.Username != testUser || failed.User.ID != "" || failed.Remote == "" {
		t.Errorf("failed sign-in reported as %+v", failed)
	}
	if !refused.OK || refused.User.ID != "usr_alice" {
		t.Errorf("unrecorded sign-in reported as %+v", refused)
	}
	if !ok.OK || ok.User.ID != "usr_alice" || ok.Method != LoginPassword {
		t.Errorf("sign-in reported as %+v", ok)
	}
}

// TestAgentRegisteredEvents: an agent stored for the first time is
// reported, by dynamic registration and by configuration; a configured
// agent already known is not reported again, and a dynamic registration
// that cannot be recorded hands out no credentials.
func TestAgentRegisteredEvents(t *testing.T) {
	ev := &recordedEvents{}
	e := newEnv(t, func(o *Options) {
		o.DCR = DCR{Enabled: true, PerMinute: 100}
		o.Events = ev
	})
	body := `{"client_name":"Claude","redirect_uris":["http://127.0.0.1:33418/cb"],"token_endpoint_auth_method":"none"}`
	status, m := register(t, e, body)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, m)
	}
	clients := []ConfigClient{{ID: "ci-bot", Name: "CI", RedirectURIs: []string{"https://ci.example/cb"}}}
	ctx := context.Background()
	for range 2 {
		if err := e.srv.RegisterClients(ctx, clients); err != nil {
			t.Fatal(err)
		}
	}
	if len(ev.agents) != 2 || ev.agents[0].ID != m["client_id"] || ev.agents[0].Registration != store.RegistrationDCR ||
		ev.agents[1].ID != "ci-bot" || ev.agents[1].Registration != store.RegistrationConfig {
		t.Fatalf("agents reported: %+v", ev.agents)
	}

	ev.fail = true
	if status, m := register(t, e, body); status != http.StatusInternalServerError || m["client_id"] != nil {
		t.Fatalf("unrecorded registration: %d %v", status, m)
	}
	if err := e.srv.RegisterClients(ctx, []ConfigClient{{ID: "new-bot", RedirectURIs: []string{"https://ci.example/cb"}}}); !errors.Is(err, errNotRecorded) {
		t.Fatalf("unrecorded configured client: %v", err)
	}
}
