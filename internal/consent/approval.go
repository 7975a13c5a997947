package consent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/mandate-mcp/mandate/internal/store"
	"github.com/mandate-mcp/mandate/internal/urlerr"
)

// DefaultApprovalTimeout is how long an approval request waits for a human
// when ApprovalOptions.Timeout is zero.
const DefaultApprovalTimeout = 5 * time.Minute

// ApprovalOptions configure Approvals. The zero value is usable.
type ApprovalOptions struct {
	// Timeout is how long after its creation an approval can be decided
	// and, once approved, used. When it has passed the request is expired,
	// which denies the call. Zero means DefaultApprovalTimeout.
	Timeout time.Duration
	// WebhookURL, if set, receives a POST of every new approval request
	// (see Webhook), so a human can be told out of band. "" sends nothing.
	WebhookURL string
	// ApproveURL, if set, returns the page where a human decides the
	// approval id; the webhook carries it as approve_url. Nil omits it.
	ApproveURL func(id string) string
	// WebhookTimeout bounds one webhook delivery; zero means 5s.
	WebhookTimeout time.Duration
	// Client delivers webhooks; nil means http.DefaultClient.
	Client *http.Client
	// Log receives webhook failures; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Events hears of every new request, decision and use, after the
	// store has accepted it, so the audit log can record who asked for,
	// gave and spent each approval. Nil tells nobody.
	Events ApprovalEvents
}

// ApprovalEvents receives every change to an approval request, after the
// store has accepted it. The audit log implements it; methods run on the
// request path and must not block for long.
type ApprovalEvents interface {
	// ApprovalRequested reports a new pending request (not one returned
	// again to a retrying agent).
	ApprovalRequested(store.Approval)
	// ApprovalDecided reports a request approved or denied, with who
	// decided it.
	ApprovalDecided(store.Approval)
	// ApprovalUsed reports an approval spent by the one call it covers.
	ApprovalUsed(store.Approval)
}

// NopApprovalEvents discards approval events.
type NopApprovalEvents struct{}

// Interface guards.
var _ ApprovalEvents = NopApprovalEvents{}

func (NopApprovalEvents) ApprovalRequested(store.Approval) {}
func (NopApprovalEvents) ApprovalDecided(store.Approval)   {}
func (NopApprovalEvents) ApprovalUsed(store.Approval)      {}

// Webhook is the JSON body POSTed to ApprovalOptions.WebhookURL. It carries
// the redacted preview, never the arguments themselves.
type Webhook struct {
	ID          string          `json:"id"`
	User        string          `json:"user"`
	Agent       string          `json:"agent"`
	Upstream    string          `json:"upstream"`
	Tool        string          `json:"tool"`
	ArgsPreview json.RawMessage `json:"args_preview"`
	ExpiresAt   time.Time       `json:"expires_at"`
	ApproveURL  string          `json:"approve_url,omitempty"`
}

// Approvals asks humans to approve single calls and keeps their answers. An
// approval covers one exact call: the principal (user and agent), the
// upstream and tool, the canonical hash of the arguments and the policy
// version that asked for it. It is used at most once, and a request nobody
// decided in time expires, which denies.
//
// Like mandates, approvals are read from the store on every lookup, so an
// approval given on one replica is usable on every other, and exactly one
// call anywhere can use it.
type Approvals struct {
	store store.ApprovalStore
	o     ApprovalOptions
}

// NewApprovals returns an Approvals keeping its requests in st; nil o
// means the defaults.
func NewApprovals(st store.ApprovalStore, o *ApprovalOptions) *Approvals {
	a := &Approvals{store: st}
	if o != nil {
		a.o = *o
	}
	if a.o.Timeout <= 0 {
		a.o.Timeout = DefaultApprovalTimeout
	}
	if a.o.WebhookTimeout <= 0 {
		a.o.WebhookTimeout = 5 * time.Second
	}
	if a.o.Client == nil {
		a.o.Client = http.DefaultClient
	}
	if a.o.Log == nil {
		a.o.Log = slog.New(slog.DiscardHandler)
	}
	if a.o.Now == nil {
		a.o.Now = time.Now
	}
	if a.o.Events == nil {
		a.o.Events = NopApprovalEvents{}
	}
	return a
}

