package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/mandate-mcp/mandate/internal/audit"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// Auditor records what the gateway decided and what came of it. Append
// returns only once the record is durable, and an error otherwise; the
// gateway then refuses whatever the record was about. audit.Log
// implements it.
type Auditor interface {
	Append(ctx context.Context, rec audit.Record) (audit.Record, error)
}

// Interface guards.
var _ Auditor = (*audit.Log)(nil)

// Values of audit.Record.Decision the gateway writes.
const (
	decisionAllow         = "allow"
	decisionDeny          = "deny"
	decisionNeedsMandate  = "needs-mandate"
	decisionNeedsApproval = "needs-approval"
)

// Values of audit.Record.Status of an outcome.
const (
	statusOK      = "ok"
	statusError   = "error"
	statusTimeout = "timeout"
)

// msgAuditUnavailable is the refusal of a request whose decision could not
// be recorded. Fail closed: no record, no call.
const msgAuditUnavailable = "not allowed: the audit log is unavailable, so the call was not forwarded"

// msgOutcomeUnrecorded replaces the result of a call whose outcome could
// not be recorded: the upstream acted, but the client gets nothing it
// could act on in turn before the record exists.
const msgOutcomeUnrecorded = "the call was made, but its outcome could not be recorded in the audit log, so its result is withheld"

// outcomeWait bounds how long a result waits for its outcome record, even
// when the client has gone: the record is owed whether or not anyone reads
// the result.
const outcomeWait = 15 * time.Second

type traceKey struct{}

// WithTraceID returns ctx carrying the W3C trace id (32 lowercase hex
// digits) of the request ctx belongs to; the front end sets it from the
// traceparent header, so a request's audit records can be found from its
// trace and back.
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceKey{}, id)
}

// TraceID returns the trace id WithTraceID put in ctx, or "".
func TraceID(ctx context.Context) string {
	id, _ := ctx.Value(traceKey{}).(string)
	return id
}

// trail is the audit record of one request while it is decided and
// carried out. Every method is safe on a nil trail, which is what a
// gateway without an Auditor uses: the request path then reads the same
// with auditing on and off.
type trail struct {
	start time.Time
	// rec is the decision record being built.
	rec audit.Record
	// call marks an item call, whose outcome is recorded after its
	// decision; session-level decisions have none.
	call bool
	// list defers the decision of a list until the list is built, so its
	// record can say how many items were shown.
	list bool
	// written is set once the decision record was appended (or tried).
	written bool
	// decided is the id of the decision record of an allowed call, whose
	// outcome is still owed.
	decided string
	// status and failure describe how the upstream leg failed, when
	// forward knows better than the response does.
	status, failure string
}

// newTrail starts the record of req, or returns nil when nothing is
// recorded: no Auditor, or a method that is never decided (ping,
// notifications).
func (g *Gateway) newTrail(ctx context.Context, sess *Session, req *jsonrpc.Request) *trail {
	if g.opts.Audit == nil || policy.PassThrough(req.Method) {
		return nil
	}
	t := &trail{start: time.Now()}
	t.rec = audit.Record{Kind: audit.KindDecision, TraceID: TraceID(ctx), Method: req.Method}
	t.rec.SetPrincipal(sess.Principal)
	// A session id is a bearer secret: the record keeps a keyed digest,
	// enough to group a session's records and no use to present.
	if sess.ID != "" && g.opts.SessionDigest != nil {
		t.rec.Session = g.opts.SessionDigest(sess.ID)
	}
	return t
}

// item records what an item request is about: the upstream and the
// upstream's own name of the item (as policies and mandates name it), the
// arguments (the log redacts them and keeps their keyed digest), the
// intent the agent declared, and what the session had been shown.
func (t *trail) item(sess *Session, upstream, name string, args map[string]any, intent string) {
	if t == nil {
		return
	}
	t.call = true
	t.rec.Upstream, t.rec.Name, t.rec.Args, t.rec.Intent = upstream, name, args, intent
	t.rec.CatalogHash = sess.shownDigest()
}

// decision records the policy's answer: the policies that determined it
// and the version of the set that gave it.
func (t *trail) decision(d policy.Decision) {
	if t == nil {
		return
	}
	t.rec.Reasons, t.rec.PolicyVersion = d.Reasons, d.Version
	if len(d.Errors) > 0 {
		t.rec.Error = "policy error: " + strings.Join(d.Errors, "; ")
	}
}

// mandate records the mandate a delegated call was matched with.
func (t *trail) mandate(id string) {
	if t != nil && id != "" {
		t.rec.Mandate = id
	}
}

// approval records the approval request a call was held for or used.
func (t *trail) approval(id string) {
	if t != nil && id != "" {
		t.rec.Approval = id
	}
}

