package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mandate-mcp/mandate/internal/store"
)

const approvalColumns = `id, user_id, agent_id, upstream, tool, args_hash, args_preview, policy_version, status,
    created_at_us, expires_at_us, decided_at_us, decided_by`

// CreateApproval implements store.ApprovalStore.
func (s *Store) CreateApproval(ctx context.Context, a store.Approval) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("create approval: %w", err)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO approvals (`+approvalColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.User, a.Agent, a.Upstream, a.Tool, a.ArgsHash, a.ArgsPreview, a.PolicyVersion, a.Status,
		toMicros(a.CreatedAt), toMicros(a.ExpiresAt), toNullMicros(a.DecidedAt), a.DecidedBy)
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
	a, err := scanApproval(s.db.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval %s: %w", id, s.mapError(err))
	}
	return a, nil
}

// ListApprovals implements store.ApprovalStore.
func (s *Store) ListApprovals(ctx context.Context, status string) ([]store.Approval, error) {
	if err := store.ValidateApprovalFilter(status); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `
SELECT `+approvalColumns+` FROM approvals
WHERE (? = '' OR status = ?)
ORDER BY created_at_us DESC, id`, status, status)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", s.mapError(err))
	}
	out, err := collect(rows, scanApproval)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", s.mapError(err))
	}
	return out, nil
}

// DecideApproval implements store.ApprovalStore. The single conditional
// UPDATE is what makes it atomic: SQLite runs one writer at a time, so of
// concurrent deciders exactly one matches the pending row.
func (s *Store) DecideApproval(ctx context.Context, id string, approve bool, by string, at time.Time) (store.Approval, error) {
	if err := store.ValidateDecision(by, at); err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	if !store.StorableKey(id) {
		return store.Approval{}, fmt.Errorf("decide approval: %w", store.ErrNotFound)
	}
	status := store.ApprovalDenied
	if approve {
		status = store.ApprovalApproved
	}
	us := toMicros(at)
	a, err := scanApproval(s.db.QueryRowContext(ctx, `
UPDATE approvals SET status = ?, decided_at_us = ?, decided_by = ?
WHERE id = ? AND status = 'pending' AND expires_at_us > ?
RETURNING `+approvalColumns, status, us, by, id, us))
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
	a, err := scanApproval(s.db.QueryRowContext(ctx, `
UPDATE approvals SET status = 'used'
WHERE id = ? AND status = 'approved' AND expires_at_us > ?
RETURNING `+approvalColumns, id, toMicros(now)))
	if err != nil {
		return store.Approval{}, fmt.Errorf("use approval %s: %w", id, s.whyNot(ctx, id, err))
	}
	return a, nil
}

// whyNot maps the error of a conditional UPDATE on approvals: no row
// matched means ErrConflict for an approval that exists and ErrNotFound
// for one that does not.
func (s *Store) whyNot(ctx context.Context, id string, err error) error {
	if !errors.Is(err, sql.ErrNoRows) {
		return s.mapError(err)
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM approvals WHERE id = ?)`, id).Scan(&exists); err != nil {
		return s.mapError(err)
	}
	if !exists {
		return store.ErrNotFound
	}
	return fmt.Errorf("%w: not in a state that allows it", store.ErrConflict)
}

func scanApproval(r row) (store.Approval, error) {
	var a store.Approval
	var created, expires int64
	var decided sql.NullInt64
	err := r.Scan(&a.ID, &a.User, &a.Agent, &a.Upstream, &a.Tool, &a.ArgsHash, &a.ArgsPreview, &a.PolicyVersion,
		&a.Status, &created, &expires, &decided, &a.DecidedBy)
	if err != nil {
		return store.Approval{}, err
	}
	a.CreatedAt, a.ExpiresAt, a.DecidedAt = fromMicros(created), fromMicros(expires), fromNullMicros(decided)
	return a, nil
}