// Timeout is how long a new request waits for a decision.
func (a *Approvals) Timeout() time.Duration { return a.o.Timeout }

// Request asks for a human's approval of the call of tool on upstream with
// args by p under policyVersion. A request for the very same call that is
// still pending is returned instead of a new one, so an agent retrying
// before anyone decided does not flood the approvers; a new request is
// announced to the webhook.
func (a *Approvals) Request(ctx context.Context, p *identity.Principal, upstream, tool string, args map[string]any, policyVersion string) (store.Approval, error) {
	if p == nil || p.Agent == "" {
		return store.Approval{}, errors.New("request approval: no principal")
	}
	hash, err := ArgsHash(args)
	if err != nil {
		return store.Approval{}, fmt.Errorf("request approval: %w", err)
	}
	key := callKey{user: p.User, agent: p.Agent, upstream: upstream, tool: tool, hash: hash, version: policyVersion}
	now := a.o.Now()
	if rec, ok, err := a.find(ctx, store.ApprovalPending, key, now); err != nil {
		return store.Approval{}, fmt.Errorf("request approval: %w", err)
	} else if ok {
		return rec, nil
	}
	rec := store.Approval{
		ID: "apr_" + rand.Text(), User: p.User, Agent: p.Agent, Upstream: upstream, Tool: tool,
		ArgsHash: hash, ArgsPreview: ArgsPreview(args), PolicyVersion: policyVersion,
		Status: store.ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(a.o.Timeout),
	}
	if err := a.store.CreateApproval(ctx, rec); err != nil {
		return store.Approval{}, fmt.Errorf("request approval: %w", err)
	}
	rec.CreatedAt = rec.CreatedAt.UTC().Truncate(store.TimePrecision)
	rec.ExpiresAt = rec.ExpiresAt.UTC().Truncate(store.TimePrecision)
	a.o.Events.ApprovalRequested(rec)
	if a.o.WebhookURL != "" {
		// The call is answered without waiting: a slow or broken receiver
		// must not hold the agent's request, and the approval stands
		// whether or not anyone was told.
		go a.notify(context.WithoutCancel(ctx), rec)
	}
	return rec, nil
}

// Find returns the approved, unused, unexpired approval of exactly this
// call: p's user and agent, upstream, tool, argsHash and policyVersion. It
// reports false when there is none; an error means the store could not be
// read, and the caller must deny.
func (a *Approvals) Find(ctx context.Context, p *identity.Principal, upstream, tool, argsHash, policyVersion string) (store.Approval, bool, error) {
	if p == nil {
		return store.Approval{}, false, nil
	}
	key := callKey{user: p.User, agent: p.Agent, upstream: upstream, tool: tool, hash: argsHash, version: policyVersion}
	rec, ok, err := a.find(ctx, store.ApprovalApproved, key, a.o.Now())
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("find approval: %w", err)
	}
	return rec, ok, nil
}

// callKey is everything an approval is bound to.
type callKey struct{ user, agent, upstream, tool, hash, version string }

func (a *Approvals) find(ctx context.Context, status string, k callKey, now time.Time) (store.Approval, bool, error) {
	recs, err := a.store.ListApprovals(ctx, status)
	if err != nil {
		return store.Approval{}, false, err
	}
	for _, r := range recs {
		if r.User == k.user && r.Agent == k.agent && r.Upstream == k.upstream && r.Tool == k.tool &&
			r.ArgsHash == k.hash && r.PolicyVersion == k.version && r.ExpiresAt.After(now) {
			return r, true, nil
		}
	}
	return store.Approval{}, false, nil
}

// Use consumes the approval id for the one call it covers. Any error, such
// as store.ErrConflict when a concurrent call used it first or it expired
// since Find, means the call must be denied.
func (a *Approvals) Use(ctx context.Context, id string) (store.Approval, error) {
	rec, err := a.store.UseApproval(ctx, id, a.o.Now())
	if err != nil {
		return store.Approval{}, fmt.Errorf("use approval: %w", err)
	}
	a.o.Events.ApprovalUsed(rec)
	return rec, nil
}

