package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-mcp/mandate/internal/store"
)

const approvalColumns = `id, user_id, agent_id, upstream, tool, args_hash, args_preview, policy_version, status,
    created_at, expires_at, decided_at, decided_by`

// CreateApproval implements store.ApprovalStore.
func (s *Store) CreateApproval(ctx context.Context, a store.Approval) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("create approval: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("create approval: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO approvals (`+approvalColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		a.ID, a.User, a.Agent, a.Upstream, a.Tool, a.ArgsHash, a.ArgsPreview, a.PolicyVersion, a.Status,
		normalize(a.CreatedAt), normalize(a.ExpiresAt), toNullTime(a.DecidedAt), a.DecidedBy)
	if err != nil {
		return fmt.Errorf("create approval %s: %w", a.ID, s.mapError(err))
	}
	return nil
}

// GetApproval implements store.ApprovalStore.
func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("get approval: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.Approval{}, fmt.Errorf("get approval: %w", err)
	}
	a, err := scanApproval(s.pool.QueryRow(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id))
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval %s: %w", id, s.mapError(err))
	}
	return a, nil
}

// ListApprovals implements store.ApprovalStore. Ties on created_at are
// broken by id under COLLATE "C", bytewise whatever the database's locale.
func (s *Store) ListApprovals(ctx context.Context, status string) ([]store.Approval, error) {
	if err := store.ValidateApprovalFilter(status); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	rows, err := s.pool.Query(ctx, `
SELECT `+approvalColumns+` FROM approvals
WHERE ($1::text = '' OR status = $1)
ORDER BY created_at DESC, id COLLATE "C"`, status)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", s.mapError(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Approval, error) { return scanApproval(row) })
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", s.mapError(err))
	}
	return nonNil(out), nil
}

// DecideApproval implements store.ApprovalStore. The single conditional
// UPDATE is what makes it atomic: a concurrent decider waits for the row
// lock, then re-checks the condition against the committed row, so exactly
// one of them finds it pending.
func (s *Store) DecideApproval(ctx context.Context, id string, approve bool, by string, at time.Time) (store.Approval, error) {
	if err := store.ValidateDecision(by, at); err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("decide approval: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	status := store.ApprovalDenied
	if approve {
		status = store.ApprovalApproved
	}
	when := normalize(at)
	a, err := scanApproval(s.pool.QueryRow(ctx, `
UPDATE approvals SET status = $2, decided_at = $3, decided_by = $4
WHERE id = $1 AND status = 'pending' AND expires_at > $3
RETURNING `+approvalColumns, id, status, when, by))
	if err != nil {
		return store.Approval{}, fmt.Errorf("decide approval %s: %w", id, s.whyNot(ctx, id, err))
	}
	return a, nil
}

// UseApproval implements store.ApprovalStore, atomically for the same
// reason as DecideApproval.
func (s *Store) UseApproval(ctx context.Context, id string, now time.Time) (store.Approval, error) {
	if err := store.ValidateTime("now", now); err != nil {
		return store.Approval{}, fmt.Errorf("use approval: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("use approval: %w", store.ErrNotFound)
	}
	if err := s.open(); err != nil {
		return store.Approval{}, fmt.Errorf("use approval: %w", err)
	}
	a, err := scanApproval(s.pool.QueryRow(ctx, `
UPDATE approvals SET status = 'used'
WHERE id = $1 AND status = 'approved' AND expires_at > $2
RETURNING `+approvalColumns, id, normalize(now)))
	if err != nil {
		return store.Approval{}, fmt.Errorf("use approval %s: %w", id, s.whyNot(ctx, id, err))
	}
	return a, nil
}

// whyNot maps the error of a conditional UPDATE on approvals: no row
// matched means ErrConflict for an approval that exists and ErrNotFound
// for one that does not.
func (s *Store) whyNot(ctx context.Context, id string, err error) error {
	if !errors.Is(err, pgx.ErrNoRows) {
		return s.mapError(err)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM approvals WHERE id = $1)`, id).Scan(&exists); err != nil {
		return s.mapError(err)
	}
	if !exists {
		return store.ErrNotFound
	}
	return fmt.Errorf("%w: not in a state that allows it", store.ErrConflict)
}

func scanApproval(row pgx.Row) (store.Approval, error) {
	var a store.Approval
	var decided *time.Time
	err := row.Scan(&a.ID, &a.User, &a.Agent, &a.Upstream, &a.Tool, &a.ArgsHash, &a.ArgsPreview, &a.PolicyVersion,
		&a.Status, &a.CreatedAt, &a.ExpiresAt, &decided, &a.DecidedBy)
	if err != nil {
		return store.Approval{}, err
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC(), fromNullTime(decided)
	return a, nil
}
