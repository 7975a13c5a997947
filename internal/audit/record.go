// Package audit is Mandate's tamper-evident record of what it decided and
// what happened: every decision on an MCP request, every outcome, every
// administrative change.
//
// Records of one writer form a hash chain: each record's canonical encoding
// names the hash of the record before it, so editing, deleting, reordering or
// inserting a record breaks the chain at that point. Anyone who can write the
// database could recompute the hashes, so the writer also signs checkpoints
// (the chain's head at a time) with an Ed25519 key kept in its data
// directory; Verify checks both, against the store or an exported file.
//
// The log fails closed: Log.Append returns only once the record is durable,
// and an error otherwise, so the caller can refuse the request it was about
// to let through. Appends from many goroutines are committed together, one
// transaction per batch, so durability does not cost a disk sync per call.
package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
)

// Kind says what a record is about.
type Kind string

// Record kinds.
const (
	// KindDecision is the gateway's decision on one MCP request, written
	// before the request is forwarded: no record, no call.
	KindDecision Kind = "decision"
	// KindOutcome is what happened to a forwarded request; Ref names its
	// decision.
	KindOutcome Kind = "outcome"
	// KindAdmin is an administrative event, named by Event.
	KindAdmin Kind = "admin"
)

// Administrative events, the Event of a KindAdmin record. Target names what
// the event is about (the agent, mandate, approval, upstream …) and Actor who
// caused it.
const (
	EventLogin            = "login"
	EventLoginFailed      = "login.failed"
	EventAgentRegistered  = "agent.registered"
	EventAgentSuspended   = "agent.suspended"
	EventAgentResumed     = "agent.resumed"
	EventMandateGranted   = "mandate.granted"
	EventMandateChanged   = "mandate.changed"
	EventMandateRevoked   = "mandate.revoked"
	EventApprovalRequest  = "approval.requested"
	EventApprovalApproved = "approval.approved"
	EventApprovalDenied   = "approval.denied"
	EventCatalogApproved  = "catalog.approved"
	EventPolicyReloaded   = "policy.reloaded"
	EventConfigChanged    = "config.changed"
	EventAuditPruned      = "audit.pruned"
)

