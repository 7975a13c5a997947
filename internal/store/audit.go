package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditRecord is one entry of a tamper-evident audit chain as the store keeps
// it. Body is the canonical encoding the audit package hashed, kept byte for
// byte; the other fields are copies of what Body says, kept as columns so
// records can be found without decoding every body. Verification checks the
// columns against Body, so editing a column to hide a record from queries is
// as visible as editing the record itself.
//
// The store knows nothing about how Hash is computed: it enforces only what
// must hold atomically across writers, that each chain is one unbroken
// sequence in which every record names its predecessor's hash.
type AuditRecord struct {
	ID string
	// Chain names the sequence the record belongs to, one per writing
	// replica, so replicas never contend for one head.
	Chain string
	// Seq is the record's position in Chain, from 1 with no gaps.
	Seq  int64
	At   time.Time
	Kind string
	// Event names an administrative event; empty for decisions and
	// outcomes.
	Event    string
	User     string
	Agent    string
	Upstream string
	// Name is the tool, prompt or resource the record is about.
	Name     string
	Decision string
	Mandate  string
	// Ref is the ID of the record this one completes (an outcome names its
	// decision).
	Ref string
	// Prev is the Hash of the record at Seq-1, empty exactly when Seq is 1.
	Prev string
	// Hash is the lowercase hex SHA-256 the audit package computed over Body.
	Hash string
	// Body is the record's canonical JSON; never empty.
	Body []byte
}

// AuditCheckpoint is a signed statement that a chain's record at Seq had
// Hash at At. It is what makes truncation and wholesale rewriting of a chain
// detectable: anyone can recompute hashes, only the key holder can sign.
type AuditCheckpoint struct {
	Chain string
	Seq   int64
	// Hash is the Hash of the chain's record at Seq.
	Hash string
	At   time.Time
	// KeyID names the key that made Signature, so a verifier with several
	// trusted keys knows which one to use.
	KeyID     string
	Signature []byte
}

// AuditQuery selects audit records. Empty strings and zero times do not
// filter.
type AuditQuery struct {
	User, Agent, Upstream, Name, Decision, Mandate, Kind, Ref string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Limit is the most records returned; it must be positive.
	Limit int
}

