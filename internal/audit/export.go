package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Reader is the slice of the store that Verify, Export and the query helpers
// read.
type Reader interface {
	AuditChains(ctx context.Context) ([]string, error)
	AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error)
	AuditCheckpoints(ctx context.Context, chain string) ([]store.AuditCheckpoint, error)
}

// Pruner is what ExportAndPrune needs: reading chains, and deleting their
// oldest records.
type Pruner interface {
	Reader
	LastAudit(ctx context.Context, chain string) (store.AuditRecord, error)
	PruneAudit(ctx context.Context, chain string, through int64) error
}

// exportLine is one line of an export: a record, its canonical encoding kept
// byte for byte, with its hash; or a checkpoint.
type exportLine struct {
	Record     json.RawMessage `json:"record,omitempty"`
	Hash       string          `json:"hash,omitempty"`
	Checkpoint *Checkpoint     `json:"checkpoint,omitempty"`
}

// appendRecordLine appends the export line of a record. It is assembled by
// hand so the record's bytes are exactly the hashed ones.
func appendRecordLine(b, body []byte, hash string) []byte {
	b = append(b, `{"record":`...)
	b = append(b, body...)
	b = append(b, `,"hash":"`...)
	b = append(b, hash...)
	return append(b, "\"}\n"...)
}

func appendCheckpointLine(b []byte, cp Checkpoint) ([]byte, error) {
	line, err := marshalNoEscape(exportLine{Checkpoint: &cp})
	if err != nil {
		return nil, fmt.Errorf("encode audit checkpoint: %w", err)
	}
	b = append(b, line...)
	return append(b, '\n'), nil
}

// item is one step of a chain's walk: a record or a checkpoint.
type item struct {
	rec *store.AuditRecord
	cp  *Checkpoint
}

// rangePage is how many records a walk reads at a time.
const rangePage = 1000

// walkChain visits the records of chain with Seq in (after, through] (no
// upper bound when through is 0) in order, each followed by the checkpoints
// at its Seq. Checkpoints before the first record visited come first — the
// anchor of a pruned chain among them — and checkpoints beyond the last
// record come last, where they show a truncation.
func walkChain(ctx context.Context, src Reader, chain string, after, through int64, visit func(item) error) error {
	cps, err := src.AuditCheckpoints(ctx, chain)
	if err != nil {
		return fmt.Errorf("read audit checkpoints: %w", err)
	}
	next := 0
	emitUpTo := func(seq int64) error {
		for ; next < len(cps) && cps[next].Seq < seq; next++ {
			cp := checkpointFromStore(cps[next])
			if err := visit(item{cp: &cp}); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		page, err := src.AuditRange(ctx, chain, after, rangePage)
		if err != nil {
			return fmt.Errorf("read audit records: %w", err)
		}
		for i := range page {
			r := &page[i]
			if through > 0 && r.Seq > through {
				return emitUpTo(through + 1)
			}
			if err := emitUpTo(r.Seq); err != nil {
				return err
			}
			if err := visit(item{rec: r}); err != nil {
				return err
			}
			after = r.Seq
		}
		if len(page) < rangePage {
			break
		}
	}
	if through > 0 {
		return emitUpTo(through + 1)
	}
	for ; next < len(cps); next++ {
		cp := checkpointFromStore(cps[next])
		if err := visit(item{cp: &cp}); err != nil {
			return err
		}
	}
	return nil
}

// Export writes every chain in src to w as JSON lines, chain by chain, each
// record followed by the checkpoints that sign it. The result is what
// VerifyFile checks.
func Export(ctx context.Context, src Reader, w io.Writer) error {
	chains, err := src.AuditChains(ctx)
	if err != nil {
		return fmt.Errorf("export audit: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	for _, chain := range chains {
		if err := walkChain(ctx, src, chain, 0, 0, writeItem(bw)); err != nil {
			return fmt.Errorf("export audit chain %s: %w", chain, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export audit: %w", err)
	}
	return nil
}

func writeItem(w io.Writer) func(item) error {
	var buf []byte
	return func(it item) error {
		var err error
		if it.cp != nil {
			buf, err = appendCheckpointLine(buf[:0], *it.cp)
			if err != nil {
				return err
			}
		} else {
			buf = appendRecordLine(buf[:0], it.rec.Body, it.rec.Hash)
		}
		_, err = w.Write(buf)
		return err
	}
}

// Pruned says what ExportAndPrune removed from one chain.
type Pruned struct {
	Chain string
	// Through is the Seq of the checkpoint the removed records end at,
	// which stays in the store as the anchor of what remains.
	Through int64
	Records int64
}

// ExportAndPrune moves the records older than before out of the store: for
// each chain, up to its newest checkpoint signed before before (and short of
// the chain's head), it writes the records and their checkpoints to w, which
// is synced if it can be, and only then deletes them. Each chain's stretch is
// verified against keys first; one that does not verify is neither exported
// nor deleted, and the problem is returned. The export ends with a signed
// checkpoint, so it verifies on its own; what stays in the store starts at
// that checkpoint, so it does too.
func ExportAndPrune(ctx context.Context, st Pruner, keys []ed25519.PublicKey, before time.Time, w io.Writer) ([]Pruned, error) {
	chains, err := st.AuditChains(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune audit: %w", err)
	}
	var out []Pruned
	for _, chain := range chains {
		last, err := st.LastAudit(ctx, chain)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		cps, err := st.AuditCheckpoints(ctx, chain)
		if err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		var through int64
		for _, cp := range cps {
			if cp.At.Before(before) && cp.Seq < last.Seq {
				through = cp.Seq
			}
		}
		if through == 0 {
			continue
		}
		v := newVerifier(keys)
		v.fromStore = true
		var n int64
		if err := walkChain(ctx, st, chain, 0, through, func(it item) error {
			v.visit(it, 0)
			if it.rec != nil {
				n++
			}
			return nil
		}); err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		if err := v.finish().Err(); err != nil {
			return out, fmt.Errorf("prune audit chain %s: refusing to delete records that fail verification: %w", chain, err)
		}
		bw := bufio.NewWriterSize(w, 1<<16)
		if err := walkChain(ctx, st, chain, 0, through, writeItem(bw)); err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		if err := bw.Flush(); err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		if s, ok := w.(interface{ Sync() error }); ok {
			if err := s.Sync(); err != nil {
				return out, fmt.Errorf("prune audit chain %s: sync export: %w", chain, err)
			}
		}
		if err := st.PruneAudit(ctx, chain, through); err != nil {
			return out, fmt.Errorf("prune audit chain %s: %w", chain, err)
		}
		out = append(out, Pruned{Chain: chain, Through: through, Records: n})
	}
	return out, nil
}
