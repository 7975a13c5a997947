// Package storetest is the conformance suite every store.Store backend must
// pass. Backends run the same suite against their own storage, so behaviour
// the gateway relies on (ordering, change detection, sentinel errors) is
// defined once, here, rather than by whichever backend was written first.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store each
// time it is called, and may register cleanups for its own resources with
// t.Cleanup; Run migrates and closes every store it opens.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []storeTest{
		{"Ping", testPing},
		{"MigrateTwiceKeepsData", testMigrateTwice},
		{"MigrateConcurrently", testMigrateConcurrently},
		{"RecordHealthInvalid", testRecordHealthInvalid},
		{"HealthHistoryInvalid", testHealthHistoryInvalid},
		{"HealthHistoryOrder", testHealthHistoryOrder},
		{"HealthHistoryLimit", testHealthHistoryLimit},
		{"HealthHistoryUnknownUpstream", testHealthHistoryUnknown},
		{"HealthTimesRoundTrip", testHealthTimes},
		{"LatestHealth", testLatestHealth},
		{"PutCatalogInvalid", testPutCatalogInvalid},
		{"PutCatalogChanged", testPutCatalogChanged},
		{"GetCatalogNotFound", testGetCatalogNotFound},
		{"GetCatalogInvalid", testGetCatalogInvalid},
		{"CatalogHistory", testCatalogHistory},
		{"CatalogHistoryInvalid", testCatalogHistoryInvalid},
		{"CatalogHistoryKeepsEarliestFirstSeen", testCatalogFirstSeen},
		{"CatalogBodiesAreCopied", testCatalogCopies},
		{"UserRoundTrip", testUserRoundTrip},
		{"UserInvalid", testUserInvalid},
		{"CreateUserConflict", testCreateUserConflict},
		{"UpdateUser", testUpdateUser},
		{"GetUserNotFound", testGetUserNotFound},
		{"ListUsers", testListUsers},
		{"AgentRoundTrip", testAgentRoundTrip},
		{"PutAgentInvalid", testPutAgentInvalid},
		{"PutAgentReplaces", testPutAgentReplaces},
		{"GetAgentNotFound", testGetAgentNotFound},
		{"ListAgents", testListAgents},
		{"SetAgentStatus", testSetAgentStatus},
		{"TouchAgent", testTouchAgent},
		{"AuthRequestRoundTrip", testAuthRequestRoundTrip},
		{"PutAuthRequestInvalid", testPutAuthRequestInvalid},
		{"PutAuthRequestReplaces", testPutAuthRequestReplaces},
		{"AuthRequestCodeConflict", testAuthRequestCodeConflict},
		{"GetAuthRequestNotFound", testGetAuthRequestNotFound},
		{"DeleteAuthRequest", testDeleteAuthRequest},
		{"DeleteExpiredAuthRequests", testDeleteExpiredAuthRequests},
		{"RefreshTokenRoundTrip", testRefreshTokenRoundTrip},
		{"PutRefreshTokenInvalid", testPutRefreshTokenInvalid},
		{"PutRefreshTokenConflict", testPutRefreshTokenConflict},
		{"UseRefreshToken", testUseRefreshToken},
		{"UseRefreshTokenConcurrently", testUseRefreshTokenConcurrently},
		{"RevokeTokenFamily", testRevokeTokenFamily},
		{"SigningKeys", testSigningKeys},
		{"PutSigningKeyInvalid", testPutSigningKeyInvalid},
		{"IdentityRecordsAreCopied", testIdentityCopies},
		{"ConcurrentHealthWriters", testConcurrentHealth},
		{"ConcurrentCatalogWriters", testConcurrentCatalog},
		{"CanceledContext", testCanceledContext},
		{"UseAfterClose", testUseAfterClose},
	}
	runTable(t, open, tests)
	runMandates(t, open)
	runApprovals(t, open)
	runAudit(t, open)
	runChanges(t, open)
}

