// Package store defines the persistence contract of the gateway: what it
// remembers about upstream health and about the catalogs upstreams advertise,
// and who may call it: users, agents and the embedded authorization
// server's state.
//
// The contract is composed from small role interfaces so that a component can
// ask for exactly the slice it needs (a health monitor takes a HealthStore, a
// catalog pinner takes a CatalogStore) while the composition root hands every
// component the same backend. Backends live in their own packages (memory,
// sqlite, postgres); each translates its driver's errors into the sentinel
// errors declared here so callers never import a driver to inspect an error,
// and each is held to the same behaviour by the storetest conformance suite.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors returned by every backend, possibly wrapped with context;
// callers test for them with errors.Is and never with driver-specific checks.
var (
	// ErrNotFound reports that the requested record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that a write collided with an existing record.
	ErrConflict = errors.New("conflict")
	// ErrClosed reports use of a store after Close, so that a caller racing a
	// shutdown gets a recognisable error instead of a driver-specific one.
	ErrClosed = errors.New("store is closed")
	// ErrInvalid reports an argument the store refuses to persist. Backends
	// check arguments before any I/O, so the same input fails the same way on
	// every backend; a database constraint that still rejects a write is
	// reported the same way.
	ErrInvalid = errors.New("invalid argument")
)

// TimePrecision is the resolution at which the store keeps timestamps. It is
// the finest resolution PostgreSQL offers; every backend truncates to it and
// returns times in UTC, so a value read back compares equal whichever backend
// stored it.
const TimePrecision = time.Microsecond

// Health statuses an upstream can be recorded in.
const (
	HealthUp       = "up"
	HealthDown     = "down"
	HealthStarting = "starting"
)

// Catalog kinds, one per MCP list operation whose result the gateway keeps.
const (
	KindTools             = "tools"
	KindPrompts           = "prompts"
	KindResources         = "resources"
	KindResourceTemplates = "resource_templates"
)

// Store is the whole persistence contract the gateway is built against. Every
// backend implements it, and the storetest suite checks that they all agree.
type Store interface {
	HealthStore
	CatalogStore
	UserStore
	AgentStore
	OAuthStore
	MandateStore
	ApprovalStore
	AuditStore
	ChangeStore

	// Migrate brings the schema up to date. It is idempotent and safe to call
	// concurrently from several processes, so every replica may run it at
	// start-up without coordination.
	Migrate(ctx context.Context) error
	// Close releases the backend's resources. Later calls on the store return
	// ErrClosed; closing twice is harmless.
	Close() error
	// Ping reports whether the backend is reachable, for readiness probes.
	Ping(ctx context.Context) error
}

// HealthEvent is one observed health transition of an upstream.
type HealthEvent struct {
	// Upstream is the configured name of the upstream server.
	Upstream string
	// At is when the transition was observed.
	At time.Time
	// Status is one of HealthUp, HealthDown or HealthStarting.
	Status string
	// Detail is a human-readable reason, such as the error that took the
	// upstream down; it may be empty.
	Detail string
}

// HealthStore records upstream health transitions so operators can see when an
// upstream flapped and why, not only its current state.
type HealthStore interface {
	// RecordHealth appends one event to the upstream's history.
	RecordHealth(ctx context.Context, ev HealthEvent) error
	// HealthHistory returns at most limit events of one upstream, newest At
	// first; events with equal At come most recently recorded first. An
	// upstream with no events yields an empty slice, not ErrNotFound.
	HealthHistory(ctx context.Context, upstream string, limit int) ([]HealthEvent, error)
	// LatestHealth returns, for every upstream with at least one event, the
	// event with the newest At, using the same tie-break as HealthHistory.
	LatestHealth(ctx context.Context) (map[string]HealthEvent, error)
}

// CatalogSnapshot is what one upstream advertised for one kind of catalog. The
// raw list is kept, not a parsed form, so that later definition pinning and
// diffing compare exactly the bytes the upstream sent.
type CatalogSnapshot struct {
	// Upstream is the configured name of the upstream server.
	Upstream string
	// Kind is one of KindTools, KindPrompts, KindResources or
	// KindResourceTemplates.
	Kind string
	// Hash is the lowercase hex SHA-256 of Body; see CatalogHash.
	Hash string
	// Body is the canonical JSON of the list.
	Body []byte
	// FetchedAt is when the list was fetched. In CatalogHistory it is instead
	// the time this Hash was first seen.
	FetchedAt time.Time
}

