package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// The identity tests share one rule for lists and byte fields: nil and empty
// are the same value to the store, and both read back as nil. The render
// functions below print nil and empty differently, so a backend that
// returns an empty slice fails the comparison.

func testUserRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := user("u-full", "alice")
	federated := user("u-fed", "bob")
	federated.PasswordHash, federated.Issuer, federated.Subject = "", "https://idp.example", "sub|42"
	minimal := store.User{ID: "u-min", Username: "carol", CreatedAt: at(0)}
	empty := store.User{ID: "u-empty", Username: "dave", Groups: []string{}, CreatedAt: at(0)}
	tests := []struct {
		name string
		u    store.User
	}{
		{"every field set", full},
		{"federated", federated},
		{"only required fields", minimal},
		{"empty, not nil, groups", empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.CreateUser(ctx, tc.u); err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			want := []store.User{tc.u}
			got, err := s.GetUser(ctx, tc.u.ID)
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			assertUsers(t, []store.User{got}, want)
			got, err = s.GetUserByUsername(ctx, tc.u.Username)
			if err != nil {
				t.Fatalf("GetUserByUsername: %v", err)
			}
			assertUsers(t, []store.User{got}, want)
			if tc.u.Issuer != "" {
				got, err = s.GetUserBySubject(ctx, tc.u.Issuer, tc.u.Subject)
				if err != nil {
					t.Fatalf("GetUserBySubject: %v", err)
				}
				assertUsers(t, []store.User{got}, want)
			}
		})
	}
}

func testUserInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	existing := user("u1", "alice")
	mustCreateUser(t, s, existing)
	tests := []struct {
		name   string
		mutate func(*store.User)
	}{
		{"empty id", func(u *store.User) { u.ID = "" }},
		{"empty username", func(u *store.User) { u.Username = "" }},
		{"NUL in id", func(u *store.User) { u.ID = "u\x00" }},
		{"NUL in username", func(u *store.User) { u.Username = "al\x00ice" }},
		{"invalid UTF-8 email", func(u *store.User) { u.Email = "\xff@example.com" }},
		{"NUL in a group", func(u *store.User) { u.Groups = []string{"ok", "b\x00d"} }},
		{"issuer without subject", func(u *store.User) { u.Issuer, u.Subject = "https://idp.example", "" }},
		{"subject without issuer", func(u *store.User) { u.Issuer, u.Subject = "", "sub" }},
		{"zero creation time", func(u *store.User) { u.CreatedAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			created := user("u2", "bob")
			tc.mutate(&created)
			assertIs(t, s.CreateUser(ctx, created), store.ErrInvalid)
			// Arguments are checked before the record is looked up, so an
			// invalid update of an existing user is invalid, not applied.
			updated := existing
			tc.mutate(&updated)
			assertIs(t, s.UpdateUser(ctx, updated), store.ErrInvalid)
		})
	}
	n, err := s.CountUsers(ctx)
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	if n != 1 {
		t.Errorf("CountUsers = %d after invalid creates, want 1", n)
	}
	got, err := s.GetUser(ctx, existing.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	assertUsers(t, []store.User{got}, []store.User{existing})
}

func testCreateUserConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	local := user("u-local", "alice")
	fed := federatedUser("u-fed", "bob", "https://a.example", "1")
	mustCreateUser(t, s, local)
	mustCreateUser(t, s, fed)
	tests := []struct {
		name string
		u    store.User
		want error
	}{
		{"same id", user(local.ID, "zed"), store.ErrConflict},
		{"same username", user("u-new", local.Username), store.ErrConflict},
		{"same username as federated", federatedUser("u-new", fed.Username, "https://b.example", "9"), store.ErrConflict},
		{"same issuer and subject", federatedUser("u-new", "carol", fed.Issuer, fed.Subject), store.ErrConflict},
		{"same subject at another issuer", federatedUser("u-other-iss", "dave", "https://b.example", fed.Subject), nil},
		{"another subject at the same issuer", federatedUser("u-other-sub", "erin", fed.Issuer, "2"), nil},
		// Local users all have the empty (issuer, subject) pair.
		{"second local user", user("u-local-2", "frank"), nil},
		{"username differing in case", user("u-case", "Alice"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateUser(ctx, tc.u)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CreateUser: %v", err)
				}
				return
			}
			assertIs(t, err, tc.want)
		})
	}
	for _, u := range []store.User{local, fed} {
		got, err := s.GetUser(ctx, u.ID)
		if err != nil {
			t.Fatalf("GetUser(%s): %v", u.ID, err)
		}
		assertUsers(t, []store.User{got}, []store.User{u})
	}
	n, err := s.CountUsers(ctx)
	if err != nil {
		t.Fatalf("CountUsers: %v", err)
	}
	if n != 6 {
		t.Errorf("CountUsers = %d, want 6", n)
	}
}

func testUpdateUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := user("u1", "alice")
	bob := federatedUser("u2", "bob", "https://idp.example", "b")
	mustCreateUser(t, s, alice)
	mustCreateUser(t, s, bob)

	changed := store.User{
		ID: alice.ID, Username: "alice2", Email: "new@example.com", Groups: []string{"ops"},
		Issuer: "https://other.example", Subject: "a", Disabled: true,
		CreatedAt: at(time.Hour), LastLogin: at(2 * time.Hour),
	}
	tests := []struct {
		name string
		u    store.User
		want error
	}{
		{"absent", user("u-none", "nobody"), store.ErrNotFound},
		{"username of another user", withUsername(alice, bob.Username), store.ErrConflict},
		{"identity of another user", federatedUser(alice.ID, alice.Username, bob.Issuer, bob.Subject), store.ErrConflict},
		{"keeping its own username", withUsername(alice, alice.Username), nil},
		{"every field", changed, nil},
		{"lists cleared", withGroups(changed, nil), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.GetUser(ctx, tc.u.ID)
			err := s.UpdateUser(ctx, tc.u)
			if tc.want != nil {
				assertIs(t, err, tc.want)
				if errors.Is(tc.want, store.ErrNotFound) {
					_, err := s.GetUser(ctx, tc.u.ID)
					assertIs(t, err, store.ErrNotFound)
					return
				}
				after, err := s.GetUser(ctx, tc.u.ID)
				if err != nil {
					t.Fatalf("GetUser: %v", err)
				}
				assertUsers(t, []store.User{after}, []store.User{before})
				return
			}
			if err != nil {
				t.Fatalf("UpdateUser: %v", err)
			}
			got, err := s.GetUser(ctx, tc.u.ID)
			if err != nil {
				t.Fatalf("GetUser: %v", err)
			}
			assertUsers(t, []store.User{got}, []store.User{tc.u})
		})
	}
	// The old username and identity are free again.
	_, err := s.GetUserByUsername(ctx, "alice")
	assertIs(t, err, store.ErrNotFound)
	got, err := s.GetUserBySubject(ctx, changed.Issuer, changed.Subject)
	if err != nil {
		t.Fatalf("GetUserBySubject: %v", err)
	}
	if got.ID != alice.ID {
		t.Errorf("GetUserBySubject found %s, want %s", got.ID, alice.ID)
	}
	mustCreateUser(t, s, user("u3", "alice"))
}