// storeTest is one conformance test: it gets a fresh, migrated store.
type storeTest struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// runTable runs each test on a store of its own, migrated first and closed
// after.
func runTable(t *testing.T, open func(t *testing.T) store.Store, tests []storeTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			tc.fn(t, s)
		})
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testMigrateTwice(t *testing.T, s store.Store) {
	ctx := t.Context()
	ev := health("a", at(0), store.HealthUp, "")
	mustRecord(t, s, ev)
	mustPut(t, s, snapshot("a", store.KindTools, `[]`, at(0)))
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d on a migrated store: %v", i+2, err)
		}
	}
	got, err := s.HealthHistory(ctx, "a", 10)
	if err != nil {
		t.Fatalf("HealthHistory: %v", err)
	}
	assertEvents(t, got, []store.HealthEvent{ev})
	if _, err := s.GetCatalog(ctx, "a", store.KindTools); err != nil {
		t.Fatalf("GetCatalog after re-migrating: %v", err)
	}
}

func testMigrateConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range cap(errs) {
		wg.Go(func() { errs <- s.Migrate(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	mustRecord(t, s, health("a", at(0), store.HealthUp, ""))
}

func testRecordHealthInvalid(t *testing.T, s store.Store) {
	valid := health("a", at(0), store.HealthDown, "connection refused")
	tests := []struct {
		name   string
		mutate func(*store.HealthEvent)
	}{
		{"empty upstream", func(e *store.HealthEvent) { e.Upstream = "" }},
		{"empty status", func(e *store.HealthEvent) { e.Status = "" }},
		{"unknown status", func(e *store.HealthEvent) { e.Status = "degraded" }},
		{"status in other case", func(e *store.HealthEvent) { e.Status = "UP" }},
		{"zero time", func(e *store.HealthEvent) { e.At = time.Time{} }},
		{"NUL in upstream", func(e *store.HealthEvent) { e.Upstream = "a\x00b" }},
		{"NUL in detail", func(e *store.HealthEvent) { e.Detail = "x\x00" }},
		{"invalid UTF-8 in detail", func(e *store.HealthEvent) { e.Detail = "\xff\xfe" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := valid
			tc.mutate(&ev)
			assertIs(t, s.RecordHealth(t.Context(), ev), store.ErrInvalid)
		})
	}
	latest, err := s.LatestHealth(t.Context())
	if err != nil {
		t.Fatalf("LatestHealth: %v", err)
	}
	if len(latest) != 0 {
		t.Errorf("invalid events were stored: %v", latest)
	}
}

func testHealthHistoryInvalid(t *testing.T, s store.Store) {
	mustRecord(t, s, health("a", at(0), store.HealthUp, ""))
	tests := []struct {
		name     string
		upstream string
		limit    int
	}{
		{"empty upstream", "", 10},
		{"NUL in upstream", "a\x00", 10},
		{"zero limit", "a", 0},
		{"negative limit", "a", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.HealthHistory(t.Context(), tc.upstream, tc.limit)
			assertIs(t, err, store.ErrInvalid)
		})
	}
}

func testHealthHistoryOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	t1, t2, t3 := at(0), at(time.Second), at(2*time.Second)
	// Recorded out of time order, with two events sharing t2: history is by
	// time, and equal times come most recently recorded first.
	events := []store.HealthEvent{
		health("a", t2, store.HealthDown, "timeout"),
		health("a", t1, store.HealthStarting, ""),
		health("b", t3, store.HealthUp, "other upstream"),
		health("a", t3, store.HealthUp, "recovered"),
		health("a", t2, store.HealthStarting, "restarting"),
	}
	for _, ev := range events {
		mustRecord(t, s, ev)
	}
	got, err := s.HealthHistory(ctx, "a", 10)
	if err != nil {
		t.Fatalf("HealthHistory: %v", err)
	}
	assertEvents(t, got, []store.HealthEvent{events[3], events[4], events[0], events[1]})
}

func testHealthHistoryLimit(t *testing.T, s store.Store) {
	var all []store.HealthEvent
	for i := range 5 {
		ev := health("a", at(time.Duration(i)*time.Minute), store.HealthUp, fmt.Sprint(i))
		mustRecord(t, s, ev)
		all = append([]store.HealthEvent{ev}, all...)
	}
	tests := []struct {
		limit int
		want  []store.HealthEvent
	}{
		{1, all[:1]},
		{3, all[:3]},
		{5, all},
		{100, all},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
			got, err := s.HealthHistory(t.Context(), "a", tc.limit)
			if err != nil {
				t.Fatalf("HealthHistory: %v", err)
			}
			assertEvents(t, got, tc.want)
		})
	}
}