// refusedAs names a refusal that awaits someone's consent
// (decisionNeedsMandate, decisionNeedsApproval) rather than a plain deny.
func (t *trail) refusedAs(decision string) {
	if t != nil {
		t.rec.Decision = decision
	}
}

// deferList marks an allowed list, recorded by finish once built.
func (t *trail) deferList() {
	if t != nil {
		t.list = true
	}
}

// upstreamFailed records how the upstream leg of a call failed.
func (t *trail) upstreamFailed(status, failure string) {
	if t != nil {
		t.status, t.failure = status, failure
	}
}

// recordDecision writes the decision record of a request: resp is the
// refusal, or nil when the request may proceed. An allowed request's
// record is written before it takes effect, and a failure to write it
// refuses the request (fail closed). A refusal is recorded too, and stands
// whether or not the record could be written.
func (g *Gateway) recordDecision(ctx context.Context, req *jsonrpc.Request, t *trail, resp *jsonrpc.Response) *jsonrpc.Response {
	if t == nil || t.written {
		return resp
	}
	t.written = true
	if resp == nil {
		t.rec.Decision = decisionAllow
		stored, err := g.opts.Audit.Append(ctx, t.rec)
		if err != nil {
			g.log.Error("audit log unavailable: request refused", "method", req.Method, "upstream", t.rec.Upstream,
				"name", t.rec.Name, "agent", t.rec.Agent, "err", err)
			return errorResponse(req.ID, codeDenied, msgAuditUnavailable)
		}
		if t.call {
			t.decided = stored.ID
		}
		return nil
	}
	if t.rec.Decision == "" || t.rec.Decision == decisionAllow {
		t.rec.Decision = decisionDeny
	}
	if msg := errorMessage(resp); msg != "" && t.rec.Error == "" {
		t.rec.Error = msg
	}
	g.recordAnyway(ctx, req, t, "refusal")
	return resp
}

// recordAnyway appends t's decision record for a request whose answer does
// not depend on it, such as a refusal: a failure is only logged. The
// client may have gone (a held call it cancelled); the record is written
// all the same.
func (g *Gateway) recordAnyway(ctx context.Context, req *jsonrpc.Request, t *trail, what string) {
	t.written = true
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeWait)
	defer cancel()
	if _, err := g.opts.Audit.Append(actx, t.rec); err != nil {
		g.log.Error("audit log unavailable: "+what+" not recorded", "method", req.Method, "upstream", t.rec.Upstream,
			"name", t.rec.Name, "agent", t.rec.Agent, "err", err)
	}
}

// finish completes the record of a request before its response reaches
// the client: the deferred decision of a list, with the number of items it
// shows, or the outcome of an allowed call. A record that cannot be
// written replaces the response with an error.
func (g *Gateway) finish(ctx context.Context, req *jsonrpc.Request, t *trail, resp *jsonrpc.Response) *jsonrpc.Response {
	switch {
	case t == nil || resp == nil:
		return resp
	case t.list && !t.written:
		return g.recordList(ctx, req, t, resp)
	case t.decided != "":
		return g.recordOutcome(ctx, req, t, resp)
	}
	return resp
}

// recordList writes the decision record of a list. A list refused by the
// policy's per-item filter is a deny; any other failure (a bad cursor) is
// recorded with the allow the policy gave and the error.
func (g *Gateway) recordList(ctx context.Context, req *jsonrpc.Request, t *trail, resp *jsonrpc.Response) *jsonrpc.Response {
	if resp.Error != nil {
		if errorCode(resp) == codeDenied {
			return g.recordDecision(ctx, req, t, resp)
		}
		t.rec.Decision, t.rec.Error = decisionAllow, errorMessage(resp)
		g.recordAnyway(ctx, req, t, "failed list")
		return resp
	}
	if field, ok := listFields[req.Method]; ok {
		if n, ok := countItems(resp.Result, field); ok {
			t.rec.Detail = map[string]any{"items": n}
		}
	}
	if refusal := g.recordDecision(ctx, req, t, nil); refusal != nil {
		return refusal
	}
	return resp
}

// listFields names the array member of each list result.
var listFields = map[string]string{
	toolsKind.method: toolsKind.field, promptsKind.method: promptsKind.field,
	resourcesKind.method: resourcesKind.field, templatesKind.method: templatesKind.field,
}

