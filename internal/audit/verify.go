package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Problem is the first place a chain fails verification.
type Problem struct {
	Chain string
	// Seq is the position in the chain where verification failed: the
	// sequence number expected there.
	Seq int64
	// ID is the record found at that position, if any.
	ID string
	// Line is the line of the export file, when verifying one.
	Line   int
	Reason string
}

func (p *Problem) Error() string {
	where := fmt.Sprintf("chain %s, seq %d", p.Chain, p.Seq)
	if p.ID != "" {
		where += " (record " + p.ID + ")"
	}
	if p.Line > 0 {
		where = fmt.Sprintf("line %d: %s", p.Line, where)
	}
	return where + ": " + p.Reason
}

// Unwrap makes every Problem an ErrTampered.
func (p *Problem) Unwrap() error { return ErrTampered }

// ChainSummary is what verification established about one chain.
type ChainSummary struct {
	Chain string
	// First and Last are the Seq of the first and last record verified.
	First, Last int64
	Records     int64
	Checkpoints int
	// Signed is the Seq of the last record a verified checkpoint covers,
	// and SignedAt when it was signed. Records after Signed are protected
	// only by their hashes: anyone able to write the store could have
	// rewritten or removed them consistently.
	Signed   int64
	SignedAt time.Time
	// Anchor is the Seq of the signed checkpoint a pruned chain starts
	// from; 0 for a chain that starts at its first record.
	Anchor int64
}

// Unsigned is how many records at the end of the chain no checkpoint
// covers.
func (s ChainSummary) Unsigned() int64 { return s.Last - max(s.Signed, s.Anchor) }

// Report is the result of a verification.
type Report struct {
	Chains []ChainSummary
	// Problems holds the first problem of each chain that has one.
	Problems []*Problem
}

// Err returns the first problem, or nil when everything verified.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return r.Problems[0]
}

// Verify checks every chain in src: that each record's content hashes to
// its hash and agrees with its stored columns, that the records of a chain
// run from 1 (or from a signed anchor) without a gap, each naming its
// predecessor's hash, and that every checkpoint is signed by one of keys and
// matches the record it covers. It returns the report and its first
// problem, which wraps ErrTampered; other errors are failures to read.
func Verify(ctx context.Context, src Reader, keys []ed25519.PublicKey) (*Report, error) {
	chains, err := src.AuditChains(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify audit: %w", err)
	}
	v := newVerifier(keys)
	v.fromStore = true
	for _, chain := range chains {
		if err := walkChain(ctx, src, chain, 0, 0, func(it item) error {
			v.visit(it, 0)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("verify audit chain %s: %w", chain, err)
		}
	}
	rep := v.finish()
	return rep, rep.Err()
}

// maxLine bounds one line of an export file.
const maxLine = 64 << 20

// VerifyFile checks an export read from r as Verify checks the store, less
// the stored columns an export does not have. Chains may be interleaved; the
// lines of each must be in order. Whitespace added between a line's tokens
// does not matter (each record is compacted before it is hashed); any other
// change does.
func VerifyFile(r io.Reader, keys []ed25519.PublicKey) (*Report, error) {
	v := newVerifier(keys)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var l exportLine
		if err := json.Unmarshal(text, &l); err != nil || (l.Record == nil) == (l.Checkpoint == nil) {
			v.lineProblem(n, "not an audit record or checkpoint line")
			continue
		}
		if l.Checkpoint != nil {
			v.visit(item{cp: l.Checkpoint}, n)
			continue
		}
		var body bytes.Buffer
		if err := json.Compact(&body, l.Record); err != nil {
			v.lineProblem(n, "record is not JSON")
			continue
		}
		v.record(body.Bytes(), l.Hash, nil, n)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("verify audit file: %w", err)
	}
	rep := v.finish()
	return rep, rep.Err()
}

// verifier checks a stream of records and checkpoints, chain by chain.
type verifier struct {
	keys   map[string]ed25519.PublicKey
	chains map[string]*chainState
	order  []string
	// stray is a problem no chain can be named for (an unreadable line).
	stray *Problem
	// fromStore is set when the stream is read from the store rather than
	// a file.
	fromStore bool
}

type chainState struct {
	sum     ChainSummary
	started bool
	next    int64  // Seq expected next
	prev    string // Hash of the last record
	lastID  string
	anchor  *Checkpoint
	pending []Checkpoint // checkpoints beyond the last record so far
	problem *Problem
}

func newVerifier(keys []ed25519.PublicKey) *verifier {
	return &verifier{keys: keyring(keys), chains: make(map[string]*chainState)}
}

func (v *verifier) chain(name string) *chainState {
	cs, ok := v.chains[name]
	if !ok {
		cs = &chainState{sum: ChainSummary{Chain: name}}
		v.chains[name] = cs
		v.order = append(v.order, name)
	}
	return cs
}

func (v *verifier) visit(it item, line int) {
	if it.cp != nil {
		v.checkpoint(*it.cp, line)
		return
	}
	v.record(it.rec.Body, it.rec.Hash, it.rec, line)
}

func (v *verifier) lineProblem(line int, reason string) {
	if v.stray == nil {
		v.stray = &Problem{Chain: "?", Line: line, Reason: reason}
	}
}

// expected returns the Seq and Prev the chain's next record must have.
func (cs *chainState) expected() (int64, string) {
	switch {
	case cs.started:
		return cs.next, cs.prev
	case cs.anchor != nil:
		return cs.anchor.Seq + 1, cs.anchor.Hash
	default:
		return 1, ""
	}
}

