package web_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

// TestAdminAPIRecordsChanges: suspending and resuming an agent and
// disabling an account reach RecordChange with who did it, and a change
// that cannot be recorded is answered 500 although it stands, so the
// administrator does not take it for a recorded one.
func TestAdminAPIRecordsChanges(t *testing.T) {
	var got []web.Change
	fail := false
	e := newEnvWith(t, func(o *web.AdminOptions) {
		o.RecordChange = func(_ context.Context, c web.Change) error {
			got = append(got, c)
			if fail {
				return errors.New("audit log down by design")
			}
			return nil
		}
	})
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	post := func(path string) response {
		return e.do(t, request{method: http.MethodPost, path: path, token: admin})
	}
	if r := post("agents/robot/suspend"); r.status != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.status, r.body)
	}
	if r := post("users/bob/disable"); r.status != http.StatusOK {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	fail = true
	r := post("agents/robot/resume")
	if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "could not be recorded") {
		t.Fatalf("unrecorded resume: %d %s", r.status, r.body)
	}
	wantStoredStatus(t, e, "robot", store.AgentActive)
	want := []web.Change{
		{Action: "agent.suspend", Target: "robot", From: "active", To: "suspended", ByUser: "u-root", ByAgent: "console"},
		{Action: "user.disable", Target: "bob", From: "enabled", To: "disabled", ByUser: "u-root", ByAgent: "console"},
		{Action: "agent.resume", Target: "robot", From: "suspended", To: "active", ByUser: "u-root", ByAgent: "console"},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
