package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/web"
)

// auditSecret is an argument value the log redacts; no answer may show it.
const auditSecret = "hunter2-must-not-be-shown"

// auditFixture is an audit log written to an admin API's store.
type auditFixture struct {
	st     store.Store
	signer *audit.Signer
	keys   []ed25519.PublicKey
	// recs are the records of the chain "chain_web" as stored, in the
	// order written.
	recs []audit.Record
	// t0 is the time of the first record; record i is i hours later.
	t0 time.Time
}

// writeChain appends recs to chain through a real audit.Log signing with
// signer, and closes the log, which signs the head.
func writeChain(t *testing.T, st store.Store, signer *audit.Signer, chain string, recs []audit.Record) []audit.Record {
	t.Helper()
	ctx := context.Background()
	l, err := audit.Open(ctx, st, chain, &audit.Options{Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range recs {
		sealed, err := l.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sealed)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// newAuditEnv is newEnv whose store also holds one signed audit chain:
//
//	0  decision  bob (u-bob) via console, fs/read_file, allow under m-1,
//	             with a password argument the log redacts
//	1  outcome   of 0, ok
//	2  decision  root via ci-bot, github/create_pull_request, needs-approval
//	3  admin     agent.suspended of robot, by u-root
//	4  decision  ext-sub (an external subject) via console, fs/write_file, deny
//
// edit, if set, changes the API's options afterwards.
func newAuditEnv(t *testing.T, edit func(*web.AdminOptions, *auditFixture)) (*env, *auditFixture) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &auditFixture{signer: audit.NewSigner(key), t0: time.Now().Add(-10 * time.Hour).UTC().Truncate(time.Second)}
	f.keys = []ed25519.PublicKey{f.signer.Public()}
	at := func(i int) time.Time { return f.t0.Add(time.Duration(i) * time.Hour) }
	e := newEnvWith(t, func(o *web.AdminOptions) {
		f.st = o.Store.(store.Store)
		decision := audit.Record{Kind: audit.KindDecision, Time: at(0), User: "u-bob", Agent: "console", Method: "tools/call",
			Upstream: "fs", Name: "read_file", Args: map[string]any{"path": "/srv/a", "password": auditSecret},
			Decision: "allow", Reasons: []string{"read-under-mandate"}, Mandate: "m-1"}
		f.recs = writeChain(t, f.st, f.signer, "chain_web", []audit.Record{decision})
		f.recs = append(f.recs, writeChain(t, f.st, f.signer, "chain_web", []audit.Record{
			{Kind: audit.KindOutcome, Time: at(1), Ref: f.recs[0].ID, User: "u-bob", Agent: "console", Method: "tools/call",
				Upstream: "fs", Name: "read_file", Status: "ok", ResultBytes: 42},
			{Kind: audit.KindDecision, Time: at(2), User: "u-root", Agent: "ci-bot", Method: "tools/call",
				Upstream: "github", Name: "create_pull_request", Decision: "needs-approval"},
			{Kind: audit.KindAdmin, Time: at(3), Event: audit.EventAgentSuspended, Actor: "u-root", Target: "robot", Agent: "robot"},
			{Kind: audit.KindDecision, Time: at(4), User: "ext-sub", Agent: "console", Method: "tools/call",
				Upstream: "fs", Name: "write_file", Decision: "deny"},
		})...)
		o.Audit = &web.AuditLog{Store: f.st, Keys: f.keys}
		if edit != nil {
			edit(o, f)
		}
	})
	return e, f
}

// auditRecords decodes GET audit's answer into the records' ids.
func auditRecords(t *testing.T, r response) []string {
	t.Helper()
	var body struct{ Records []web.AuditRecordView }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	ids := make([]string, 0, len(body.Records))
	for _, rec := range body.Records {
		if rec.Hash == "" {
			t.Errorf("record %s without its hash", rec.ID)
		}
		ids = append(ids, rec.ID)
	}
	return ids
}

// noAuditSecrets fails if a response shows the redacted argument or
// anything of the signing key but the key id an export's checkpoints name.
func noAuditSecrets(t *testing.T, f *auditFixture, r response) {
	t.Helper()
	noSecrets(t, r)
	pub := f.signer.Public()
	for _, s := range []string{auditSecret, string(f.signer.PublicPEM()), string(pub), jsonString(t, []byte(pub))} {
		if bytes.Contains(r.body, []byte(s)) {
			t.Fatalf("response shows %q:\n%s", s, r.body)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(string(b), `"`)
}

func TestAdminAPIAuditQuery(t *testing.T) {
	e, f := newAuditEnv(t, nil)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	id := func(i ...int) []string {
		var out []string
		for _, n := range i {
			out = append(out, f.recs[n].ID)
		}
		return out
	}
	rfc := func(i int, d time.Duration) string {
		return url.QueryEscape(f.t0.Add(time.Duration(i)*time.Hour + d).Format(time.RFC3339))
	}
	for query, want := range map[string][]string{
		"":                               id(4, 3, 2, 1, 0),
		"?user=bob":                      id(1, 0),
		"?user=u-bob":                    id(1, 0),
		"?user=ext-sub":                  id(4),
		"?user=nobody":                   nil,
		"?agent=ci-bot":                  id(2),
		"?tool=fs/read_file":             id(1, 0),
		"?tool=read_file":                id(1, 0),
		"?tool=fs/read_file&upstream=fs": nil, // as the CLI: with upstream given, tool is one name
		"?upstream=fs":                   id(4, 1, 0),
		"?decision=deny":                 id(4),
		"?mandate=m-1":                   id(0),
		"?kind=admin":                    id(3),
		"?kind=outcome":                  id(1),
		"?kind=decision&agent=console":   id(4, 0),
		"?since=" + rfc(3, 0):            id(4, 3),
		"?until=" + rfc(1, 0):            id(0),
		"?since=" + rfc(1, 0) + "&until=" + rfc(3, 0): id(2, 1),
		"?since=7h30m":              id(4, 3), // records 6 and 7 hours ago
		"?limit=2":                  id(4, 3),
		"?limit=1000&kind=decision": id(4, 2, 0),
	} {
		r := e.do(t, request{method: "GET", path: "audit" + query, token: admin})
		if r.status != http.StatusOK {
			t.Errorf("audit%s: %d %s", query, r.status, r.body)
			continue
		}
		if got := auditRecords(t, r); !slices.Equal(got, want) {
			t.Errorf("audit%s: records %q, want %q", query, got, want)
		}
		noAuditSecrets(t, f, r)
	}

	r := e.do(t, request{method: "GET", path: "audit?mandate=m-1", token: admin})
	var body struct{ Records []web.AuditRecordView }
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	got := body.Records[0]
	if got.Hash != f.recs[0].Hash || got.Chain != "chain_web" || got.Seq != 1 || got.Args["password"] != audit.Redacted ||
		got.Args["path"] != "/srv/a" || got.Decision != "allow" || !got.Time.Equal(f.t0) {
		t.Errorf("record %+v", got)
	}

	for query, wantErr := range map[string]string{
		"?limit=0":             "limit must be a whole number from 1 to 1000",
		"?limit=1001":          "limit must be a whole number from 1 to 1000",
		"?limit=ten":           "limit must be a whole number from 1 to 1000",
		"?kind=login":          "kind must be decision, outcome or admin",
		"?since=yesterday":     "since must be an RFC 3339 time or a duration before now, such as 24h",
		"?until=-1h":           "until must be an RFC 3339 time or a duration before now, such as 24h",
		"?since=1h&until=2h":   "audit query ends before it starts",
		"?user=%00":            "audit query user contains a NUL byte",
		"?agent=bob&agent=eve": "filter agent is given more than once",
		"?decison=deny":        `unknown filter "decison"`,
	} {
		r := e.do(t, request{method: "GET", path: "audit" + query, token: admin})
		if r.status != http.StatusBadRequest {
			t.Errorf("audit%s: %d %s, want 400", query, r.status, r.body)
			continue
		}
		if msg, _ := r.decode(t)["error"].(string); !strings.HasPrefix(msg, wantErr) {
			t.Errorf("audit%s: error %q, want %q", query, msg, wantErr)
		}
	}
}

func TestAdminAPIAuditRecordAndExplain(t *testing.T) {
	e, f := newAuditEnv(t, nil)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)

	r := e.do(t, request{method: "GET", path: "audit/" + f.recs[2].ID, token: admin})
	if r.status != http.StatusOK {
		t.Fatalf("show: %d %s", r.status, r.body)
	}
	want, _ := json.Marshal(web.ViewAuditRecord(f.recs[2]))
	if got := bytes.TrimSpace(r.body); !bytes.Equal(got, want) {
		t.Errorf("show\n%s\nwant\n%s", got, want)
	}

	story := func(id string) string {
		s, err := audit.Tell(context.Background(), f.st, f.keys, id)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := s.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	explain := func(id string) web.AuditStoryView {
		t.Helper()
		r := e.do(t, request{method: "GET", path: "audit/" + id + "/explain", token: admin})
		if r.status != http.StatusOK {
			t.Fatalf("explain %s: %d %s", id, r.status, r.body)
		}
		noAuditSecrets(t, f, r)
		var v web.AuditStoryView
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		if v.Story != story(id) {
			t.Errorf("story of %s\n%s\nwant, as mandate audit explain prints it,\n%s", id, v.Story, story(id))
		}
		return v
	}
	d := explain(f.recs[0].ID)
	if d.Record.ID != f.recs[0].ID || d.Decision != nil || len(d.Outcomes) != 1 || d.Outcomes[0].ID != f.recs[1].ID {
		t.Errorf("decision's story %+v", d)
	}
	// The chain was signed at 1 and at 5, when each of the two logs that
	// wrote it closed.
	if !d.Proof.Links || d.Proof.SignedSeq != 1 || d.Proof.SignedAt == nil || d.Proof.Problem != "" {
		t.Errorf("decision's proof %+v, want linked and signed by the checkpoint at 1", d.Proof)
	}
	if !strings.Contains(d.Story, "Outcome "+f.recs[1].ID) || !strings.Contains(d.Story, "[redacted]") {
		t.Errorf("story:\n%s", d.Story)
	}
	o := explain(f.recs[1].ID)
	if o.Decision == nil || o.Decision.ID != f.recs[0].ID || len(o.Outcomes) != 0 {
		t.Errorf("outcome's story %+v", o)
	}
	if !o.Proof.Links || o.Proof.SignedSeq != 5 || o.Proof.Problem != "" {
		t.Errorf("outcome's proof %+v, want linked and signed by the checkpoint at 5", o.Proof)
	}

	for _, path := range []string{"audit/aud_nosuchrecord", "audit/aud_nosuchrecord/explain"} {
		r := e.do(t, request{method: "GET", path: path, token: admin})
		if r.status != http.StatusNotFound || r.decode(t)["error"] != "no such audit record" {
			t.Errorf("%s: %d %s, want 404 no such audit record", path, r.status, r.body)
		}
	}
}

func TestAdminAPIAuditExportAndVerify(t *testing.T) {
	e, f := newAuditEnv(t, nil)
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)

	r := e.do(t, request{method: "GET", path: "audit/export", token: admin})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var want bytes.Buffer
	if err := audit.Export(context.Background(), f.st, &want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.body, want.Bytes()) {
		t.Errorf("export\n%s\nwant, as mandate audit export prints it,\n%s", r.body, want.Bytes())
	}
	if bytes.Contains(r.body, []byte(auditSecret)) {
		t.Error("export shows a redacted argument")
	}
	rep, err := audit.VerifyFile(bytes.NewReader(r.body), f.keys)
	if err != nil {
		t.Fatalf("the export fails verification: %v", err)
	}
	if len(rep.Chains) != 1 || rep.Chains[0].Records != 5 || rep.Chains[0].Signed != 5 {
		t.Errorf("export verifies as %+v", rep.Chains)
	}

	r = e.do(t, request{method: "GET", path: "audit/verify", token: admin})
	if r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	noAuditSecrets(t, f, r)
	if bytes.Contains(r.body, []byte(f.signer.KeyID())) {
		t.Errorf("verify names the signing key:\n%s", r.body)
	}
	var v web.AuditReportView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Records != 5 || v.Checkpoints != 2 || v.Problem != nil || len(v.Problems) != 0 || len(v.Chains) != 1 {
		t.Fatalf("verify %+v", v)
	}
	if c := v.Chains[0]; c.Chain != "chain_web" || c.First != 1 || c.Last != 5 || c.Signed != 5 || c.SignedAt == nil || c.Unsigned != 0 {
		t.Errorf("chain %+v", c)
	}

	r = e.do(t, request{method: "POST", path: "audit/export", token: admin})
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST audit/export: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	r = e.do(t, request{method: "HEAD", path: "audit/export", token: admin})
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" || len(r.body) != 0 {
		t.Errorf("HEAD audit/export: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// editedStore shows the record id with its body edited, its stored hash
// and columns left as they were: a change made in the database by someone
// who could not or did not recompute the chain.
type editedStore struct {
	store.Store
	id string
}

func (s editedStore) edit(r store.AuditRecord) store.AuditRecord {
	if r.ID == s.id {
		r.Body = bytes.Replace(r.Body, []byte(`"needs-approval"`), []byte(`"allow"`), 1)
	}
	return r
}

func (s editedStore) GetAudit(ctx context.Context, id string) (store.AuditRecord, error) {
	r, err := s.Store.GetAudit(ctx, id)
	return s.edit(r), err
}

func (s editedStore) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	rows, err := s.Store.QueryAudit(ctx, q)
	for i := range rows {
		rows[i] = s.edit(rows[i])
	}
	return rows, err
}

func (s editedStore) AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error) {
	rows, err := s.Store.AuditRange(ctx, chain, after, limit)
	for i := range rows {
		rows[i] = s.edit(rows[i])
	}
	return rows, err
}

// TestAdminAPIAuditEditedRecord: an edited record makes verify answer not
// ok, naming the record, and is never shown as if it were sound.
func TestAdminAPIAuditEditedRecord(t *testing.T) {
	e, f := newAuditEnv(t, func(o *web.AdminOptions, f *auditFixture) {
		o.Audit.Store = editedStore{Store: f.st, id: f.recs[2].ID}
	})
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	edited := f.recs[2].ID

	r := e.do(t, request{method: "GET", path: "audit/verify", token: admin})
	if r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	var v web.AuditReportView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	if v.OK || v.Problem == nil || len(v.Problems) != 1 {
		t.Fatalf("verify of an edited log %+v, want not ok with one problem", v)
	}
	if p := *v.Problem; p.Record != edited || p.Seq != 3 || p.Chain != "chain_web" || !strings.Contains(p.Reason, "edited") {
		t.Errorf("problem %+v, want record %s at seq 3, edited", p, edited)
	}

	for _, path := range []string{"audit", "audit/" + edited, "audit/" + edited + "/explain"} {
		r := e.do(t, request{method: "GET", path: path, token: admin})
		msg, _ := r.decode(t)["error"].(string)
		if r.status != http.StatusInternalServerError || !strings.Contains(msg, "fails verification") {
			t.Errorf("%s: %d %s, want 500 saying the record fails verification", path, r.status, r.body)
		}
	}
	// The export is the store's content, edit and all; verifying it
	// finds the edit.
	r = e.do(t, request{method: "GET", path: "audit/export", token: admin})
	if _, err := audit.VerifyFile(bytes.NewReader(r.body), f.keys); !errors.Is(err, audit.ErrTampered) {
		t.Errorf("export of an edited log verifies: %v", err)
	}
}

// auditFailingStore fails to read the checkpoints of one chain.
type auditFailingStore struct {
	store.Store
	chain string
}

func (s auditFailingStore) AuditCheckpoints(ctx context.Context, chain string) ([]store.AuditCheckpoint, error) {
	if chain == s.chain {
		return nil, errors.New("disk on fire by design")
	}
	return s.Store.AuditCheckpoints(ctx, chain)
}

// TestAdminAPIAuditExportFails: an export that fails before its first
// bytes is a JSON error; one that fails after them breaks the response,
// so that no client takes the part it got, which may well verify, for the
// whole log.
func TestAdminAPIAuditExportFails(t *testing.T) {
	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)

	e, _ := newAuditEnv(t, func(o *web.AdminOptions, f *auditFixture) {
		o.Audit.Store = auditFailingStore{Store: f.st, chain: "chain_web"}
	})
	r := e.do(t, request{method: "GET", path: "audit/export", token: admin})
	if r.status != http.StatusInternalServerError || r.decode(t)["error"] != "internal error" {
		t.Errorf("export failing at once: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "disk on fire") || !strings.Contains(e.log.String(), "disk on fire") {
		t.Errorf("the cause belongs in the log, not the answer: %s", r.body)
	}

	// chain_a sorts before chain_web and holds well over the export's
	// 64 KiB buffer.
	e, _ = newAuditEnv(t, func(o *web.AdminOptions, f *auditFixture) {
		var recs []audit.Record
		for range 100 {
			recs = append(recs, audit.Record{Kind: audit.KindDecision, Agent: "console", Upstream: "fs", Name: "write_file",
				Args: map[string]any{"text": strings.Repeat("x", 1000)}, Decision: "allow"})
		}
		writeChain(t, f.st, f.signer, "chain_a", recs)
		o.Audit.Store = auditFailingStore{Store: f.st, chain: "chain_web"}
	})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+web.AdminAPIPath+"audit/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("export failing midway: status %d, %d bytes read without error", resp.StatusCode, len(body))
	}
	if len(body) < 64<<10 {
		t.Errorf("export failing midway: %d bytes before the failure, want the first 64 KiB", len(body))
	}
}

// TestAdminAPIAuditRefused: the audit routes are the admin API's, refused
// to whoever the others refuse, and say so when the audit log is off.
func TestAdminAPIAuditRefused(t *testing.T) {
	e, _ := newAuditEnv(t, nil)
	paths := []string{"audit", "audit/aud_x", "audit/aud_x/explain", "audit/export", "audit/verify"}
	for _, c := range []struct {
		name, token, wantError string
	}{
		{"not an administrator", token(t, localIssuer, "u-bob", "console", web.ScopeAdmin), "not an administrator"},
		{"disabled", token(t, localIssuer, "u-eve", "console", web.ScopeAdmin), "account disabled"},
		{"without the admin scope", token(t, localIssuer, "u-root", "console", "mcp:tools"), "insufficient_scope"},
		{"an agent acting for nobody", token(t, localIssuer, "robot", "robot", web.ScopeAdmin),
			"the admin API is for people, not for agents acting on their own"},
	} {
		for _, p := range paths {
			r := e.do(t, request{method: "GET", path: p, token: c.token})
			if r.status != http.StatusForbidden || r.decode(t)["error"] != c.wantError {
				t.Errorf("%s, %s: %d %s, want 403 %q", c.name, p, r.status, r.body, c.wantError)
			}
		}
	}
	for _, p := range paths {
		if r := e.do(t, request{method: "GET", path: p}); r.status != http.StatusUnauthorized {
			t.Errorf("no token, %s: %d %s, want 401", p, r.status, r.body)
		}
	}

	admin := token(t, localIssuer, "u-root", "console", web.ScopeAdmin)
	off := newEnv(t)
	for _, p := range paths {
		r := off.do(t, request{method: "GET", path: p, token: admin})
		if r.status != http.StatusNotFound || r.decode(t)["error"] != "the audit log is disabled in this deployment's configuration" {
			t.Errorf("audit off, %s: %d %s", p, r.status, r.body)
		}
	}
	noStore := newEnvWith(t, func(o *web.AdminOptions) { o.Audit = &web.AuditLog{} })
	noKeys, _ := newAuditEnv(t, func(o *web.AdminOptions, _ *auditFixture) { o.Audit.Keys = nil })
	for _, c := range []struct {
		name string
		e    *env
		path string
	}{
		{"no store", noStore, "audit"}, {"no store", noStore, "audit/verify"}, {"no key", noKeys, "audit/verify"},
	} {
		if r := c.e.do(t, request{method: "GET", path: c.path, token: admin}); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s, %s: %d %s, want 503", c.name, c.path, r.status, r.body)
		}
	}
}