// Record is one audit entry. Its JSON field names are stable: they are what
// is hashed, exported and read back by every later version, so a field is
// only ever added (with omitempty, so older records keep their encoding),
// never renamed.
//
// ID, Chain, Seq, Prev and Hash are set by the Log. Everything else is the
// caller's, with two rules the Log enforces on Append: Args and Detail are
// redacted, and ArgsDigest is computed from the arguments before redaction.
type Record struct {
	ID    string `json:"id"`
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	// Prev is the Hash of the record at Seq-1 of Chain; empty for Seq 1.
	Prev string    `json:"prev"`
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// Event names an administrative event; see the Event constants.
	Event string `json:"event,omitempty"`
	// Ref is the ID of the record this one completes: an outcome names its
	// decision.
	Ref string `json:"ref,omitempty"`
	// TraceID is the W3C trace id of the request, when the client sent a
	// traceparent, so a record can be found from a trace and back.
	TraceID string `json:"trace_id,omitempty"`

	// User is the human's subject; empty for an autonomous agent.
	User string `json:"user,omitempty"`
	// Agent is the client id of the agent holding the token.
	Agent string `json:"agent,omitempty"`
	// Delegation is the token's delegation chain, current actor first.
	Delegation []Actor `json:"delegation,omitempty"`
	AuthMethod string  `json:"auth_method,omitempty"`
	// Session identifies the MCP session. Where session ids are bearer
	// secrets, the caller records Redactor.DigestText of the id instead.
	Session string `json:"session,omitempty"`

	Upstream string `json:"upstream,omitempty"`
	// Method is the MCP method, such as "tools/call".
	Method string `json:"method,omitempty"`
	// Name is the tool or prompt name, or the resource URI.
	Name string `json:"name,omitempty"`
	// Args are the request's arguments with secrets redacted.
	Args map[string]any `json:"args,omitempty"`
	// ArgsDigest is the hex HMAC-SHA256 of the canonical arguments under
	// the replica's digest key: equal calls correlate without the record
	// holding what they carried.
	ArgsDigest string `json:"args_digest,omitempty"`
	// Intent is what the agent declared it meant to do.
	Intent string `json:"intent,omitempty"`
	// CatalogHash is the hash of the tool definitions the session was
	// shown, tying the decision to what the agent could see.
	CatalogHash string `json:"catalog_hash,omitempty"`

	// Decision is allow, deny, needs-mandate or needs-approval.
	Decision string `json:"decision,omitempty"`
	// Reasons are the ids of the policies that determined Decision.
	Reasons       []string `json:"reasons,omitempty"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	Mandate       string   `json:"mandate,omitempty"`
	Approval      string   `json:"approval,omitempty"`

	// Status is the outcome: ok, error, refused, timeout.
	Status      string        `json:"status,omitempty"`
	ResultBytes int64         `json:"result_bytes,omitempty"`
	Latency     time.Duration `json:"latency_ns,omitempty"`
	Findings    []Finding     `json:"findings,omitempty"`
	// Error is a short description of a failure, for operators.
	Error string `json:"error,omitempty"`

	// Actor is who caused an administrative event (a user id, "cli",
	// "system"); Target is what it is about.
	Actor  string `json:"actor,omitempty"`
	Target string `json:"target,omitempty"`
	// Detail carries event-specific facts, redacted like Args.
	Detail map[string]any `json:"detail,omitempty"`

	// Hash is the hex SHA-256 of the record's canonical encoding, which
	// covers every field above, Prev included. It is not part of the
	// encoding it hashes.
	Hash string `json:"-"`
}

// Actor is one link of a delegation chain.
type Actor struct {
	Subject  string `json:"sub"`
	ClientID string `json:"client_id,omitempty"`
}

// Finding is something the gateway noticed about a request or its result:
// a secret redacted from a result, a suspicious instruction in a tool
// description, a result cut to size.
type Finding struct {
	Rule     string `json:"rule"`
	Severity string `json:"severity,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// SetPrincipal fills who a record is about from the verified principal. The
// principal's token id and scopes are not recorded; its delegation chain is.
func (r *Record) SetPrincipal(p *identity.Principal) {
	if p == nil {
		return
	}
	r.User, r.Agent, r.AuthMethod = p.User, p.Agent, string(p.Method)
	r.Delegation = nil
	for _, a := range p.Chain {
		r.Delegation = append(r.Delegation, Actor{Subject: a.Subject, ClientID: a.ClientID})
	}
}

// Encode returns r's canonical encoding: compact JSON of the fields in
// declaration order, map keys sorted, no HTML escaping, times in UTC, Hash
// left out. It is the exact input of the record's hash.
func Encode(r Record) ([]byte, error) {
	r.Time = r.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode audit record: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// HashBody returns the hash a record with canonical encoding body carries.
func HashBody(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Decode reads a record from its canonical encoding and sets its Hash.
func Decode(body []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return Record{}, fmt.Errorf("decode audit record: %w", err)
	}
	r.Hash = HashBody(body)
	return r, nil
}

// FromStore decodes a stored record, which must carry the hash of its body.
func FromStore(sr store.AuditRecord) (Record, error) {
	r, err := Decode(sr.Body)
	if err != nil {
		return Record{}, fmt.Errorf("audit record %s: %w", sr.ID, err)
	}
	if r.Hash != sr.Hash {
		return Record{}, fmt.Errorf("audit record %s: %w: body does not hash to the stored hash", sr.ID, ErrTampered)
	}
	return r, nil
}

// seal sets r's place in its chain and returns the row that stores it.
func seal(r Record, chain string, seq int64, prev string) (Record, store.AuditRecord, error) {
	r.Chain, r.Seq, r.Prev = chain, seq, prev
	body, err := Encode(r)
	if err != nil {
		return Record{}, store.AuditRecord{}, err
	}
	r.Hash = HashBody(body)
	return r, row(r, body), nil
}

// row is the stored form of r, whose canonical encoding is body.
func row(r Record, body []byte) store.AuditRecord {
	return store.AuditRecord{
		ID: r.ID, Chain: r.Chain, Seq: r.Seq, At: r.Time, Kind: string(r.Kind), Event: r.Event,
		User: r.User, Agent: r.Agent, Upstream: r.Upstream, Name: r.Name, Decision: r.Decision,
		Mandate: r.Mandate, Ref: r.Ref, Prev: r.Prev, Hash: r.Hash, Body: body,
	}
}

// columnMismatch names the first column of sr that differs from what its
// decoded body r says, or returns "".
func columnMismatch(sr store.AuditRecord, r Record) string {
	cols := []struct{ name, stored, hashed string }{
		{"id", sr.ID, r.ID}, {"chain", sr.Chain, r.Chain}, {"kind", sr.Kind, string(r.Kind)},
		{"event", sr.Event, r.Event}, {"user", sr.User, r.User}, {"agent", sr.Agent, r.Agent},
		{"upstream", sr.Upstream, r.Upstream}, {"name", sr.Name, r.Name}, {"decision", sr.Decision, r.Decision},
		{"mandate", sr.Mandate, r.Mandate}, {"ref", sr.Ref, r.Ref}, {"prev", sr.Prev, r.Prev},
	}
	for _, c := range cols {
		if c.stored != c.hashed {
			return fmt.Sprintf("stored %s %q differs from the hashed record's %q", c.name, c.stored, c.hashed)
		}
	}
	if sr.Seq != r.Seq {
		return fmt.Sprintf("stored at sequence %d but the hashed record says %d", sr.Seq, r.Seq)
	}
	if !sr.At.Equal(r.Time) {
		return fmt.Sprintf("stored time %s differs from the hashed record's %s",
			sr.At.Format(time.RFC3339Nano), r.Time.Format(time.RFC3339Nano))
	}
	return ""
}

// NewID returns a fresh record id: "aud_", the current Unix time in
// microseconds as 11 base-32 digits, then 16 random ones. Ids therefore sort
// by when they were minted, which keeps the store's id index appending at
// its end instead of touching a random page per record, and 80 random bits
// keep them unique.
func NewID() string {
	const digits = "0123456789abcdefghjkmnpqrstvwxyz" // Crockford's base 32
	var b [4 + 11 + 16]byte
	copy(b[:], "aud_")
	us := uint64(time.Now().UnixMicro())
	for i := 14; i >= 4; i-- {
		b[i] = digits[us&31]
		us >>= 5
	}
	var r [16]byte
	rand.Read(r[:])
	for i, v := range r {
		b[15+i] = digits[v&31]
	}
	return string(b[:])
}

// ErrTampered is what every verification failure wraps.
var ErrTampered = errors.New("audit log fails verification")

// sanitize makes s storable as a column on every backend: valid UTF-8, no
// NUL. A name an agent chose must not make the audit write, and so the
// call, fail.
func sanitize(s string) string {
	if strings.ContainsRune(s, 0) {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
