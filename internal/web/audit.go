package web

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/store"
)

// AuditStore is the part of the storage contract the audit routes read:
// what audit.Query, audit.Tell, audit.Export and audit.Verify need.
type AuditStore interface {
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error)
	GetAudit(ctx context.Context, id string) (store.AuditRecord, error)
	AuditChains(ctx context.Context) ([]string, error)
	AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error)
	AuditCheckpoints(ctx context.Context, chain string) ([]store.AuditCheckpoint, error)
}

// Interface guards.
var (
	_ AuditStore        = (store.Store)(nil)
	_ audit.StoryReader = (AuditStore)(nil)
)

// AuditLog is the audit log the audit routes read.
type AuditLog struct {
	// Store holds the chains and their checkpoints. Nil answers the audit
	// routes with 503.
	Store AuditStore
	// Keys verify checkpoint signatures: the running process's public key,
	// as mandate audit verify uses without --pubkey. A chain another
	// replica signed with a key not listed here fails verification, as it
	// does on the command line. Empty answers verify with 503 and leaves
	// explain's signature check failing, as mandate audit explain does
	// without a key.
	Keys []ed25519.PublicKey
}

// Limits of GET audit. A limit above the maximum is refused rather than
// cut, so that a client never takes a shortened answer for all it asked.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// auditFilters are the query parameters GET audit takes; any other is
// refused, so that a misspelt filter does not silently widen the answer.
var auditFilters = []string{"user", "agent", "tool", "upstream", "decision", "mandate", "kind", "since", "until", "limit"}

// AuditRecordView is an audit record as the admin API shows it: the
// record's JSON (audit.Record, whose field names are stable and are also
// the export's) with its hash, by which it is found in an export and
// checked against its chain.
type AuditRecordView struct {
	audit.Record
	Hash string `json:"hash"`
}

// ViewAuditRecord returns the view of r.
func ViewAuditRecord(r audit.Record) AuditRecordView { return AuditRecordView{Record: r, Hash: r.Hash} }

// AuditStoryView is GET audit/{id}/explain: the record, the decision or
// outcomes linked with it, what was proven of its place in the chain, and
// Story, the text mandate audit explain prints.
type AuditStoryView struct {
	Record AuditRecordView `json:"record"`
	// Decision is the decision an outcome completes; null otherwise.
	Decision *AuditRecordView `json:"decision"`
	// Outcomes complete a decision, oldest first.
	Outcomes []AuditRecordView `json:"outcomes"`
	Proof    AuditProofView    `json:"proof"`
	Story    string            `json:"story"`
}

// AuditProofView is what was checked of one record's place in its chain.
type AuditProofView struct {
	// Links reports that the record names its predecessor's hash (or
	// starts its chain).
	Links bool `json:"links"`
	// SignedSeq and SignedAt are the first verified checkpoint covering
	// the record, every record in between linking up; 0 and null when none
	// covers it yet or the check failed.
	SignedSeq int64      `json:"signed_seq"`
	SignedAt  *time.Time `json:"signed_at"`
	// Problem says what failed, if anything did.
	Problem string `json:"problem"`
}

// AuditReportView is GET audit/verify: OK when every chain verified, the
// totals, each chain's summary, and the first problem of every chain that
// has one.
type AuditReportView struct {
	OK          bool               `json:"ok"`
	Records     int64              `json:"records"`
	Checkpoints int                `json:"checkpoints"`
	Chains      []AuditChainView   `json:"chains"`
	Problem     *AuditProblemView  `json:"problem"`
	Problems    []AuditProblemView `json:"problems"`
}

// AuditChainView is what verification established about one chain
// (audit.ChainSummary).
type AuditChainView struct {
	Chain       string `json:"chain"`
	First       int64  `json:"first"`
	Last        int64  `json:"last"`
	Records     int64  `json:"records"`
	Checkpoints int    `json:"checkpoints"`
	// Signed is the last record a verified checkpoint covers; the
	// Unsigned records after it are protected by their hashes only.
	Signed   int64      `json:"signed"`
	SignedAt *time.Time `json:"signed_at"`
	Unsigned int64      `json:"unsigned"`
	// Anchor is the signed checkpoint a pruned chain starts from; 0 for a
	// chain that starts at its first record.
	Anchor int64 `json:"anchor"`
}

