// Package consent decides whether a user has consented to a call an agent
// makes for them. Consent is a mandate: a grant from a user to an agent
// naming upstreams and tools by pattern, constraints on the call's
// arguments, a purpose, an expiry and an optional use count. A mandate is
// revocable, and every grant, use and revocation is reported as an event for
// the audit log.
//
// A revocation denies the very next call on every replica (threat AT-51).
// Match and Active may answer from mandates decoded earlier, but only
// while the store's change generation (store.ChangeStore) is the one they
// were read at, and they read it from the store on every call, so any
// grant or revocation, by any process, sends them back to the store. Any
// error reading mandates is returned, and a Match returned with an error
// never covers the call: the caller denies.
package consent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/store/gencache"
)

// Unlimited is the use count of a mandate that covers any number of calls
// until it expires or is revoked.
const Unlimited = store.UnlimitedUses

// ErrInvalid reports a Spec that cannot be granted.
var ErrInvalid = errors.New("invalid mandate")

// Grant names what a mandate covers: the tools matching Tool on the
// upstreams matching Upstream, called with arguments that satisfy every
// constraint. Both patterns use path.Match syntax; "*" matches any upstream
// id or tool name.
type Grant struct {
	Upstream    string       `json:"upstream"`
	Tool        string       `json:"tool"`
	Constraints []Constraint `json:"constraints,omitempty"`
}

type compiledGrant struct {
	upstream, tool string
	constraints    []compiledConstraint
}

func compileGrant(g Grant) (compiledGrant, error) {
	cg := compiledGrant{upstream: g.Upstream, tool: g.Tool}
	for _, p := range []struct{ what, pattern string }{{"upstream", g.Upstream}, {"tool", g.Tool}} {
		if p.pattern == "" || invalidText(p.pattern) {
			return cg, fmt.Errorf("grant has no usable %s pattern", p.what)
		}
		if _, err := path.Match(p.pattern, ""); err != nil {
			return cg, fmt.Errorf("grant %s pattern %q: %w", p.what, p.pattern, err)
		}
	}
	for _, c := range g.Constraints {
		cc, err := compileConstraint(c)
		if err != nil {
			return cg, err
		}
		cg.constraints = append(cg.constraints, cc)
	}
	return cg, nil
}

func (g compiledGrant) covers(upstream, tool string) bool {
	u, _ := path.Match(g.upstream, upstream)
	t, _ := path.Match(g.tool, tool)
	return u && t
}

// Mandate is a decoded mandate.
type Mandate struct {
	ID        string
	User      string
	Agent     string
	Grants    []Grant
	Purpose   string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsesLeft is how many more calls the mandate covers, or Unlimited.
	UsesLeft  int
	RevokedAt time.Time // zero unless revoked
	RevokedBy string

	grants []compiledGrant
}

// Covers reports whether a grant of m names upstream and tool, whatever the
// arguments and whether or not m is still active. List filtering uses it:
// argument constraints can only be checked when a call is made.
func (m Mandate) Covers(upstream, tool string) bool {
	for _, g := range m.grants {
		if g.covers(upstream, tool) {
			return true
		}
	}
	return false
}

// inactive returns why m covers nothing at now, or nil while it is active.
// A revocation is reported even once the mandate has also expired, as the
// store does.
func (m Mandate) inactive(now time.Time) Reason {
	switch {
	case !m.RevokedAt.IsZero():
		return Revoked{MandateID: m.ID}
	case !m.ExpiresAt.After(now):
		return Expired{MandateID: m.ID}
	case m.UsesLeft == 0:
		return Exhausted{MandateID: m.ID}
	}
	return nil
}

// Active reports whether m covers calls at now.
func (m Mandate) Active(now time.Time) bool { return m.inactive(now) == nil }

// Covers reports whether any of ms covers upstream and tool, ignoring
// arguments; pass it the mandates Service.Active returned.
func Covers(ms []Mandate, upstream, tool string) bool {
	for _, m := range ms {
		if m.Covers(upstream, tool) {
			return true
		}
	}
	return false
}

// Spec is what a user grants.
type Spec struct {
	User  string
	Agent string
	// Grants must not be empty.
	Grants  []Grant
	Purpose string
	// ExpiresAt is required and must be in the future.
	ExpiresAt time.Time
	// Uses is the number of calls covered, at least 1, or Unlimited. Zero
	// is refused rather than read as either, so forgetting it is an error.
	Uses int
}