func testHealthHistoryUnknown(t *testing.T, s store.Store) {
	mustRecord(t, s, health("a", at(0), store.HealthUp, ""))
	got, err := s.HealthHistory(t.Context(), "nobody", 10)
	if err != nil {
		t.Fatalf("HealthHistory of an unknown upstream: %v, want no error", err)
	}
	if len(got) != 0 {
		t.Errorf("HealthHistory of an unknown upstream = %v, want none", got)
	}
}

func testHealthTimes(t *testing.T, s store.Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	when := time.Date(2025, time.July, 1, 12, 0, 0, 123456789, zone)
	ev := health("ünïcode-upstream", when, store.HealthDown, "détail ✓ with 'quotes' and \"more\"")
	mustRecord(t, s, ev)
	got, err := s.HealthHistory(t.Context(), ev.Upstream, 1)
	if err != nil {
		t.Fatalf("HealthHistory: %v", err)
	}
	if len(got) != 1 {
		t.Fatalf("HealthHistory returned %d events, want 1", len(got))
	}
	want := when.Truncate(store.TimePrecision).UTC()
	if !got[0].At.Equal(want) || got[0].At.Location() != time.UTC {
		t.Errorf("At = %v, want %v in UTC", got[0].At, want)
	}
	if got[0].Upstream != ev.Upstream || got[0].Detail != ev.Detail || got[0].Status != ev.Status {
		t.Errorf("read back %+v, want %+v", got[0], ev)
	}
}

func testLatestHealth(t *testing.T, s store.Store) {
	ctx := t.Context()
	latest, err := s.LatestHealth(ctx)
	if err != nil {
		t.Fatalf("LatestHealth on an empty store: %v", err)
	}
	if len(latest) != 0 {
		t.Fatalf("LatestHealth on an empty store = %v, want empty", latest)
	}
	aNew := health("a", at(time.Hour), store.HealthDown, "crashed")
	bOnly := health("b", at(0), store.HealthStarting, "")
	cTie := health("c", at(0), store.HealthUp, "second at same time")
	for _, ev := range []store.HealthEvent{
		health("a", at(0), store.HealthUp, ""),
		aNew,
		// A late report of an older transition must not become the latest.
		health("a", at(time.Minute), store.HealthUp, "late report"),
		bOnly,
		health("c", at(0), store.HealthDown, "first at same time"),
		cTie,
	} {
		mustRecord(t, s, ev)
	}
	latest, err = s.LatestHealth(ctx)
	if err != nil {
		t.Fatalf("LatestHealth: %v", err)
	}
	want := map[string]store.HealthEvent{"a": aNew, "b": bOnly, "c": cTie}
	if len(latest) != len(want) {
		t.Errorf("LatestHealth has %d upstreams, want %d: %v", len(latest), len(want), latest)
	}
	for name, w := range want {
		assertEvents(t, []store.HealthEvent{latest[name]}, []store.HealthEvent{w})
	}
}

