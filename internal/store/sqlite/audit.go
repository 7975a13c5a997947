package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mandate-mcp/mandate/internal/store"
)

const auditColumns = `chain, seq, id, at_us, kind, event, user_id, agent_id, upstream, name, decision, mandate_id, ref,
    prev_hash, hash, body`

// AppendAudit implements store.AuditStore. The immediate transaction holds
// the database's write lock from the start, so reading the chain's head and
// appending after it is one step for every writer, in this process or
// another.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if err := store.ValidateAuditBatch(recs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		last, err := scanAuditHead(tx.QueryRowContext(ctx,
			`SELECT seq, hash FROM audit_records WHERE chain = ? ORDER BY seq DESC LIMIT 1`, recs[0].Chain))
		if err != nil {
			return err
		}
		if err := store.ContinuesAudit(last, recs[0]); err != nil {
			return err
		}
		// One statement prepared per batch and run per record: cheaper in
		// this driver than one statement carrying every record, whose text
		// SQLite would parse afresh each time.
		insert, err := tx.PrepareContext(ctx, `INSERT INTO audit_records (`+auditColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		for _, r := range recs {
			if _, err := insert.ExecContext(ctx, r.Chain, r.Seq, r.ID, toMicros(r.At), r.Kind, r.Event, r.User, r.Agent,
				r.Upstream, r.Name, r.Decision, r.Mandate, r.Ref, r.Prev, r.Hash, r.Body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", s.mapError(err))
	}
	return nil
}

// LastAudit implements store.AuditStore.
func (s *Store) LastAudit(ctx context.Context, chain string) (store.AuditRecord, error) {
	if !store.StorableKey(chain) {
		return store.AuditRecord{}, fmt.Errorf("last audit: %w", store.ErrNotFound)
	}
	r, err := scanAudit(s.db.QueryRowContext(ctx,
		`SELECT `+auditColumns+` FROM audit_records WHERE chain = ? ORDER BY seq DESC LIMIT 1`, chain))
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("last audit of chain %s: %w", chain, s.mapError(err))
	}
	return r, nil
}

// GetAudit implements store.AuditStore.
func (s *Store) GetAudit(ctx context.Context, id string) (store.AuditRecord, error) {
	if !store.StorableKey(id) {
		return store.AuditRecord{}, fmt.Errorf("get audit: %w", store.ErrNotFound)
	}
	r, err := scanAudit(s.db.QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit_records WHERE id = ?`, id))
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("get audit %s: %w", id, s.mapError(err))
	}
	return r, nil
}

// QueryAudit implements store.AuditStore. Only the filters in use become
// conditions, so SQLite can pick an index for them.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	var where []string
	var args []any
	for _, f := range []struct{ column, value string }{
		{"user_id", q.User}, {"agent_id", q.Agent}, {"upstream", q.Upstream}, {"name", q.Name},
		{"decision", q.Decision}, {"mandate_id", q.Mandate}, {"kind", q.Kind}, {"ref", q.Ref},
	} {
		if f.value != "" {
			where = append(where, f.column+` = ?`)
			args = append(args, f.value)
		}
	}
	if !q.Since.IsZero() {
		where = append(where, `at_us >= ?`)
		args = append(args, toMicros(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, `at_us < ?`)
		args = append(args, toMicros(q.Until))
	}
	query := `SELECT ` + auditColumns + ` FROM audit_records`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at_us DESC, chain, seq DESC LIMIT ?`
	rows, err := s.db.QueryContext(ctx, query, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", s.mapError(err))
	}
	out, err := collect(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", s.mapError(err))
	}
	return out, nil
}

// AuditChains implements store.AuditStore.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT chain FROM audit_records UNION SELECT chain FROM audit_checkpoints ORDER BY chain`)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", s.mapError(err))
	}
	out, err := collect(rows, func(r row) (string, error) {
		var c string
		return c, r.Scan(&c)
	})
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", s.mapError(err))
	}
	return out, nil
}

// AuditRange implements store.AuditStore.
func (s *Store) AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error) {
	if err := store.ValidateAuditRange(chain, after, limit); err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT `+auditColumns+` FROM audit_records WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?`, chain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit range: %w", s.mapError(err))
	}
	out, err := collect(rows, scanAudit)
	if err != nil {
		return nil, fmt.Errorf("audit range: %w", s.mapError(err))
	}
	return out, nil
}

// AddAuditCheckpoint implements store.AuditStore.
func (s *Store) AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error {
	if err := cp.Validate(); err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `
INSERT INTO audit_checkpoints (chain, seq, hash, at_us, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)`,
		cp.Chain, cp.Seq, cp.Hash, toMicros(cp.At), cp.KeyID, cp.Signature)
	if err != nil {
		return fmt.Errorf("add audit checkpoint %s/%d: %w", cp.Chain, cp.Seq, s.mapError(err))
	}
	return nil
}

// AuditCheckpoints implements store.AuditStore.
func (s *Store) AuditCheckpoints(ctx context.Context, chain string) ([]store.AuditCheckpoint, error) {
	if err := store.ValidateAuditRange(chain, 0, 1); err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT chain, seq, hash, at_us, key_id, signature FROM audit_checkpoints WHERE chain = ? ORDER BY seq`, chain)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", s.mapError(err))
	}
	out, err := collect(rows, func(r row) (store.AuditCheckpoint, error) {
		var cp store.AuditCheckpoint
		var at int64
		err := r.Scan(&cp.Chain, &cp.Seq, &cp.Hash, &at, &cp.KeyID, &cp.Signature)
		cp.At = fromMicros(at)
		return cp, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", s.mapError(err))
	}
	return out, nil
}

// PruneAudit implements store.AuditStore, in one immediate transaction so
// the checks and both deletions see the same chain.
func (s *Store) PruneAudit(ctx context.Context, chain string, through int64) error {
	if err := store.ValidateAuditPrune(chain, through); err != nil {
		return fmt.Errorf("prune audit: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var anchored, later bool
		err := tx.QueryRowContext(ctx, `
SELECT EXISTS (SELECT 1 FROM audit_checkpoints WHERE chain = ? AND seq = ?),
       EXISTS (SELECT 1 FROM audit_records WHERE chain = ? AND seq > ?)`,
			chain, through, chain, through).Scan(&anchored, &later)
		switch {
		case err != nil:
			return err
		case !anchored:
			return fmt.Errorf("%w: no checkpoint at sequence %d", store.ErrConflict, through)
		case !later:
			return fmt.Errorf("%w: would remove the chain's last record", store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_records WHERE chain = ? AND seq <= ?`, chain, through); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE chain = ? AND seq < ?`, chain, through)
		return err
	})
	if err != nil {
		return fmt.Errorf("prune audit %s through %d: %w", chain, through, s.mapError(err))
	}
	return nil
}

// scanAuditHead reads the (seq, hash) of a chain's last record; nil for a
// chain without records.
func scanAuditHead(r row) (*store.AuditRecord, error) {
	var last store.AuditRecord
	err := r.Scan(&last.Seq, &last.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &last, nil
}

func scanAudit(r row) (store.AuditRecord, error) {
	var a store.AuditRecord
	var at int64
	err := r.Scan(&a.Chain, &a.Seq, &a.ID, &at, &a.Kind, &a.Event, &a.User, &a.Agent, &a.Upstream, &a.Name,
		&a.Decision, &a.Mandate, &a.Ref, &a.Prev, &a.Hash, &a.Body)
	if err != nil {
		return store.AuditRecord{}, err
	}
	a.At = fromMicros(at)
	return a, nil
}
