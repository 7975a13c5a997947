package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Approval statuses. A request starts pending; a human decides it approved
// or denied; an approved request is used by exactly one call. Expired is
// what a pending or approved request whose ExpiresAt has passed amounts to:
// the store never writes it on its own, readers derive it, and a backend
// accepts it so that an operator's tooling may record it.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalUsed     = "used"
	ApprovalExpired  = "expired"
)

// Approval is a request for a human's decision on one exact call: this
// principal calling this tool of this upstream with arguments whose
// canonical hash is ArgsHash, under policy version PolicyVersion. Any
// change to one of them needs a new approval.
type Approval struct {
	ID    string
	User  string // the user the agent acts for; empty for an autonomous agent
	Agent string // the agent's client id
	// Upstream and Tool name the call's target as the upstream knows it.
	Upstream string
	Tool     string
	// ArgsHash is the lowercase hex SHA-256 of the canonical JSON of the
	// call's arguments.
	ArgsHash string
	// ArgsPreview is JSON shown to the human who decides: the arguments
	// with secret-looking values redacted and long values truncated. It is
	// never used to decide anything.
	ArgsPreview   string
	PolicyVersion string
	Status        string // one of the Approval* statuses
	CreatedAt     time.Time
	// ExpiresAt is after CreatedAt. The request must be decided, and the
	// approved call made, before it.
	ExpiresAt time.Time
	DecidedAt time.Time // zero until decided
	DecidedBy string    // who decided; set exactly when DecidedAt is
}

// ApprovalStore keeps approval requests. Deciding and using are the only
// changes, and each is a single atomic step, so two replicas can never both
// decide one request or both use one approval.
type ApprovalStore interface {
	// CreateApproval adds a; ErrConflict when a.ID is taken.
	CreateApproval(ctx context.Context, a Approval) error
	GetApproval(ctx context.Context, id string) (Approval, error)
	// ListApprovals returns the approvals with the stored status ("" for
	// any), newest CreatedAt first, then by ID, bytewise. An unknown status
	// is ErrInvalid.
	ListApprovals(ctx context.Context, status string) ([]Approval, error)
	// DecideApproval records the decision of by at at and returns the
	// approval as it is afterwards: approved when approve is set, denied
	// otherwise. Only a pending approval whose ExpiresAt is after at can be
	// decided; any other is ErrConflict, an absent one ErrNotFound. Of
	// concurrent deciders exactly one succeeds.
	DecideApproval(ctx context.Context, id string, approve bool, by string, at time.Time) (Approval, error)
	// UseApproval atomically turns an approved approval whose ExpiresAt is
	// after now into a used one and returns it. Any other is ErrConflict,
	// an absent one ErrNotFound. Of concurrent users exactly one succeeds:
	// an approval covers a single call.
	UseApproval(ctx context.Context, id string, now time.Time) (Approval, error)
}

// ValidApprovalStatus reports whether s is one of the Approval* statuses.
func ValidApprovalStatus(s string) bool {
	switch s {
	case ApprovalPending, ApprovalApproved, ApprovalDenied, ApprovalUsed, ApprovalExpired:
		return true
	}
	return false
}

// Validate reports, as ErrInvalid, why a cannot be stored. A decided
// status without who decided and when could not be audited, and a pending
// one with a decision would be two states at once, so both are refused.
func (a Approval) Validate() error {
	for _, k := range []field{{"id", a.ID}, {"agent", a.Agent}, {"upstream", a.Upstream}, {"tool", a.Tool}} {
		if err := validKey("approval "+k.name, k.value); err != nil {
			return err
		}
	}
	if err := validTexts("approval", []field{{"user", a.User}, {"policy version", a.PolicyVersion}, {"decider", a.DecidedBy}}); err != nil {
		return err
	}
	if !isHexSHA256(a.ArgsHash) {
		return fmt.Errorf("%w: approval argument hash is not a lowercase hex SHA-256", ErrInvalid)
	}
	if !json.Valid([]byte(a.ArgsPreview)) {
		return fmt.Errorf("%w: approval argument preview is not valid JSON", ErrInvalid)
	}
	if err := validText("approval argument preview", a.ArgsPreview); err != nil {
		return err
	}
	if !ValidApprovalStatus(a.Status) {
		return fmt.Errorf("%w: unknown approval status %q", ErrInvalid, a.Status)
	}
	if err := ValidateTime("approval creation time", a.CreatedAt); err != nil {
		return err
	}
	if err := ValidateTime("approval expiry", a.ExpiresAt); err != nil {
		return err
	}
	if !a.ExpiresAt.Truncate(TimePrecision).After(a.CreatedAt.Truncate(TimePrecision)) {
		return fmt.Errorf("%w: approval expires before it is created", ErrInvalid)
	}
	decided := !a.DecidedAt.IsZero()
	if decided != (a.DecidedBy != "") {
		return fmt.Errorf("%w: approval decider and decision time must be set together", ErrInvalid)
	}
	switch a.Status {
	case ApprovalPending:
		if decided {
			return fmt.Errorf("%w: pending approval carries a decision", ErrInvalid)
		}
	case ApprovalApproved, ApprovalDenied, ApprovalUsed:
		if !decided {
			return fmt.Errorf("%w: %s approval has no decision", ErrInvalid, a.Status)
		}
	}
	return nil
}

// ValidateDecision reports, as ErrInvalid, why a decision by by at at
// cannot be recorded: an anonymous or timeless decision could not be
// audited.
func ValidateDecision(by string, at time.Time) error {
	if err := validKey("approval decider", by); err != nil {
		return err
	}
	return ValidateTime("approval decision time", at)
}

// ValidateApprovalFilter reports, as ErrInvalid, a ListApprovals status
// that is neither empty nor a known status.
func ValidateApprovalFilter(status string) error {
	if status != "" && !ValidApprovalStatus(status) {
		return fmt.Errorf("%w: unknown approval status %q", ErrInvalid, status)
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
