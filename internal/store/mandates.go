package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// UnlimitedUses is the Mandate.UsesLeft of a mandate without a use count.
const UnlimitedUses = -1

// Mandate is a consent grant from a user to an agent, as the store keeps it.
// What it grants is the consent package's business: the store keeps Grants as
// opaque JSON and enforces only what must hold atomically, the use count,
// the expiry and the revocation.
type Mandate struct {
	ID    string
	User  string // the granting user's id
	Agent string // the agent's client id
	// Grants is the JSON of the consent package's grants, kept byte for
	// byte; it is never empty.
	Grants    []byte
	Purpose   string
	CreatedAt time.Time
	// ExpiresAt is after CreatedAt; the mandate expires at ExpiresAt.
	ExpiresAt time.Time
	// UsesLeft is how many calls the mandate still covers, or UnlimitedUses.
	UsesLeft  int
	RevokedAt time.Time // zero unless revoked
	RevokedBy string    // who revoked it; set only with RevokedAt
}

// MandateStore keeps mandates. A mandate is never changed after it is
// created except by the two operations that must be atomic, consuming a use
// and revoking it, so every replica reading it sees a revocation on its very
// next read.
type MandateStore interface {
	// CreateMandate adds m; ErrConflict when m.ID is taken.
	CreateMandate(ctx context.Context, m Mandate) error
	GetMandate(ctx context.Context, id string) (Mandate, error)
	// ListMandates returns the mandates of user to agent, revoked and
	// expired ones included; an empty user or agent matches any. Newest
	// CreatedAt comes first, then by ID, bytewise.
	ListMandates(ctx context.Context, user, agent string) ([]Mandate, error)
	// RevokeMandate marks the mandate revoked by by at at; ErrNotFound when
	// absent. Revoking again succeeds and keeps the first revocation, so the
	// record says who withdrew consent first. An empty by is ErrInvalid.
	RevokeMandate(ctx context.Context, id, by string, at time.Time) error
	// ConsumeMandateUse atomically takes one use of the mandate and returns
	// it as it is afterwards: UsesLeft above zero is decremented, and
	// UnlimitedUses stays. A revoked mandate gives ErrConflict even once
	// expired; otherwise an expired one (ExpiresAt not after now)
	// ErrNotFound; otherwise one without uses left ErrConflict. Of
	// concurrent consumers of the last use exactly one succeeds.
	ConsumeMandateUse(ctx context.Context, id string, now time.Time) (Mandate, error)
}

// Validate reports, as ErrInvalid, why m cannot be stored. A mandate that
// expires no later than it was created, or whose use count is below
// UnlimitedUses, would grant something no caller could reason about, so
// both are refused.
func (m Mandate) Validate() error {
	if err := validKey("mandate id", m.ID); err != nil {
		return err
	}
	if err := validKey("mandate user", m.User); err != nil {
		return err
	}
	if err := validKey("mandate agent", m.Agent); err != nil {
		return err
	}
	if len(m.Grants) == 0 || !json.Valid(m.Grants) {
		return fmt.Errorf("%w: mandate grants are not valid JSON", ErrInvalid)
	}
	if err := validTexts("mandate", []field{{"purpose", m.Purpose}, {"revoker", m.RevokedBy}}); err != nil {
		return err
	}
	if err := ValidateTime("mandate creation time", m.CreatedAt); err != nil {
		return err
	}
	if err := ValidateTime("mandate expiry", m.ExpiresAt); err != nil {
		return err
	}
	if !m.ExpiresAt.Truncate(TimePrecision).After(m.CreatedAt.Truncate(TimePrecision)) {
		return fmt.Errorf("%w: mandate expires before it is created", ErrInvalid)
	}
	if m.UsesLeft < UnlimitedUses {
		return fmt.Errorf("%w: mandate uses left %d below %d", ErrInvalid, m.UsesLeft, UnlimitedUses)
	}
	if m.RevokedBy != "" && m.RevokedAt.IsZero() {
		return fmt.Errorf("%w: mandate revoker set without a revocation time", ErrInvalid)
	}
	return nil
}

// ValidateRevocation reports, as ErrInvalid, why a revocation by by at at
// cannot be recorded: an anonymous or timeless revocation could not be
// audited.
func ValidateRevocation(by string, at time.Time) error {
	if err := validKey("mandate revoker", by); err != nil {
		return err
	}
	return ValidateTime("mandate revocation time", at)
}