// AuditProblemView is where a chain fails verification: Record is the id
// of the record found at Seq, "" when there is none (a deleted stretch, a
// bad checkpoint).
type AuditProblemView struct {
	Chain  string `json:"chain"`
	Seq    int64  `json:"seq"`
	Record string `json:"record"`
	Reason string `json:"reason"`
}

// ViewAuditReport returns the view of rep.
func ViewAuditReport(rep *audit.Report) AuditReportView {
	v := AuditReportView{OK: rep.Err() == nil, Chains: []AuditChainView{}, Problems: []AuditProblemView{}}
	for _, c := range rep.Chains {
		v.Records += c.Records
		v.Checkpoints += c.Checkpoints
		v.Chains = append(v.Chains, AuditChainView{
			Chain: c.Chain, First: c.First, Last: c.Last, Records: c.Records, Checkpoints: c.Checkpoints,
			Signed: c.Signed, SignedAt: timeOrNil(c.SignedAt), Unsigned: c.Unsigned(), Anchor: c.Anchor,
		})
	}
	for _, p := range rep.Problems {
		v.Problems = append(v.Problems, AuditProblemView{Chain: p.Chain, Seq: p.Seq, Record: p.ID, Reason: p.Reason})
	}
	if len(v.Problems) > 0 {
		v.Problem = &v.Problems[0]
	}
	return v
}

var (
	errAuditOff = &apiError{status: http.StatusNotFound, msg: "the audit log is disabled in this deployment's configuration"}
	errNoAudit  = &apiError{status: http.StatusServiceUnavailable, msg: "temporarily unavailable", err: errors.New("no audit store")}
	errNoRecord = &apiError{status: http.StatusNotFound, msg: "no such audit record"}
)

// auditLog returns the audit log, or why the audit routes cannot answer.
func (a *adminAPI) auditLog() (*AuditLog, error) {
	switch {
	case a.opts.Audit == nil:
		return nil, errAuditOff
	case a.opts.Audit.Store == nil:
		return nil, errNoAudit
	}
	return a.opts.Audit, nil
}

// auditFailure translates a failure to read the log. A record whose
// content does not match its stored hash is not shown as if it were
// sound, nor hidden as an internal error: the administrator is told the
// log fails verification and where to look.
func auditFailure(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoRecord
	case errors.Is(err, audit.ErrTampered):
		return &apiError{status: http.StatusInternalServerError,
			msg: "an audit record fails verification: its content does not match its hash (GET audit/verify reports where)", err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (a *adminAPI) queryAudit(ctx context.Context, in *call) (any, error) {
	l, err := a.auditLog()
	if err != nil {
		return nil, err
	}
	q, err := a.auditQuery(ctx, in)
	if err != nil {
		return nil, err
	}
	recs, err := audit.Query(ctx, l.Store, q)
	if err != nil {
		return nil, auditFailure("query audit", err)
	}
	views := make([]AuditRecordView, 0, len(recs))
	for _, r := range recs {
		views = append(views, ViewAuditRecord(r))
	}
	return map[string][]AuditRecordView{"records": views}, nil
}

// auditQuery reads GET audit's filters with the meaning mandate audit
// query gives its flags: user is a username or a user id (or an external
// subject), tool is [UPSTREAM/]NAME, since and until are RFC 3339 times or
// durations before now.
func (a *adminAPI) auditQuery(ctx context.Context, in *call) (store.AuditQuery, error) {
	bad := func(format string, args ...any) (store.AuditQuery, error) {
		return store.AuditQuery{}, &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
	}
	for name, values := range in.query {
		switch {
		case !slices.Contains(auditFilters, name):
			return bad("unknown filter %q: the filters are %s", name, strings.Join(auditFilters, ", "))
		case len(values) > 1:
			return bad("filter %s is given more than once", name)
		}
	}
	get := in.query.Get
	q := store.AuditQuery{
		Agent: get("agent"), Upstream: get("upstream"), Decision: get("decision"), Mandate: get("mandate"),
		Kind: get("kind"), Limit: defaultAuditLimit,
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			return bad("limit must be a whole number from 1 to %d", maxAuditLimit)
		}
		q.Limit = n
	}
	switch audit.Kind(q.Kind) {
	case "", audit.KindDecision, audit.KindOutcome, audit.KindAdmin:
	default:
		return bad("kind must be decision, outcome or admin")
	}
	if up, name, ok := strings.Cut(get("tool"), "/"); ok && q.Upstream == "" {
		q.Upstream, q.Name = up, name
	} else {
		q.Name = get("tool")
	}
	now := a.opts.Now()
	for _, t := range []struct {
		name string
		into *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		s := get(t.name)
		if s == "" {
			continue
		}
		when, ok := parseWhen(s, now)
		if !ok {
			return bad("%s must be an RFC 3339 time or a duration before now, such as 24h", t.name)
		}
		*t.into = when
	}
	q.User = get("user")
	if err := q.Validate(); err != nil {
		return bad("%s", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": "))
	}
	if q.User != "" {
		// A username names a local user, whose records carry its id.
		u, err := a.opts.Store.GetUserByUsername(ctx, q.User)
		switch {
		case err == nil:
			q.User = u.ID
		case !errors.Is(err, store.ErrNotFound):
			return store.AuditQuery{}, fmt.Errorf("get user: %w", err)
		}
	}
	return q, nil
}