// CatalogStore keeps the latest catalog of every upstream plus the history of
// every distinct catalog it has advertised, so a changed tool definition (a
// "rug pull") can be detected and traced back to when it first appeared.
type CatalogStore interface {
	// PutCatalog stores snap as the current catalog of (Upstream, Kind). It
	// reports changed when no catalog was stored before or the stored Hash
	// differs. An unchanged catalog still refreshes FetchedAt, so the current
	// row always says when the upstream was last seen advertising it. Each
	// distinct Hash is kept once in the history with the earliest FetchedAt
	// it was stored with; returning to an earlier catalog therefore reports
	// changed but adds no history row.
	PutCatalog(ctx context.Context, snap CatalogSnapshot) (changed bool, err error)
	// GetCatalog returns the current catalog of (upstream, kind), or
	// ErrNotFound when none was stored.
	GetCatalog(ctx context.Context, upstream, kind string) (CatalogSnapshot, error)
	// CatalogHistory returns at most limit distinct catalogs of (upstream,
	// kind), most recently first seen first, each with FetchedAt set to its
	// first-seen time. No history yields an empty slice, not ErrNotFound.
	CatalogHistory(ctx context.Context, upstream, kind string, limit int) ([]CatalogSnapshot, error)
}

// CatalogHash returns the Hash a CatalogSnapshot with this Body must carry.
func CatalogHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Validate reports, as ErrInvalid, why ev cannot be stored. Backends call it
// before any I/O so that every backend rejects the same inputs, including
// text PostgreSQL would refuse (invalid UTF-8, NUL bytes).
func (ev HealthEvent) Validate() error {
	if err := ValidateUpstream(ev.Upstream); err != nil {
		return err
	}
	switch ev.Status {
	case HealthUp, HealthDown, HealthStarting:
	default:
		return fmt.Errorf("%w: unknown health status %q", ErrInvalid, ev.Status)
	}
	if ev.At.IsZero() {
		return fmt.Errorf("%w: health event has no time", ErrInvalid)
	}
	if err := validText("health detail", ev.Detail); err != nil {
		return err
	}
	return nil
}

// Validate reports, as ErrInvalid, why snap cannot be stored. A Hash that does
// not match Body is refused: a mismatched pair would make every later
// comparison against the stored hash meaningless.
func (snap CatalogSnapshot) Validate() error {
	if err := ValidateCatalogKey(snap.Upstream, snap.Kind); err != nil {
		return err
	}
	if !json.Valid(snap.Body) {
		return fmt.Errorf("%w: catalog body is not valid JSON", ErrInvalid)
	}
	if snap.Hash != CatalogHash(snap.Body) {
		return fmt.Errorf("%w: catalog hash is not the hex SHA-256 of its body", ErrInvalid)
	}
	if snap.FetchedAt.IsZero() {
		return fmt.Errorf("%w: catalog snapshot has no fetch time", ErrInvalid)
	}
	return nil
}

// ValidateUpstream reports, as ErrInvalid, why name cannot identify an
// upstream.
func ValidateUpstream(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty upstream name", ErrInvalid)
	}
	return validText("upstream name", name)
}

// ValidateCatalogKey reports, as ErrInvalid, why (upstream, kind) cannot
// identify a catalog.
func ValidateCatalogKey(upstream, kind string) error {
	if err := ValidateUpstream(upstream); err != nil {
		return err
	}
	switch kind {
	case KindTools, KindPrompts, KindResources, KindResourceTemplates:
		return nil
	case "":
		return fmt.Errorf("%w: empty catalog kind", ErrInvalid)
	default:
		return fmt.Errorf("%w: unknown catalog kind %q", ErrInvalid, kind)
	}
}

// ValidateLimit reports, as ErrInvalid, a history limit below one. Callers
// must say how much they want, so an unbounded read is never an accident.
func ValidateLimit(limit int) error {
	if limit < 1 {
		return fmt.Errorf("%w: limit %d is not positive", ErrInvalid, limit)
	}
	return nil
}

// validText refuses strings that not every backend can store unchanged.
func validText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, what)
	}
	return nil
}
