package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// runAudit runs the conformance suite of store.AuditStore, with the same
// contract for open as Run.
func runAudit(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []storeTest{
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AppendAuditInvalid", testAppendAuditInvalid},
		{"AppendAuditMustContinueChain", testAppendAuditContinues},
		{"AppendAuditIsAtomic", testAppendAuditAtomic},
		{"AppendAuditConcurrently", testAppendAuditConcurrently},
		{"LastAudit", testLastAudit},
		{"GetAuditNotFound", testGetAuditNotFound},
		{"QueryAudit", testQueryAudit},
		{"QueryAuditInvalid", testQueryAuditInvalid},
		{"AuditRangeAndChains", testAuditRange},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"PruneAudit", testPruneAudit},
		{"AuditRecordsAreCopied", testAuditCopies},
		{"AuditCanceledContext", testAuditCanceledContext},
		{"AuditUseAfterClose", testAuditUseAfterClose},
	}
	runTable(t, open, tests)
}

func testAuditRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	recs := auditChain("c1", 1, "", 3)
	recs[1].User, recs[1].Agent, recs[1].Upstream, recs[1].Name = "ü-1", "agent 'a'", "github", "create_issue"
	recs[1].Decision, recs[1].Mandate, recs[1].Event, recs[1].Ref = "allow", "mdt_1", "", recs[0].ID
	// A body keeps its exact bytes: whitespace, key order and escapes.
	recs[2].Body = []byte(`{ "z":1, "a":"\u00e9\u003c", "n":1.0 }`)
	recs = relink(recs)
	mustAppendAudit(t, s, recs...)
	for _, want := range recs {
		got, err := s.GetAudit(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetAudit(%s): %v", want.ID, err)
		}
		assertAudit(t, []store.AuditRecord{got}, []store.AuditRecord{want})
	}
}

func testAppendAuditInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		mutate func([]store.AuditRecord) []store.AuditRecord
	}{
		{"empty batch", func([]store.AuditRecord) []store.AuditRecord { return nil }},
		{"empty id", func(r []store.AuditRecord) []store.AuditRecord { r[0].ID = ""; return r }},
		{"NUL in id", func(r []store.AuditRecord) []store.AuditRecord { r[0].ID = "a\x00"; return r }},
		{"empty chain", func(r []store.AuditRecord) []store.AuditRecord { r[0].Chain = ""; return r }},
		{"empty kind", func(r []store.AuditRecord) []store.AuditRecord { r[1].Kind = ""; return r }},
		{"invalid UTF-8 user", func(r []store.AuditRecord) []store.AuditRecord { r[0].User = "\xff"; return r }},
		{"NUL in name", func(r []store.AuditRecord) []store.AuditRecord { r[1].Name = "x\x00"; return r }},
		{"zero sequence", func(r []store.AuditRecord) []store.AuditRecord { return relink(auditChain("c1", 0, "", 2)) }},
		{"zero time", func(r []store.AuditRecord) []store.AuditRecord { r[0].At = time.Time{}; return r }},
		{"short hash", func(r []store.AuditRecord) []store.AuditRecord { r[1].Hash = "abc"; return r }},
		{"uppercase hash", func(r []store.AuditRecord) []store.AuditRecord {
			r[1].Hash = strings.ToUpper(r[1].Hash)
			return r
		}},
		{"first record with a predecessor", func(r []store.AuditRecord) []store.AuditRecord {
			r[0].Prev = fakeHash("x")
			return r
		}},
		{"later record without one", func(r []store.AuditRecord) []store.AuditRecord {
			return []store.AuditRecord{withPrev(auditChain("c1", 2, "", 1)[0], "")}
		}},
		{"body not JSON", func(r []store.AuditRecord) []store.AuditRecord { r[0].Body = []byte(`{"a":`); return r }},
		{"empty body", func(r []store.AuditRecord) []store.AuditRecord { r[0].Body = nil; return r }},
		{"mixed chains", func(r []store.AuditRecord) []store.AuditRecord { r[1].Chain = "c2"; return r }},
		{"gap in batch", func(r []store.AuditRecord) []store.AuditRecord { return []store.AuditRecord{r[0], r[2]} }},
		{"unlinked batch", func(r []store.AuditRecord) []store.AuditRecord { r[1].Prev = fakeHash("x"); return r }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := tc.mutate(auditChain("c1", 1, "", 3))
			assertIs(t, s.AppendAudit(ctx, recs), store.ErrInvalid)
		})
	}
	_, err := s.LastAudit(ctx, "c1")
	assertIs(t, err, store.ErrNotFound)
}

