package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/identity"
)

// fullRecord sets every field, with values that tempt an encoder to vary:
// HTML characters, non-ASCII, numbers of several spellings, nested maps.
func fullRecord() audit.Record {
	return audit.Record{
		ID: "aud_0001", Chain: "chain_a", Seq: 2, Prev: strings.Repeat("ab", 32),
		Time: time.Date(2025, time.March, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600)),
		Kind: audit.KindOutcome, Event: "", Ref: "aud_0000", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		User: "ü-alice", Agent: "claude-desktop", Delegation: []audit.Actor{{Subject: "svc", ClientID: "ci"}, {Subject: "root"}},
		AuthMethod: "token_exchange", Session: "s-1", Upstream: "github", Method: "tools/call", Name: "create_issue",
		Args:       map[string]any{"z": 1.0, "a": "<b>&</b>", "n": map[string]any{"y": []any{true, nil, 1e21}, "x": "é"}},
		ArgsDigest: strings.Repeat("cd", 32), Intent: "file a bug", CatalogHash: strings.Repeat("ef", 32),
		Decision: "allow", Reasons: []string{"p1", "p2"}, PolicyVersion: "v1", Mandate: "mnd_1", Approval: "apr_1",
		Status: "ok", ResultBytes: 1234, Latency: 12 * time.Millisecond,
		Findings: []audit.Finding{{Rule: "secret-in-result", Severity: "high", Detail: "redacted 1 value"}},
		Error:    "", Actor: "cli", Target: "mnd_1", Detail: map[string]any{"b": 2, "a": []any{"x"}},
		Hash: "not encoded",
	}
}

func TestEncodeGolden(t *testing.T) {
	body, err := audit.Encode(fullRecord())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "record.golden", `
		The canonical encoding every record hash is computed over. Field names,
		their order, UTC times and unescaped HTML are frozen: a change here
		silently breaks verification of every log already written.`,
		string(body)+"\n"+audit.HashBody(body)+"\n")
}

func TestDecodeRoundTrip(t *testing.T) {
	want := fullRecord()
	body, err := audit.Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := audit.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	again, err := audit.Encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(body) {
		t.Errorf("re-encoding a decoded record changed it:\n%s\n%s", body, again)
	}
	if got.Hash != audit.HashBody(body) {
		t.Errorf("Decode set Hash %s, want the body's hash", got.Hash)
	}
}

// TestSealedBodyIsCanonical guards the log's shortcut of encoding a record
// before it knows its place in the chain and splicing the place in: the
// stored body must be exactly the canonical encoding of the stored record.
func TestSealedBodyIsCanonical(t *testing.T) {
	st := newMemory()
	o := fixedOptions(t)
	for i, chain := range []string{`chain <"a">`, "chain-b", "c\u2028"} {
		o.NewID = func() string { return fmt.Sprintf(`id "quoted" <&> ü %d`, i) }
		l := openLog(t, st, chain, o)
		rec := fullRecord()
		rec.Time = time.Time{}
		got := mustAppend(t, l, rec)
		closeLog(t, l)
		sr, err := st.GetAudit(context.Background(), got.ID)
		if err != nil {
			t.Fatalf("%d: GetAudit: %v", i, err)
		}
		want, err := audit.Encode(got)
		if err != nil {
			t.Fatal(err)
		}
		if string(sr.Body) != string(want) {
			t.Errorf("%d: stored body\n%s\nis not the encoding of the returned record\n%s", i, sr.Body, want)
		}
		if got.Hash != audit.HashBody(want) || sr.Hash != got.Hash {
			t.Errorf("%d: hash %s / stored %s, want %s", i, got.Hash, sr.Hash, audit.HashBody(want))
		}
	}
}

func TestSetPrincipal(t *testing.T) {
	var r audit.Record
	r.SetPrincipal(&identity.Principal{
		Issuer: "https://idp", User: "alice", Agent: "claude", Method: identity.MethodTokenExchange,
		Chain: []identity.Actor{{Subject: "claude", ClientID: "c1"}, {Subject: "orchestrator"}}, TokenID: "jti-secret",
		Scopes: []string{"mcp"},
	})
	if r.User != "alice" || r.Agent != "claude" || r.AuthMethod != "token_exchange" || len(r.Delegation) != 2 ||
		r.Delegation[0] != (audit.Actor{Subject: "claude", ClientID: "c1"}) {
		t.Errorf("SetPrincipal gave %+v", r)
	}
	body, _ := audit.Encode(r)
	if strings.Contains(string(body), "jti-secret") {
		t.Error("the token id reached the record")
	}
}