func testPutCatalogInvalid(t *testing.T, s store.Store) {
	valid := snapshot("a", store.KindTools, `[{"name":"x"}]`, at(0))
	tests := []struct {
		name   string
		mutate func(*store.CatalogSnapshot)
	}{
		{"empty upstream", func(c *store.CatalogSnapshot) { c.Upstream = "" }},
		{"empty kind", func(c *store.CatalogSnapshot) { c.Kind = "" }},
		{"unknown kind", func(c *store.CatalogSnapshot) { c.Kind = "widgets" }},
		{"NUL in upstream", func(c *store.CatalogSnapshot) { c.Upstream = "\x00" }},
		{"empty hash", func(c *store.CatalogSnapshot) { c.Hash = "" }},
		{"upper-case hash", func(c *store.CatalogSnapshot) { c.Hash = strings.ToUpper(c.Hash) }},
		{"hash of other body", func(c *store.CatalogSnapshot) { c.Hash = store.CatalogHash([]byte(`[]`)) }},
		{"nil body", func(c *store.CatalogSnapshot) { c.Body, c.Hash = nil, store.CatalogHash(nil) }},
		{"body not JSON", func(c *store.CatalogSnapshot) {
			c.Body = []byte(`[{"name":`)
			c.Hash = store.CatalogHash(c.Body)
		}},
		{"zero fetch time", func(c *store.CatalogSnapshot) { c.FetchedAt = time.Time{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := valid
			tc.mutate(&snap)
			changed, err := s.PutCatalog(t.Context(), snap)
			assertIs(t, err, store.ErrInvalid)
			if changed {
				t.Errorf("rejected PutCatalog reported changed")
			}
		})
	}
	_, err := s.GetCatalog(t.Context(), "a", store.KindTools)
	assertIs(t, err, store.ErrNotFound)
}

func testPutCatalogChanged(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := `[{"name":"read"}]`, `[{"name":"read"},{"name":"write"}]`
	steps := []struct {
		snap        store.CatalogSnapshot
		wantChanged bool
	}{
		{snapshot("u", store.KindTools, a, at(0)), true},
		{snapshot("u", store.KindTools, a, at(1*time.Minute)), false},
		{snapshot("u", store.KindTools, b, at(2*time.Minute)), true},
		{snapshot("u", store.KindTools, b, at(3*time.Minute)), false},
		// Returning to an earlier definition is still a change.
		{snapshot("u", store.KindTools, a, at(4*time.Minute)), true},
		// The same body under another kind or upstream is a separate catalog.
		{snapshot("u", store.KindPrompts, a, at(5*time.Minute)), true},
		{snapshot("v", store.KindTools, a, at(6*time.Minute)), true},
		{snapshot("u", store.KindTools, a, at(7*time.Minute)), false},
	}
	for i, step := range steps {
		changed, err := s.PutCatalog(ctx, step.snap)
		if err != nil {
			t.Fatalf("step %d: PutCatalog: %v", i, err)
		}
		if changed != step.wantChanged {
			t.Errorf("step %d: PutCatalog(%s/%s, %s) changed = %v, want %v",
				i, step.snap.Upstream, step.snap.Kind, step.snap.Body, changed, step.wantChanged)
		}
	}
	got, err := s.GetCatalog(ctx, "u", store.KindTools)
	if err != nil {
		t.Fatalf("GetCatalog: %v", err)
	}
	// An unchanged put still refreshes the fetch time.
	assertSnapshots(t, []store.CatalogSnapshot{got}, []store.CatalogSnapshot{steps[7].snap})
	hist, err := s.CatalogHistory(ctx, "u", store.KindTools, 10)
	if err != nil {
		t.Fatalf("CatalogHistory: %v", err)
	}
	// One row per distinct hash, dated when first seen.
	assertSnapshots(t, hist, []store.CatalogSnapshot{steps[2].snap, steps[0].snap})
}

func testGetCatalogNotFound(t *testing.T, s store.Store) {
	mustPut(t, s, snapshot("a", store.KindTools, `[]`, at(0)))
	tests := []struct{ upstream, kind string }{
		{"b", store.KindTools},
		{"a", store.KindPrompts},
		{"a", store.KindResourceTemplates},
	}
	for _, tc := range tests {
		t.Run(tc.upstream+"/"+tc.kind, func(t *testing.T) {
			got, err := s.GetCatalog(t.Context(), tc.upstream, tc.kind)
			assertIs(t, err, store.ErrNotFound)
			if got.Hash != "" || got.Body != nil {
				t.Errorf("GetCatalog returned %+v with ErrNotFound, want the zero snapshot", got)
			}
		})
	}
}

func testGetCatalogInvalid(t *testing.T, s store.Store) {
	for _, tc := range invalidKeys() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.GetCatalog(t.Context(), tc.upstream, tc.kind)
			assertIs(t, err, store.ErrInvalid)
		})
	}
}