// testAppendAuditContinues guards the chain against a writer that lost track
// of its head, or a second writer on the same chain: the store itself
// refuses a batch that would fork, skip or restart a chain.
func testAppendAuditContinues(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := auditChain("c1", 1, "", 3)
	tests := []struct {
		name string
		recs []store.AuditRecord
	}{
		{"new chain not at 1", auditChain("c1", 2, fakeHash("x"), 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assertIs(t, s.AppendAudit(ctx, tc.recs), store.ErrConflict) })
	}
	mustAppendAudit(t, s, first...)
	head := first[2]
	tests = []struct {
		name string
		recs []store.AuditRecord
	}{
		{"restart at 1", auditChain("c1", 1, "", 1)},
		{"repeat the head", auditChain("c1", 3, first[1].Hash, 1)},
		{"skip a sequence", auditChain("c1", 5, head.Hash, 1)},
		{"fork from the head's predecessor", auditChain("c1", 3, first[1].Hash, 2)},
		{"wrong predecessor", auditChain("c1", 4, fakeHash("not the head"), 1)},
		{"reused id", func() []store.AuditRecord {
			r := auditChain("c1", 4, head.Hash, 1)
			r[0].ID = first[0].ID
			return r
		}()},
		{"id reused within the batch", func() []store.AuditRecord {
			r := auditChain("c1", 4, head.Hash, 2)
			r[1].ID = r[0].ID
			return r
		}()},
		{"id of another chain", func() []store.AuditRecord {
			r := auditChain("c2", 1, "", 1)
			r[0].ID = first[1].ID
			return r
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assertIs(t, s.AppendAudit(ctx, tc.recs), store.ErrConflict) })
	}
	next := auditChain("c1", 4, head.Hash, 2)
	mustAppendAudit(t, s, next...)
	// Another chain is independent.
	mustAppendAudit(t, s, auditChain("c2", 1, "", 1)...)
	got, err := s.AuditRange(ctx, "c1", 0, 100)
	if err != nil {
		t.Fatalf("AuditRange: %v", err)
	}
	assertAudit(t, got, append(first, next...))
}

func testAppendAuditAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAppendAudit(t, s, auditChain("c1", 1, "", 1)...)
	old, err := s.LastAudit(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	// The last record of the batch collides; none of it may be stored.
	batch := auditChain("c1", 2, old.Hash, 4)
	batch[3].ID = old.ID
	assertIs(t, s.AppendAudit(ctx, batch), store.ErrConflict)
	last, err := s.LastAudit(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	assertAudit(t, []store.AuditRecord{last}, []store.AuditRecord{old})
	for _, r := range batch[:3] {
		_, err := s.GetAudit(ctx, r.ID)
		assertIs(t, err, store.ErrNotFound)
	}
}

// testAppendAuditConcurrently guards two writers on one chain (two replicas
// configured with the same chain id, or a command line writing while the
// gateway runs): every append either continues the chain or conflicts, and
// a writer that re-reads the head and retries gets through.
func testAppendAuditConcurrently(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, each = 4, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				for attempt := 0; ; attempt++ {
					if attempt == 200 {
						t.Errorf("writer %d: no progress after %d attempts", w, attempt)
						return
					}
					seq, prev := int64(1), ""
					last, err := s.LastAudit(ctx, "c1")
					switch {
					case err == nil:
						seq, prev = last.Seq+1, last.Hash
					case !errors.Is(err, store.ErrNotFound):
						t.Errorf("LastAudit: %v", err)
						return
					}
					r := auditRecord("c1", seq, prev)
					r.ID = fmt.Sprintf("w%d-%d", w, i)
					err = s.AppendAudit(ctx, []store.AuditRecord{r})
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Errorf("AppendAudit: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	got, err := s.AuditRange(ctx, "c1", 0, 1000)
	if err != nil {
		t.Fatalf("AuditRange: %v", err)
	}
	if len(got) != writers*each {
		t.Fatalf("chain has %d records, want %d", len(got), writers*each)
	}
	for i, r := range got {
		if r.Seq != int64(i+1) || (i > 0 && r.Prev != got[i-1].Hash) {
			t.Fatalf("record %d (seq %d) does not continue the chain", i, r.Seq)
		}
	}
}

func testLastAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, chain := range []string{"c1", "", "c1\x00"} {
		_, err := s.LastAudit(ctx, chain)
		assertIs(t, err, store.ErrNotFound)
	}
	a := auditChain("c1", 1, "", 2)
	mustAppendAudit(t, s, a...)
	b := auditChain("c1", 3, a[1].Hash, 1)
	mustAppendAudit(t, s, b...)
	mustAppendAudit(t, s, auditChain("c0", 1, "", 5)...)
	got, err := s.LastAudit(ctx, "c1")
	if err != nil {
		t.Fatalf("LastAudit: %v", err)
	}
	assertAudit(t, []store.AuditRecord{got}, b)
}

func testGetAuditNotFound(t *testing.T, s store.Store) {
	recs := auditChain("c1", 1, "", 1)
	mustAppendAudit(t, s, recs...)
	for _, id := range []string{"nope", strings.ToUpper(recs[0].ID), "", recs[0].ID + "\x00", "\xff"} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			_, err := s.GetAudit(t.Context(), id)
			assertIs(t, err, store.ErrNotFound)
		})
	}
}

func testQueryAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	c1 := auditChain("c1", 1, "", 5)
	c1[0].User, c1[0].Agent, c1[0].Kind, c1[0].Decision = "alice", "claude", "decision", "allow"
	c1[0].Upstream, c1[0].Name, c1[0].Mandate = "github", "create_issue", "mdt_1"
	c1[1].User, c1[1].Agent, c1[1].Kind, c1[1].Ref = "alice", "claude", "outcome", c1[0].ID
	c1[2].User, c1[2].Agent, c1[2].Kind, c1[2].Decision = "bob", "claude", "decision", "deny"
	c1[2].Upstream, c1[2].Name = "fs", "write_file"
	c1[3].Kind, c1[3].Event, c1[3].User = "admin", "mandate.granted", "alice"
	c1[4].User, c1[4].Kind, c1[4].Decision, c1[4].Upstream, c1[4].Name = "alice", "decision", "allow", "github", "list_issues"
	for i := range c1 {
		c1[i].At = when(time.Duration(i) * time.Minute)
	}
	c1 = relink(c1)
	// The other replica's chain shares two instants with c1.
	c2 := auditChain("c2", 1, "", 2)
	c2[0].At, c2[1].At = c1[2].At, c1[2].At
	c2[0].User, c2[1].User = "alice", "bob"
	c2 = relink(c2)
	mustAppendAudit(t, s, c1...)
	mustAppendAudit(t, s, c2...)

	tests := []struct {
		name string
		q    store.AuditQuery
		want []store.AuditRecord
	}{
		{"all, newest first; equal times by chain, then highest seq", store.AuditQuery{Limit: 100},
			[]store.AuditRecord{c1[4], c1[3], c1[2], c2[1], c2[0], c1[1], c1[0]}},
		{"limit", store.AuditQuery{Limit: 2}, []store.AuditRecord{c1[4], c1[3]}},
		{"user", store.AuditQuery{User: "alice", Limit: 100}, []store.AuditRecord{c1[4], c1[3], c2[0], c1[1], c1[0]}},
		{"agent", store.AuditQuery{Agent: "claude", Limit: 100}, []store.AuditRecord{c1[2], c1[1], c1[0]}},
		{"upstream and tool", store.AuditQuery{Upstream: "github", Name: "create_issue", Limit: 100}, []store.AuditRecord{c1[0]}},
		{"decision", store.AuditQuery{Decision: "deny", Limit: 100}, []store.AuditRecord{c1[2]}},
		{"mandate", store.AuditQuery{Mandate: "mdt_1", Limit: 100}, []store.AuditRecord{c1[0]}},
		{"kind", store.AuditQuery{Kind: "admin", Limit: 100}, []store.AuditRecord{c1[3]}},
		{"ref", store.AuditQuery{Ref: c1[0].ID, Limit: 100}, []store.AuditRecord{c1[1]}},
		{"since is inclusive", store.AuditQuery{Since: c1[3].At, Limit: 100}, []store.AuditRecord{c1[4], c1[3]}},
		{"until is exclusive", store.AuditQuery{Until: c1[1].At, Limit: 100}, []store.AuditRecord{c1[0]}},
		{"range", store.AuditQuery{Since: c1[1].At, Until: c1[3].At, User: "bob", Limit: 100}, []store.AuditRecord{c1[2], c2[1]}},
		{"no match", store.AuditQuery{User: "carol", Limit: 100}, nil},
		{"filters are exact", store.AuditQuery{User: "Alice", Limit: 100}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.QueryAudit(ctx, tc.q)
			if err != nil {
				t.Fatalf("QueryAudit: %v", err)
			}
			if got == nil {
				t.Error("QueryAudit returned nil, want an empty slice")
			}
			assertAudit(t, got, tc.want)
		})
	}
}

