// Package gateway is Mandate's MCP core: it presents every upstream as one
// server to each downstream session, routes requests, notifications and
// server-to-client requests between the two legs, and keeps each session's
// traffic its own.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/catalog"
	"github.com/mandate-mcp/mandate/internal/upstream"
)

// Upstream is what the gateway needs of one supervised upstream.
type Upstream interface {
	ID() string
	Session(ctx context.Context) (*upstream.Session, error)
	Dial(ctx context.Context, h upstream.Handler) (*upstream.Session, error)
	Health() upstream.Health
}

// CatalogRecorder persists what upstreams advertise; a failure is logged
// and does not stop traffic, since the snapshot is informational here.
type CatalogRecorder interface {
	RecordCatalog(ctx context.Context, upstreamID, kind string, body []byte) error
}

// UpstreamSpec is one upstream as the gateway routes it.
type UpstreamSpec struct {
	Conn Upstream
	// Prefix namespaces its names; "" exposes them unprefixed.
	Prefix string
	// PerClient gives each downstream session its own upstream session.
	PerClient bool
	// Timeout bounds one forwarded request; zero means 60s.
	Timeout time.Duration
	// MaxSessions caps dedicated sessions in per-client mode; zero: 256.
	MaxSessions int
	// IdleTimeout closes a dedicated session unused this long; zero: 10m.
	IdleTimeout time.Duration
	// DistrustAnnotations decides on this upstream's items as if they
	// carried no annotations, with the MCP specification's worst-case
	// defaults (see worstCaseHints), for a third-party server whose hints
	// must not be believed: one that marks a destructive tool read-only
	// would otherwise escape every rule keyed on the hints (AT-12). False
	// (the zero value) believes them, since an administrator chose the
	// upstream.
	DistrustAnnotations bool
}

// Options configure a Gateway.
type Options struct {
	Upstreams []UpstreamSpec
	// Separator joins prefix and name; "" means "__".
	Separator string
	// Name and Version are reported as serverInfo.
	Name, Version string
	// Catalog, if set, receives catalog snapshots.
	Catalog CatalogRecorder
	// PageSize is the number of items per list page; zero means 500.
	PageSize int
	// StartupWait bounds how long initialize waits for upstreams that are
	// still starting; zero means 10s.
	StartupWait time.Duration
	// Policy decides every request and filters every list. Nil denies
	// everything but ping: a gateway without a policy must not fall open.
	Policy PolicyDecider
	// Approvals obtains a human's approval of a call the policy decided
	// needs one (see approve). Nil refuses every such call.
	Approvals ApprovalGate
	// Mandates finds the consent behind a delegated call. Nil means no
	// mandates exist (delegated calls are uncovered).
	Mandates MandateMatcher
	Log      *slog.Logger
	// ConsentURL is the page where a user grants an agent a mandate. When
	// set, a delegated call refused for want of a mandate points there (see
	// missingMandate); "" leaves such refusals without a link.
	ConsentURL string
	// AllowUnlisted turns interrogation off: a session may call tools it
	// was never shown by tools/list. False (the default) refuses such
	// calls; set it only for clients known to call without listing.
	AllowUnlisted bool
	// RequestStateKey seals the requestState of the input_required results
	// Mandate gives stateless-era clients (consent and approval questions,
	// see mrtr.go). It must be RequestStateKeySize (32) secret bytes, shared
	// by every replica behind one endpoint, since a client's retry may reach
	// any of them. Nil draws a random key per process: a retry must then
	// reach the replica that asked, or it is refused as invalid. Any other
	// length makes New panic rather than silently fall back to that.
	RequestStateKey []byte
	// Audit records every decision before it takes effect and every
	// outcome before its result reaches the client (see Auditor): an
	// allowed call whose decision cannot be recorded is refused without
	// being forwarded, and a result whose outcome cannot be recorded is
	// replaced with an error. Nil records nothing, for tests and for
	// embedders that keep no trail.
	Audit Auditor
	// SessionDigest turns a session id, a bearer secret, into what audit
	// records keep of it: a keyed digest (audit.Redactor.DigestText). Nil
	// records no session.
	SessionDigest func(id string) string
	// ApprovalWait is how long a call that needs an approval nobody can
	// give in band (no elicitation at the client, or an autonomous agent)
	// is held open while an approver decides out of band: the CLI, the
	// approvals page, a webhook's receiver. Approved in time, the call
	// proceeds; denied or expired, it is refused; still pending when the
	// wait ends, it is refused with the request's id so the agent can
	// retry. Zero refuses at once. The wait never outlasts the request.
	ApprovalWait time.Duration
}

