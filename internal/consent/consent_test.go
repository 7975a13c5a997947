package consent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
)

var t0 = time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)

// clock is a settable clock for the Service.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// events records what the Service reports, as "kind id uses".
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(kind string, m consent.Mandate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf("%s %s %d", kind, m.ID, m.UsesLeft))
}

func (e *events) MandateGranted(m consent.Mandate) { e.add("granted", m) }
func (e *events) MandateRevoked(m consent.Mandate) { e.add("revoked", m) }
func (e *events) MandateUsed(m consent.Mandate)    { e.add("used", m) }

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

type fixture struct {
	svc    *consent.Service
	st     store.Store
	clock  *clock
	events *events
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, clock: &clock{now: t0}, events: &events{}}
	f.svc = consent.New(st, f.events, f.clock.Now)
	return f
}

func (f *fixture) grant(t *testing.T, spec consent.Spec) consent.Mandate {
	t.Helper()
	m, err := f.svc.Grant(t.Context(), spec)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	return m
}

func (f *fixture) match(t *testing.T, p *identity.Principal, upstream, tool string, args map[string]any) consent.Match {
	t.Helper()
	m, err := f.svc.Match(t.Context(), p, upstream, tool, args)
	if err != nil {
		t.Fatalf("Match: %v", err)
	}
	return m
}

func principal(user, agent string) *identity.Principal {
	return &identity.Principal{Issuer: "https://mandate.example", User: user, Agent: agent,
		Method: identity.MethodAuthorizationCode}
}

func spec(grants ...consent.Grant) consent.Spec {
	return consent.Spec{
		User: "alice", Agent: "agent-a", Grants: grants, Purpose: "weekly report",
		ExpiresAt: t0.Add(time.Hour), Uses: consent.Unlimited,
	}
}

func mail() consent.Grant {
	return consent.Grant{Upstream: "mail", Tool: "send_*", Constraints: []consent.Constraint{
		{Arg: "to", Suffix: "@example.com"},
	}}
}

func files() consent.Grant {
	return consent.Grant{Upstream: "*", Tool: "read_file", Constraints: []consent.Constraint{
		{Arg: "options.path", Prefix: "/srv/reports/"},
	}}
}

func assertCovered(t *testing.T, m consent.Match, id string) {
	t.Helper()
	if !m.Covered() || m.Mandate.ID != id {
		t.Errorf("Match = covered %v by %q, reason %v; want covered by %q", m.Covered(), m.Mandate.ID, m.Reason, id)
	}
}

func assertReason(t *testing.T, m consent.Match, want consent.Reason) {
	t.Helper()
	if m.Covered() || m.Reason != want {
		t.Errorf("Match = covered %v by %q, reason %#v; want reason %#v", m.Covered(), m.Mandate.ID, m.Reason, want)
	}
}