func testQueryAuditInvalid(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		q    store.AuditQuery
	}{
		{"zero limit", store.AuditQuery{}},
		{"negative limit", store.AuditQuery{Limit: -1}},
		{"NUL in user", store.AuditQuery{User: "a\x00", Limit: 1}},
		{"invalid UTF-8 tool", store.AuditQuery{Name: "\xff", Limit: 1}},
		{"ends before it starts", store.AuditQuery{Since: at(time.Hour), Until: at(0), Limit: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.QueryAudit(t.Context(), tc.q)
			assertIs(t, err, store.ErrInvalid)
		})
	}
}

func testAuditRange(t *testing.T, s store.Store) {
	ctx := t.Context()
	chains, err := s.AuditChains(ctx)
	if err != nil {
		t.Fatalf("AuditChains: %v", err)
	}
	if chains == nil || len(chains) != 0 {
		t.Fatalf("AuditChains of an empty store = %#v, want an empty slice", chains)
	}
	b := auditChain("b", 1, "", 7)
	mustAppendAudit(t, s, b...)
	mustAppendAudit(t, s, auditChain("a", 1, "", 2)...)
	mustAppendAudit(t, s, auditChain("B", 1, "", 1)...)
	// A chain known only by a checkpoint (its records pruned elsewhere) is
	// still a chain.
	mustAddCheckpoint(t, s, checkpoint("z", 3, fakeHash("z3")))
	chains, err = s.AuditChains(ctx)
	if err != nil {
		t.Fatalf("AuditChains: %v", err)
	}
	if strings.Join(chains, ",") != "B,a,b,z" {
		t.Errorf("AuditChains = %q, want bytewise [B a b z]", chains)
	}
	var all []store.AuditRecord
	for after := int64(0); ; {
		page, err := s.AuditRange(ctx, "b", after, 3)
		if err != nil {
			t.Fatalf("AuditRange: %v", err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	assertAudit(t, all, b)
	got, err := s.AuditRange(ctx, "nobody", 0, 10)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("AuditRange of an unknown chain = %v, %v; want an empty slice", got, err)
	}
	for _, tc := range []struct {
		chain string
		after int64
		limit int
	}{{"", 0, 1}, {"b", -1, 1}, {"b", 0, 0}} {
		_, err := s.AuditRange(ctx, tc.chain, tc.after, tc.limit)
		assertIs(t, err, store.ErrInvalid)
	}
}

func testAuditCheckpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.AuditCheckpoints(ctx, "c1")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("AuditCheckpoints with none = %v, %v; want an empty slice", got, err)
	}
	cp5, cp2 := checkpoint("c1", 5, fakeHash("5")), checkpoint("c1", 2, fakeHash("2"))
	cp5.At = when(time.Hour)
	for _, cp := range []store.AuditCheckpoint{cp5, cp2, checkpoint("c2", 2, fakeHash("other"))} {
		mustAddCheckpoint(t, s, cp)
	}
	dup := checkpoint("c1", 5, fakeHash("another 5"))
	assertIs(t, s.AddAuditCheckpoint(ctx, dup), store.ErrConflict)
	got, err = s.AuditCheckpoints(ctx, "c1")
	if err != nil {
		t.Fatalf("AuditCheckpoints: %v", err)
	}
	assertCheckpoints(t, got, []store.AuditCheckpoint{cp2, cp5})

	invalid := []struct {
		name   string
		mutate func(*store.AuditCheckpoint)
	}{
		{"empty chain", func(c *store.AuditCheckpoint) { c.Chain = "" }},
		{"zero seq", func(c *store.AuditCheckpoint) { c.Seq = 0 }},
		{"bad hash", func(c *store.AuditCheckpoint) { c.Hash = "xyz" }},
		{"zero time", func(c *store.AuditCheckpoint) { c.At = time.Time{} }},
		{"empty key id", func(c *store.AuditCheckpoint) { c.KeyID = "" }},
		{"unsigned", func(c *store.AuditCheckpoint) { c.Signature = nil }},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			cp := checkpoint("c3", 1, fakeHash("1"))
			tc.mutate(&cp)
			assertIs(t, s.AddAuditCheckpoint(ctx, cp), store.ErrInvalid)
		})
	}
	_, err = s.AuditCheckpoints(ctx, "")
	assertIs(t, err, store.ErrInvalid)
}

func testPruneAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	recs := auditChain("c1", 1, "", 6)
	mustAppendAudit(t, s, recs...)
	other := auditChain("c2", 1, "", 3)
	mustAppendAudit(t, s, other...)
	cp2, cp4, cp6 := checkpoint("c1", 2, recs[1].Hash), checkpoint("c1", 4, recs[3].Hash), checkpoint("c1", 6, recs[5].Hash)
	for _, cp := range []store.AuditCheckpoint{cp2, cp4, cp6, checkpoint("c2", 2, other[1].Hash)} {
		mustAddCheckpoint(t, s, cp)
	}
	assertIs(t, s.PruneAudit(ctx, "c1", 3), store.ErrConflict) // no checkpoint at 3
	assertIs(t, s.PruneAudit(ctx, "c1", 6), store.ErrConflict) // the chain's last record
	assertIs(t, s.PruneAudit(ctx, "c9", 1), store.ErrConflict)
	assertIs(t, s.PruneAudit(ctx, "", 1), store.ErrInvalid)
	assertIs(t, s.PruneAudit(ctx, "c1", 0), store.ErrInvalid)

	if err := s.PruneAudit(ctx, "c1", 4); err != nil {
		t.Fatalf("PruneAudit: %v", err)
	}
	got, err := s.AuditRange(ctx, "c1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	assertAudit(t, got, recs[4:])
	cps, err := s.AuditCheckpoints(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	assertCheckpoints(t, cps, []store.AuditCheckpoint{cp4, cp6})
	_, err = s.GetAudit(ctx, recs[0].ID)
	assertIs(t, err, store.ErrNotFound)
	if err := s.PruneAudit(ctx, "c1", 2); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PruneAudit behind the anchor = %v, want ErrConflict", err)
	}
	// The chain goes on from its head; the other chain is untouched.
	mustAppendAudit(t, s, auditChain("c1", 7, recs[5].Hash, 1)...)
	got, err = s.AuditRange(ctx, "c2", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	assertAudit(t, got, other)
}

func testAuditCopies(t *testing.T, s store.Store) {
	ctx := t.Context()
	recs := auditChain("c1", 1, "", 1)
	want := recs[0]
	want.Body = []byte(string(recs[0].Body))
	mustAppendAudit(t, s, recs...)
	recs[0].Body[0] = 'X'
	got, err := s.GetAudit(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	got.Body[0] = 'Y'
	again, err := s.GetAudit(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	assertAudit(t, []store.AuditRecord{again}, []store.AuditRecord{want})
}

func testAuditCanceledContext(t *testing.T, s store.Store) {
	mustAppendAudit(t, s, auditChain("c1", 1, "", 2)...)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range auditCalls() {
		t.Run(c.name, func(t *testing.T) { assertIs(t, c.call(ctx, s), context.Canceled) })
	}
}

func testAuditUseAfterClose(t *testing.T, s store.Store) {
	mustAppendAudit(t, s, auditChain("c1", 1, "", 2)...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range auditCalls() {
		t.Run(c.name, func(t *testing.T) { assertIs(t, c.call(t.Context(), s), store.ErrClosed) })
	}
}

// auditCalls exercises every AuditStore method with valid arguments, on a
// store holding the first two records of auditChain("c1", 1, "", 2).
func auditCalls() []struct {
	name string
	call func(context.Context, store.Store) error
} {
	next := auditChain("c1", 1, "", 3)[2]
	return []struct {
		name string
		call func(context.Context, store.Store) error
	}{
		{"AppendAudit", func(ctx context.Context, s store.Store) error {
			return s.AppendAudit(ctx, []store.AuditRecord{next})
		}},
		{"LastAudit", func(ctx context.Context, s store.Store) error {
			_, err := s.LastAudit(ctx, "c1")
			return err
		}},
		{"GetAudit", func(ctx context.Context, s store.Store) error {
			_, err := s.GetAudit(ctx, next.ID)
			return err
		}},
		{"QueryAudit", func(ctx context.Context, s store.Store) error {
			_, err := s.QueryAudit(ctx, store.AuditQuery{Limit: 10})
			return err
		}},
		{"AuditChains", func(ctx context.Context, s store.Store) error {
			_, err := s.AuditChains(ctx)
			return err
		}},
		{"AuditRange", func(ctx context.Context, s store.Store) error {
			_, err := s.AuditRange(ctx, "c1", 0, 10)
			return err
		}},
		{"AddAuditCheckpoint", func(ctx context.Context, s store.Store) error {
			return s.AddAuditCheckpoint(ctx, checkpoint("c1", 1, fakeHash("1")))
		}},
		{"AuditCheckpoints", func(ctx context.Context, s store.Store) error {
			_, err := s.AuditCheckpoints(ctx, "c1")
			return err
		}},
		{"PruneAudit", func(ctx context.Context, s store.Store) error { return s.PruneAudit(ctx, "c1", 1) }},
	}
}

// auditChain returns n linked records of chain from seq, the first naming
// prev. Their hashes are made up: the store does not compute them.
func auditChain(chain string, seq int64, prev string, n int) []store.AuditRecord {
	out := make([]store.AuditRecord, 0, n)
	for i := range n {
		r := auditRecord(chain, seq+int64(i), prev)
		prev = r.Hash
		out = append(out, r)
	}
	return out
}

// auditRecord returns a record at seq of chain, with a time finer than the
// store's precision and not in UTC.
func auditRecord(chain string, seq int64, prev string) store.AuditRecord {
	id := fmt.Sprintf("aud-%s-%d", chain, seq)
	return store.AuditRecord{
		ID: id, Chain: chain, Seq: seq, At: when(time.Duration(seq) * time.Second), Kind: "decision",
		Prev: prev, Hash: fakeHash(id + prev),
		Body: []byte(fmt.Sprintf(`{"id":%q,"seq":%d,"note":"✓ 'quoted'"}`, id, seq)),
	}
}

// relink recomputes the made-up hashes of recs after a test changed them, so
// they form a chain again.
func relink(recs []store.AuditRecord) []store.AuditRecord {
	prev := recs[0].Prev
	for i := range recs {
		recs[i] = withPrev(recs[i], prev)
		prev = recs[i].Hash
	}
	return recs
}

func withPrev(r store.AuditRecord, prev string) store.AuditRecord {
	r.Prev = prev
	r.Hash = fakeHash(r.ID + prev + string(r.Body) + r.User)
	return r
}

func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func checkpoint(chain string, seq int64, hash string) store.AuditCheckpoint {
	return store.AuditCheckpoint{
		Chain: chain, Seq: seq, Hash: hash, At: when(time.Duration(seq) * time.Minute), KeyID: "k1",
		Signature: []byte(fmt.Sprintf("sig\x00of %s/%d", chain, seq)),
	}
}

func mustAppendAudit(t *testing.T, s store.Store, recs ...store.AuditRecord) {
	t.Helper()
	if err := s.AppendAudit(t.Context(), recs); err != nil {
		t.Fatalf("AppendAudit(%s %d..): %v", recs[0].Chain, recs[0].Seq, err)
	}
}

func mustAddCheckpoint(t *testing.T, s store.Store, cp store.AuditCheckpoint) {
	t.Helper()
	if err := s.AddAuditCheckpoint(t.Context(), cp); err != nil {
		t.Fatalf("AddAuditCheckpoint(%s/%d): %v", cp.Chain, cp.Seq, err)
	}
}

func assertAudit(t *testing.T, got, want []store.AuditRecord) {
	t.Helper()
	render := func(r store.AuditRecord) string {
		return fmt.Sprintf("%q|%q|%d|%s|%q|%q|%q|%q|%q|%q|%q|%q|%q|%s|%s|%q", r.ID, r.Chain, r.Seq, stamp(r.At), r.Kind,
			r.Event, r.User, r.Agent, r.Upstream, r.Name, r.Decision, r.Mandate, r.Ref, r.Prev, r.Hash, r.Body)
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(r store.AuditRecord) string {
		r.At = normal(r.At)
		return render(r)
	}))
}

func assertCheckpoints(t *testing.T, got, want []store.AuditCheckpoint) {
	t.Helper()
	render := func(c store.AuditCheckpoint) string {
		return fmt.Sprintf("%q|%d|%s|%s|%q|%q", c.Chain, c.Seq, c.Hash, stamp(c.At), c.KeyID, c.Signature)
	}
	assertLines(t, renderAll(got, render), renderAll(want, func(c store.AuditCheckpoint) string {
		c.At = normal(c.At)
		return render(c)
	}))
}