// Events receives every change to a mandate, after the store has accepted
// it. The audit log implements it; methods must not block for long, as they
// run on the request path.
type Events interface {
	MandateGranted(Mandate)
	MandateRevoked(Mandate)
	MandateUsed(Mandate)
}

// NopEvents discards events.
type NopEvents struct{}

// Interface guards.
var _ Events = NopEvents{}

func (NopEvents) MandateGranted(Mandate) {}
func (NopEvents) MandateRevoked(Mandate) {}
func (NopEvents) MandateUsed(Mandate)    {}

// cacheSize is how many (user, agent) pairs' mandates a Service keeps
// decoded: the pairs calling at once on a busy gateway, and then some.
const cacheSize = 10_000

// Service grants, matches, consumes and revokes mandates.
type Service struct {
	store  store.MandateStore
	events Events
	now    func() time.Time
	// cache holds the decoded mandates of a user to an agent, nil when
	// the store reports no change generation.
	cache *gencache.Cache[pair, []Mandate]
}

// pair names the mandates of one user to one agent.
type pair struct{ user, agent string }

// New returns a Service keeping mandates in st. A nil events discards
// events; a nil now uses time.Now. When st is also a store.ChangeStore,
// Match and Active keep what they decoded while its generation stands;
// otherwise they read the store on every call.
func New(st store.MandateStore, events Events, now func() time.Time) *Service {
	if events == nil {
		events = NopEvents{}
	}
	if now == nil {
		now = time.Now
	}
	s := &Service{store: st, events: events, now: now}
	if cs, ok := st.(store.ChangeStore); ok {
		s.cache = gencache.New[pair, []Mandate](cs, cacheSize)
	}
	return s
}

// Grant records spec as a new mandate and reports it granted. Every pattern
// must compile and every constraint check something, so a mandate that is
// stored is one Match can evaluate.
func (s *Service) Grant(ctx context.Context, spec Spec) (Mandate, error) {
	now := s.now()
	if err := validateSpec(spec, now); err != nil {
		return Mandate{}, fmt.Errorf("grant mandate: %w", err)
	}
	grants, err := json.Marshal(spec.Grants)
	if err != nil {
		return Mandate{}, fmt.Errorf("grant mandate: %w: %w", ErrInvalid, err)
	}
	rec := store.Mandate{
		ID: newID(), User: spec.User, Agent: spec.Agent, Grants: grants, Purpose: spec.Purpose,
		CreatedAt: now, ExpiresAt: spec.ExpiresAt, UsesLeft: spec.Uses,
	}
	if err := s.store.CreateMandate(ctx, rec); err != nil {
		return Mandate{}, fmt.Errorf("grant mandate: %w", err)
	}
	// The mandate is built from the stored record, as Get would return it:
	// times at the store's precision and grants as decoded from JSON.
	rec.CreatedAt = rec.CreatedAt.UTC().Truncate(store.TimePrecision)
	rec.ExpiresAt = rec.ExpiresAt.UTC().Truncate(store.TimePrecision)
	m, err := decode(rec)
	if err != nil {
		return Mandate{}, fmt.Errorf("grant mandate: %w", err)
	}
	s.events.MandateGranted(m)
	return m, nil
}