// Gateway routes MCP traffic between downstream sessions and upstreams.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	ups     []*upState
	byID    map[string]*upState
	cursors *cursorCodec
	states  *stateSealer

	mu       sync.Mutex
	sessions map[*Session]struct{}
	tokens   map[string]*progressRoute // upstream progress token -> downstream
	nextTok  uint64

	nsMu sync.Mutex
	ns   map[string]*catalog.Namespace // kind -> namespace; dropped when a list changes
}

// upState is the gateway's view of one upstream.
type upState struct {
	spec UpstreamSpec
	id   string
	g    *Gateway

	mu        sync.Mutex
	lists     map[string]*cachedList // kind -> list from the shared session
	lastInit  *upstream.InitInfo
	dedicated int
	subs      map[string]int // upstream URI -> downstream subscribers (shared mode)
}

type cachedList struct {
	items  []json.RawMessage
	sess   *upstream.Session          // the session the list came from; a new session invalidates it
	byName map[string]json.RawMessage // built on first lookup, guarded by upState.mu
}

// New builds a gateway. The upstreams must already be started.
func New(o Options) *Gateway {
	if o.Separator == "" {
		o.Separator = "__"
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.StartupWait <= 0 {
		o.StartupWait = 10 * time.Second
	}
	if o.Name == "" {
		o.Name = "mandate"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	g := &Gateway{
		opts: o, log: o.Log,
		byID:     map[string]*upState{},
		sessions: map[*Session]struct{}{},
		tokens:   map[string]*progressRoute{},
		ns:       map[string]*catalog.Namespace{},
		cursors:  &cursorCodec{key: key},
		states:   newStateSealer(o.RequestStateKey),
	}
	for _, spec := range o.Upstreams {
		if spec.Timeout <= 0 {
			spec.Timeout = 60 * time.Second
		}
		if spec.MaxSessions <= 0 {
			spec.MaxSessions = 256
		}
		if spec.IdleTimeout <= 0 {
			spec.IdleTimeout = 10 * time.Minute
		}
		u := &upState{spec: spec, id: spec.Conn.ID(), g: g, lists: map[string]*cachedList{}, subs: map[string]int{}}
		g.ups = append(g.ups, u)
		g.byID[u.id] = u
	}
	return g
}

// SharedHandler returns the handler for the shared session of upstream id;
// the composition root gives it to the upstream before starting it.
func (g *Gateway) SharedHandler(id string) upstream.Handler {
	return &relay{g: g, up: g.byID[id]}
}

// UpstreamHealth reports each upstream's state, in configuration order.
func (g *Gateway) UpstreamHealth() map[string]upstream.Health {
	out := make(map[string]upstream.Health, len(g.ups))
	for _, u := range g.ups {
		out[u.id] = u.spec.Conn.Health()
	}
	return out
}

// Close ends every downstream session (and their dedicated upstream
// sessions).
func (g *Gateway) Close() {
	g.mu.Lock()
	ss := make([]*Session, 0, len(g.sessions))
	for s := range g.sessions {
		ss = append(ss, s)
	}
	g.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
}

// SessionCount is the number of live downstream sessions.
func (g *Gateway) SessionCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}

// ExpireIdle closes sessions idle for longer than d, releasing their
// dedicated upstream sessions, and closes dedicated sessions idle past their
// upstream's idle timeout. It returns the number of sessions closed.
func (g *Gateway) ExpireIdle(d time.Duration) int {
	now := time.Now()
	g.mu.Lock()
	var idle, active []*Session
	for s := range g.sessions {
		if d > 0 && now.Sub(s.LastSeen()) > d && s.busy() == 0 {
			idle = append(idle, s)
		} else {
			active = append(active, s)
		}
	}
	g.mu.Unlock()
	for _, s := range idle {
		g.log.Info("session expired", "session", s.logID())
		s.Close()
	}
	for _, s := range active {
		s.expireDedicated(now)
	}
	return len(idle)
}

func (g *Gateway) upstream(id string) *upState { return g.byID[id] }

// Busy is the number of client requests in flight across all sessions.
func (g *Gateway) Busy() int {
	n := 0
	for _, s := range g.liveSessions() {
		n += s.busy()
	}
	return n
}