func assertEvents(t *testing.T, f *fixture, want ...string) {
	t.Helper()
	if got := f.events.take(); !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

func TestGrantRoundTrip(t *testing.T) {
	f := newFixture(t)
	s := spec(mail(), consent.Grant{Upstream: "crm", Tool: "update", Constraints: []consent.Constraint{
		{Arg: "stage", OneOf: []any{1, "won"}},
	}})
	s.ExpiresAt = t0.Add(time.Hour + 123*time.Nanosecond).In(time.FixedZone("X", 3600))
	s.Uses = 3
	m := f.grant(t, s)
	if !strings.HasPrefix(m.ID, "mnd_") || m.User != "alice" || m.Agent != "agent-a" || m.Purpose != "weekly report" ||
		!m.CreatedAt.Equal(t0) || m.ExpiresAt != t0.Add(time.Hour) || m.UsesLeft != 3 || !m.RevokedAt.IsZero() {
		t.Errorf("Grant returned %+v", m)
	}
	got, err := f.svc.Get(t.Context(), m.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", m) {
		t.Errorf("Get = %+v\nGrant returned %+v", got, m)
	}
	// Allowed values come back as JSON decodes them.
	if oneOf := got.Grants[1].Constraints[0].OneOf; !slices.Equal(oneOf, []any{1.0, "won"}) {
		t.Errorf("OneOf read back as %#v", oneOf)
	}
	assertEvents(t, f, "granted "+m.ID+" 3")
	list, err := f.svc.List(t.Context(), "alice", "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].ID != m.ID {
		t.Errorf("List = %+v, want the one mandate", list)
	}
}

func TestGrantRefusesInvalidSpecs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*consent.Spec)
	}{
		{"no user", func(s *consent.Spec) { s.User = "" }},
		{"no agent", func(s *consent.Spec) { s.Agent = "" }},
		{"no grants", func(s *consent.Spec) { s.Grants = nil }},
		{"no upstream pattern", func(s *consent.Spec) { s.Grants[0].Upstream = "" }},
		{"no tool pattern", func(s *consent.Spec) { s.Grants[0].Tool = "" }},
		{"bad tool glob", func(s *consent.Spec) { s.Grants[0].Tool = "send_[" }},
		{"bad constraint pattern", func(s *consent.Spec) { s.Grants[0].Constraints[0].Pattern = "(" }},
		{"constraint checking nothing", func(s *consent.Spec) { s.Grants[0].Constraints[0].Suffix = "" }},
		{"no expiry", func(s *consent.Spec) { s.ExpiresAt = time.Time{} }},
		{"expiry now", func(s *consent.Spec) { s.ExpiresAt = t0 }},
		{"expiry in the past", func(s *consent.Spec) { s.ExpiresAt = t0.Add(-time.Minute) }},
		{"zero uses", func(s *consent.Spec) { s.Uses = 0 }},
		{"negative uses", func(s *consent.Spec) { s.Uses = -2 }},
		{"invalid purpose", func(s *consent.Spec) { s.Purpose = "\xff" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := spec(mail())
			tc.mutate(&s)
			_, err := f.svc.Grant(t.Context(), s)
			if !errors.Is(err, consent.ErrInvalid) {
				t.Errorf("Grant error = %v, want ErrInvalid", err)
			}
			if list, _ := f.svc.List(t.Context(), "", ""); len(list) != 0 {
				t.Errorf("an invalid spec was stored: %+v", list)
			}
			assertEvents(t, f)
		})
	}
}

// TestMatchIssueExamples runs the issue's two examples end to end.
func TestMatchIssueExamples(t *testing.T) {
	f := newFixture(t)
	m := f.grant(t, spec(mail(), files()))
	p := principal("alice", "agent-a")
	tests := []struct {
		name, upstream, tool string
		args                 map[string]any
		want                 consent.Reason // nil: covered
	}{
		{"mail in the domain", "mail", "send_email", map[string]any{"to": "bob@example.com"}, nil},
		{"mail to a list in the domain", "mail", "send_email", map[string]any{"to": []any{"a@example.com", "b@example.com"}}, nil},
		{"mail outside the domain", "mail", "send_email", map[string]any{"to": "bob@evil.com"},
			consent.ConstraintFailed{MandateID: m.ID, Arg: "to", Why: `does not end with "@example.com"`}},
		{"mail without a recipient", "mail", "send_email", map[string]any{},
			consent.ConstraintFailed{MandateID: m.ID, Arg: "to", Why: "is missing"}},
		{"report on any upstream", "fs", "read_file", map[string]any{"options": map[string]any{"path": "/srv/reports/q1.pdf"}}, nil},
		{"path traversal", "fs", "read_file", map[string]any{"options": map[string]any{"path": "/srv/reports/../secrets"}},
			consent.ConstraintFailed{MandateID: m.ID, Arg: "options.path",
				Why: `is not a clean absolute path (".", ".." or empty segments, or a backslash)`}},
		{"tool not granted", "fs", "write_file", map[string]any{"options": map[string]any{"path": "/srv/reports/q1.pdf"}},
			consent.NoMandate{}},
		{"upstream not granted", "mail2", "send_email", map[string]any{"to": "bob@example.com"}, consent.NoMandate{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := f.match(t, p, tc.upstream, tc.tool, tc.args)
			if tc.want == nil {
				assertCovered(t, got, m.ID)
			} else {
				assertReason(t, got, tc.want)
			}
		})
	}
}