func testGetUserNotFound(t *testing.T, s store.Store) {
	mustCreateUser(t, s, user("u1", "alice"))
	mustCreateUser(t, s, federatedUser("u2", "bob", "https://idp.example", "b"))
	tests := []struct {
		name string
		get  func() (store.User, error)
	}{
		{"unknown id", func() (store.User, error) { return s.GetUser(t.Context(), "u9") }},
		{"empty id", func() (store.User, error) { return s.GetUser(t.Context(), "") }},
		{"invalid UTF-8 id", func() (store.User, error) { return s.GetUser(t.Context(), "\xff") }},
		{"id is a username", func() (store.User, error) { return s.GetUser(t.Context(), "alice") }},
		{"unknown username", func() (store.User, error) { return s.GetUserByUsername(t.Context(), "mallory") }},
		{"empty username", func() (store.User, error) { return s.GetUserByUsername(t.Context(), "") }},
		{"NUL username", func() (store.User, error) { return s.GetUserByUsername(t.Context(), "alice\x00") }},
		{"username in other case", func() (store.User, error) { return s.GetUserByUsername(t.Context(), "ALICE") }},
		// Local users carry the empty pair, which must never match.
		{"empty issuer and subject", func() (store.User, error) { return s.GetUserBySubject(t.Context(), "", "") }},
		{"empty subject", func() (store.User, error) { return s.GetUserBySubject(t.Context(), "https://idp.example", "") }},
		{"unknown subject", func() (store.User, error) { return s.GetUserBySubject(t.Context(), "https://idp.example", "c") }},
		{"subject of another issuer", func() (store.User, error) { return s.GetUserBySubject(t.Context(), "https://evil.example", "b") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			assertIs(t, err, store.ErrNotFound)
			if got.ID != "" {
				t.Errorf("returned %+v with ErrNotFound, want the zero user", got)
			}
		})
	}
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers on an empty store: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListUsers on an empty store = %#v, want an empty slice", got)
	}
	n, err := s.CountUsers(ctx)
	if err != nil || n != 0 {
		t.Errorf("CountUsers on an empty store = %d, %v; want 0, nil", n, err)
	}
	// Usernames are ordered bytewise, whatever the database's locale:
	// upper case before "_" before lower case before non-ASCII.
	names := []string{"bob", "émile", "alice", "_svc", "Zed", "Alice", "al"}
	for i, name := range names {
		mustCreateUser(t, s, user(fmt.Sprintf("u%d", len(names)-i), name))
	}
	got, err = s.ListUsers(ctx)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	var order []string
	for _, u := range got {
		order = append(order, u.Username)
	}
	if want := []string{"Alice", "Zed", "_svc", "al", "alice", "bob", "émile"}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("ListUsers order = %q, want %q", order, want)
	}
	if len(got) > 0 {
		want, err := s.GetUser(ctx, got[0].ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		assertUsers(t, got[:1], []store.User{want})
	}
	n, err = s.CountUsers(ctx)
	if err != nil || n != len(names) {
		t.Errorf("CountUsers = %d, %v; want %d, nil", n, err, len(names))
	}
}

func testAgentRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	minimal := store.Agent{
		ID: "minimal", Registration: store.RegistrationConfig, TrustLevel: "untrusted",
		Status: store.AgentSuspended, AuthMethod: "none", CreatedAt: at(0),
	}
	empty := minimal
	empty.ID = "empty"
	empty.RedirectURIs, empty.GrantTypes, empty.Scopes = []string{}, []string{}, []string{}
	empty.JWKS, empty.Metadata = []byte{}, []byte{}
	dcr := agent("dcr-client")
	dcr.Registration, dcr.AuthMethod, dcr.TrustLevel = store.RegistrationDCR, "client_secret_post", "trusted"
	tests := []struct {
		name string
		a    store.Agent
	}{
		{"every field set", agent("https://agent.example/client.json")},
		{"dynamically registered", dcr},
		{"only required fields", minimal},
		{"empty, not nil, lists and bytes", empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutAgent(ctx, tc.a); err != nil {
				t.Fatalf("PutAgent: %v", err)
			}
			got, err := s.GetAgent(ctx, tc.a.ID)
			if err != nil {
				t.Fatalf("GetAgent: %v", err)
			}
			assertAgents(t, []store.Agent{got}, []store.Agent{tc.a})
		})
	}
}

func testPutAgentInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.Agent)
	}{
		{"empty id", func(a *store.Agent) { a.ID = "" }},
		{"NUL in id", func(a *store.Agent) { a.ID = "a\x00" }},
		{"empty registration", func(a *store.Agent) { a.Registration = "" }},
		{"unknown registration", func(a *store.Agent) { a.Registration = "manual" }},
		{"empty status", func(a *store.Agent) { a.Status = "" }},
		{"unknown status", func(a *store.Agent) { a.Status = "disabled" }},
		{"unknown trust level", func(a *store.Agent) { a.TrustLevel = "root" }},
		{"empty trust level", func(a *store.Agent) { a.TrustLevel = "" }},
		{"unknown auth method", func(a *store.Agent) { a.AuthMethod = "tls_client_auth" }},
		{"JWKS not JSON", func(a *store.Agent) { a.JWKS = []byte(`{"keys":`) }},
		{"metadata not JSON", func(a *store.Agent) { a.Metadata = []byte(`nope`) }},
		{"NUL in a redirect URI", func(a *store.Agent) { a.RedirectURIs = []string{"https://x\x00"} }},
		{"invalid UTF-8 scope", func(a *store.Agent) { a.Scopes = []string{"\xc3"} }},
		{"invalid UTF-8 name", func(a *store.Agent) { a.Name = "\xc3" }},
		{"zero creation time", func(a *store.Agent) { a.CreatedAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := agent("a")
			tc.mutate(&a)
			assertIs(t, s.PutAgent(ctx, a), store.ErrInvalid)
		})
	}
	got, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("invalid agents were stored: %v", got)
	}
}

func testPutAgentReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := agent("a")
	mustPutAgent(t, s, first)
	second := store.Agent{
		ID: "a", Name: "renamed", Registration: store.RegistrationDCR, TrustLevel: "standard",
		Status: store.AgentActive, AuthMethod: "none", CreatedAt: at(time.Hour),
	}
	mustPutAgent(t, s, second)
	got, err := s.GetAgent(ctx, "a")
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	// A put replaces every field, sightings and lists included.
	assertAgents(t, []store.Agent{got}, []store.Agent{second})
	list, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	assertAgents(t, list, []store.Agent{second})
}

func testGetAgentNotFound(t *testing.T, s store.Store) {
	mustPutAgent(t, s, agent("a"))
	for _, id := range []string{"b", "A", "", "a\x00", "\xff"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			got, err := s.GetAgent(t.Context(), id)
			assertIs(t, err, store.ErrNotFound)
			if got.ID != "" {
				t.Errorf("returned %+v with ErrNotFound, want the zero agent", got)
			}
		})
	}
}

func testListAgents(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListAgents(ctx)
	if err != nil {
		t.Fatalf("ListAgents on an empty store: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListAgents on an empty store = %#v, want an empty slice", got)
	}
	ids := []string{"https://b.example/c.json", "agent-a", "Agent-Z", "https://a.example/c.json", "agent-A"}
	var want []store.Agent
	for _, id := range ids {
		a := agent(id)
		mustPutAgent(t, s, a)
		want = append(want, a)
	}
	// IDs are ordered bytewise, whatever the database's locale.
	order := []int{2, 4, 1, 3, 0}
	sorted := make([]store.Agent, len(order))
	for i, j := range order {
		sorted[i] = want[j]
	}
	got, err = s.ListAgents(ctx)
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	assertAgents(t, got, sorted)
}

func testSetAgentStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := agent("a")
	mustPutAgent(t, s, a)
	tests := []struct {
		name   string
		id     string
		status string
		want   error
	}{
		{"suspend", "a", store.AgentSuspended, nil},
		{"suspend again", "a", store.AgentSuspended, nil},
		{"reactivate", "a", store.AgentActive, nil},
		{"absent", "b", store.AgentSuspended, store.ErrNotFound},
		{"empty id", "", store.AgentSuspended, store.ErrNotFound},
		{"unknown status", "a", "disabled", store.ErrInvalid},
		{"empty status", "a", "", store.ErrInvalid},
		{"status in other case", "a", "Suspended", store.ErrInvalid},
		// The status is checked before the agent is looked up.
		{"unknown status of an absent agent", "b", "revoked", store.ErrInvalid},
		{"final suspension", "a", store.AgentSuspended, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.SetAgentStatus(ctx, tc.id, tc.status)
			if tc.want != nil {
				assertIs(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("SetAgentStatus: %v", err)
			}
		})
	}
	got, err := s.GetAgent(ctx, "a")
	if err != nil {
		t.Fatalf("GetAgent: %v", err)
	}
	want := a
	want.Status = store.AgentSuspended
	// Only the status changed.
	assertAgents(t, []store.Agent{got}, []store.Agent{want})
	_, err = s.GetAgent(ctx, "b")
	assertIs(t, err, store.ErrNotFound)
}

func testTouchAgent(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := agent("a")
	a.FirstSeen, a.LastSeen = time.Time{}, time.Time{}
	mustPutAgent(t, s, a)
	t1, t2, t3 := at(time.Minute), at(2*time.Minute), at(3*time.Minute)
	steps := []struct {
		name            string
		at              time.Time
		first, lastSeen time.Time
	}{
		{"first sighting", t2, t2, t2},
		{"earlier sighting reported late", t1, t2, t2},
		{"later sighting", t3, t2, t3},
		{"same instant again", t3, t2, t3},
		{"sub-microsecond later", t3.Add(999 * time.Nanosecond), t2, t3},
	}
	for _, step := range steps {
		if err := s.TouchAgent(ctx, "a", step.at); err != nil {
			t.Fatalf("%s: TouchAgent: %v", step.name, err)
		}
		got, err := s.GetAgent(ctx, "a")
		if err != nil {
			t.Fatalf("%s: GetAgent: %v", step.name, err)
		}
		want := a
		want.FirstSeen, want.LastSeen = step.first, step.lastSeen
		assertAgents(t, []store.Agent{got}, []store.Agent{want})
	}

	tests := []struct {
		name string
		id   string
		at   time.Time
		want error
	}{
		{"absent", "b", t1, store.ErrNotFound},
		{"empty id", "", t1, store.ErrNotFound},
		{"zero time", "a", time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertIs(t, s.TouchAgent(ctx, tc.id, tc.at), tc.want)
		})
	}

	t.Run("concurrently", func(t *testing.T) {
		busy := agent("busy")
		busy.FirstSeen, busy.LastSeen = time.Time{}, time.Time{}
		mustPutAgent(t, s, busy)
		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if err := s.TouchAgent(ctx, "busy", at(time.Duration(i)*time.Second)); err != nil {
					t.Errorf("TouchAgent: %v", err)
				}
			})
		}
		wg.Wait()
		got, err := s.GetAgent(ctx, "busy")
		if err != nil {
			t.Fatalf("GetAgent: %v", err)
		}
		if want := at((n - 1) * time.Second); !got.LastSeen.Equal(want) {
			t.Errorf("LastSeen = %v after concurrent touches, want the latest, %v", got.LastSeen, want)
		}
		if got.FirstSeen.IsZero() {
			t.Error("FirstSeen not set by concurrent touches")
		}
	})
}

func testAuthRequestRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	pending := store.AuthRequest{ID: "pending", ClientID: "client", CreatedAt: at(0), ExpiresAt: at(time.Minute)}
	empty := pending
	empty.ID, empty.Scopes, empty.Resource = "empty", []string{}, []string{}
	tests := []struct {
		name string
		r    store.AuthRequest
	}{
		{"every field set", authRequest("done", "code-1")},
		{"only required fields", pending},
		{"empty, not nil, lists", empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutAuthRequest(ctx, tc.r); err != nil {
				t.Fatalf("PutAuthRequest: %v", err)
			}
			got, err := s.GetAuthRequest(ctx, tc.r.ID)
			if err != nil {
				t.Fatalf("GetAuthRequest: %v", err)
			}
			assertAuthRequests(t, []store.AuthRequest{got}, []store.AuthRequest{tc.r})
			if tc.r.Code != "" {
				got, err := s.GetAuthRequestByCode(ctx, tc.r.Code)
				if err != nil {
					t.Fatalf("GetAuthRequestByCode: %v", err)
				}
				assertAuthRequests(t, []store.AuthRequest{got}, []store.AuthRequest{tc.r})
			}
		})
	}
}

func testPutAuthRequestInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.AuthRequest)
	}{
		{"empty id", func(r *store.AuthRequest) { r.ID = "" }},
		{"empty client id", func(r *store.AuthRequest) { r.ClientID = "" }},
		{"NUL in state", func(r *store.AuthRequest) { r.State = "s\x00" }},
		{"invalid UTF-8 code", func(r *store.AuthRequest) { r.Code = "\xff" }},
		{"NUL in a resource", func(r *store.AuthRequest) { r.Resource = []string{"https://mcp\x00"} }},
		{"invalid UTF-8 scope", func(r *store.AuthRequest) { r.Scopes = []string{"\xc3"} }},
		{"zero creation time", func(r *store.AuthRequest) { r.CreatedAt = time.Time{} }},
		{"zero expiry", func(r *store.AuthRequest) { r.ExpiresAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := authRequest("r", "c")
			tc.mutate(&r)
			assertIs(t, s.PutAuthRequest(ctx, r), store.ErrInvalid)
		})
	}
	_, err := s.GetAuthRequest(ctx, "r")
	assertIs(t, err, store.ErrNotFound)
}

func testPutAuthRequestReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := store.AuthRequest{ID: "r", ClientID: "client", Scopes: []string{"a"}, CreatedAt: at(0), ExpiresAt: at(time.Minute)}
	mustPutAuthRequest(t, s, r)
	// Login and consent, then the code is issued.
	r.UserID, r.AuthTime, r.Done, r.Code, r.Scopes = "u1", at(time.Second), true, "code-1", nil
	mustPutAuthRequest(t, s, r)
	got, err := s.GetAuthRequestByCode(ctx, "code-1")
	if err != nil {
		t.Fatalf("GetAuthRequestByCode: %v", err)
	}
	assertAuthRequests(t, []store.AuthRequest{got}, []store.AuthRequest{r})
	r.Code = "code-2"
	mustPutAuthRequest(t, s, r)
	_, err = s.GetAuthRequestByCode(ctx, "code-1")
	assertIs(t, err, store.ErrNotFound)
	got, err = s.GetAuthRequest(ctx, "r")
	if err != nil {
		t.Fatalf("GetAuthRequest: %v", err)
	}
	assertAuthRequests(t, []store.AuthRequest{got}, []store.AuthRequest{r})
}

func testAuthRequestCodeConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	held := authRequest("r1", "code-1")
	mustPutAuthRequest(t, s, held)
	tests := []struct {
		name string
		r    store.AuthRequest
		want error
	}{
		{"code of another request", authRequest("r2", "code-1"), store.ErrConflict},
		{"another code", authRequest("r3", "code-3"), nil},
		{"no code", authRequest("r4", ""), nil},
		// Every request has the empty code until one is issued.
		{"no code either", authRequest("r5", ""), nil},
		{"its own code again", held, nil},
		{"taking a code by replacing", authRequest("r3", "code-1"), store.ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.PutAuthRequest(ctx, tc.r)
			if tc.want != nil {
				assertIs(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("PutAuthRequest: %v", err)
			}
		})
	}
	got, err := s.GetAuthRequestByCode(ctx, "code-1")
	if err != nil {
		t.Fatalf("GetAuthRequestByCode: %v", err)
	}
	assertAuthRequests(t, []store.AuthRequest{got}, []store.AuthRequest{held})
	got, err = s.GetAuthRequest(ctx, "r3")
	if err != nil {
		t.Fatalf("GetAuthRequest: %v", err)
	}
	if got.Code != "code-3" {
		t.Errorf("request r3 has code %q after a conflicting replace, want code-3", got.Code)
	}
	_, err = s.GetAuthRequest(ctx, "r2")
	assertIs(t, err, store.ErrNotFound)
}

func testGetAuthRequestNotFound(t *testing.T, s store.Store) {
	mustPutAuthRequest(t, s, authRequest("r1", "code-1"))
	mustPutAuthRequest(t, s, authRequest("r2", ""))
	tests := []struct {
		name string
		get  func() (store.AuthRequest, error)
	}{
		{"unknown id", func() (store.AuthRequest, error) { return s.GetAuthRequest(t.Context(), "r9") }},
		{"empty id", func() (store.AuthRequest, error) { return s.GetAuthRequest(t.Context(), "") }},
		{"id used as code", func() (store.AuthRequest, error) { return s.GetAuthRequestByCode(t.Context(), "r1") }},
		{"unknown code", func() (store.AuthRequest, error) { return s.GetAuthRequestByCode(t.Context(), "code-9") }},
		// r2 has no code yet; the empty code must not find it.
		{"empty code", func() (store.AuthRequest, error) { return s.GetAuthRequestByCode(t.Context(), "") }},
		{"NUL code", func() (store.AuthRequest, error) { return s.GetAuthRequestByCode(t.Context(), "code-1\x00") }},
		{"invalid UTF-8 code", func() (store.AuthRequest, error) { return s.GetAuthRequestByCode(t.Context(), "\xff") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.get()
			assertIs(t, err, store.ErrNotFound)
			if got.ID != "" {
				t.Errorf("returned %+v with ErrNotFound, want the zero request", got)
			}
		})
	}
}

func testDeleteAuthRequest(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutAuthRequest(t, s, authRequest("r1", "code-1"))
	mustPutAuthRequest(t, s, authRequest("r2", "code-2"))
	tests := []struct {
		name string
		id   string
		want error
	}{
		{"present", "r1", nil},
		{"already deleted", "r1", store.ErrNotFound},
		{"never stored", "r9", store.ErrNotFound},
		{"empty id", "", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.DeleteAuthRequest(ctx, tc.id)
			if tc.want != nil {
				assertIs(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("DeleteAuthRequest: %v", err)
			}
		})
	}
	_, err := s.GetAuthRequest(ctx, "r1")
	assertIs(t, err, store.ErrNotFound)
	_, err = s.GetAuthRequestByCode(ctx, "code-1")
	assertIs(t, err, store.ErrNotFound)
	if _, err := s.GetAuthRequestByCode(ctx, "code-2"); err != nil {
		t.Errorf("deleting r1 affected r2: %v", err)
	}

	// A code is redeemed by deleting its request; of concurrent
	// redemptions exactly one delete succeeds.
	t.Run("concurrently", func(t *testing.T) {
		const n = 20
		var wins, losses int
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				err := s.DeleteAuthRequest(ctx, "r2")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrNotFound):
					losses++
				default:
					t.Errorf("DeleteAuthRequest: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins != 1 || losses != n-1 {
			t.Errorf("%d concurrent deletes: %d succeeded and %d found nothing, want 1 and %d", n, wins, losses, n-1)
		}
	})
}

func testDeleteExpiredAuthRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	expiries := map[string]time.Time{
		"long gone":       at(0),
		"just gone":       now.Add(-time.Microsecond),
		"expiring at now": now,
		"just alive":      now.Add(time.Microsecond),
		"alive":           now.Add(time.Hour),
	}
	for id, exp := range expiries {
		r := authRequest(id, "")
		r.ExpiresAt = exp
		mustPutAuthRequest(t, s, r)
	}
	n, err := s.DeleteExpiredAuthRequests(ctx, now)
	if err != nil {
		t.Fatalf("DeleteExpiredAuthRequests: %v", err)
	}
	if n != 3 {
		t.Errorf("DeleteExpiredAuthRequests removed %d, want 3", n)
	}
	for id := range expiries {
		_, err := s.GetAuthRequest(ctx, id)
		if wantGone := !expiries[id].After(now); wantGone {
			assertIs(t, err, store.ErrNotFound)
		} else if err != nil {
			t.Errorf("request %q, not expired, was removed: %v", id, err)
		}
	}
	n, err = s.DeleteExpiredAuthRequests(ctx, now)
	if err != nil || n != 0 {
		t.Errorf("second DeleteExpiredAuthRequests = %d, %v; want 0, nil", n, err)
	}
	_, err = s.DeleteExpiredAuthRequests(ctx, time.Time{})
	assertIs(t, err, store.ErrInvalid)
}

func testRefreshTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	minimal := store.RefreshToken{ID: "min", Family: "f", ClientID: "c", CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	empty := minimal
	empty.ID, empty.Scopes, empty.Audience, empty.AMR = "empty", []string{}, []string{}, []string{}
	spent := refreshToken("spent", "f", at(time.Hour))
	spent.UsedAt, spent.RevokedAt = at(time.Minute), at(2*time.Minute)
	tests := []struct {
		name string
		tok  store.RefreshToken
	}{
		{"every field set", refreshToken("full", "f", at(time.Hour))},
		{"used and revoked", spent},
		{"only required fields", minimal},
		{"empty, not nil, lists", empty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutRefreshToken(ctx, tc.tok); err != nil {
				t.Fatalf("PutRefreshToken: %v", err)
			}
			got, err := s.GetRefreshToken(ctx, tc.tok.ID)
			if err != nil {
				t.Fatalf("GetRefreshToken: %v", err)
			}
			assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{tc.tok})
		})
	}
	for _, id := range []string{"unknown", "", "full\x00"} {
		_, err := s.GetRefreshToken(ctx, id)
		assertIs(t, err, store.ErrNotFound)
	}
}

func testPutRefreshTokenInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.RefreshToken)
	}{
		{"empty id", func(r *store.RefreshToken) { r.ID = "" }},
		{"empty family", func(r *store.RefreshToken) { r.Family = "" }},
		{"empty client id", func(r *store.RefreshToken) { r.ClientID = "" }},
		{"NUL in user id", func(r *store.RefreshToken) { r.UserID = "u\x00" }},
		{"invalid UTF-8 audience", func(r *store.RefreshToken) { r.Audience = []string{"\xff"} }},
		{"NUL in AMR", func(r *store.RefreshToken) { r.AMR = []string{"pwd\x00"} }},
		{"zero creation time", func(r *store.RefreshToken) { r.CreatedAt = time.Time{} }},
		{"zero expiry", func(r *store.RefreshToken) { r.ExpiresAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := refreshToken("t", "f", at(time.Hour))
			tc.mutate(&tok)
			assertIs(t, s.PutRefreshToken(ctx, tok), store.ErrInvalid)
		})
	}
	_, err := s.GetRefreshToken(ctx, "t")
	assertIs(t, err, store.ErrNotFound)
}

func testPutRefreshTokenConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := refreshToken("t", "f", at(time.Hour))
	mustPutToken(t, s, first)
	second := refreshToken("t", "g", at(2*time.Hour))
	second.UserID = "someone else"
	assertIs(t, s.PutRefreshToken(ctx, second), store.ErrConflict)
	got, err := s.GetRefreshToken(ctx, "t")
	if err != nil {
		t.Fatalf("GetRefreshToken: %v", err)
	}
	assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{first})
}

func testUseRefreshToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	fresh := refreshToken("fresh", "f1", now.Add(time.Minute))
	used := refreshToken("used", "f2", now.Add(time.Minute))
	used.UsedAt = now.Add(-time.Minute)
	revoked := refreshToken("revoked", "f3", now.Add(time.Minute))
	revoked.RevokedAt = now.Add(-time.Minute)
	atExpiry := refreshToken("at-expiry", "f4", now)
	expired := refreshToken("expired", "f5", now.Add(-time.Second))
	usedExpired := refreshToken("used-expired", "f6", now.Add(-time.Second))
	usedExpired.UsedAt = now.Add(-time.Minute)
	for _, tok := range []store.RefreshToken{fresh, used, revoked, atExpiry, expired, usedExpired} {
		mustPutToken(t, s, tok)
	}
	tests := []struct {
		name string
		id   string
		now  time.Time
		want error
	}{
		{"unused", "fresh", now, nil},
		{"used by the call before", "fresh", now, store.ErrConflict},
		{"used", "used", now, store.ErrConflict},
		{"revoked", "revoked", now, store.ErrConflict},
		// A token expires at its ExpiresAt.
		{"expiring at now", "at-expiry", now, store.ErrNotFound},
		{"expired", "expired", now, store.ErrNotFound},
		// Reuse is reported even after expiry: it still means theft.
		{"used and expired", "used-expired", now, store.ErrConflict},
		{"unknown", "nope", now, store.ErrNotFound},
		{"empty id", "", now, store.ErrNotFound},
		{"zero now", "at-expiry", time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UseRefreshToken(ctx, tc.id, tc.now)
			if tc.want != nil {
				assertIs(t, err, tc.want)
				if got.ID != "" {
					t.Errorf("returned %+v with an error, want the zero token", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("UseRefreshToken: %v", err)
			}
			want := fresh
			want.UsedAt = tc.now
			assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{want})
		})
	}
	// Failed uses leave tokens as they were.
	for _, tok := range []store.RefreshToken{used, revoked, atExpiry, expired, usedExpired} {
		got, err := s.GetRefreshToken(ctx, tok.ID)
		if err != nil {
			t.Fatalf("GetRefreshToken(%s): %v", tok.ID, err)
		}
		assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{tok})
	}
	got, err := s.GetRefreshToken(ctx, "fresh")
	if err != nil {
		t.Fatalf("GetRefreshToken: %v", err)
	}
	if !got.UsedAt.Equal(normal(now)) {
		t.Errorf("stored UsedAt = %v, want %v", got.UsedAt, normal(now))
	}
}

