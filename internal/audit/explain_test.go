package audit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
)

func TestExplainGolden(t *testing.T) {
	ctx := context.Background()
	st := newMemory()
	o := fixedOptions(t)
	o.CheckpointRecords = 3
	l := openLog(t, st, "chain_a", o)
	// Records carry their own times: the log's clock is then read only by
	// checkpoints, in an order that does not depend on scheduling.
	at := func(ms int) time.Time {
		return time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	mustAppend(t, l, audit.Record{Time: at(1), Kind: audit.KindAdmin, Event: audit.EventMandateGranted, Actor: "u-alice", Target: "mnd_1",
		Detail: map[string]any{"tools": []any{"github/*"}, "purpose": "triage"}})
	rec := decision(1)
	rec.Time = at(2)
	rec.Delegation = []audit.Actor{{Subject: "claude-desktop", ClientID: "cd"}, {Subject: "orchestrator"}}
	rec.Intent = "file the bug \x1b[2J the user reported"
	rec.CatalogHash = strings.Repeat("c", 64)
	d := mustAppend(t, l, rec)
	mustAppend(t, l, audit.Record{Time: at(3), Kind: audit.KindOutcome, Ref: d.ID, Status: "ok", ResultBytes: 2048, Latency: 42_000_000,
		Findings: []audit.Finding{{Rule: "secret-in-result", Severity: "high", Detail: "ghp_abcdefghijklmnopqrstuvwxyz0123456789 redacted"}}})
	late := decision(2)
	late.Time = at(4)
	late = mustAppend(t, l, late)
	// Close signs the last record; explain it before, when nothing covers it.
	var unsigned strings.Builder
	story, err := audit.Tell(ctx, st, testKeys(), late.ID)
	if err != nil {
		t.Fatal(err)
	}
	story.WriteText(&unsigned)
	closeLog(t, l)

	var out strings.Builder
	for _, id := range []string{d.ID, "aud_0003"} {
		story, err := audit.Tell(ctx, st, testKeys(), id)
		if err != nil {
			t.Fatalf("Tell(%s): %v", id, err)
		}
		if err := story.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		out.WriteString("----\n")
	}
	out.WriteString(unsigned.String())
	checkGolden(t, "explain.golden", `
		What "mandate audit explain" prints: the record, its decision or
		outcomes, and the proof that it sits in a signed, unbroken chain.
		Secrets in arguments and findings are redacted, and a control sequence
		an agent put in its intent is neutralised, not replayed to the
		operator's terminal.`, out.String())

	if _, err := audit.Tell(ctx, st, testKeys(), "aud_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Tell of an unknown record = %v", err)
	}
}