func testCatalogHistory(t *testing.T, s store.Store) {
	var all []store.CatalogSnapshot
	for i := range 5 {
		snap := snapshot("a", store.KindResources, fmt.Sprintf(`[{"uri":"file:///%d"}]`, i), at(time.Duration(i)*time.Hour))
		mustPut(t, s, snap)
		all = append([]store.CatalogSnapshot{snap}, all...)
	}
	// Neighbouring catalogs must not leak into the history of ("a", resources).
	mustPut(t, s, snapshot("a", store.KindTools, `[{"name":"t"}]`, at(10*time.Hour)))
	mustPut(t, s, snapshot("b", store.KindResources, `[{"uri":"file:///b"}]`, at(10*time.Hour)))

	tests := []struct {
		name     string
		upstream string
		kind     string
		limit    int
		want     []store.CatalogSnapshot
	}{
		{"limit 1", "a", store.KindResources, 1, all[:1]},
		{"limit 3", "a", store.KindResources, 3, all[:3]},
		{"limit above count", "a", store.KindResources, 50, all},
		{"unknown upstream", "c", store.KindResources, 10, nil},
		{"kind never stored", "a", store.KindPrompts, 10, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CatalogHistory(t.Context(), tc.upstream, tc.kind, tc.limit)
			if err != nil {
				t.Fatalf("CatalogHistory: %v", err)
			}
			assertSnapshots(t, got, tc.want)
		})
	}
}

func testCatalogHistoryInvalid(t *testing.T, s store.Store) {
	tests := invalidKeys()
	for i := range tests {
		tests[i].limit = 10
	}
	tests = append(tests,
		invalidKey{name: "zero limit", upstream: "a", kind: store.KindTools, limit: 0},
		invalidKey{name: "negative limit", upstream: "a", kind: store.KindTools, limit: -5},
	)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CatalogHistory(t.Context(), tc.upstream, tc.kind, tc.limit)
			assertIs(t, err, store.ErrInvalid)
		})
	}
}

func testCatalogFirstSeen(t *testing.T, s store.Store) {
	ctx := t.Context()
	later := snapshot("a", store.KindTools, `[{"name":"x"}]`, at(time.Hour))
	earlier := later
	earlier.FetchedAt = at(0)
	mustPut(t, s, later)
	// A delayed writer reporting an earlier sighting of the same catalog
	// moves its first-seen time back, never forward.
	if changed := mustPut(t, s, earlier); changed {
		t.Errorf("PutCatalog of the stored hash reported changed")
	}
	mustPut(t, s, snapshot("a", store.KindTools, `[{"name":"x"}]`, at(2*time.Hour)))
	hist, err := s.CatalogHistory(ctx, "a", store.KindTools, 10)
	if err != nil {
		t.Fatalf("CatalogHistory: %v", err)
	}
	assertSnapshots(t, hist, []store.CatalogSnapshot{earlier})
}

func testCatalogCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	snap := snapshot("a", store.KindTools, `[{"name":"x"}]`, at(0))
	want := snap
	want.Body = []byte(string(snap.Body))
	mustPut(t, s, snap)
	snap.Body[2] = '!'

	got, err := s.GetCatalog(ctx, "a", store.KindTools)
	if err != nil {
		t.Fatalf("GetCatalog: %v", err)
	}
	assertSnapshots(t, []store.CatalogSnapshot{got}, []store.CatalogSnapshot{want})
	got.Body[2] = '!'
	hist, err := s.CatalogHistory(ctx, "a", store.KindTools, 1)
	if err != nil {
		t.Fatalf("CatalogHistory: %v", err)
	}
	assertSnapshots(t, hist, []store.CatalogSnapshot{want})
	hist[0].Body[2] = '!'

	again, err := s.GetCatalog(ctx, "a", store.KindTools)
	if err != nil {
		t.Fatalf("GetCatalog: %v", err)
	}
	assertSnapshots(t, []store.CatalogSnapshot{again}, []store.CatalogSnapshot{want})
	hist, err = s.CatalogHistory(ctx, "a", store.KindTools, 1)
	if err != nil {
		t.Fatalf("CatalogHistory: %v", err)
	}
	assertSnapshots(t, hist, []store.CatalogSnapshot{want})
}

