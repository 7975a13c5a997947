package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Writer is the slice of the store the Log writes through.
type Writer interface {
	AppendAudit(ctx context.Context, recs []store.AuditRecord) error
	LastAudit(ctx context.Context, chain string) (store.AuditRecord, error)
	AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log is closed")

// Options configure a Log. The zero value of every field is a working
// default.
type Options struct {
	// Signer signs checkpoints. Nil writes none, leaving the chain
	// protected only against changes that do not recompute hashes; only
	// tests should do that.
	Signer *Signer
	// Redactor redacts every record. Nil uses DefaultRules and computes no
	// argument digests.
	Redactor *Redactor
	// File, if set, is a JSON-lines file every record and checkpoint is
	// also appended to, in the export format, and synced with each batch.
	// A copy outside the database is what still proves a truncation after
	// the database's last checkpoint was removed too.
	File string
	// MaxBatch is the most records one transaction carries. Zero means
	// 1024.
	MaxBatch int
	// CheckpointInterval is how often the head is signed while records are
	// written. Zero means 30 seconds.
	CheckpointInterval time.Duration
	// CheckpointRecords is how many records may go unsigned before the
	// head is signed, whatever the interval. Zero means 10000.
	CheckpointRecords int64
	// WriteTimeout bounds one batch's write; a store that takes longer
	// fails the batch. Zero means 10 seconds.
	WriteTimeout time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// NewID mints record ids. Nil means NewID.
	NewID func() string
	// Logger receives failures nobody waits for (a periodic checkpoint).
	// Nil discards them.
	Logger *slog.Logger
}

// Log appends records to one chain. It is safe for concurrent use: Appends
// are queued to a single writer goroutine, which takes every queued record
// into one batch, commits it in one transaction, syncs the file, and only
// then answers each caller.
type Log struct {
	st    Writer
	chain string
	o     Options
	// chainJSON is chain as the canonical encoding writes it.
	chainJSON []byte

	reqs   chan *request
	cpReqs chan chan error

	mu     sync.RWMutex // guards closed; Append holds it to enqueue
	closed bool
	stop   chan struct{}
	done   chan struct{}

	// Owned by the writer goroutine once it runs.
	head     head
	signed   int64 // Seq of the last checkpoint
	sink     *fileSink
	closeErr error
}

// head is where the chain ends: the next record is Seq+1 and names Hash.
type head struct {
	Seq  int64
	Hash string
}

type request struct {
	ctx    context.Context
	rec    Record
	idJSON []byte // the record's id as its canonical encoding writes it
	tail   []byte // the record's canonical encoding after its "prev" field
	done   chan result
}

type result struct {
	rec Record
	err error
}

// Open starts a Log appending to chain in st, continuing from the chain's
// last stored record. Close it to write the final checkpoint.
func Open(ctx context.Context, st Writer, chain string, opts *Options) (*Log, error) {
	if !store.StorableKey(chain) {
		return nil, fmt.Errorf("open audit log: %w: chain id %q", store.ErrInvalid, chain)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Redactor == nil {
		r, err := NewRedactor(DefaultRules(), nil)
		if err != nil {
			return nil, err
		}
		o.Redactor = r
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 30 * time.Second
	}
	if o.CheckpointRecords <= 0 {
		o.CheckpointRecords = 10000
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = NewID
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		st: st, chain: chain, o: o,
		reqs:   make(chan *request, 4*o.MaxBatch),
		cpReqs: make(chan chan error),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	var err error
	if l.chainJSON, err = marshalNoEscape(chain); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := l.loadHead(ctx); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	// Whether the inherited head was signed is not known (a crash skips the
	// final checkpoint), so it counts as unsigned: the first periodic
	// checkpoint or Close signs it, and signing it twice is harmless.
	l.signed = 0
	if o.File != "" {
		sink, err := openFileSink(o.File)
		if err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		l.sink = sink
		if err := l.catchUpFile(ctx); err != nil {
			sink.close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	go l.run()
	return l, nil
}

// Chain returns the id of the chain the Log appends to.
func (l *Log) Chain() string { return l.chain }

// Append redacts rec, adds it to the chain and returns it as stored, with
// its ID, place in the chain and hash. It returns only once the record is
// durable in the store (and in the file, if one is configured), and an
// error if it is not: the caller must then refuse whatever the record was
// about. A canceled ctx abandons the wait, not necessarily the write.
func (l *Log) Append(ctx context.Context, rec Record) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, fmt.Errorf("audit append: %w", err)
	}
	req, err := l.prepare(ctx, rec)
	if err != nil {
		return Record{}, fmt.Errorf("audit append: %w", err)
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return Record{}, fmt.Errorf("audit append: %w", ErrClosed)
	}
	select {
	case l.reqs <- req:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return Record{}, fmt.Errorf("audit append: %w", ctx.Err())
	}
	select {
	case res := <-req.done:
		return res.rec, res.err
	case <-ctx.Done():
		return Record{}, fmt.Errorf("audit append: %w", ctx.Err())
	}
}

// Checkpoint signs the chain's current head now, for moments worth pinning
// (a policy reload, a configuration change) between the periodic ones.
func (l *Log) Checkpoint(ctx context.Context) error {
	reply := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	select {
	case l.cpReqs <- reply:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what was appended before it, signs the final head and stops
// the writer. Appends after Close fail with ErrClosed. The error is that of
// the final checkpoint: a log closed without one can be truncated
// undetectably back to its previous checkpoint.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	select {
	case <-l.done:
	case <-ctx.Done():
		return fmt.Errorf("close audit log: %w", ctx.Err())
	}
	err := l.closeErr
	if l.sink != nil {
		err = errors.Join(err, l.sink.close())
	}
	if err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// prepare does on the caller's goroutine everything that does not depend on
// the chain's head: redaction, digest, id, time and all of the encoding but
// the chain position, so the single writer only has to splice and hash.
func (l *Log) prepare(ctx context.Context, rec Record) (*request, error) {
	switch rec.Kind {
	case KindDecision, KindOutcome, KindAdmin:
	default:
		return nil, fmt.Errorf("%w: unknown record kind %q", store.ErrInvalid, rec.Kind)
	}
	if rec.Kind == KindAdmin && rec.Event == "" {
		return nil, fmt.Errorf("%w: administrative record without an event", store.ErrInvalid)
	}
	r := l.o.Redactor
	if rec.Args != nil && rec.ArgsDigest == "" {
		d, err := r.Digest(rec.Args)
		if err != nil {
			return nil, err
		}
		rec.ArgsDigest = d
	}
	rec.Args, rec.Detail = r.Args(rec.Args), r.Args(rec.Detail)
	rec.Intent, rec.Error, rec.Name, rec.Target = r.Text(rec.Intent), r.Text(rec.Error), r.Text(rec.Name), r.Text(rec.Target)
	// The caller's slices are copied before anything in them is redacted.
	rec.Reasons = append([]string(nil), rec.Reasons...)
	rec.Findings = append([]Finding(nil), rec.Findings...)
	rec.Delegation = append([]Actor(nil), rec.Delegation...)
	for i := range rec.Findings {
		rec.Findings[i].Detail = r.Text(rec.Findings[i].Detail)
	}
	for _, s := range []*string{
		&rec.Event, &rec.Ref, &rec.TraceID, &rec.User, &rec.Agent, &rec.AuthMethod, &rec.Session, &rec.Upstream,
		&rec.Method, &rec.Name, &rec.ArgsDigest, &rec.Intent, &rec.CatalogHash, &rec.Decision, &rec.PolicyVersion,
		&rec.Mandate, &rec.Approval, &rec.Status, &rec.Error, &rec.Actor, &rec.Target,
	} {
		*s = sanitize(*s)
	}
	rec.ID = l.o.NewID()
	if rec.Time.IsZero() {
		rec.Time = l.o.Now()
	}
	rec.Time = rec.Time.UTC().Truncate(store.TimePrecision)
	rec.Chain, rec.Seq, rec.Prev, rec.Hash = l.chain, 0, "", ""
	body, err := Encode(rec)
	if err != nil {
		return nil, err
	}
	idJSON, err := marshalNoEscape(rec.ID)
	if err != nil {
		return nil, err
	}
	prefix := appendPosition(nil, idJSON, l.chainJSON, 0, "")
	if !bytes.HasPrefix(body, prefix) {
		return nil, errors.New("audit record encoding does not start with its position")
	}
	return &request{ctx: ctx, rec: rec, idJSON: idJSON, tail: body[len(prefix):], done: make(chan result, 1)}, nil
}

// appendPosition appends the start of a canonical encoding, up to and
// including the comma after "prev": the part that depends on the chain's
// head. idJSON and chainJSON are the id and chain as the encoding writes
// them.
func appendPosition(b, idJSON, chainJSON []byte, seq int64, prev string) []byte {
	b = append(b, `{"id":`...)
	b = append(b, idJSON...)
	b = append(b, `,"chain":`...)
	b = append(b, chainJSON...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"prev":"`...)
	b = append(b, prev...)
	return append(b, `",`...)
}

func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.o.CheckpointInterval)
	defer tick.Stop()
	batch := make([]*request, 0, l.o.MaxBatch)
	for {
		select {
		case req := <-l.reqs:
			l.commit(l.collect(append(batch[:0], req)))
		case reply := <-l.cpReqs:
			reply <- l.checkpoint()
		case <-tick.C:
			if err := l.checkpoint(); err != nil {
				l.o.Logger.Error("audit checkpoint failed", "chain", l.chain, "err", err)
			}
		case <-l.stop:
			// Appends enqueued before Close are still written.
			for len(l.reqs) > 0 {
				l.commit(l.collect(batch[:0]))
			}
			l.closeErr = l.checkpoint()
			return
		}
	}
}

// collect adds to batch whatever is queued, up to MaxBatch.
func (l *Log) collect(batch []*request) []*request {
	for len(batch) < l.o.MaxBatch {
		select {
		case req := <-l.reqs:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

// commit writes batch as one transaction and answers every request in it.
func (l *Log) commit(batch []*request) {
	live := batch[:0]
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			// Its caller has given up and refuses the call anyway.
			req.done <- result{err: fmt.Errorf("audit append: %w", err)}
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	fail := func(err error) {
		for _, req := range live {
			req.done <- result{err: fmt.Errorf("audit append: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.o.WriteTimeout)
	defer cancel()
	// A file that missed the previous batch is caught up before anything
	// else is committed, so it never falls more than one batch behind.
	if l.sink != nil {
		if err := l.sink.flush(); err != nil {
			fail(err)
			return
		}
	}
	var sealed []Record
	var rows []store.AuditRecord
	var err error
	for {
		sealed, rows = l.seal(live)
		err = l.st.AppendAudit(ctx, rows)
		// A conflict means another writer extended the chain (or a commit
		// reported as failed went through after all): continue from the
		// head the store has, for as long as the write may take.
		if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			break
		}
		if err = l.loadHead(ctx); err != nil {
			break
		}
		// What the other writer appended goes to the file first, so the
		// file stays the chain in order: only one process of a data
		// directory (the gateway) writes the file, and the others' records
		// reach it this way.
		if l.sink != nil {
			if err = l.catchUpFile(ctx); err != nil {
				break
			}
		}
	}
	if err != nil {
		fail(err)
		return
	}
	l.head = head{Seq: sealed[len(sealed)-1].Seq, Hash: sealed[len(sealed)-1].Hash}
	if l.sink != nil {
		var lines []byte
		for _, r := range rows {
			lines = appendRecordLine(lines, r.Body, r.Hash)
		}
		if err := l.sink.write(lines); err != nil {
			// The records are in the store; the file gets them with the
			// next batch. Until then nobody may act on them.
			fail(err)
			return
		}
	}
	for i, req := range live {
		req.done <- result{rec: sealed[i]}
	}
	if l.head.Seq-l.signed >= l.o.CheckpointRecords {
		if err := l.checkpoint(); err != nil {
			l.o.Logger.Error("audit checkpoint failed", "chain", l.chain, "err", err)
		}
	}
}

// seal places the batch after the head.
func (l *Log) seal(batch []*request) ([]Record, []store.AuditRecord) {
	sealed := make([]Record, len(batch))
	rows := make([]store.AuditRecord, len(batch))
	seq, prev := l.head.Seq, l.head.Hash
	for i, req := range batch {
		seq++
		body := make([]byte, 0, len(req.idJSON)+len(l.chainJSON)+len(prev)+len(req.tail)+48)
		body = append(appendPosition(body, req.idJSON, l.chainJSON, seq, prev), req.tail...)
		r := req.rec
		r.Seq, r.Prev, r.Hash = seq, prev, HashBody(body)
		sealed[i], rows[i] = r, row(r, body)
		prev = r.Hash
	}
	return sealed, rows
}

// checkpoint signs the head if it moved since the last checkpoint.
func (l *Log) checkpoint() error {
	if l.o.Signer == nil || l.head.Seq == 0 || l.head.Seq == l.signed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.o.WriteTimeout)
	defer cancel()
	cp := signCheckpoint(l.o.Signer, Record{Chain: l.chain, Seq: l.head.Seq, Hash: l.head.Hash}, l.o.Now())
	err := l.st.AddAuditCheckpoint(ctx, cp.toStore())
	if errors.Is(err, store.ErrConflict) {
		// This head is already signed, by a previous run or another
		// writer of the chain.
		err = nil
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if l.sink != nil {
		line, err := appendCheckpointLine(nil, cp)
		if err != nil {
			return err
		}
		if err := l.sink.write(line); err != nil {
			return fmt.Errorf("audit checkpoint: %w", err)
		}
	}
	l.signed = l.head.Seq
	return nil
}

// loadHead reads where the chain ends from the store.
func (l *Log) loadHead(ctx context.Context) error {
	last, err := l.st.LastAudit(ctx, l.chain)
	switch {
	case errors.Is(err, store.ErrNotFound):
		l.head = head{}
	case err != nil:
		return fmt.Errorf("read audit chain head: %w", err)
	default:
		l.head = head{Seq: last.Seq, Hash: last.Hash}
	}
	return nil
}

// catchUpFile brings the file up to the store's head after a crash between
// a commit and the file's write, or when the file is new. A file that is
// ahead of the store means the store lost records, which Open refuses to
// paper over.
func (l *Log) catchUpFile(ctx context.Context) error {
	fileSeq, err := l.sink.lastSeq(l.chain)
	if err != nil {
		return err
	}
	switch {
	case fileSeq > l.head.Seq:
		return fmt.Errorf("audit file %s reaches sequence %d of chain %s, the store only %d: the store lost records",
			l.sink.path, fileSeq, l.chain, l.head.Seq)
	case fileSeq == l.head.Seq:
		return nil
	case fileSeq == 0 && l.o.Signer != nil:
		// A new file starts from a signed anchor, not from a copy of the
		// whole history.
		l.signed = 0
		return l.checkpoint()
	}
	src, ok := l.st.(Reader)
	if !ok {
		return fmt.Errorf("audit file %s is behind the store, which cannot be read to catch it up", l.sink.path)
	}
	var lines []byte
	err = walkChain(ctx, src, l.chain, fileSeq, l.head.Seq, func(it item) error {
		if it.cp != nil {
			if it.cp.Seq <= fileSeq {
				return nil
			}
			var err error
			lines, err = appendCheckpointLine(lines, *it.cp)
			return err
		}
		lines = appendRecordLine(lines, it.rec.Body, it.rec.Hash)
		return nil
	})
	if err != nil {
		return err
	}
	return l.sink.write(lines)
}