// record checks one record: body is its canonical encoding, claimed the
// hash it was stored or exported with, sr its stored row when read from the
// store.
func (v *verifier) record(body []byte, claimed string, sr *store.AuditRecord, line int) {
	r, err := Decode(body)
	name := r.Chain
	if sr != nil {
		name = sr.Chain
	}
	if err != nil && sr == nil {
		v.lineProblem(line, "record is not readable: "+err.Error())
		return
	}
	cs := v.chain(name)
	if cs.problem != nil {
		return
	}
	seq, prev := cs.expected()
	id := r.ID
	if sr != nil {
		id = sr.ID
	}
	fail := func(format string, args ...any) {
		cs.problem = &Problem{Chain: name, Seq: seq, ID: id, Line: line, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case err != nil:
		fail("record is not readable (edited): %v", err)
		return
	case r.Hash != claimed:
		fail("record content does not match its hash (edited)")
		return
	case sr != nil:
		if m := columnMismatch(*sr, r); m != "" {
			fail("%s (edited)", m)
			return
		}
	}
	switch {
	case r.Seq > seq && !cs.started && cs.anchor == nil:
		fail("chain starts at seq %d: records 1 to %d are missing and no signed checkpoint anchors it (deleted)", r.Seq, r.Seq-1)
		return
	case r.Seq > seq:
		fail("record %d is missing: found record %d next (deleted, or records reordered)", seq, r.Seq)
		return
	case r.Seq < seq:
		fail("found record %d where %d belongs (inserted, duplicated or reordered)", r.Seq, seq)
		return
	case r.Prev != prev && !cs.started:
		fail("does not link to the signed checkpoint at seq %d it follows (altered, or inserted)", cs.anchor.Seq)
		return
	case r.Prev != prev:
		fail("does not link to record %d (%s) before it: that record was altered, or this one inserted", seq-1, cs.lastID)
		return
	}
	if !cs.started {
		cs.started = true
		cs.sum.First = r.Seq
		if cs.anchor != nil {
			cs.sum.Anchor = cs.anchor.Seq
		}
	}
	cs.next, cs.prev, cs.lastID = r.Seq+1, r.Hash, r.ID
	cs.sum.Last = r.Seq
	cs.sum.Records++
	for len(cs.pending) > 0 && cs.pending[0].Seq == r.Seq {
		cp := cs.pending[0]
		cs.pending = cs.pending[1:]
		if !v.matches(cs, cp, line) {
			return
		}
	}
}

func (v *verifier) checkpoint(cp Checkpoint, line int) {
	cs := v.chain(cp.Chain)
	if cs.problem != nil {
		return
	}
	cs.sum.Checkpoints++
	if err := cp.check(v.keys); err != nil {
		cs.problem = &Problem{Chain: cp.Chain, Seq: cp.Seq, Line: line,
			Reason: fmt.Sprintf("checkpoint signed at %s: %v", cp.Time.UTC().Format(time.RFC3339), err)}
		return
	}
	switch last := cs.next - 1; {
	case !cs.started:
		// Before the first record: the anchor a pruned chain starts from.
		if cs.anchor == nil || cp.Seq > cs.anchor.Seq {
			cs.anchor = &cp
		}
	case cp.Seq == last:
		v.matches(cs, cp, line)
	case cp.Seq > last:
		cs.pending = append(cs.pending, cp)
	default:
		cs.problem = &Problem{Chain: cp.Chain, Seq: cp.Seq, Line: line,
			Reason: fmt.Sprintf("checkpoint for seq %d comes after record %d (reordered)", cp.Seq, last)}
	}
}

// matches checks that cp signs the chain's last record.
func (v *verifier) matches(cs *chainState, cp Checkpoint, line int) bool {
	if cp.Hash != cs.prev {
		cs.problem = &Problem{Chain: cp.Chain, Seq: cp.Seq, ID: cs.lastID, Line: line,
			Reason: fmt.Sprintf("checkpoint signed at %s covers a different record %d: the chain was rewritten up to here",
				cp.Time.UTC().Format(time.RFC3339), cp.Seq)}
		return false
	}
	cs.sum.Signed, cs.sum.SignedAt = cp.Seq, cp.Time
	return true
}

// finish reports on every chain, including the truncation a checkpoint
// beyond a chain's last record shows.
func (v *verifier) finish() *Report {
	rep := &Report{}
	if v.stray != nil {
		rep.Problems = append(rep.Problems, v.stray)
	}
	for _, name := range v.order {
		cs := v.chains[name]
		if cs.problem == nil && len(cs.pending) > 0 {
			cp := cs.pending[len(cs.pending)-1]
			seq, _ := cs.expected()
			cs.problem = &Problem{Chain: name, Seq: seq,
				Reason: fmt.Sprintf("chain ends at seq %d but a checkpoint signed at %s covers seq %d: records %d to %d were deleted (truncated)",
					seq-1, cp.Time.UTC().Format(time.RFC3339), cp.Seq, seq, cp.Seq)}
		}
		if cs.problem == nil && !cs.started && cs.anchor != nil {
			// Pruning always leaves a record after its anchor, so a store
			// chain with checkpoints and no records lost them all. A file
			// may legitimately hold only the anchor it was started with.
			if v.fromStore {
				cs.problem = &Problem{Chain: name, Seq: cs.anchor.Seq,
					Reason: fmt.Sprintf("chain has a checkpoint at seq %d but no records: they were deleted", cs.anchor.Seq)}
			}
			cs.sum.Anchor = cs.anchor.Seq
		}
		rep.Chains = append(rep.Chains, cs.sum)
		if cs.problem != nil {
			rep.Problems = append(rep.Problems, cs.problem)
		}
	}
	return rep
}