// recordOutcome writes the outcome of an allowed call, naming its
// decision, before the result goes to the client.
func (g *Gateway) recordOutcome(ctx context.Context, req *jsonrpc.Request, t *trail, resp *jsonrpc.Response) *jsonrpc.Response {
	out := audit.Record{
		Kind: audit.KindOutcome, Ref: t.decided, TraceID: t.rec.TraceID,
		User: t.rec.User, Agent: t.rec.Agent, Session: t.rec.Session,
		Upstream: t.rec.Upstream, Method: t.rec.Method, Name: t.rec.Name,
		Status: statusOK, ResultBytes: int64(len(resp.Result)), Latency: time.Since(t.start),
	}
	switch {
	case t.status != "":
		out.Status, out.Error = t.status, t.failure
	case resp.Error != nil:
		out.Status, out.Error = statusError, errorMessage(resp)
	case toolError(resp.Result):
		out.Status, out.Error = statusError, "the tool reported an error"
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outcomeWait)
	defer cancel()
	t.decided = ""
	if _, err := g.opts.Audit.Append(actx, out); err != nil {
		g.log.Error("audit log unavailable: result withheld", "method", req.Method, "upstream", out.Upstream,
			"name", out.Name, "agent", out.Agent, "decision", out.Ref, "err", err)
		return errorResponse(req.ID, codeInternal, msgOutcomeUnrecorded)
	}
	return resp
}

// countItems returns the number of elements of the array member field of
// the JSON object res, or false when res has no such member. It counts in
// one pass without decoding anything: a list of hundreds of tools is
// recorded at the cost of reading it once. Of duplicate members the last
// counts, as encoding/json has it.
func countItems(res []byte, field string) (int, bool) {
	s := scanner{b: res}
	if !s.next('{') {
		return 0, false
	}
	n, found := 0, false
	for !s.next('}') {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return 0, false
		}
		at := s.i
		if key == field {
			n, found = s.countArray()
		}
		if key != field || !found {
			s.i = at
			if !s.skip() {
				return 0, false
			}
		}
		s.next(',')
	}
	return n, found
}

// scanner walks JSON text without decoding it.
type scanner struct {
	b []byte
	i int
}

// space consumes whitespace.
func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// next consumes c, after any whitespace, and reports whether it was there.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str consumes a string, after any whitespace, and returns it as written
// between its quotes (escapes left as they are).
func (s *scanner) str() (string, bool) {
	if !s.next('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
			continue
		case '"':
			s.i++
			return string(s.b[start : s.i-1]), true
		}
		s.i++
	}
	return "", false
}

// skip consumes one value of any kind.
func (s *scanner) skip() bool {
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return true
			}
		}
		return false
	}
	start := s.i
	for s.i < len(s.b) && !strings.ContainsRune(",}] \t\n\r", rune(s.b[s.i])) {
		s.i++
	}
	return s.i > start
}

// countArray consumes an array and returns its number of elements.
func (s *scanner) countArray() (int, bool) {
	if !s.next('[') {
		return 0, false
	}
	if s.next(']') {
		return 0, true
	}
	n := 0
	for {
		if !s.skip() {
			return 0, false
		}
		n++
		if s.next(']') {
			return n, true
		}
		if !s.next(',') {
			return 0, false
		}
	}
}

// toolError reports whether a result says isError: true. Most results do
// not mention it, and those are not decoded at all.
func toolError(res json.RawMessage) bool {
	if !bytes.Contains(res, []byte(`"isError"`)) {
		return false
	}
	var v struct {
		IsError bool `json:"isError"`
	}
	return json.Unmarshal(res, &v) == nil && v.IsError
}

// errorMessage is the client-safe message of an error response; "" for a
// result.
func errorMessage(resp *jsonrpc.Response) string {
	var e *jsonrpc.Error
	if errors.As(resp.Error, &e) {
		return e.Message
	}
	if resp.Error != nil {
		return resp.Error.Error()
	}
	return ""
}

// errorCode is the JSON-RPC code of an error response; 0 for a result.
func errorCode(resp *jsonrpc.Response) int64 {
	var e *jsonrpc.Error
	if errors.As(resp.Error, &e) {
		return e.Code
	}
	return 0
}

// shownDigest returns the hex SHA-256 of the names of the tools tools/list
// delivered to the session, sorted, one per line: what interrogation
// keeps of what the session was shown, so a decision record can be tied to
// the catalog its agent could see. The definitions behind the names are in
// the store's catalog snapshots. "" when nothing was shown (a stateless
// request, or a session that never listed).
func (s *Session) shownDigest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.shown) == 0 {
		return ""
	}
	if s.shownHash == "" {
		names := make([]string, 0, len(s.shown))
		for n := range s.shown {
			names = append(names, n)
		}
		slices.Sort(names)
		h := sha256.New()
		for _, n := range names {
			h.Write([]byte(n))
			h.Write([]byte{'\n'})
		}
		s.shownHash = hex.EncodeToString(h.Sum(nil))
	}
	return s.shownHash
}
