package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-mcp/mandate/internal/store"
)

const auditColumns = `chain, seq, id, at, kind, event, user_id, agent_id, upstream, name, decision, mandate_id, ref,
    prev_hash, hash, body`

// auditCopyColumns are auditColumns in the form CopyFrom takes.
var auditCopyColumns = []string{
	"chain", "seq", "id", "at", "kind", "event", "user_id", "agent_id", "upstream", "name", "decision", "mandate_id",
	"ref", "prev_hash", "hash", "body",
}

// AppendAudit implements store.AuditStore. Reading the head and appending
// run in one transaction, and the primary key on (chain, seq) settles a race
// with another writer that read the same head: the second to commit gets a
// unique violation, reported as ErrConflict like any batch that does not
// continue the chain.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if err := store.ValidateAuditBatch(recs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last *store.AuditRecord
		var head store.AuditRecord
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_records WHERE chain = $1 ORDER BY seq DESC LIMIT 1`,
			recs[0].Chain).Scan(&head.Seq, &head.Hash)
		switch {
		case err == nil:
			last = &head
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if err := store.ContinuesAudit(last, recs[0]); err != nil {
			return err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_records"}, auditCopyColumns,
			pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
				r := recs[i]
				return []any{r.Chain, r.Seq, r.ID, normalize(r.At), r.Kind, r.Event, r.User, r.Agent, r.Upstream, r.Name,
					r.Decision, r.Mandate, r.Ref, r.Prev, r.Hash, r.Body}, nil
			}))
		return err
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
	if err := s.open(); err != nil {
		return store.AuditRecord{}, fmt.Errorf("last audit: %w", err)
	}
	r, err := scanAudit(s.pool.QueryRow(ctx,
		`SELECT `+auditColumns+` FROM audit_records WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, chain))
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
	if err := s.open(); err != nil {
		return store.AuditRecord{}, fmt.Errorf("get audit: %w", err)
	}
	r, err := scanAudit(s.pool.QueryRow(ctx, `SELECT `+auditColumns+` FROM audit_records WHERE id = $1`, id))
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("get audit %s: %w", id, s.mapError(err))
	}
	return r, nil
}

// QueryAudit implements store.AuditStore. Only the filters in use become
// conditions, so the planner can pick an index for them; ties on time are
// broken by chain under COLLATE "C", bytewise whatever the database's
// locale.
func (s *Store) QueryAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("query audit: %w", err)
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, f := range []struct{ column, value string }{
		{"user_id", q.User}, {"agent_id", q.Agent}, {"upstream", q.Upstream}, {"name", q.Name},
		{"decision", q.Decision}, {"mandate_id", q.Mandate}, {"kind", q.Kind}, {"ref", q.Ref},
	} {
		if f.value != "" {
			where = append(where, f.column+` = `+arg(f.value))
		}
	}
	if !q.Since.IsZero() {
		where = append(where, `at >= `+arg(normalize(q.Since)))
	}
	if !q.Until.IsZero() {
		where = append(where, `at < `+arg(normalize(q.Until)))
	}
	query := `SELECT ` + auditColumns + ` FROM audit_records`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY at DESC, chain COLLATE "C", seq DESC LIMIT ` + arg(q.Limit)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditRecord, error) { return scanAudit(row) })
	if err != nil {
		return nil, fmt.Errorf("query audit: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// AuditChains implements store.AuditStore.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT chain FROM (SELECT chain FROM audit_records UNION SELECT chain FROM audit_checkpoints) c
ORDER BY chain COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// AuditRange implements store.AuditStore.
func (s *Store) AuditRange(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error) {
	if err := store.ValidateAuditRange(chain, after, limit); err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("audit range: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT `+auditColumns+` FROM audit_records WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit range: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditRecord, error) { return scanAudit(row) })
	if err != nil {
		return nil, fmt.Errorf("audit range: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// AddAuditCheckpoint implements store.AuditStore.
func (s *Store) AddAuditCheckpoint(ctx context.Context, cp store.AuditCheckpoint) error {
	if err := cp.Validate(); err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("add audit checkpoint: %w", err)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO audit_checkpoints (chain, seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)`,
		cp.Chain, cp.Seq, cp.Hash, normalize(cp.At), cp.KeyID, cp.Signature)
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
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT chain, seq, hash, at, key_id, signature FROM audit_checkpoints WHERE chain = $1 ORDER BY seq`, chain)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditCheckpoint, error) {
		var cp store.AuditCheckpoint
		err := row.Scan(&cp.Chain, &cp.Seq, &cp.Hash, &cp.At, &cp.KeyID, &cp.Signature)
		cp.At = cp.At.UTC()
		return cp, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// PruneAudit implements store.AuditStore. The anchoring checkpoint is locked
// first, so a concurrent prune of the same chain waits and then re-checks.
func (s *Store) PruneAudit(ctx context.Context, chain string, through int64) error {
	if err := store.ValidateAuditPrune(chain, through); err != nil {
		return fmt.Errorf("prune audit: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("prune audit: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM audit_checkpoints WHERE chain = $1 AND seq = $2 FOR UPDATE`,
			chain, through).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: no checkpoint at sequence %d", store.ErrConflict, through)
		}
		if err != nil {
			return err
		}
		var later bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_records WHERE chain = $1 AND seq > $2)`,
			chain, through).Scan(&later); err != nil {
			return err
		}
		if !later {
			return fmt.Errorf("%w: would remove the chain's last record", store.ErrConflict)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM audit_records WHERE chain = $1 AND seq <= $2`, chain, through); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE chain = $1 AND seq < $2`, chain, through)
		return err
	})
	if err != nil {
		return fmt.Errorf("prune audit %s through %d: %w", chain, through, s.mapError(err))
	}
	return nil
}

func scanAudit(row pgx.Row) (store.AuditRecord, error) {
	var a store.AuditRecord
	err := row.Scan(&a.Chain, &a.Seq, &a.ID, &a.At, &a.Kind, &a.Event, &a.User, &a.Agent, &a.Upstream, &a.Name,
		&a.Decision, &a.Mandate, &a.Ref, &a.Prev, &a.Hash, &a.Body)
	if err != nil {
		return store.AuditRecord{}, err
	}
	a.At = a.At.UTC()
	return a, nil
}