func testConcurrentHealth(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, perWriter = 8, 20
	upstreams := []string{"a", "b"}
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter+writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				when := at(time.Duration(w*perWriter+i) * time.Millisecond)
				ev := health(upstreams[w%len(upstreams)], when, store.HealthUp, fmt.Sprintf("w%d-%d", w, i))
				if err := s.RecordHealth(ctx, ev); err != nil {
					errs <- fmt.Errorf("RecordHealth: %w", err)
				}
			}
		})
		// Readers run alongside the writers to expose unsynchronised state.
		wg.Go(func() {
			if _, err := s.LatestHealth(ctx); err != nil {
				errs <- fmt.Errorf("LatestHealth: %w", err)
			}
			if _, err := s.HealthHistory(ctx, upstreams[w%len(upstreams)], 5); err != nil {
				errs <- fmt.Errorf("HealthHistory: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, u := range upstreams {
		got, err := s.HealthHistory(ctx, u, writers*perWriter)
		if err != nil {
			t.Fatalf("HealthHistory: %v", err)
		}
		if want := writers / len(upstreams) * perWriter; len(got) != want {
			t.Errorf("upstream %s has %d events, want %d", u, len(got), want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].At.After(got[i-1].At) {
				t.Fatalf("upstream %s history out of order at %d: %v after %v", u, i, got[i].At, got[i-1].At)
			}
		}
	}
	latest, err := s.LatestHealth(ctx)
	if err != nil {
		t.Fatalf("LatestHealth: %v", err)
	}
	if len(latest) != len(upstreams) {
		t.Errorf("LatestHealth has %d upstreams, want %d", len(latest), len(upstreams))
	}
}

func testConcurrentCatalog(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers = 8

	t.Run("same body", func(t *testing.T) {
		snap := snapshot("same", store.KindTools, `[{"name":"x"}]`, at(0))
		var changes int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				changed, err := s.PutCatalog(ctx, snap)
				if err != nil {
					t.Errorf("PutCatalog: %v", err)
				}
				if changed {
					mu.Lock()
					changes++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if changes != 1 {
			t.Errorf("%d concurrent puts of one new catalog reported changed %d times, want exactly once", writers, changes)
		}
	})

	t.Run("distinct bodies", func(t *testing.T) {
		mustPut(t, s, snapshot("distinct", store.KindTools, `[]`, at(0)))
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				snap := snapshot("distinct", store.KindTools, fmt.Sprintf(`[{"name":"t%d"}]`, w), at(time.Duration(w+1)*time.Second))
				changed, err := s.PutCatalog(ctx, snap)
				if err != nil {
					t.Errorf("PutCatalog: %v", err)
				}
				if !changed {
					t.Errorf("PutCatalog of a never-seen body reported unchanged")
				}
			})
		}
		wg.Wait()
		hist, err := s.CatalogHistory(ctx, "distinct", store.KindTools, 100)
		if err != nil {
			t.Fatalf("CatalogHistory: %v", err)
		}
		if len(hist) != writers+1 {
			t.Errorf("history has %d rows, want %d", len(hist), writers+1)
		}
	})
}

func testCanceledContext(t *testing.T, s store.Store) {
	mustRecord(t, s, health("a", at(0), store.HealthUp, ""))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range calls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(ctx, s), context.Canceled)
		})
	}
}