// Decide records by's decision on the pending approval id. A request that
// was already decided, or has expired, gives store.ErrConflict: a decision
// is final, and a late one changes nothing.
func (a *Approvals) Decide(ctx context.Context, id string, approve bool, by string) (store.Approval, error) {
	rec, err := a.store.DecideApproval(ctx, id, approve, by, a.o.Now())
	if err != nil {
		return store.Approval{}, fmt.Errorf("decide approval: %w", err)
	}
	a.o.Events.ApprovalDecided(rec)
	return rec, nil
}

// Get returns the approval id with its effective status (see
// EffectiveStatus).
func (a *Approvals) Get(ctx context.Context, id string) (store.Approval, error) {
	rec, err := a.store.GetApproval(ctx, id)
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval: %w", err)
	}
	rec.Status = EffectiveStatus(rec, a.o.Now())
	return rec, nil
}

// List returns the approvals whose effective status is status ("" for
// any), newest first, each with its effective status: a pending or
// approved request past its expiry is listed as expired.
func (a *Approvals) List(ctx context.Context, status string) ([]store.Approval, error) {
	if err := store.ValidateApprovalFilter(status); err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	stored := status
	if status == store.ApprovalExpired {
		stored = ""
	}
	recs, err := a.store.ListApprovals(ctx, stored)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	now := a.o.Now()
	out := recs[:0]
	for _, r := range recs {
		r.Status = EffectiveStatus(r, now)
		if status == "" || r.Status == status {
			out = append(out, r)
		}
	}
	return out, nil
}

// EffectiveStatus is rec's status at now: a pending or approved approval
// whose ExpiresAt has passed is expired, since it can no longer be decided
// or used.
func EffectiveStatus(rec store.Approval, now time.Time) string {
	if (rec.Status == store.ApprovalPending || rec.Status == store.ApprovalApproved) && !rec.ExpiresAt.After(now) {
		return store.ApprovalExpired
	}
	return rec.Status
}

