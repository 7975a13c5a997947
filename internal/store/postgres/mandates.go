package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-mcp/mandate/internal/store"
)

const mandateColumns = `id, user_id, agent_id, grants, purpose, created_at, expires_at, uses_left, revoked_at, revoked_by`

// CreateMandate implements store.MandateStore.
func (s *Store) CreateMandate(ctx context.Context, m store.Mandate) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("create mandate: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("create mandate: %w", err)
	}
	defer s.gen.written()
	_, err := s.pool.Exec(ctx, `INSERT INTO mandates (`+mandateColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		m.ID, m.User, m.Agent, m.Grants, m.Purpose, normalize(m.CreatedAt), normalize(m.ExpiresAt), m.UsesLeft,
		toNullTime(m.RevokedAt), m.RevokedBy)
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
	if err := s.open(); err != nil {
		return store.Mandate{}, fmt.Errorf("get mandate: %w", err)
	}
	m, err := scanMandate(s.pool.QueryRow(ctx, `SELECT `+mandateColumns+` FROM mandates WHERE id = $1`, id))
	if err != nil {
		return store.Mandate{}, fmt.Errorf("get mandate %s: %w", id, s.mapError(err))
	}
	return m, nil
}

// ListMandates implements store.MandateStore. Ties on created_at are broken
// by id under COLLATE "C", bytewise whatever the database's locale. A
// filter no record can carry matches nothing, answered before any I/O. The
// WHERE clause names only the filters given, so the planner sees plain
// equalities it can serve from an index.
func (s *Store) ListMandates(ctx context.Context, user, agent string) ([]store.Mandate, error) {
	if (user != "" && !store.StorableKey(user)) || (agent != "" && !store.StorableKey(agent)) {
		return []store.Mandate{}, nil
	}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list mandates: %w", err)
	}
	where, args := mandateFilter(user, agent)
	rows, err := s.pool.Query(ctx,
		`SELECT `+mandateColumns+` FROM mandates`+where+` ORDER BY created_at DESC, id COLLATE "C"`, args...)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Mandate, error) { return scanMandate(row) })
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// RevokeMandate implements store.MandateStore. coalesce keeps the first
// revocation: a concurrent revoker waits for the row lock and then sees the
// committed revocation. Matching no row means the mandate does not exist.
func (s *Store) RevokeMandate(ctx context.Context, id, by string, at time.Time) error {
	if err := store.ValidateRevocation(by, at); err != nil {
		return fmt.Errorf("revoke mandate: %w", err)
	}
	if !store.StorableKey(id) {
		return fmt.Errorf("revoke mandate: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("revoke mandate: %w", err)
	}
	defer s.gen.written()
	tag, err := s.pool.Exec(ctx, `
UPDATE mandates SET
    revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END,
    revoked_at = coalesce(revoked_at, $3)
WHERE id = $1`, id, by, normalize(at))
	if err := s.onlyOne(tag, err); err != nil {
		return fmt.Errorf("revoke mandate %s: %w", id, err)
	}
	return nil
}

// ConsumeMandateUse implements store.MandateStore. The single conditional
// UPDATE is what makes it atomic: a concurrent consumer waits for the row
// lock, then re-checks the condition against the committed row, so of
// consumers of the last use exactly one matches. Only when it matches
// nothing does a second read find out why.
func (s *Store) ConsumeMandateUse(ctx context.Context, id string, now time.Time) (store.Mandate, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", err)
	}
	at := normalize(now)
	m, err := scanMandate(s.pool.QueryRow(ctx, `
UPDATE mandates SET uses_left = CASE WHEN uses_left > 0 THEN uses_left - 1 ELSE uses_left END
WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses_left <> 0
RETURNING `+mandateColumns, id, at))
	if err == nil {
		return m, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Mandate{}, fmt.Errorf("consume mandate use: %w", s.mapError(err))
	}
	var revoked, expired bool
	err = s.pool.QueryRow(ctx,
		`SELECT revoked_at IS NOT NULL, expires_at <= $2 FROM mandates WHERE id = $1`, id, at).Scan(&revoked, &expired)
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

// mandateFilter is the WHERE clause, empty when both are, that selects
// the mandates of user to agent, and its arguments.
func mandateFilter(user, agent string) (string, []any) {
	switch {
	case user != "" && agent != "":
		return ` WHERE user_id = $1 AND agent_id = $2`, []any{user, agent}
	case user != "":
		return ` WHERE user_id = $1`, []any{user}
	case agent != "":
		return ` WHERE agent_id = $1`, []any{agent}
	default:
		return "", nil
	}
}

func scanMandate(row pgx.Row) (store.Mandate, error) {
	var m store.Mandate
	var revoked *time.Time
	var uses int64
	err := row.Scan(&m.ID, &m.User, &m.Agent, &m.Grants, &m.Purpose, &m.CreatedAt, &m.ExpiresAt, &uses, &revoked,
		&m.RevokedBy)
	if err != nil {
		return store.Mandate{}, err
	}
	m.UsesLeft = int(uses)
	m.CreatedAt, m.ExpiresAt, m.RevokedAt = m.CreatedAt.UTC(), m.ExpiresAt.UTC(), fromNullTime(revoked)
	return m, nil
}
