package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

const mandateColumns = `id, user_id, agent_id, grants, purpose, created_at_us, expires_at_us, uses_left,
    revoked_at_us, revoked_by`

// CreateMandate implements store.MandateStore.
func (s *Store) CreateMandate(ctx context.Context, m store.Mandate) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create mandate: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO mandates (`+mandateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.User, m.Agent, m.Grants, m.Purpose, toMicros(m.CreatedAt), toMicros(m.ExpiresAt), m.UsesLeft,
		toNullMicros(m.RevokedAt), m.RevokedBy)
	if err != nil {
		return fmt.Errorf("create mandate %s: %w", m.ID, s.mapError(err))
	}
	return nil
}

// GetMandate implements store.MandateStore.
func (s *Store) GetMandate(ctx context.Context, id string) (store.Mandate, error) {
	if !store.StorableKey(id) {
		return store.Mandate{}, fmt.Errorf("get mandate: %w", store.ErrNotFound)
	}
	m, err := scanMandate(s.queryRow(ctx, `SELECT `+mandateColumns+` FROM mandates WHERE id = ?`, id))
	if err != nil {
		return store.Mandate{}, fmt.Errorf("get mandate %s: %w", id, s.mapError(err))
	}
	return m, nil
}

// ListMandates implements store.MandateStore. A filter no record can carry
// matches nothing, answered before any I/O. The WHERE clause names only
// the filters given: a condition that may or may not apply (an empty user
// OR the user's id) keeps SQLite from using an index and has it scan every
// mandate.
func (s *Store) ListMandates(ctx context.Context, user, agent string) ([]store.Mandate, error) {
	if (user != "" && !store.StorableKey(user)) || (agent != "" && !store.StorableKey(agent)) {
		return []store.Mandate{}, nil
	}
	query, args := listMandatesQuery(user, agent)
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", s.mapError(err))
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", s.mapError(err))
	}
	out, err := collect(rows, scanMandate)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", s.mapError(err))
	}
	return out, nil
}

// RevokeMandate implements store.MandateStore. The condition on
// revoked_at_us keeps the first revocation; a second read tells a mandate
// revoked before from one that does not exist.
func (s *Store) RevokeMandate(ctx context.Context, id, by string, at time.Time) error {
	if err := store.ValidateRevocation(by, at); err != nil {
		return fmt.Errorf("revoke mandate: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("revoke mandate: %w", store.ErrNotFound)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var revoked bool
		err := tx.QueryRowContext(ctx, `SELECT revoked_at_us IS NOT NULL FROM mandates WHERE id = ?`, id).Scan(&revoked)
		if err != nil || revoked {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE mandates SET revoked_at_us = ?, revoked_by = ? WHERE id = ?`,
			toMicros(at), by, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke mandate %s: %w", id, s.mapError(err))
	}
	return nil
}

// ConsumeMandateUse implements store.MandateStore. The single conditional
// UPDATE is what makes it atomic: SQLite runs one writer at a time, so of
// concurrent consumers of the last use exactly one matches the row. Only
// when it matches nothing does a second read find out why.
func (s *Store) ConsumeMandateUse(ctx context.Context, id string, now time.Time) (store.Mandate, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", store.ErrNotFound)
	}
	us := toMicros(now)
	m, err := scanMandate(s.queryRow(ctx, `
UPDATE mandates SET uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END
WHERE id = ? AND revoked_at_us IS NULL AND expires_at_us > ? AND uses_left <> 0
RETURNING `+mandateColumns, id, us))
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", s.mapError(err))
	}
	var revoked, expired bool
	err = s.db.QueryRowContext(ctx,
		`SELECT revoked_at_us IS NOT NULL, expires_at_us <= ? FROM mandates WHERE id = ?`, us, id).Scan(&revoked, &expired)
	switch {
	case err != nil:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", s.mapError(err))
	case revoked:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: revoked", store.ErrConflict)
	case expired:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: expired", store.ErrNotFound)
	default:
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w: no uses left", store.ErrConflict)
	}
}

// listMandatesQuery is ListMandates' query for the filters given, an
// empty one matching any, and its arguments.
func listMandatesQuery(user, agent string) (string, []any) {
	var where string
	var args []any
	switch {
	case user != "" && agent != "":
		where, args = ` WHERE user_id = ? AND agent_id = ?`, []any{user, agent}
	case user != "":
		where, args = ` WHERE user_id = ?`, []any{user}
	case agent != "":
		where, args = ` WHERE agent_id = ?`, []any{agent}
	}
	return `SELECT ` + mandateColumns + ` FROM mandates` + where + ` ORDER BY created_at_us DESC, id`, args
}

func scanMandate(r row) (store.Mandate, error) {
	var m store.Mandate
	var created, expires int64
	var revoked sql.NullInt64
	err := r.Scan(&m.ID, &m.User, &m.Agent, &m.Grants, &m.Purpose, &created, &expires, &m.UsesLeft, &revoked,
		&m.RevokedBy)
	if err != nil {
		return store.Mandate{}, err
	}
	m.CreatedAt, m.ExpiresAt, m.RevokedAt = fromMicros(created), fromMicros(expires), fromNullMicros(revoked)
	return m, nil
}