func TestMatchOnlyThePrincipalsOwnMandates(t *testing.T) {
	f := newFixture(t)
	bobs := spec(mail())
	bobs.User = "bob"
	f.grant(t, bobs)
	other := spec(mail())
	other.Agent = "agent-b"
	f.grant(t, other)
	args := map[string]any{"to": "x@example.com"}
	assertReason(t, f.match(t, principal("alice", "agent-a"), "mail", "send_email", args), consent.NoMandate{})
	// An agent acting for nobody has no mandates, whatever users granted.
	autonomous := &identity.Principal{Issuer: "https://mandate.example", Agent: "agent-b",
		Method: identity.MethodClientCredentials}
	assertReason(t, f.match(t, autonomous, "mail", "send_email", args), consent.NoMandate{})
	// A principal without an agent must not match every agent's mandates.
	assertReason(t, f.match(t, principal("bob", ""), "mail", "send_email", args), consent.NoMandate{})
	if _, err := f.svc.Match(t.Context(), nil, "mail", "send_email", args); err == nil {
		t.Error("Match with no principal succeeded")
	}
}

func TestMatchExpiry(t *testing.T) {
	f := newFixture(t)
	m := f.grant(t, spec(mail()))
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	f.clock.Set(t0.Add(time.Hour - time.Microsecond))
	assertCovered(t, f.match(t, p, "mail", "send_email", args), m.ID)
	f.clock.Set(t0.Add(time.Hour))
	assertReason(t, f.match(t, p, "mail", "send_email", args), consent.Expired{MandateID: m.ID})
	_, err := f.svc.Consume(t.Context(), m.ID)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Consume of an expired mandate: %v, want ErrNotFound", err)
	}
	// Expired mandates are not listed as visible.
	active, err := f.svc.Active(t.Context(), p)
	if err != nil || len(active) != 0 {
		t.Errorf("Active = %v, %v; want none", active, err)
	}
}

// TestRevocationTakesEffectOnNextMatch guards AT-51.
func TestRevocationTakesEffectOnNextMatch(t *testing.T) {
	f := newFixture(t)
	m := f.grant(t, spec(mail()))
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	assertCovered(t, f.match(t, p, "mail", "send_email", args), m.ID)
	f.events.take()

	f.clock.Set(t0.Add(time.Minute))
	revoked, err := f.svc.Revoke(t.Context(), m.ID, "alice")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if !revoked.RevokedAt.Equal(t0.Add(time.Minute)) || revoked.RevokedBy != "alice" {
		t.Errorf("Revoke returned %+v", revoked)
	}
	assertEvents(t, f, "revoked "+m.ID+" -1")
	assertReason(t, f.match(t, p, "mail", "send_email", args), consent.Revoked{MandateID: m.ID})
	if _, err := f.svc.Consume(t.Context(), m.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Consume after revocation: %v, want ErrConflict", err)
	}

	// Revoking again keeps the first revocation and reports nothing.
	f.clock.Set(t0.Add(2 * time.Minute))
	again, err := f.svc.Revoke(t.Context(), m.ID, "admin")
	if err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	if !again.RevokedAt.Equal(t0.Add(time.Minute)) || again.RevokedBy != "alice" {
		t.Errorf("second Revoke returned %+v, want the first revocation", again)
	}
	assertEvents(t, f)
	if _, err := f.svc.Revoke(t.Context(), "mnd_unknown", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revoke of an unknown mandate: %v, want ErrNotFound", err)
	}
}