// AuditStore keeps audit chains and their checkpoints. Records are only ever
// appended; the single deletion, PruneAudit, removes a chain's oldest
// records up to a checkpoint that stays behind as the signed anchor of what
// remains.
type AuditStore interface {
	// AppendAudit stores recs atomically: all of them or none. They must
	// all belong to one chain and continue it: the first has the Seq after
	// the chain's last record (1 for a new chain) and names that record's
	// Hash as Prev, and each later one follows the one before it the same
	// way. A batch that does not continue the stored chain — another
	// writer got there first — is ErrConflict, as is an ID already used;
	// a batch that is not a chain in itself, or is empty, is ErrInvalid.
	AppendAudit(ctx context.Context, recs []AuditRecord) error
	// LastAudit returns the chain's record with the highest Seq, from which
	// a restarted writer continues; ErrNotFound for a chain with none.
	LastAudit(ctx context.Context, chain string) (AuditRecord, error)
	// GetAudit returns the record with this ID, or ErrNotFound.
	GetAudit(ctx context.Context, id string) (AuditRecord, error)
	// QueryAudit returns the records matching q, newest At first; equal
	// times come by Chain, bytewise, then highest Seq first.
	QueryAudit(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// AuditChains returns the ID of every chain with a record or a
	// checkpoint, bytewise ascending.
	AuditChains(ctx context.Context) ([]string, error)
	// AuditRange returns at most limit records of chain with Seq above
	// after, in Seq order, for reading a whole chain page by page.
	AuditRange(ctx context.Context, chain string, after int64, limit int) ([]AuditRecord, error)
	// AddAuditCheckpoint stores cp; ErrConflict when the chain already has
	// a checkpoint at cp.Seq.
	AddAuditCheckpoint(ctx context.Context, cp AuditCheckpoint) error
	// AuditCheckpoints returns the chain's checkpoints in Seq order.
	AuditCheckpoints(ctx context.Context, chain string) ([]AuditCheckpoint, error)
	// PruneAudit deletes the chain's records with Seq up to through and its
	// checkpoints before through, atomically. The checkpoint at through
	// must exist and is kept, as the signed anchor the first remaining
	// record links to; without one it is ErrConflict, as is pruning the
	// chain's last record, which a writer needs to continue from.
	PruneAudit(ctx context.Context, chain string, through int64) error
}

// Validate reports, as ErrInvalid, why r cannot be stored.
func (r AuditRecord) Validate() error {
	for _, k := range []field{{"id", r.ID}, {"chain", r.Chain}, {"kind", r.Kind}} {
		if err := validKey("audit record "+k.name, k.value); err != nil {
			return err
		}
	}
	if err := validTexts("audit record", []field{
		{"event", r.Event}, {"user", r.User}, {"agent", r.Agent}, {"upstream", r.Upstream}, {"name", r.Name},
		{"decision", r.Decision}, {"mandate", r.Mandate}, {"ref", r.Ref},
	}); err != nil {
		return err
	}
	if r.Seq < 1 {
		return fmt.Errorf("%w: audit record sequence %d is not positive", ErrInvalid, r.Seq)
	}
	if err := ValidateTime("audit record time", r.At); err != nil {
		return err
	}
	if !isHexSHA256(r.Hash) {
		return fmt.Errorf("%w: audit record hash is not a lowercase hex SHA-256", ErrInvalid)
	}
	switch {
	case r.Seq == 1 && r.Prev != "":
		return fmt.Errorf("%w: first audit record of a chain names a predecessor", ErrInvalid)
	case r.Seq > 1 && !isHexSHA256(r.Prev):
		return fmt.Errorf("%w: audit record previous hash is not a lowercase hex SHA-256", ErrInvalid)
	}
	if len(r.Body) == 0 || !json.Valid(r.Body) {
		return fmt.Errorf("%w: audit record body is not valid JSON", ErrInvalid)
	}
	return nil
}

// ValidateAuditBatch reports, as ErrInvalid, why recs cannot be one
// AppendAudit: an empty batch, an invalid record, or records that are not one
// unbroken stretch of a single chain. Whether the batch continues the stored
// chain is for the backend to check, atomically with the write.
func ValidateAuditBatch(recs []AuditRecord) error {
	if len(recs) == 0 {
		return fmt.Errorf("%w: empty audit batch", ErrInvalid)
	}
	for i, r := range recs {
		if err := r.Validate(); err != nil {
			return err
		}
		if i == 0 {
			continue
		}
		p := recs[i-1]
		switch {
		case r.Chain != p.Chain:
			return fmt.Errorf("%w: audit batch mixes chains %q and %q", ErrInvalid, p.Chain, r.Chain)
		case r.Seq != p.Seq+1:
			return fmt.Errorf("%w: audit batch jumps from sequence %d to %d", ErrInvalid, p.Seq, r.Seq)
		case r.Prev != p.Hash:
			return fmt.Errorf("%w: audit record %d does not name the hash of record %d", ErrInvalid, r.Seq, p.Seq)
		}
	}
	return nil
}

// ContinuesAudit reports, as ErrConflict, a batch whose first record does not
// follow last, the chain's stored head (nil for an empty chain). Backends
// call it inside the transaction that appends.
func ContinuesAudit(last *AuditRecord, first AuditRecord) error {
	switch {
	case last == nil && first.Seq != 1:
		return fmt.Errorf("%w: audit chain %q is empty, batch starts at sequence %d", ErrConflict, first.Chain, first.Seq)
	case last != nil && first.Seq != last.Seq+1:
		return fmt.Errorf("%w: audit chain %q ends at sequence %d, batch starts at %d", ErrConflict, first.Chain, last.Seq, first.Seq)
	case last != nil && first.Prev != last.Hash:
		return fmt.Errorf("%w: audit batch does not name the hash of record %d of chain %q", ErrConflict, last.Seq, first.Chain)
	}
	return nil
}

// Validate reports, as ErrInvalid, why cp cannot be stored.
func (cp AuditCheckpoint) Validate() error {
	if err := validKey("audit checkpoint chain", cp.Chain); err != nil {
		return err
	}
	if err := validKey("audit checkpoint key id", cp.KeyID); err != nil {
		return err
	}
	if cp.Seq < 1 {
		return fmt.Errorf("%w: audit checkpoint sequence %d is not positive", ErrInvalid, cp.Seq)
	}
	if !isHexSHA256(cp.Hash) {
		return fmt.Errorf("%w: audit checkpoint hash is not a lowercase hex SHA-256", ErrInvalid)
	}
	if len(cp.Signature) == 0 {
		return fmt.Errorf("%w: audit checkpoint is not signed", ErrInvalid)
	}
	return ValidateTime("audit checkpoint time", cp.At)
}

// Validate reports, as ErrInvalid, why q cannot be run.
func (q AuditQuery) Validate() error {
	if err := ValidateLimit(q.Limit); err != nil {
		return err
	}
	if err := validTexts("audit query", []field{
		{"user", q.User}, {"agent", q.Agent}, {"upstream", q.Upstream}, {"name", q.Name},
		{"decision", q.Decision}, {"mandate", q.Mandate}, {"kind", q.Kind}, {"ref", q.Ref},
	}); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return fmt.Errorf("%w: audit query ends before it starts", ErrInvalid)
	}
	return nil
}

// ValidateAuditRange reports, as ErrInvalid, arguments AuditRange refuses.
func ValidateAuditRange(chain string, after int64, limit int) error {
	if err := validKey("audit chain", chain); err != nil {
		return err
	}
	if after < 0 {
		return fmt.Errorf("%w: audit range starts at negative sequence %d", ErrInvalid, after)
	}
	return ValidateLimit(limit)
}

// ValidateAuditPrune reports, as ErrInvalid, arguments PruneAudit refuses.
func ValidateAuditPrune(chain string, through int64) error {
	if err := validKey("audit chain", chain); err != nil {
		return err
	}
	if through < 1 {
		return fmt.Errorf("%w: audit prune through sequence %d is not positive", ErrInvalid, through)
	}
	return nil
}
