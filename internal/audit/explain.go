package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Querier is the slice of the store the query helpers read.
type Querier interface {
	QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error)
	GetAudit(ctx context.Context, id string) (store.AuditRecord, error)
}

// Query returns the decoded records matching q, newest first. A stored
// record whose body does not hash to its hash is an error wrapping
// ErrTampered rather than a record shown as if it were sound.
func Query(ctx context.Context, st Querier, q store.AuditQuery) ([]Record, error) {
	rows, err := st.QueryAudit(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	out := make([]Record, 0, len(rows))
	for _, sr := range rows {
		r, err := FromStore(sr)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Get returns the decoded record with id; ErrNotFound (from the store) when
// there is none.
func Get(ctx context.Context, st Querier, id string) (Record, error) {
	sr, err := st.GetAudit(ctx, id)
	if err != nil {
		return Record{}, fmt.Errorf("get audit record: %w", err)
	}
	return FromStore(sr)
}

// StoryReader is what Tell reads.
type StoryReader interface {
	Querier
	Reader
}

// Story is the full account of one record: the record, the decision or
// outcomes it is linked with, and the proof it is part of an intact,
// signed chain.
type Story struct {
	Record Record
	// Decision is the decision an outcome completes.
	Decision *Record
	// Outcomes are the outcomes that complete a decision.
	Outcomes []Record
	Proof    Proof
}

// Proof is what was checked of one record's place in its chain.
type Proof struct {
	// Links reports that the record names its predecessor's hash (or
	// starts its chain).
	Links bool
	// Checkpoint is the first checkpoint at or after the record, verified,
	// with every record between them linking up; nil when none covers it
	// yet.
	Checkpoint *Checkpoint
	// Problem says what failed, if anything did.
	Problem string
}

// Tell gathers the story of the record with id.
func Tell(ctx context.Context, st StoryReader, keys []ed25519.PublicKey, id string) (*Story, error) {
	rec, err := Get(ctx, st, id)
	if err != nil {
		return nil, err
	}
	s := &Story{Record: rec}
	if rec.Ref != "" {
		d, err := Get(ctx, st, rec.Ref)
		switch {
		case err == nil:
			s.Decision = &d
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	if rec.Kind == KindDecision {
		if s.Outcomes, err = Query(ctx, st, store.AuditQuery{Ref: rec.ID, Limit: 100}); err != nil {
			return nil, err
		}
		slices.Reverse(s.Outcomes)
	}
	s.Proof, err = prove(ctx, st, keyring(keys), rec)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// prove checks that rec links to its predecessor and up to the first
// checkpoint that covers it.
func prove(ctx context.Context, st Reader, keys map[string]ed25519.PublicKey, rec Record) (Proof, error) {
	var p Proof
	cps, err := st.AuditCheckpoints(ctx, rec.Chain)
	if err != nil {
		return p, fmt.Errorf("read audit checkpoints: %w", err)
	}
	prev := ""
	switch {
	case rec.Seq == 1:
	default:
		before, err := st.AuditRange(ctx, rec.Chain, rec.Seq-2, 1)
		if err != nil {
			return p, fmt.Errorf("read audit records: %w", err)
		}
		if len(before) == 1 && before[0].Seq == rec.Seq-1 {
			prev = before[0].Hash
		} else if i := slices.IndexFunc(cps, func(c store.AuditCheckpoint) bool { return c.Seq == rec.Seq-1 }); i >= 0 {
			prev = cps[i].Hash // The anchor of a pruned chain.
		} else {
			p.Problem = fmt.Sprintf("record %d, which this one follows, is missing", rec.Seq-1)
			return p, nil
		}
	}
	if rec.Prev != prev {
		p.Problem = fmt.Sprintf("does not link to record %d before it", rec.Seq-1)
		return p, nil
	}
	p.Links = true
	i := slices.IndexFunc(cps, func(c store.AuditCheckpoint) bool { return c.Seq >= rec.Seq })
	if i < 0 {
		return p, nil
	}
	cp := checkpointFromStore(cps[i])
	if err := cp.check(keys); err != nil {
		p.Problem = fmt.Sprintf("checkpoint at seq %d: %v", cp.Seq, err)
		return p, nil
	}
	hash, after := rec.Hash, rec.Seq
	for after < cp.Seq {
		page, err := st.AuditRange(ctx, rec.Chain, after, min(rangePage, int(cp.Seq-after)))
		if err != nil {
			return p, fmt.Errorf("read audit records: %w", err)
		}
		if len(page) == 0 {
			p.Problem = fmt.Sprintf("records after %d up to the checkpoint at %d are missing", after, cp.Seq)
			return p, nil
		}
		for _, sr := range page {
			if sr.Seq != after+1 || HashBody(sr.Body) != sr.Hash || sr.Prev != hash {
				p.Problem = fmt.Sprintf("the chain breaks at record %d, before the checkpoint at %d", after+1, cp.Seq)
				return p, nil
			}
			hash, after = sr.Hash, sr.Seq
		}
	}
	if cp.Hash != hash {
		p.Problem = fmt.Sprintf("checkpoint at seq %d signs a different record", cp.Seq)
		return p, nil
	}
	p.Checkpoint = &cp
	return p, nil
}

// WriteText tells the story for a human, one fact a line; values a client
// chose have control characters replaced, so they cannot rewrite the
// terminal.
func (s *Story) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	r := s.Record
	fmt.Fprintf(tw, "Record %s (chain %s, seq %d)\n", r.ID, printable(r.Chain), r.Seq)
	writeRecord(tw, r)
	if s.Decision != nil {
		fmt.Fprintf(tw, "\nDecision %s (seq %d)\n", s.Decision.ID, s.Decision.Seq)
		writeRecord(tw, *s.Decision)
	}
	for _, o := range s.Outcomes {
		fmt.Fprintf(tw, "\nOutcome %s (seq %d)\n", o.ID, o.Seq)
		writeRecord(tw, o)
	}
	fmt.Fprintln(tw, "\nIntegrity")
	line(tw, "hash", r.Hash+" (matches the record's content)")
	switch {
	case !s.Proof.Links:
	case r.Seq == 1:
		line(tw, "chain", "first record of chain "+r.Chain)
	default:
		line(tw, "chain", fmt.Sprintf("links to record %d of chain %s", r.Seq-1, r.Chain))
	}
	if cp := s.Proof.Checkpoint; cp != nil {
		line(tw, "signed", fmt.Sprintf("by the checkpoint at seq %d, %s, key %s; every record in between links up",
			cp.Seq, formatTime(cp.Time), cp.Key))
	} else if s.Proof.Problem == "" {
		line(tw, "signed", "not yet: no checkpoint covers this record")
	}
	if s.Proof.Problem != "" {
		line(tw, "PROBLEM", s.Proof.Problem)
	}
	return tw.Flush()
}

func writeRecord(w io.Writer, r Record) {
	what := string(r.Kind)
	if r.Event != "" {
		what += " " + r.Event
	}
	if r.Method != "" {
		what += " " + r.Method
	}
	line(w, "time", formatTime(r.Time))
	line(w, "kind", what)
	line(w, "trace", r.TraceID)
	who := ""
	if r.User != "" {
		who = "user " + r.User + ", "
	}
	if r.Agent != "" {
		who += "agent " + r.Agent
	}
	if r.AuthMethod != "" {
		who += " (" + r.AuthMethod + ")"
	}
	line(w, "who", strings.TrimSuffix(who, ", "))
	var chain []string
	for _, a := range r.Delegation {
		s := a.Subject
		if a.ClientID != "" {
			s += " (" + a.ClientID + ")"
		}
		chain = append(chain, s)
	}
	line(w, "delegation", strings.Join(chain, " → "))
	line(w, "session", r.Session)
	line(w, "actor", r.Actor)
	line(w, "target", r.Target)
	target := r.Name
	if r.Upstream != "" {
		target = r.Upstream + " / " + r.Name
	}
	line(w, "call", target)
	if r.Args != nil {
		b, _ := marshalNoEscape(r.Args)
		line(w, "arguments", string(b))
	}
	line(w, "args digest", r.ArgsDigest)
	if r.Intent != "" {
		line(w, "intent", fmt.Sprintf("%q", r.Intent))
	}
	line(w, "tools shown", r.CatalogHash)
	line(w, "decision", r.Decision)
	line(w, "reasons", strings.Join(r.Reasons, ", "))
	line(w, "policy", r.PolicyVersion)
	line(w, "mandate", r.Mandate)
	line(w, "approval", r.Approval)
	if r.Status != "" {
		outcome := r.Status
		if r.ResultBytes > 0 {
			outcome += fmt.Sprintf(", %d bytes", r.ResultBytes)
		}
		if r.Latency > 0 {
			outcome += ", " + r.Latency.String()
		}
		line(w, "outcome", outcome)
	}
	for _, f := range r.Findings {
		text := f.Rule
		if f.Severity != "" {
			text += " [" + f.Severity + "]"
		}
		if f.Detail != "" {
			text += ": " + f.Detail
		}
		line(w, "finding", text)
	}
	line(w, "error", r.Error)
	if r.Detail != nil {
		b, _ := marshalNoEscape(r.Detail)
		line(w, "detail", string(b))
	}
	line(w, "refers to", r.Ref)
}

// line writes one labelled fact, or nothing for an empty value.
func line(w io.Writer, label, value string) {
	if value == "" {
		return
	}
	fmt.Fprintf(w, "  %s\t%s\n", label, printable(value))
}

// printable replaces control characters, which a client-chosen value could
// use to rewrite an operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
