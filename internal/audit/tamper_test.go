package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-mcp/mandate/internal/audit"
)

// tamperLog writes ten records to a SQLite file, checkpointed at 4 and 8
// and, on Close, at 10, and returns the file's path and the records.
func tamperLog(t *testing.T) (string, []audit.Record) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mandate.db")
	st := openSQLite(t, path)
	o := fixedOptions(t)
	o.CheckpointRecords = 4
	l := openLog(t, st, "c1", o)
	var recs []audit.Record
	for i := range 10 {
		recs = append(recs, mustAppend(t, l, decision(i)))
	}
	closeLog(t, l)
	st.Close()
	return path, recs
}

// forge returns the body and hash of a record that names prev at seq, as
// someone who can write the database but lacks the signing key could make.
func forge(t *testing.T, seq int64, prev, user string) ([]byte, string) {
	t.Helper()
	r := decision(int(seq))
	r.ID, r.Chain, r.Seq, r.Prev, r.User = fmt.Sprintf("aud_forged_%d", seq), "c1", seq, prev, user
	r.Time = fixedOptions(t).Now()
	body, err := audit.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return body, audit.HashBody(body)
}

// rehash recomputes the hashes of the chain from seq on, relinking every
// later record, as a careful forger would.
func rehash(t *testing.T, db *sql.DB, from int64) {
	t.Helper()
	var prev string
	if err := db.QueryRow(`SELECT prev_hash FROM audit_records WHERE chain = 'c1' AND seq = ?`, from).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT seq, body FROM audit_records WHERE chain = 'c1' AND seq >= ? ORDER BY seq`, from)
	if err != nil {
		t.Fatal(err)
	}
	type fix struct {
		seq        int64
		body, hash string
	}
	var fixes []fix
	for rows.Next() {
		var seq int64
		var body []byte
		if err := rows.Scan(&seq, &body); err != nil {
			t.Fatal(err)
		}
		r, err := audit.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		r.Prev = prev
		nb, _ := audit.Encode(r)
		prev = audit.HashBody(nb)
		fixes = append(fixes, fix{seq, string(nb), prev})
	}
	rows.Close()
	for _, f := range fixes {
		exec(t, db, `UPDATE audit_records SET body = CAST(? AS BLOB), hash = ?, prev_hash = ? WHERE chain = 'c1' AND seq = ?`,
			f.body, f.hash, mustPrev(t, f.body), f.seq)
	}
}

func mustPrev(t *testing.T, body string) string {
	r, err := audit.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return r.Prev
}

func exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestTamperedDatabaseFailsVerification edits the SQLite file behind the
// store's back, each way an insider with write access might, and requires
// Verify to name the first bad record and why.
func TestTamperedDatabaseFailsVerification(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, db *sql.DB, recs []audit.Record)
		seq     int64
		id      int // index into recs of the record named, -1 for none
		reason  string
		trusted []ed25519.PublicKey
		// forgedID is the id of the record named when it is not one of
		// recs.
		forgedID string
	}{
		{name: "untouched"},
		{name: "record content edited", seq: 5, id: 4, reason: "does not match its hash",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '"user":"alice"', '"user":"mallory"') AS BLOB) WHERE seq = 5`)
			}},
		{name: "record edited and its hash recomputed", seq: 6, id: 5, reason: "does not link to record 5",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `UPDATE audit_records SET decision = 'deny', body = CAST(replace(CAST(body AS TEXT), '"decision":"allow"', '"decision":"deny"') AS BLOB) WHERE seq = 5`)
				var body []byte
				db.QueryRow(`SELECT body FROM audit_records WHERE seq = 5`).Scan(&body)
				exec(t, db, `UPDATE audit_records SET hash = ? WHERE seq = 5`, audit.HashBody(body))
			}},
		{name: "stored column edited to hide a record from queries", seq: 5, id: 4, reason: `stored user "mallory" differs`,
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `UPDATE audit_records SET user_id = 'mallory' WHERE seq = 5`)
			}},
		{name: "record deleted", seq: 5, id: 5, reason: "record 5 is missing: found record 6",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `DELETE FROM audit_records WHERE seq = 5`)
			}},
		{name: "first records deleted", seq: 1, id: 2, reason: "records 1 to 2 are missing",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `DELETE FROM audit_records WHERE seq <= 2`)
			}},
		{name: "records reordered", seq: 5, id: 5, reason: "stored at sequence 5 but the hashed record says 6",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `UPDATE audit_records SET seq = 1005 WHERE seq = 5`)
				exec(t, db, `UPDATE audit_records SET seq = 5 WHERE seq = 6`)
				exec(t, db, `UPDATE audit_records SET seq = 6 WHERE seq = 1005`)
			}},
		{name: "record inserted in the middle", seq: 6, id: 4, reason: "stored at sequence 6 but the hashed record says 5",
			tamper: func(t *testing.T, db *sql.DB, recs []audit.Record) {
				for seq := 10; seq >= 5; seq-- {
					exec(t, db, `UPDATE audit_records SET seq = seq + 1 WHERE seq = ?`, seq)
				}
				body, hash := forge(t, 5, recs[3].Hash, "mallory")
				exec(t, db, `INSERT INTO audit_records (chain, seq, id, at_us, kind, user_id, prev_hash, hash, body)
VALUES ('c1', 5, 'aud_forged_5', 1, 'decision', 'mallory', ?, ?, ?)`, recs[3].Hash, hash, body)
				// Even the stored time agrees with the forged body.
				r, _ := audit.Decode(body)
				exec(t, db, `UPDATE audit_records SET at_us = ?, agent_id = ?, upstream = ?, name = ?, decision = ?, mandate_id = ? WHERE seq = 5`,
					r.Time.UnixMicro(), r.Agent, r.Upstream, r.Name, r.Decision, r.Mandate)
			}},
		{name: "record appended with a made-up link", seq: 11, id: -1, forgedID: "aud_forged_11", reason: "does not link to record 10",
			tamper: func(t *testing.T, db *sql.DB, recs []audit.Record) {
				body, hash := forge(t, 11, strings.Repeat("0", 64), "mallory")
				r, _ := audit.Decode(body)
				exec(t, db, `INSERT INTO audit_records (chain, seq, id, at_us, kind, event, user_id, agent_id, upstream, name, decision, mandate_id, prev_hash, hash, body)
VALUES ('c1', 11, ?, ?, 'decision', '', ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.Time.UnixMicro(), r.User, r.Agent, r.Upstream, r.Name,
					r.Decision, r.Mandate, r.Prev, hash, body)
			}},
		{name: "chain truncated", seq: 9, id: -1, reason: "records 9 to 10 were deleted (truncated)",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `DELETE FROM audit_records WHERE seq >= 9`)
			}},
		{name: "every record deleted", seq: 10, id: -1, reason: "no records",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `DELETE FROM audit_records`)
			}},
		{name: "chain rewritten from record 3 on", seq: 4, id: 3, reason: "the chain was rewritten",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				exec(t, db, `UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '"user":"alice"', '"user":"mallory"') AS BLOB), user_id = 'mallory' WHERE seq = 3`)
				rehash(t, db, 3)
			}},
		{name: "checkpoint forged", seq: 8, id: -1, reason: "does not verify (forged or altered)",
			tamper: func(t *testing.T, db *sql.DB, recs []audit.Record) {
				exec(t, db, `UPDATE audit_checkpoints SET hash = ? WHERE seq = 8`, recs[6].Hash)
			}},
		{name: "checkpoint signature broken", seq: 4, id: -1, reason: "does not verify",
			tamper: func(t *testing.T, db *sql.DB, _ []audit.Record) {
				var sig []byte
				db.QueryRow(`SELECT signature FROM audit_checkpoints WHERE seq = 4`).Scan(&sig)
				sig[0] ^= 1
				exec(t, db, `UPDATE audit_checkpoints SET signature = ? WHERE seq = 4`, sig)
			}},
		{name: "checkpoint by an untrusted key", seq: 4, id: -1, reason: "not trusted",
			trusted: []ed25519.PublicKey{ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, recs := tamperLog(t)
			if tc.tamper != nil {
				db, err := sql.Open("sqlite", path)
				if err != nil {
					t.Fatal(err)
				}
				tc.tamper(t, db, recs)
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			keys := tc.trusted
			if keys == nil {
				keys = testKeys()
			}
			st := openSQLite(t, path)
			rep, err := audit.Verify(context.Background(), st, keys)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify of an untouched log: %v", err)
				}
				if c := rep.Chains[0]; c.Records != 10 || c.Checkpoints != 3 || c.Signed != 10 {
					t.Errorf("report = %+v", c)
				}
				return
			}
			var p *audit.Problem
			if !errors.As(err, &p) || !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("Verify = %v, want a Problem", err)
			}
			wantID := tc.forgedID
			if tc.id >= 0 && tc.id < len(recs) {
				wantID = recs[tc.id].ID
			}
			if p.Chain != "c1" || p.Seq != tc.seq || p.ID != wantID || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("problem = %v\nwant seq %d, record %q, reason containing %q", p, tc.seq, wantID, tc.reason)
			}
		})
	}
}

// TestTamperedExportFailsVerification does to an export file what the
// database tests do to the database.
func TestTamperedExportFailsVerification(t *testing.T) {
	path, recs := tamperLog(t)
	st := openSQLite(t, path)
	var export bytes.Buffer
	if err := audit.Export(context.Background(), st, &export); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(export.String(), "\n"), "\n")
	// Records 1..10 with checkpoints after records 4, 8 and 10.
	if len(lines) != 13 {
		t.Fatalf("export has %d lines:\n%s", len(lines), export.String())
	}
	recordLine := func(seq int) int { return seq - 1 + (seq-1)/4 } // index of record seq's line
	without := func(drop ...int) []string {
		var out []string
		for i, l := range lines {
			if !containsInt(drop, i) {
				out = append(out, l)
			}
		}
		return out
	}
	swap := func(i, j int) []string {
		out := append([]string(nil), lines...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	edit := func(i int, old, new string) []string {
		out := append([]string(nil), lines...)
		out[i] = strings.Replace(out[i], old, new, 1)
		return out
	}
	insert := func(i int, l string) []string {
		out := append([]string(nil), lines[:i]...)
		return append(append(out, l), lines[i:]...)
	}
	forgedBody, forgedHash := forge(t, 5, recs[3].Hash, "mallory")
	forged := fmt.Sprintf(`{"record":%s,"hash":"%s"}`+"\n", forgedBody, forgedHash)
	var spaced []string
	for _, l := range lines {
		spaced = append(spaced, strings.NewReplacer(`,"`, `, "`, `":`, `": `).Replace(l))
	}
	tests := []struct {
		name   string
		lines  []string
		seq    int64
		id     int
		reason string
	}{
		{name: "untouched", lines: lines},
		{name: "spaces added between tokens", lines: spaced},
		{name: "record edited", lines: edit(recordLine(5), `"user":"alice"`, `"user":"mallory"`), seq: 5, id: 4, reason: "does not match its hash"},
		{name: "record deleted", lines: without(recordLine(5)), seq: 5, id: 5, reason: "record 5 is missing"},
		{name: "records reordered", lines: swap(recordLine(5), recordLine(6)), seq: 5, id: 5, reason: "record 5 is missing: found record 6"},
		{name: "record inserted", lines: insert(recordLine(5), forged), seq: 6, id: 4, reason: "found record 5 where 6 belongs"},
		{name: "tail cut, last checkpoint kept", lines: without(recordLine(9), recordLine(10)), seq: 9, id: -1, reason: "truncated"},
		{name: "checkpoint edited", lines: edit(recordLine(8)+1, `"seq":8`, `"seq":7`), seq: 7, id: -1, reason: "does not verify"},
		{name: "checkpoint moved", lines: swap(recordLine(4)+1, recordLine(5)), seq: 4, id: -1, reason: "comes after record 5"},
		{name: "not a log line", lines: insert(3, "hello\n"), seq: 0, id: -1, reason: "not an audit record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := audit.VerifyFile(strings.NewReader(strings.Join(tc.lines, "")), testKeys())
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("VerifyFile: %v", err)
				}
				if c := rep.Chains[0]; c.Records != 10 || c.Signed != 10 {
					t.Errorf("report = %+v", c)
				}
				return
			}
			var p *audit.Problem
			if !errors.As(err, &p) {
				t.Fatalf("VerifyFile = %v, want a Problem", err)
			}
			wantID := ""
			if tc.id >= 0 {
				wantID = recs[tc.id].ID
			}
			if p.Seq != tc.seq || p.ID != wantID || p.Line == 0 && tc.reason != "truncated" || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("problem = %v\nwant seq %d, record %q, reason containing %q", p, tc.seq, wantID, tc.reason)
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