func testUseAfterClose(t *testing.T, s store.Store) {
	mustRecord(t, s, health("a", at(0), store.HealthUp, ""))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range calls() {
		t.Run(c.name, func(t *testing.T) {
			assertIs(t, c.call(t.Context(), s), store.ErrClosed)
		})
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

// calls exercises every method with valid arguments, for the tests that
// expect each of them to fail the same way.
func calls() []struct {
	name string
	call func(context.Context, store.Store) error
} {
	return []struct {
		name string
		call func(context.Context, store.Store) error
	}{
		{"Ping", func(ctx context.Context, s store.Store) error { return s.Ping(ctx) }},
		{"Migrate", func(ctx context.Context, s store.Store) error { return s.Migrate(ctx) }},
		{"RecordHealth", func(ctx context.Context, s store.Store) error {
			return s.RecordHealth(ctx, health("a", at(0), store.HealthDown, ""))
		}},
		{"HealthHistory", func(ctx context.Context, s store.Store) error {
			_, err := s.HealthHistory(ctx, "a", 10)
			return err
		}},
		{"LatestHealth", func(ctx context.Context, s store.Store) error {
			_, err := s.LatestHealth(ctx)
			return err
		}},
		{"PutCatalog", func(ctx context.Context, s store.Store) error {
			_, err := s.PutCatalog(ctx, snapshot("a", store.KindTools, `[]`, at(0)))
			return err
		}},
		{"GetCatalog", func(ctx context.Context, s store.Store) error {
			_, err := s.GetCatalog(ctx, "a", store.KindTools)
			return err
		}},
		{"CatalogHistory", func(ctx context.Context, s store.Store) error {
			_, err := s.CatalogHistory(ctx, "a", store.KindTools, 10)
			return err
		}},
		{"CreateUser", func(ctx context.Context, s store.Store) error { return s.CreateUser(ctx, user("u", "alice")) }},
		{"UpdateUser", func(ctx context.Context, s store.Store) error { return s.UpdateUser(ctx, user("u", "alice")) }},
		{"GetUser", func(ctx context.Context, s store.Store) error {
			_, err := s.GetUser(ctx, "u")
			return err
		}},
		{"GetUserByUsername", func(ctx context.Context, s store.Store) error {
			_, err := s.GetUserByUsername(ctx, "alice")
			return err
		}},
		{"GetUserBySubject", func(ctx context.Context, s store.Store) error {
			_, err := s.GetUserBySubject(ctx, "https://idp.example", "a")
			return err
		}},
		{"ListUsers", func(ctx context.Context, s store.Store) error {
			_, err := s.ListUsers(ctx)
			return err
		}},
		{"CountUsers", func(ctx context.Context, s store.Store) error {
			_, err := s.CountUsers(ctx)
			return err
		}},
		{"PutAgent", func(ctx context.Context, s store.Store) error { return s.PutAgent(ctx, agent("a")) }},
		{"GetAgent", func(ctx context.Context, s store.Store) error {
			_, err := s.GetAgent(ctx, "a")
			return err
		}},
		{"ListAgents", func(ctx context.Context, s store.Store) error {
			_, err := s.ListAgents(ctx)
			return err
		}},
		{"SetAgentStatus", func(ctx context.Context, s store.Store) error {
			return s.SetAgentStatus(ctx, "a", store.AgentSuspended)
		}},
		{"TouchAgent", func(ctx context.Context, s store.Store) error { return s.TouchAgent(ctx, "a", at(0)) }},
		{"PutAuthRequest", func(ctx context.Context, s store.Store) error {
			return s.PutAuthRequest(ctx, authRequest("r", "c"))
		}},
		{"GetAuthRequest", func(ctx context.Context, s store.Store) error {
			_, err := s.GetAuthRequest(ctx, "r")
			return err
		}},
		{"GetAuthRequestByCode", func(ctx context.Context, s store.Store) error {
			_, err := s.GetAuthRequestByCode(ctx, "c")
			return err
		}},
		{"DeleteAuthRequest", func(ctx context.Context, s store.Store) error { return s.DeleteAuthRequest(ctx, "r") }},
		{"DeleteExpiredAuthRequests", func(ctx context.Context, s store.Store) error {
			_, err := s.DeleteExpiredAuthRequests(ctx, at(0))
			return err
		}},
		{"PutRefreshToken", func(ctx context.Context, s store.Store) error {
			return s.PutRefreshToken(ctx, refreshToken("t", "f", at(time.Hour)))
		}},
		{"GetRefreshToken", func(ctx context.Context, s store.Store) error {
			_, err := s.GetRefreshToken(ctx, "t")
			return err
		}},
		{"UseRefreshToken", func(ctx context.Context, s store.Store) error {
			_, err := s.UseRefreshToken(ctx, "t", at(0))
			return err
		}},
		{"RevokeTokenFamily", func(ctx context.Context, s store.Store) error {
			return s.RevokeTokenFamily(ctx, "f", at(0))
		}},
		{"PutSigningKey", func(ctx context.Context, s store.Store) error {
			return s.PutSigningKey(ctx, signingKey("k", at(0), at(time.Hour)))
		}},
		{"ListSigningKeys", func(ctx context.Context, s store.Store) error {
			_, err := s.ListSigningKeys(ctx, at(0))
			return err
		}},
		{"DeleteSigningKey", func(ctx context.Context, s store.Store) error { return s.DeleteSigningKey(ctx, "k") }},
	}
}

type invalidKey struct {
	name           string
	upstream, kind string
	limit          int
}

func invalidKeys() []invalidKey {
	return []invalidKey{
		{name: "empty upstream", upstream: "", kind: store.KindTools},
		{name: "empty kind", upstream: "a", kind: ""},
		{name: "both empty"},
		{name: "unknown kind", upstream: "a", kind: "tool"},
		{name: "invalid UTF-8 upstream", upstream: "\xc3", kind: store.KindTools},
	}
}

// at returns a fixed instant plus d; fixed times keep failures reproducible.
func at(d time.Duration) time.Time {
	return time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC).Add(d)
}

func health(upstream string, at time.Time, status, detail string) store.HealthEvent {
	return store.HealthEvent{Upstream: upstream, At: at, Status: status, Detail: detail}
}

func snapshot(upstream, kind, body string, at time.Time) store.CatalogSnapshot {
	return store.CatalogSnapshot{
		Upstream:  upstream,
		Kind:      kind,
		Hash:      store.CatalogHash([]byte(body)),
		Body:      []byte(body),
		FetchedAt: at,
	}
}

func mustRecord(t *testing.T, s store.Store, ev store.HealthEvent) {
	t.Helper()
	if err := s.RecordHealth(t.Context(), ev); err != nil {
		t.Fatalf("RecordHealth(%+v): %v", ev, err)
	}
}

func mustPut(t *testing.T, s store.Store, snap store.CatalogSnapshot) (changed bool) {
	t.Helper()
	changed, err := s.PutCatalog(t.Context(), snap)
	if err != nil {
		t.Fatalf("PutCatalog(%s/%s): %v", snap.Upstream, snap.Kind, err)
	}
	return changed
}

func assertIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("error = %v, want %v", err, target)
	}
}

