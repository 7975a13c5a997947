package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/memory"
)

func TestAppendChainsAndVerifies(t *testing.T) {
	st := newMemory()
	l := openLog(t, st, "c1", fixedOptions(t))
	d := mustAppend(t, l, decision(1))
	o := mustAppend(t, l, audit.Record{Kind: audit.KindOutcome, Ref: d.ID, Status: "ok", ResultBytes: 10, Latency: time.Millisecond})
	a := mustAppend(t, l, audit.Record{Kind: audit.KindAdmin, Event: audit.EventMandateRevoked, Actor: "cli", Target: "mnd_1"})
	closeLog(t, l)
	for i, r := range []audit.Record{d, o, a} {
		if r.Chain != "c1" || r.Seq != int64(i+1) || r.ID == "" || len(r.Hash) != 64 || r.Time.IsZero() {
			t.Errorf("record %d = %+v", i, r)
		}
	}
	if d.Prev != "" || o.Prev != d.Hash || a.Prev != o.Hash {
		t.Error("records do not name their predecessors")
	}
	rep := verifyOK(t, st)
	if len(rep.Chains) != 1 || rep.Chains[0].Records != 3 || rep.Chains[0].Signed != 3 || rep.Chains[0].Unsigned() != 0 {
		t.Errorf("report = %+v, want 3 records signed by the final checkpoint", rep.Chains)
	}
	got, err := audit.Get(context.Background(), st, o.ID)
	if err != nil || got.Ref != d.ID || got.Hash != o.Hash {
		t.Errorf("Get = %+v, %v", got, err)
	}
}

// TestNoSecretReachesARecord checks the stored body, the file and the
// returned record for every secret the arguments and free text carried.
func TestNoSecretReachesARecord(t *testing.T) {
	st := newMemory()
	o := fixedOptions(t)
	o.File = filepath.Join(t.TempDir(), "audit.jsonl")
	l := openLog(t, st, "c1", o)
	secrets := []string{"hunter2", "abcdefghijklmnop", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "s3cr3t", "AKIAIOSFODNN7EXAMPLE"}
	rec := decision(1)
	rec.Intent = "use ghp_abcdefghijklmnopqrstuvwxyz0123456789 to push"
	rec.Error = "dial postgres://app:s3cr3t@db: refused"
	rec.Detail = map[string]any{"aws": "AKIAIOSFODNN7EXAMPLE"}
	rec.Findings = []audit.Finding{{Rule: "secret", Detail: "found Bearer abcdefghijklmnop in result"}}
	got := mustAppend(t, l, rec)
	closeLog(t, l)
	sr, err := st.GetAudit(context.Background(), got.ID)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(o.File)
	if err != nil {
		t.Fatal(err)
	}
	returned, _ := audit.Encode(got)
	for _, where := range []struct{ name, text string }{{"store", string(sr.Body)}, {"file", string(file)}, {"returned record", string(returned)}} {
		for _, s := range secrets {
			if strings.Contains(where.text, s) {
				t.Errorf("%s holds the secret %q:\n%s", where.name, s, where.text)
			}
		}
	}
	want, _ := testRedactor(t).Digest(decision(1).Args)
	if got.ArgsDigest != want {
		t.Errorf("ArgsDigest = %q, want the digest of the arguments before redaction %q", got.ArgsDigest, want)
	}
	if rec.Args["password"] != "hunter2" || !strings.Contains(rec.Findings[0].Detail, "abcdefghijklmnop") {
		t.Error("Append redacted the caller's values in place")
	}
}

func TestAppendRefusesBadRecords(t *testing.T) {
	l := openLog(t, newMemory(), "c1", nil)
	defer closeLog(t, l)
	for _, r := range []audit.Record{{}, {Kind: "other"}, {Kind: audit.KindAdmin}} {
		if _, err := l.Append(context.Background(), r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Append(%+v) = %v, want ErrInvalid", r, err)
		}
	}
	if _, err := audit.Open(context.Background(), newMemory(), "", nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Open with no chain = %v", err)
	}
}

// failingStore fails every append while failing is set.
type failingStore struct {
	*memStore
	failing atomic.Bool
	appends atomic.Int64
}

type memStore = memory.Store

func (f *failingStore) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	f.appends.Add(1)
	if f.failing.Load() {
		return errors.New("disk full")
	}
	return f.memStore.AppendAudit(ctx, recs)
}

// TestAppendFailsClosedWhenStoreFails: no durable record, no success. Once
// the store recovers, the chain goes on without a gap.
func TestAppendFailsClosedWhenStoreFails(t *testing.T) {
	st := &failingStore{memStore: newMemory()}
	l := openLog(t, st, "c1", fixedOptions(t))
	mustAppend(t, l, decision(1))
	st.failing.Store(true)
	for i := range 3 {
		if _, err := l.Append(context.Background(), decision(i)); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Append on a failing store = %v, want the store's error", err)
		}
	}
	st.failing.Store(false)
	r := mustAppend(t, l, decision(2))
	closeLog(t, l)
	if r.Seq != 2 {
		t.Errorf("the record after the failures has seq %d, want 2", r.Seq)
	}
	verifyOK(t, st)
}