// testUseRefreshTokenConcurrently guards refresh token rotation: a token
// presented twice at once, by its owner and by a thief, must rotate once.
func testUseRefreshTokenConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	now := at(time.Hour)
	mustPutToken(t, s, refreshToken("t", "f", now.Add(time.Hour)))
	var (
		mu        sync.Mutex
		winners   []store.RefreshToken
		conflicts int
		wg        sync.WaitGroup
	)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := s.UseRefreshToken(ctx, "t", now.Add(time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, tok)
			case errors.Is(err, store.ErrConflict):
				conflicts++
			default:
				t.Errorf("UseRefreshToken: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(winners) != 1 || conflicts != n-1 {
		t.Fatalf("%d concurrent uses: %d succeeded and %d conflicted, want 1 and %d", n, len(winners), conflicts, n-1)
	}
	got, err := s.GetRefreshToken(ctx, "t")
	if err != nil {
		t.Fatalf("GetRefreshToken: %v", err)
	}
	if !got.UsedAt.Equal(winners[0].UsedAt) {
		t.Errorf("stored UsedAt = %v, want the winner's %v", got.UsedAt, winners[0].UsedAt)
	}
}

func testRevokeTokenFamily(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	earlier := now.Add(-time.Minute)
	live := refreshToken("f-live", "f", now.Add(time.Hour))
	used := refreshToken("f-used", "f", now.Add(time.Hour))
	used.UsedAt = earlier
	already := refreshToken("f-revoked", "f", now.Add(time.Hour))
	already.RevokedAt = earlier
	other := refreshToken("g-live", "g", now.Add(time.Hour))
	for _, tok := range []store.RefreshToken{live, used, already, other} {
		mustPutToken(t, s, tok)
	}
	if err := s.RevokeTokenFamily(ctx, "f", now); err != nil {
		t.Fatalf("RevokeTokenFamily: %v", err)
	}
	live.RevokedAt, used.RevokedAt = now, now
	// A token revoked before keeps its first revocation time.
	for _, want := range []store.RefreshToken{live, used, already, other} {
		got, err := s.GetRefreshToken(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRefreshToken(%s): %v", want.ID, err)
		}
		assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{want})
	}
	_, err := s.UseRefreshToken(ctx, live.ID, now)
	assertIs(t, err, store.ErrConflict)
	if _, err := s.UseRefreshToken(ctx, other.ID, now); err != nil {
		t.Errorf("revoking family f affected family g: %v", err)
	}

	tests := []struct {
		name   string
		family string
		now    time.Time
		want   error
	}{
		{"again", "f", now.Add(time.Minute), nil},
		{"unknown family", "h", now, nil},
		{"empty family", "", now, store.ErrInvalid},
		{"NUL in family", "f\x00", now, store.ErrInvalid},
		{"zero now", "f", time.Time{}, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RevokeTokenFamily(ctx, tc.family, tc.now)
			if tc.want != nil {
				assertIs(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("RevokeTokenFamily: %v", err)
			}
		})
	}
	got, err := s.GetRefreshToken(ctx, live.ID)
	if err != nil {
		t.Fatalf("GetRefreshToken: %v", err)
	}
	assertTokens(t, []store.RefreshToken{got}, []store.RefreshToken{live})
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(24 * time.Hour)
	got, err := s.ListSigningKeys(ctx, now)
	if err != nil {
		t.Fatalf("ListSigningKeys on an empty store: %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListSigningKeys on an empty store = %#v, want an empty slice", got)
	}
	retired := signingKey("retired", at(0), now.Add(-time.Second))
	retiringNow := signingKey("retiring-now", at(time.Hour), now)
	publishedOnly := signingKey("published-only", at(2*time.Hour), now.Add(time.Hour))
	publishedOnly.NotAfter = now.Add(-time.Hour)
	current := signingKey("current", at(3*time.Hour), now.Add(48*time.Hour))
	twinB := signingKey("twin-b", at(4*time.Hour), now.Add(48*time.Hour))
	twinA := signingKey("twin-a", at(4*time.Hour), now.Add(48*time.Hour))
	for _, k := range []store.SigningKey{retired, retiringNow, publishedOnly, current, twinB, twinA} {
		mustPutKey(t, s, k)
	}
	got, err = s.ListSigningKeys(ctx, now)
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	// Newest first; keys created together in ID order; a key retiring at
	// now is retired.
	assertKeys(t, got, []store.SigningKey{twinA, twinB, current, publishedOnly})

	current.Private, current.NotAfter, current.RetireAt = []byte{0xff, 0, 1}, now, now.Add(45*time.Minute)
	mustPutKey(t, s, current)
	got, err = s.ListSigningKeys(ctx, now.Add(30*time.Minute))
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	assertKeys(t, got, []store.SigningKey{twinA, twinB, current, publishedOnly})

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"present", "twin-b", nil},
		{"already deleted", "twin-b", store.ErrNotFound},
		{"never stored", "nope", store.ErrNotFound},
		{"empty id", "", store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.DeleteSigningKey(ctx, tc.id)
			if tc.want != nil {
				assertIs(t, err, tc.want)
			} else if err != nil {
				t.Fatalf("DeleteSigningKey: %v", err)
			}
		})
	}
	got, err = s.ListSigningKeys(ctx, now)
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	assertKeys(t, got, []store.SigningKey{twinA, current, publishedOnly})
	_, err = s.ListSigningKeys(ctx, time.Time{})
	assertIs(t, err, store.ErrInvalid)
}

func testPutSigningKeyInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func(*store.SigningKey)
	}{
		{"empty id", func(k *store.SigningKey) { k.ID = "" }},
		{"empty algorithm", func(k *store.SigningKey) { k.Algorithm = "" }},
		{"nil private key", func(k *store.SigningKey) { k.Private = nil }},
		{"empty private key", func(k *store.SigningKey) { k.Private = []byte{} }},
		{"zero creation time", func(k *store.SigningKey) { k.CreatedAt = time.Time{} }},
		{"zero end of signing", func(k *store.SigningKey) { k.NotAfter = time.Time{} }},
		{"zero retirement", func(k *store.SigningKey) { k.RetireAt = time.Time{} }},
		{"retired before it stops signing", func(k *store.SigningKey) { k.RetireAt = k.NotAfter.Add(-time.Second) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := signingKey("k", at(0), at(48*time.Hour))
			tc.mutate(&k)
			assertIs(t, s.PutSigningKey(ctx, k), store.ErrInvalid)
		})
	}
	got, err := s.ListSigningKeys(ctx, at(0))
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("invalid keys were stored: %v", got)
	}
}

func testIdentityCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	t.Run("user", func(t *testing.T) {
		u := user("u", "alice")
		want := withGroups(u, []string{"admins", "ops"})
		u.Groups = []string{"admins", "ops"}
		mustCreateUser(t, s, u)
		u.Groups[0] = "changed"
		got, err := s.GetUser(ctx, "u")
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		got.Groups[1] = "changed"
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		list[0].Groups[0] = "changed"
		again, err := s.GetUser(ctx, "u")
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		assertUsers(t, []store.User{again}, []store.User{want})
	})
	t.Run("agent", func(t *testing.T) {
		a := agent("a")
		want := agent("a")
		mustPutAgent(t, s, a)
		a.RedirectURIs[0], a.Scopes[0], a.JWKS[0], a.Metadata[0] = "x", "x", ' ', ' '
		got, err := s.GetAgent(ctx, "a")
		if err != nil {
			t.Fatalf("GetAgent: %v", err)
		}
		got.GrantTypes[0], got.JWKS[0] = "x", ' '
		list, err := s.ListAgents(ctx)
		if err != nil {
			t.Fatalf("ListAgents: %v", err)
		}
		list[0].Metadata[0], list[0].RedirectURIs[0] = ' ', "x"
		again, err := s.GetAgent(ctx, "a")
		if err != nil {
			t.Fatalf("GetAgent: %v", err)
		}
		assertAgents(t, []store.Agent{again}, []store.Agent{want})
	})
	t.Run("auth request", func(t *testing.T) {
		r := authRequest("r", "c")
		want := authRequest("r", "c")
		mustPutAuthRequest(t, s, r)
		r.Scopes[0], r.Resource[0] = "x", "x"
		got, err := s.GetAuthRequestByCode(ctx, "c")
		if err != nil {
			t.Fatalf("GetAuthRequestByCode: %v", err)
		}
		got.Scopes[0] = "x"
		again, err := s.GetAuthRequest(ctx, "r")
		if err != nil {
			t.Fatalf("GetAuthRequest: %v", err)
		}
		assertAuthRequests(t, []store.AuthRequest{again}, []store.AuthRequest{want})
	})
	t.Run("refresh token", func(t *testing.T) {
		tok := refreshToken("t", "f", at(time.Hour))
		want := refreshToken("t", "f", at(time.Hour))
		mustPutToken(t, s, tok)
		tok.Scopes[0], tok.AMR[0] = "x", "x"
		used, err := s.UseRefreshToken(ctx, "t", at(0))
		if err != nil {
			t.Fatalf("UseRefreshToken: %v", err)
		}
		used.Audience[0] = "x"
		again, err := s.GetRefreshToken(ctx, "t")
		if err != nil {
			t.Fatalf("GetRefreshToken: %v", err)
		}
		want.UsedAt = at(0)
		assertTokens(t, []store.RefreshToken{again}, []store.RefreshToken{want})
	})
	t.Run("signing key", func(t *testing.T) {
		k := signingKey("k", at(0), at(time.Hour))
		want := signingKey("k", at(0), at(time.Hour))
		mustPutKey(t, s, k)
		k.Private[0] = 'x'
		got, err := s.ListSigningKeys(ctx, at(0))
		if err != nil {
			t.Fatalf("ListSigningKeys: %v", err)
		}
		got[0].Private[1] = 'x'
		again, err := s.ListSigningKeys(ctx, at(0))
		if err != nil {
			t.Fatalf("ListSigningKeys: %v", err)
		}
		assertKeys(t, again, []store.SigningKey{want})
	})
}

// zone and frac make round-trip times non-UTC and finer than the store's
// precision, so the suite sees backends truncate and convert them.
var zone = time.FixedZone("UTC-3:30", -(3*3600 + 1800))

func when(d time.Duration) time.Time { return at(d).Add(456789 * time.Nanosecond).In(zone) }

func user(id, username string) store.User {
	return store.User{
		ID: id, Username: username, Email: username + "@exämple.com",
		Groups:       []string{"admins", "ops 'quoted'", `{brace,"comma"}`},
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Disabled:     true, CreatedAt: when(0), LastLogin: when(time.Hour),
	}
}

func federatedUser(id, username, issuer, subject string) store.User {
	u := user(id, username)
	u.PasswordHash, u.Issuer, u.Subject = "", issuer, subject
	return u
}

func withUsername(u store.User, username string) store.User {
	u.Username = username
	return u
}

func withGroups(u store.User, groups []string) store.User {
	u.Groups = groups
	return u
}