// notify POSTs rec to the webhook. Failures are logged: the request stands
// and can still be decided by anyone who lists the pending approvals.
func (a *Approvals) notify(ctx context.Context, rec store.Approval) {
	ctx, cancel := context.WithTimeout(ctx, a.o.WebhookTimeout)
	defer cancel()
	body := Webhook{
		ID: rec.ID, User: rec.User, Agent: rec.Agent, Upstream: rec.Upstream, Tool: rec.Tool,
		ArgsPreview: json.RawMessage(rec.ArgsPreview), ExpiresAt: rec.ExpiresAt,
	}
	if a.o.ApproveURL != nil {
		body.ApproveURL = a.o.ApproveURL(rec.ID)
	}
	b, err := json.Marshal(body)
	if err != nil {
		a.o.Log.Warn("approval webhook: encode", "approval", rec.ID, "err", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.o.WebhookURL, bytes.NewReader(b))
	if err != nil {
		a.o.Log.Warn("approval webhook: build request", "approval", rec.ID, "err", urlerr.Strip(err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.o.Client.Do(req)
	if err != nil {
		// The webhook's URL often embeds its secret; the error names
		// only what failed.
		a.o.Log.Warn("approval webhook failed", "approval", rec.ID, "err", urlerr.Strip(err))
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		a.o.Log.Warn("approval webhook refused", "approval", rec.ID, "status", resp.StatusCode)
	}
}

// ArgsHash is the lowercase hex SHA-256 of the canonical JSON of args:
// object keys sorted bytewise, no insignificant whitespace, every number
// as the shortest JSON number of its float64 value (1, 1.0 and 1e0 hash
// alike, as the decision saw them alike). No arguments and an empty object
// hash alike. Values JSON cannot carry (NaN, infinities, channels) are an
// error, so a call that cannot be bound to an approval is denied.
func ArgsHash(args map[string]any) (string, error) {
	var buf bytes.Buffer
	var v any = args
	if args == nil {
		v = map[string]any{}
	}
	if err := canonical(&buf, v, 0); err != nil {
		return "", fmt.Errorf("canonical arguments: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// maxDepth bounds the nesting canonical and preview follow; JSON decoded
// by encoding/json is already limited, values built in code may not be.
const maxDepth = 64

func canonical(buf *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return errors.New("arguments nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		buf.WriteString(fmt.Sprint(x))
	case string:
		writeString(buf, x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("a number is not finite")
		}
		b, _ := json.Marshal(x)
		buf.Write(b)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return fmt.Errorf("number %s: %w", x, err)
		}
		return canonical(buf, f, depth)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			if err := canonical(buf, x[k], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := canonical(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		// Any other Go value is read as the JSON it encodes to, the form
		// the decision would have seen it in.
		b, err := json.Marshal(x)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var generic any
		if err := dec.Decode(&generic); err != nil {
			return err
		}
		return canonical(buf, generic, depth)
	}
	return nil
}

// writeString writes s as a JSON string without HTML escaping: "<" is
// itself, as in RFC 8785, not \u003c.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // A string always encodes.
	buf.Truncate(buf.Len() - 1) // Encode ends with a newline.
}

// Preview limits: longer strings are cut, longer lists shortened, and a
// preview that is still too large is replaced by a note.
const (
	previewString = 64
	previewList   = 20
	previewBytes  = 4096
	previewDepth  = 8
)

// ArgsPreview renders args for the human who decides: JSON with sorted
// keys, values under secret-looking names (password, token, api_key, …) and
// secret-looking strings (bearer tokens, private keys, well-known key
// prefixes) replaced by "[redacted]", strings longer than 64 characters cut
// with "…", long lists shortened. It is for reading only: the approval is
// bound to ArgsHash, never to the preview.
func ArgsPreview(args map[string]any) string {
	var v any = map[string]any{}
	if args != nil {
		v = previewValue(args, 0)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return `"(arguments cannot be previewed)"`
	}
	out := strings.TrimSuffix(buf.String(), "\n")
	if len(out) > previewBytes {
		return fmt.Sprintf(`"(%d bytes of arguments, too large to preview)"`, len(out))
	}
	return out
}

const redacted = "[redacted]"

func previewValue(v any, depth int) any {
	if depth >= previewDepth {
		return "…"
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if secretName(k) {
				out[k] = redacted
				continue
			}
			out[k] = previewValue(e, depth+1)
		}
		return out
	case []any:
		n := min(len(x), previewList)
		out := make([]any, 0, n+1)
		for _, e := range x[:n] {
			out = append(out, previewValue(e, depth+1))
		}
		if len(x) > n {
			out = append(out, fmt.Sprintf("… %d more", len(x)-n))
		}
		return out
	case string:
		if secretValue(x) {
			return redacted
		}
		return cut(x, previewString)
	case nil, bool, float64, json.Number:
		return x
	case float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return x
	default:
		// A value of another type is previewed as the JSON it encodes to.
		b, err := json.Marshal(x)
		if err != nil {
			return "(unprintable)"
		}
		var generic any
		if json.Unmarshal(b, &generic) != nil {
			return "(unprintable)"
		}
		return previewValue(generic, depth)
	}
}

// secretNames are substrings of argument names whose values are never
// shown, compared case-insensitively with "-" and "_" removed.
var secretNames = []string{
	"password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey",
	"authorization", "credential", "cookie", "otp", "pin",
}

func secretName(name string) bool {
	n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(name))
	for _, s := range secretNames {
		if n == s || (len(s) > 3 && strings.Contains(n, s)) {
			return true
		}
	}
	return false
}

// secretPrefixes start values that are credentials whatever they are
// called: HTTP authorization, PEM private keys and common API key formats.
var secretPrefixes = []string{
	"bearer ", "basic ", "-----begin", "ghp_", "gho_", "ghs_", "github_pat_", "sk-", "sk_live_", "rk_live_",
	"xoxb-", "xoxp-", "akia", "aiza", "eyj",
}

func secretValue(s string) bool {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, p := range secretPrefixes {
		if strings.HasPrefix(l, p) && len(l) > len(p)+8 {
			return true
		}
	}
	return false
}

// cut shortens s to n characters, marking the cut with "…". Invalid UTF-8
// is replaced, so the preview is always storable text.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