func TestAppendAfterClose(t *testing.T) {
	l := openLog(t, newMemory(), "c1", nil)
	closeLog(t, l)
	if _, err := l.Append(context.Background(), decision(1)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestAppendCanceled(t *testing.T) {
	l := openLog(t, newMemory(), "c1", nil)
	defer closeLog(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, decision(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a canceled context = %v", err)
	}
}

// TestRestartContinuesChain guards recovery: a new Log continues the
// chain from the store's last record, as a restarted replica does.
func TestRestartContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	st := openSQLite(t, path)
	l := openLog(t, st, "c1", fixedOptions(t))
	var last audit.Record
	for i := range 3 {
		last = mustAppend(t, l, decision(i))
	}
	closeLog(t, l)
	st.Close()

	st = openSQLite(t, path)
	o := fixedOptions(t)
	o.NewID = audit.NewID
	l = openLog(t, st, "c1", o)
	next := mustAppend(t, l, decision(4))
	closeLog(t, l)
	if next.Seq != 4 || next.Prev != last.Hash {
		t.Errorf("after a restart: seq %d prev %s, want 4 and %s", next.Seq, next.Prev, last.Hash)
	}
	rep := verifyOK(t, st)
	if rep.Chains[0].Checkpoints != 2 || rep.Chains[0].Signed != 4 {
		t.Errorf("report = %+v", rep.Chains[0])
	}
}

// TestTwoWritersOneChain: two logs that share a chain id (a misconfigured
// pair of replicas, or a command writing while the gateway runs) still
// produce one valid chain.
func TestTwoWritersOneChain(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	a := openLog(t, st, "shared", &audit.Options{Signer: testSigner()})
	b := openLog(t, st, "shared", &audit.Options{Signer: testSigner()})
	var wg sync.WaitGroup
	for _, l := range []*audit.Log{a, b} {
		for range 4 {
			wg.Go(func() {
				for i := range 10 {
					if _, err := l.Append(context.Background(), decision(i)); err != nil {
						t.Errorf("Append: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	closeLog(t, a)
	closeLog(t, b)
	rep := verifyOK(t, st)
	if rep.Chains[0].Records != 80 {
		t.Errorf("chain has %d records, want 80", rep.Chains[0].Records)
	}
}

// TestFileKeepsOtherWritersRecords: the gateway's log writes the file; a
// command's log appends to the same chain in the store only. The file
// still ends up the whole chain, in order, and verifies.
func TestFileKeepsOtherWritersRecords(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	signer := testSigner()
	gw := openLog(t, st, "shared", &audit.Options{Signer: signer, File: file})
	// The gateway's first record (it records its configuration at start).
	if _, err := gw.Append(context.Background(), decision(0)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cli := openLog(t, st, "shared", &audit.Options{Signer: signer})
		if _, err := cli.Append(context.Background(), decision(100+i)); err != nil {
			t.Fatal(err)
		}
		closeLog(t, cli)
		for j := range 2 {
			if _, err := gw.Append(context.Background(), decision(10*i+j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeLog(t, gw)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.VerifyFile(f, testKeys())
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if rep.Chains[0].Records != 10 {
		t.Errorf("file holds %d records of the chain, want all 10", rep.Chains[0].Records)
	}
}

// TestConcurrentAppends: many callers at once, all durable, batched, and
// the chain verifies. Run with -race.
func TestConcurrentAppends(t *testing.T) {
	sq := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	counting := &countingStore{Store: sq}
	o := &audit.Options{Signer: testSigner(), Redactor: testRedactor(t), CheckpointRecords: 500,
		File: filepath.Join(t.TempDir(), "audit.jsonl")}
	l := openLog(t, counting, "c1", o)
	const callers, each = 64, 40
	seen := make([]atomic.Bool, callers*each+1)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(context.Background(), decision(c*each+i))
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if r.Seq < 1 || r.Seq > callers*each || seen[r.Seq].Swap(true) {
					t.Errorf("seq %d out of range or given twice", r.Seq)
				}
			}
		})
	}
	wg.Wait()
	closeLog(t, l)
	rep := verifyOK(t, sq)
	if rep.Chains[0].Records != callers*each || rep.Chains[0].Unsigned() != 0 {
		t.Errorf("report = %+v", rep.Chains[0])
	}
	if n := counting.appends.Load(); n >= callers*each {
		t.Errorf("%d records took %d transactions: appends were not batched", callers*each, n)
	} else {
		t.Logf("%d records in %d transactions", callers*each, n)
	}
	f, err := os.Open(o.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	frep, err := audit.VerifyFile(f, testKeys())
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if frep.Chains[0].Records != callers*each {
		t.Errorf("file holds %d records", frep.Chains[0].Records)
	}
}

type countingStore struct {
	store.Store
	appends atomic.Int64
}

func (c *countingStore) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	c.appends.Add(1)
	return c.Store.AppendAudit(ctx, recs)
}

func TestCheckpoints(t *testing.T) {
	st := newMemory()
	o := fixedOptions(t)
	o.CheckpointRecords = 10
	l := openLog(t, st, "c1", o)
	for i := range 25 {
		mustAppend(t, l, decision(i))
	}
	if err := l.Checkpoint(context.Background()); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	mustAppend(t, l, decision(26))
	closeLog(t, l)
	cps, err := st.AuditCheckpoints(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for _, cp := range cps {
		seqs = append(seqs, fmt.Sprint(cp.Seq))
	}
	if got := strings.Join(seqs, ","); got != "10,20,25,26" {
		t.Errorf("checkpoints at %s, want 10,20,25,26", got)
	}
	if err := l.Checkpoint(context.Background()); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Checkpoint after Close = %v", err)
	}
}

func TestPeriodicCheckpoint(t *testing.T) {
	st := newMemory()
	l := openLog(t, st, "c1", &audit.Options{Signer: testSigner(), CheckpointInterval: 10 * time.Millisecond})
	defer closeLog(t, l)
	mustAppend(t, l, decision(1))
	deadline := time.Now().Add(5 * time.Second)
	for {
		cps, err := st.AuditCheckpoints(context.Background(), "c1")
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) == 1 && cps[0].Seq == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no periodic checkpoint: %v", cps)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