func agent(id string) store.Agent {
	return store.Agent{
		ID: id, Name: "Agent ✓", Registration: store.RegistrationCIMD, Owner: "u1",
		TrustLevel: "standard", Status: store.AgentActive,
		RedirectURIs: []string{"http://127.0.0.1:33418/callback", "https://agent.example/cb?x=1&y=2"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		AuthMethod:   "private_key_jwt", SecretHash: "$argon2id$secret",
		JWKS:    []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"abc"}]}`),
		JWKSURL: "https://agent.example/jwks.json",
		Scopes:  []string{"tools:read", "tools:call"},
		// Metadata keeps its exact bytes, whitespace and key order included.
		Metadata:  []byte(`{ "client_name": "Agent", "a": 1 }`),
		CreatedAt: when(0), FirstSeen: when(time.Minute), LastSeen: when(time.Hour),
	}
}

func authRequest(id, code string) store.AuthRequest {
	return store.AuthRequest{
		ID: id, ClientID: "https://agent.example/client.json", RedirectURI: "http://127.0.0.1:33418/callback",
		State: "st-ä", Nonce: "n0nce", Scopes: []string{"openid", "tools:call"}, ResponseType: "code",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		Resource: []string{"https://mcp.example/", "https://mcp.example/other"},
		UserID:   "u1", AuthTime: when(time.Second), Done: code != "", Code: code,
		CreatedAt: when(0), ExpiresAt: when(10 * time.Minute),
	}
}

func refreshToken(id, family string, expires time.Time) store.RefreshToken {
	return store.RefreshToken{
		ID: id, Family: family, ClientID: "client", UserID: "u1",
		Scopes: []string{"tools:read", "offline_access"}, Audience: []string{"https://mcp.example/"},
		AuthTime: when(-time.Hour), AMR: []string{"pwd", "otp"},
		CreatedAt: when(0), ExpiresAt: expires,
	}
}

func signingKey(id string, created, retire time.Time) store.SigningKey {
	return store.SigningKey{
		ID: id, Algorithm: "EdDSA", Private: []byte("sealed\x00\xff" + id),
		CreatedAt: created.Add(789 * time.Nanosecond), NotAfter: retire.Add(-time.Hour), RetireAt: retire,
	}
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.ID, err)
	}
}

func mustPutAgent(t *testing.T, s store.Store, a store.Agent) {
	t.Helper()
	if err := s.PutAgent(t.Context(), a); err != nil {
		t.Fatalf("PutAgent(%s): %v", a.ID, err)
	}
}

func mustPutAuthRequest(t *testing.T, s store.Store, r store.AuthRequest) {
	t.Helper()
	if err := s.PutAuthRequest(t.Context(), r); err != nil {
		t.Fatalf("PutAuthRequest(%s): %v", r.ID, err)
	}
}

func mustPutToken(t *testing.T, s store.Store, tok store.RefreshToken) {
	t.Helper()
	if err := s.PutRefreshToken(t.Context(), tok); err != nil {
		t.Fatalf("PutRefreshToken(%s): %v", tok.ID, err)
	}
}

func mustPutKey(t *testing.T, s store.Store, k store.SigningKey) {
	t.Helper()
	if err := s.PutSigningKey(t.Context(), k); err != nil {
		t.Fatalf("PutSigningKey(%s): %v", k.ID, err)
	}
}

// The assert functions render every field. Wanted records are first put in
// the form the store must return: times at its precision in UTC (the zero
// time staying zero), empty lists and byte fields as nil.

func assertUsers(t *testing.T, got, want []store.User) {
	t.Helper()
	render := func(u store.User) string {
		return fmt.Sprintf("%q|%q|%q|%s|%q|%q|%q|%v|%s|%s", u.ID, u.Username, u.Email, strs(u.Groups),
			u.PasswordHash, u.Issuer, u.Subject, u.Disabled, stamp(u.CreatedAt), stamp(u.LastLogin))
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(u store.User) string {
		u.Groups = nilIfEmpty(u.Groups)
		u.CreatedAt, u.LastLogin = normal(u.CreatedAt), normal(u.LastLogin)
		return render(u)
	}))
}

func assertAgents(t *testing.T, got, want []store.Agent) {
	t.Helper()
	render := func(a store.Agent) string {
		return fmt.Sprintf("%q|%q|%q|%q|%q|%q|%s|%s|%q|%q|%s|%q|%s|%s|%s|%s|%s",
			a.ID, a.Name, a.Registration, a.Owner, a.TrustLevel, a.Status, strs(a.RedirectURIs),
			strs(a.GrantTypes), a.AuthMethod, a.SecretHash, raw(a.JWKS), a.JWKSURL, strs(a.Scopes),
			raw(a.Metadata), stamp(a.CreatedAt), stamp(a.FirstSeen), stamp(a.LastSeen))
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(a store.Agent) string {
		a.RedirectURIs, a.GrantTypes, a.Scopes = nilIfEmpty(a.RedirectURIs), nilIfEmpty(a.GrantTypes), nilIfEmpty(a.Scopes)
		a.JWKS, a.Metadata = nilIfEmpty(a.JWKS), nilIfEmpty(a.Metadata)
		a.CreatedAt, a.FirstSeen, a.LastSeen = normal(a.CreatedAt), normal(a.FirstSeen), normal(a.LastSeen)
		return render(a)
	}))
}

func assertAuthRequests(t *testing.T, got, want []store.AuthRequest) {
	t.Helper()
	render := func(r store.AuthRequest) string {
		return fmt.Sprintf("%q|%q|%q|%q|%q|%s|%q|%q|%q|%s|%q|%s|%v|%q|%s|%s",
			r.ID, r.ClientID, r.RedirectURI, r.State, r.Nonce, strs(r.Scopes), r.ResponseType, r.CodeChallenge,
			r.CodeChallengeMethod, strs(r.Resource), r.UserID, stamp(r.AuthTime), r.Done, r.Code,
			stamp(r.CreatedAt), stamp(r.ExpiresAt))
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(r store.AuthRequest) string {
		r.Scopes, r.Resource = nilIfEmpty(r.Scopes), nilIfEmpty(r.Resource)
		r.AuthTime, r.CreatedAt, r.ExpiresAt = normal(r.AuthTime), normal(r.CreatedAt), normal(r.ExpiresAt)
		return render(r)
	}))
}

func assertTokens(t *testing.T, got, want []store.RefreshToken) {
	t.Helper()
	render := func(r store.RefreshToken) string {
		return fmt.Sprintf("%q|%q|%q|%q|%s|%s|%s|%s|%s|%s|%s|%s",
			r.ID, r.Family, r.ClientID, r.UserID, strs(r.Scopes), strs(r.Audience), strs(r.AMR),
			stamp(r.AuthTime), stamp(r.CreatedAt), stamp(r.ExpiresAt), stamp(r.UsedAt), stamp(r.RevokedAt))
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(r store.RefreshToken) string {
		r.Scopes, r.Audience, r.AMR = nilIfEmpty(r.Scopes), nilIfEmpty(r.Audience), nilIfEmpty(r.AMR)
		r.AuthTime, r.CreatedAt, r.ExpiresAt = normal(r.AuthTime), normal(r.CreatedAt), normal(r.ExpiresAt)
		r.UsedAt, r.RevokedAt = normal(r.UsedAt), normal(r.RevokedAt)
		return render(r)
	}))
}

func assertKeys(t *testing.T, got, want []store.SigningKey) {
	t.Helper()
	render := func(k store.SigningKey) string {
		return fmt.Sprintf("%q|%q|%s|%s|%s|%s",
			k.ID, k.Algorithm, raw(k.Private), stamp(k.CreatedAt), stamp(k.NotAfter), stamp(k.RetireAt))
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(k store.SigningKey) string {
		k.CreatedAt, k.NotAfter, k.RetireAt = normal(k.CreatedAt), normal(k.NotAfter), normal(k.RetireAt)
		return render(k)
	}))
}

func renderAll[T any](records []T, render func(T) string) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = render(r)
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// strs and raw tell nil from empty, which %q alone does not.
func strs(l []string) string {
	if l == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", l)
}

func raw(b []byte) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", b)
}