// parseWhen reads an RFC 3339 time or a positive duration before now, as
// mandate audit query does.
func parseWhen(s string, now time.Time) (time.Time, bool) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), true
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

func (a *adminAPI) showAuditRecord(ctx context.Context, in *call) (any, error) {
	l, err := a.auditLog()
	if err != nil {
		return nil, err
	}
	r, err := audit.Get(ctx, l.Store, in.args[0])
	if err != nil {
		return nil, auditFailure("get audit record", err)
	}
	return ViewAuditRecord(r), nil
}

func (a *adminAPI) explainAuditRecord(ctx context.Context, in *call) (any, error) {
	l, err := a.auditLog()
	if err != nil {
		return nil, err
	}
	s, err := audit.Tell(ctx, l.Store, l.Keys, in.args[0])
	if err != nil {
		return nil, auditFailure("explain audit record", err)
	}
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		return nil, fmt.Errorf("explain audit record: %w", err)
	}
	v := AuditStoryView{
		Record: ViewAuditRecord(s.Record), Outcomes: make([]AuditRecordView, 0, len(s.Outcomes)),
		Proof: AuditProofView{Links: s.Proof.Links, Problem: s.Proof.Problem}, Story: text.String(),
	}
	if s.Decision != nil {
		d := ViewAuditRecord(*s.Decision)
		v.Decision = &d
	}
	for _, o := range s.Outcomes {
		v.Outcomes = append(v.Outcomes, ViewAuditRecord(o))
	}
	if cp := s.Proof.Checkpoint; cp != nil {
		v.Proof.SignedSeq, v.Proof.SignedAt = cp.Seq, timeOrNil(cp.Time)
	}
	return v, nil
}

// exportAudit answers with the export mandate audit export prints, which
// audit.VerifyFile checks.
func (a *adminAPI) exportAudit(_ context.Context, _ *call) (any, error) {
	l, err := a.auditLog()
	if err != nil {
		return nil, err
	}
	return &stream{contentType: "application/x-ndjson", write: func(ctx context.Context, w io.Writer) error {
		return audit.Export(ctx, l.Store, w)
	}}, nil
}

func (a *adminAPI) verifyAudit(ctx context.Context, _ *call) (any, error) {
	l, err := a.auditLog()
	if err != nil {
		return nil, err
	}
	if len(l.Keys) == 0 {
		return nil, &apiError{status: http.StatusServiceUnavailable, msg: "no audit public key to verify with",
			err: errors.New("no audit keys configured")}
	}
	rep, err := audit.Verify(ctx, l.Store, l.Keys)
	if err != nil && !errors.Is(err, audit.ErrTampered) {
		return nil, fmt.Errorf("verify audit: %w", err)
	}
	return ViewAuditReport(rep), nil
}