func validateSpec(spec Spec, now time.Time) error {
	if spec.User == "" || invalidText(spec.User) || spec.Agent == "" || invalidText(spec.Agent) {
		return fmt.Errorf("%w: a mandate needs a user and an agent", ErrInvalid)
	}
	if invalidText(spec.Purpose) {
		return fmt.Errorf("%w: purpose is not valid text", ErrInvalid)
	}
	if len(spec.Grants) == 0 {
		return fmt.Errorf("%w: a mandate grants nothing", ErrInvalid)
	}
	for _, g := range spec.Grants {
		if _, err := compileGrant(g); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if !spec.ExpiresAt.Truncate(store.TimePrecision).After(now) {
		return fmt.Errorf("%w: expiry is not in the future", ErrInvalid)
	}
	if spec.Uses < 1 && spec.Uses != Unlimited {
		return fmt.Errorf("%w: uses must be at least 1, or Unlimited", ErrInvalid)
	}
	return nil
}

// Revoke revokes the mandate id on behalf of by and reports it revoked. It
// is idempotent: revoking a revoked mandate returns it with its first
// revocation and reports nothing.
func (s *Service) Revoke(ctx context.Context, id, by string) (Mandate, error) {
	at := s.now().UTC().Truncate(store.TimePrecision)
	if err := s.store.RevokeMandate(ctx, id, by, at); err != nil {
		return Mandate{}, fmt.Errorf("revoke mandate: %w", err)
	}
	m, err := s.Get(ctx, id)
	if err != nil {
		return Mandate{}, fmt.Errorf("revoke mandate: %w", err)
	}
	if m.RevokedAt.Equal(at) && m.RevokedBy == by {
		s.events.MandateRevoked(m)
	}
	return m, nil
}

// Get returns the mandate id.
func (s *Service) Get(ctx context.Context, id string) (Mandate, error) {
	rec, err := s.store.GetMandate(ctx, id)
	if err != nil {
		return Mandate{}, fmt.Errorf("get mandate: %w", err)
	}
	m, err := decode(rec)
	if err != nil {
		return Mandate{}, fmt.Errorf("get mandate: %w", err)
	}
	return m, nil
}

// List returns the mandates of user to agent, revoked and expired ones
// included, newest first; an empty user or agent matches any.
func (s *Service) List(ctx context.Context, user, agent string) ([]Mandate, error) {
	recs, err := s.store.ListMandates(ctx, user, agent)
	if err != nil {
		return nil, fmt.Errorf("list mandates: %w", err)
	}
	out := make([]Mandate, 0, len(recs))
	for _, rec := range recs {
		m, err := decode(rec)
		if err != nil {
			return nil, fmt.Errorf("list mandates: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Consume takes one use of the mandate id and reports it used. Call it
// after the decision allowed the call and before forwarding it: an error,
// such as store.ErrConflict when a concurrent call took the last use or the
// mandate was revoked since Match, means the call must be denied. Mandates
// without a use count are consumed too, so every covered call is reported
// and a revocation racing the call is still caught.
//
// A use does not move the store's change generation, so the count Match
// saw may be stale when another replica spent uses; the store's atomic
// count is what decides. Consume passes the count it gets back on to the
// cache, and forgets the cache when the store refuses, so the next Match
// reads the store and gives the real reason or another mandate.
func (s *Service) Consume(ctx context.Context, id string) (Mandate, error) {
	rec, err := s.store.ConsumeMandateUse(ctx, id, s.now())
	if err != nil {
		if s.cache != nil {
			s.cache.Forget()
		}
		return Mandate{}, fmt.Errorf("consume mandate: %w", err)
	}
	if s.cache != nil {
		s.cache.Update(pair{rec.User, rec.Agent}, func(ms []Mandate) []Mandate {
			return withUsesLeft(ms, rec.ID, rec.UsesLeft)
		})
	}
	m, err := decode(rec)
	if err != nil {
		return Mandate{}, fmt.Errorf("consume mandate: %w", err)
	}
	s.events.MandateUsed(m)
	return m, nil
}

// withUsesLeft returns ms with mandate id's UsesLeft lowered to uses. The
// cached slice is shared with callers, so it is copied, not changed.
func withUsesLeft(ms []Mandate, id string, uses int) []Mandate {
	out := slices.Clone(ms)
	for i := range out {
		if out[i].ID == id && uses != Unlimited && (out[i].UsesLeft == Unlimited || uses < out[i].UsesLeft) {
			out[i].UsesLeft = uses
		}
	}
	return out
}

// newID is a mandate id: a prefix that says what it is and 130 random bits.
func newID() string { return "mnd_" + rand.Text() }

// decode turns a stored mandate into a Mandate, compiling its grants. A
// record whose grants no longer decode or compile is an error, never a
// mandate that covers less or more than was granted.
func decode(rec store.Mandate) (Mandate, error) {
	m := Mandate{
		ID: rec.ID, User: rec.User, Agent: rec.Agent, Purpose: rec.Purpose,
		CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt, UsesLeft: rec.UsesLeft,
		RevokedAt: rec.RevokedAt, RevokedBy: rec.RevokedBy,
	}
	if err := json.Unmarshal(rec.Grants, &m.Grants); err != nil {
		return Mandate{}, fmt.Errorf("decode mandate %s: %w", rec.ID, err)
	}
	if len(m.Grants) == 0 {
		return Mandate{}, fmt.Errorf("decode mandate %s: no grants", rec.ID)
	}
	for _, g := range m.Grants {
		cg, err := compileGrant(g)
		if err != nil {
			return Mandate{}, fmt.Errorf("decode mandate %s: %w", rec.ID, err)
		}
		m.grants = append(m.grants, cg)
	}
	return m, nil
}

// invalidText reports text no store backend keeps unchanged.
func invalidText(s string) bool { return !utf8.ValidString(s) || strings.ContainsRune(s, 0) }