// assertEvents compares events as the store must return them: times at the
// store's precision and in UTC.
func assertEvents(t *testing.T, got, want []store.HealthEvent) {
	t.Helper()
	g := make([]string, len(got))
	for i, ev := range got {
		g[i] = fmt.Sprintf("%s|%s|%s|%q", ev.Upstream, stamp(ev.At), ev.Status, ev.Detail)
	}
	w := make([]string, len(want))
	for i, ev := range want {
		w[i] = fmt.Sprintf("%s|%s|%s|%q", ev.Upstream, stamp(normal(ev.At)), ev.Status, ev.Detail)
	}
	assertLines(t, g, w)
}

func assertSnapshots(t *testing.T, got, want []store.CatalogSnapshot) {
	t.Helper()
	g := make([]string, len(got))
	for i, c := range got {
		g[i] = fmt.Sprintf("%s|%s|%s|%s|%s", c.Upstream, c.Kind, c.Hash, c.Body, stamp(c.FetchedAt))
	}
	w := make([]string, len(want))
	for i, c := range want {
		w[i] = fmt.Sprintf("%s|%s|%s|%s|%s", c.Upstream, c.Kind, c.Hash, c.Body, stamp(normal(c.FetchedAt)))
	}
	assertLines(t, g, w)
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func normal(t time.Time) time.Time { return t.UTC().Truncate(store.TimePrecision) }

func stamp(t time.Time) string { return t.Location().String() + " " + t.Format(time.RFC3339Nano) }
