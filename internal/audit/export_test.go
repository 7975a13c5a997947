package audit_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
)

func TestExportVerifiesAcrossChains(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	// Two replicas, each with its own chain and key.
	other := mustSigner(t)
	oa := fixedOptions(t)
	ob := &audit.Options{Signer: other}
	a := openLog(t, st, "replica-a", oa)
	b := openLog(t, st, "replica-b", ob)
	for i := range 5 {
		mustAppend(t, a, decision(i))
		mustAppend(t, b, decision(i))
	}
	closeLog(t, a)
	closeLog(t, b)
	var out bytes.Buffer
	if err := audit.Export(context.Background(), st, &out); err != nil {
		t.Fatal(err)
	}
	keys := append(testKeys(), other.Public())
	rep, err := audit.VerifyFile(&out, keys)
	if err != nil {
		t.Fatalf("VerifyFile: %v", err)
	}
	if len(rep.Chains) != 2 || rep.Chains[0].Records != 5 || rep.Chains[1].Records != 5 {
		t.Errorf("report = %+v", rep.Chains)
	}
	if _, err := audit.Verify(context.Background(), st, keys); err != nil {
		t.Errorf("Verify: %v", err)
	}
	// Without replica b's key, its checkpoints are not trusted.
	if _, err := audit.Verify(context.Background(), st, testKeys()); err == nil || !strings.Contains(err.Error(), "replica-b") {
		t.Errorf("Verify without b's key = %v", err)
	}
}

func TestExportAndPrune(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	o := fixedOptions(t)
	o.CheckpointRecords = 5
	l := openLog(t, st, "c1", o)
	var recs []audit.Record
	for i := range 12 {
		recs = append(recs, mustAppend(t, l, decision(i)))
	}
	closeLog(t, l) // checkpoints at 5, 10 and 12
	cps, _ := st.AuditCheckpoints(ctx, "c1")
	cutoff := cps[1].At.Add(time.Microsecond) // after the checkpoint at 10

	var first bytes.Buffer
	pruned, err := audit.ExportAndPrune(ctx, st, testKeys(), cutoff, &first)
	if err != nil {
		t.Fatalf("ExportAndPrune: %v", err)
	}
	if len(pruned) != 1 || pruned[0].Through != 10 || pruned[0].Records != 10 {
		t.Fatalf("pruned = %+v, want records 1 to 10", pruned)
	}
	rep, err := audit.VerifyFile(bytes.NewReader(first.Bytes()), testKeys())
	if err != nil {
		t.Fatalf("the export does not verify: %v", err)
	}
	if c := rep.Chains[0]; c.First != 1 || c.Last != 10 || c.Signed != 10 {
		t.Errorf("export = %+v", c)
	}
	rep = verifyOK(t, st)
	if c := rep.Chains[0]; c.Anchor != 10 || c.First != 11 || c.Last != 12 {
		t.Errorf("what remains = %+v, want records 11 and 12 after an anchor at 10", c)
	}
	if _, err := st.GetAudit(ctx, recs[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a pruned record is still there: %v", err)
	}

	// The chain goes on, and a later prune's export starts at the anchor.
	o.NewID = audit.NewID
	l = openLog(t, st, "c1", o)
	for i := range 6 {
		mustAppend(t, l, decision(i))
	}
	closeLog(t, l)
	var second bytes.Buffer
	if _, err := audit.ExportAndPrune(ctx, st, testKeys(), time.Now().Add(time.Hour), &second); err != nil {
		t.Fatalf("second ExportAndPrune: %v", err)
	}
	rep, err = audit.VerifyFile(bytes.NewReader(second.Bytes()), testKeys())
	if err != nil {
		t.Fatalf("second export does not verify: %v", err)
	}
	if c := rep.Chains[0]; c.Anchor != 10 || c.First != 11 {
		t.Errorf("second export = %+v", c)
	}
	// Both exports together are the whole history.
	if _, err := audit.VerifyFile(strings.NewReader(first.String()+second.String()), testKeys()); err != nil {
		t.Errorf("the exports together do not verify: %v", err)
	}
	verifyOK(t, st)
}

// TestPruneRefusesTamperedChain: evidence of tampering is never deleted.
func TestPruneRefusesTamperedChain(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t, filepath.Join(t.TempDir(), "mandate.db"))
	o := fixedOptions(t)
	o.CheckpointRecords = 3
	l := openLog(t, st, "c1", o)
	for i := range 7 {
		mustAppend(t, l, decision(i))
	}
	closeLog(t, l)
	if err := st.AddAuditCheckpoint(ctx, store.AuditCheckpoint{
		Chain: "c1", Seq: 2, Hash: strings.Repeat("0", 64), At: time.Unix(1, 0), KeyID: "k", Signature: []byte("x"),
	}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err := audit.ExportAndPrune(ctx, st, testKeys(), time.Now().Add(time.Hour), &out)
	if !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("ExportAndPrune of a tampered chain = %v, want ErrTampered", err)
	}
	if out.Len() != 0 {
		t.Error("a chain that fails verification was exported")
	}
	if got, _ := st.AuditRange(ctx, "c1", 0, 100); len(got) != 7 {
		t.Errorf("%d records left, want all 7", len(got))
	}
}