func TestUseCountsHitZero(t *testing.T) {
	f := newFixture(t)
	s := spec(mail())
	s.Uses = 2
	m := f.grant(t, s)
	f.events.take()
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}
	for want := 1; want >= 0; want-- {
		assertCovered(t, f.match(t, p, "mail", "send_email", args), m.ID)
		used, err := f.svc.Consume(t.Context(), m.ID)
		if err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if used.UsesLeft != want {
			t.Errorf("UsesLeft after Consume = %d, want %d", used.UsesLeft, want)
		}
	}
	assertEvents(t, f, "used "+m.ID+" 1", "used "+m.ID+" 0")
	assertReason(t, f.match(t, p, "mail", "send_email", args), consent.Exhausted{MandateID: m.ID})
	if _, err := f.svc.Consume(t.Context(), m.ID); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Consume with no uses left: %v, want ErrConflict", err)
	}
	assertEvents(t, f)
}

func TestMatchChoosesAmongMandates(t *testing.T) {
	f := newFixture(t)
	p := principal("alice", "agent-a")
	args := map[string]any{"to": "x@example.com"}

	counted := spec(mail())
	counted.Uses = 1
	unlimited := f.grant(t, spec(mail()))
	f.clock.Set(t0.Add(time.Second))
	f.grant(t, counted)
	// The newer counted mandate is not spent while an unlimited one applies.
	assertCovered(t, f.match(t, p, "mail", "send_email", args), unlimited.ID)

	// A constraint failure of an active mandate explains more than an
	// inactive mandate does.
	narrow := f.grant(t, spec(consent.Grant{Upstream: "fs", Tool: "read_file", Constraints: []consent.Constraint{
		{Arg: "path", Prefix: "/srv/reports/"},
	}}))
	old := f.grant(t, spec(consent.Grant{Upstream: "fs", Tool: "*"}))
	if _, err := f.svc.Revoke(t.Context(), old.ID, "alice"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	got := f.match(t, p, "fs", "read_file", map[string]any{"path": "/etc/passwd"})
	assertReason(t, got, consent.ConstraintFailed{MandateID: narrow.ID, Arg: "path", Why: `does not start with "/srv/reports/"`})
	assertReason(t, f.match(t, p, "fs", "write_file", nil), consent.Revoked{MandateID: old.ID})
}

func TestActiveAndCovers(t *testing.T) {
	f := newFixture(t)
	p := principal("alice", "agent-a")
	live := f.grant(t, spec(mail()))
	gone := f.grant(t, spec(files()))
	if _, err := f.svc.Revoke(t.Context(), gone.ID, "alice"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	active, err := f.svc.Active(t.Context(), p)
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	if len(active) != 1 || active[0].ID != live.ID {
		t.Fatalf("Active = %+v, want only %s", active, live.ID)
	}
	tests := []struct {
		upstream, tool string
		want           bool
	}{
		// Listed although the constraint on "to" is checked only at call time.
		{"mail", "send_email", true},
		{"mail", "delete_email", false},
		// Revoked mandates do not make tools visible.
		{"fs", "read_file", false},
	}
	for _, tc := range tests {
		if got := consent.Covers(active, tc.upstream, tc.tool); got != tc.want {
			t.Errorf("Covers(%s, %s) = %v, want %v", tc.upstream, tc.tool, got, tc.want)
		}
	}
	if !gone.Covers("fs", "read_file") {
		t.Error("Mandate.Covers ignores the grants")
	}
	none, err := f.svc.Active(t.Context(), &identity.Principal{Agent: "agent-a"})
	if err != nil || none != nil {
		t.Errorf("Active for an agent acting for nobody = %v, %v; want nil, nil", none, err)
	}
}

// failingStore fails every mandate operation once err is set.
type failingStore struct {
	store.MandateStore
	err error
}

func (s *failingStore) CreateMandate(ctx context.Context, m store.Mandate) error {
	if s.err != nil {
		return s.err
	}
	return s.MandateStore.CreateMandate(ctx, m)
}

func (s *failingStore) GetMandate(ctx context.Context, id string) (store.Mandate, error) {
	if s.err != nil {
		return store.Mandate{}, s.err
	}
	return s.MandateStore.GetMandate(ctx, id)
}

func (s *failingStore) ListMandates(ctx context.Context, user, agent string) ([]store.Mandate, error) {
	if s.err != nil {
		return nil, s.err
	}
	return s.MandateStore.ListMandates(ctx, user, agent)
}

func (s *failingStore) RevokeMandate(ctx context.Context, id, by string, at time.Time) error {
	if s.err != nil {
		return s.err
	}
	return s.MandateStore.RevokeMandate(ctx, id, by, at)
}

func (s *failingStore) ConsumeMandateUse(ctx context.Context, id string, now time.Time) (store.Mandate, error) {
	if s.err != nil {
		return store.Mandate{}, s.err
	}
	return s.MandateStore.ConsumeMandateUse(ctx, id, now)
}

// TestMandateLookupErrorDenies guards invariant 1: a store that fails
// yields an error and never a covering match, and reports no event.
func TestMandateLookupErrorDenies(t *testing.T) {
	st := &failingStore{MandateStore: memory.New()}
	ev := &events{}
	svc := consent.New(st, ev, func() time.Time { return t0 })
	m, err := svc.Grant(t.Context(), spec(mail()))
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	ev.take()
	boom := errors.New("database on fire")
	st.err = boom
	p := principal("alice", "agent-a")
	got, err := svc.Match(t.Context(), p, "mail", "send_email", map[string]any{"to": "x@example.com"})
	if !errors.Is(err, boom) {
		t.Errorf("Match error = %v, want the store's", err)
	}
	if got.Covered() || got.Mandate.ID != "" {
		t.Errorf("Match with a failing store = %+v, want no mandate", got)
	}
	calls := map[string]func() error{
		"Grant":   func() error { _, err := svc.Grant(t.Context(), spec(mail())); return err },
		"Get":     func() error { _, err := svc.Get(t.Context(), m.ID); return err },
		"List":    func() error { _, err := svc.List(t.Context(), "alice", "agent-a"); return err },
		"Active":  func() error { _, err := svc.Active(t.Context(), p); return err },
		"Revoke":  func() error { _, err := svc.Revoke(t.Context(), m.ID, "alice"); return err },
		"Consume": func() error { _, err := svc.Consume(t.Context(), m.ID); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, boom) {
			t.Errorf("%s error = %v, want the store's", name, err)
		}
	}
	if got := ev.take(); len(got) != 0 {
		t.Errorf("events with a failing store: %q", got)
	}
}

// TestCorruptMandateDenies: grants that no longer decode are an error, not
// a mandate covering more or less than was granted.
func TestCorruptMandateDenies(t *testing.T) {
	st := memory.New()
	rec := store.Mandate{
		ID: "mnd_bad", User: "alice", Agent: "agent-a",
		Grants:    []byte(`[{"upstream":"mail","tool":"send_[","constraints":[]}]`),
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), UsesLeft: store.UnlimitedUses,
	}
	if err := st.CreateMandate(t.Context(), rec); err != nil {
		t.Fatalf("CreateMandate: %v", err)
	}
	svc := consent.New(st, nil, func() time.Time { return t0 })
	got, err := svc.Match(t.Context(), principal("alice", "agent-a"), "mail", "send_email", nil)
	if err == nil || got.Covered() {
		t.Errorf("Match over a corrupt mandate = %+v, %v; want an error", got, err)
	}
}

func TestReasonsReadable(t *testing.T) {
	tests := []struct {
		r    consent.Reason
		want string
	}{
		{consent.NoMandate{}, "no mandate covers this call"},
		{consent.Expired{MandateID: "mnd_1"}, "mandate mnd_1 has expired"},
		{consent.Revoked{MandateID: "mnd_1"}, "mandate mnd_1 was revoked"},
		{consent.Exhausted{MandateID: "mnd_1"}, "mandate mnd_1 has no uses left"},
		{consent.ConstraintFailed{MandateID: "mnd_1", Arg: "to", Why: "is missing"}, `argument "to" is missing (mandate mnd_1)`},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.want)
		}
	}
}
