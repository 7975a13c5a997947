package authzen

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-mcp/mandate/internal/loopback"
	"github.com/mandate-mcp/mandate/internal/policy"
	"github.com/mandate-mcp/mandate/internal/urlerr"
)

// Defaults of Options.
const (
	DefaultTimeout        = 500 * time.Millisecond
	DefaultBatchSize      = 200
	DefaultConcurrency    = 4
	DefaultRetryDiscovery = time.Second
)

// maxResponse bounds a PDP response body: a list of a few thousand
// decisions fits many times over, and a runaway answer cannot fill memory.
const maxResponse = 1 << 20

// Decision context members of Mandate's contract.
const (
	// ApprovalKey in a true decision's context, with the value
	// ApprovalRequired, asks a human to approve the call first.
	ApprovalKey      = "dev.mandate/approval"
	ApprovalRequired = "required"
)

// Options tune a Client. The zero value (or nil) means the defaults.
type Options struct {
	// Timeout bounds one exchange with the PDP (the metadata, or one
	// evaluation request). Zero means DefaultTimeout. A decision that
	// times out is a deny: the gateway never waits longer than this for
	// a call's decision.
	Timeout time.Duration
	// Headers are sent with every request, such as Authorization to
	// authenticate Mandate to the PDP. Nil means none. They never appear
	// in errors.
	Headers map[string]string
	// HTTPClient sends the requests. Nil means a client that follows no
	// redirects, so a decision is never taken from, and the Authorization
	// header never sent to, a place other than the configured one.
	HTTPClient *http.Client
	// BatchSize is the most evaluations in one batch request; longer lists
	// are split. Zero means DefaultBatchSize.
	BatchSize int
	// Concurrency bounds the requests in flight for one list: chunks of a
	// long list, or single evaluations when the PDP has no batch endpoint.
	// Zero means DefaultConcurrency.
	Concurrency int
	// RetryDiscovery is how long a failed discovery answers for itself
	// before a decision tries again, so an unreachable PDP is not asked
	// once per request. Zero means DefaultRetryDiscovery.
	RetryDiscovery time.Duration
}

// Interface guard: a Client stands wherever an embedded engine does.
var _ policy.Decider = (*Client)(nil)

// Client decides with an AuthZEN PDP. It is safe for concurrent use.
type Client struct {
	pdp         string
	version     string
	timeout     time.Duration
	headers     map[string]string
	http        *http.Client
	batchSize   int
	concurrency int
	retry       time.Duration

	mu      sync.Mutex
	ep      *endpoints
	lastErr error
	lastTry time.Time
	// noBatch is set when the batch endpoint assumed for a PDP without
	// metadata turned out not to exist.
	noBatch atomic.Bool
}

// endpoints are where the PDP answers.
type endpoints struct {
	single string
	// batch is "" when the PDP has no Access Evaluations endpoint.
	batch string
	// assumed says the endpoints are the default paths of a PDP without
	// metadata, so the optional batch endpoint may be missing.
	assumed bool
}

// errNoBatch reports that an assumed batch endpoint does not exist.
var errNoBatch = errors.New("PDP has no batch endpoint")

// statusError is an answer other than 200.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("PDP answered status %d", e.code) }

// hasBatch reports whether requests may be batched.
func (c *Client) hasBatch(ep *endpoints) bool {
	return ep.batch != "" && !(ep.assumed && c.noBatch.Load())
}

// New returns a client of the PDP whose identifier is pdp: an https URL
// (http only to a loopback host, where nothing crosses a network) without
// user info, query or fragment. It does no I/O; the PDP's metadata is read
// on first use or by Discover.
func New(pdp string, opts *Options) (*Client, error) {
	id, err := identifier(pdp)
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{
		pdp:         id,
		version:     VersionOf(id),
		timeout:     cmpOr(o.Timeout, DefaultTimeout),
		headers:     maps.Clone(o.Headers),
		http:        o.HTTPClient,
		batchSize:   cmpOr(o.BatchSize, DefaultBatchSize),
		concurrency: cmpOr(o.Concurrency, DefaultConcurrency),
		retry:       cmpOr(o.RetryDiscovery, DefaultRetryDiscovery),
	}
	if c.http == nil {
		c.http = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return c, nil
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// identifier checks a PDP identifier and returns it without a trailing
// slash. Credentials belong in Options.Headers, where they never show in a
// version string or a log line, so user info is refused.
func identifier(raw string) (string, error) {
	u, err := secureURL(raw)
	if err != nil {
		return "", fmt.Errorf("PDP identifier: %w", err)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "", errors.New("PDP identifier: must have no user info, query or fragment")
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// secureURL parses an absolute https URL, or an http one to a loopback
// host. It never quotes the value.
func secureURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("must be an absolute https:// URL (http:// only for a loopback host)")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback.Host(u.Hostname()):
	default:
		return nil, errors.New("must be an absolute https:// URL (http:// only for a loopback host)")
	}
	return u, nil
}

// Version names the decision point, for whoami and the audit record.
func (c *Client) Version() string { return c.version }

// VersionOf is the version a Client for the PDP identifier id reports:
// "authzen:" and a digest of the identifier, not the identifier itself,
// since the version reaches agents (whoami) and the PDP's address is the
// organisation's business. Equal identifiers give equal versions, so
// records still tell which PDP decided.
func VersionOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "authzen:" + hex.EncodeToString(sum[:12])
}

// Discover reads the PDP's metadata now, unless it was read already, so a
// misconfiguration shows at start rather than as denials. A failure is
// remembered for Options.RetryDiscovery and then retried by the next
// decision.
func (c *Client) Discover(ctx context.Context) error {
	_, err := c.endpoints(ctx)
	return err
}

func (c *Client) endpoints(ctx context.Context) (*endpoints, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep != nil {
		return c.ep, nil
	}
	if c.lastErr != nil && time.Since(c.lastTry) < c.retry {
		return nil, c.lastErr
	}
	// The metadata serves every request, so one request's cancellation
	// must not become everyone's failure.
	ep, err := c.discover(context.WithoutCancel(ctx))
	c.lastTry, c.lastErr = time.Now(), err
	if err == nil {
		c.ep = ep
	}
	return ep, err
}

// metadataURL inserts the well-known suffix between the host and the
// identifier's path (RFC 8615).
func (c *Client) metadataURL() string {
	u, _ := url.Parse(c.pdp)
	u.Path = "/.well-known/authzen-configuration" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

func (c *Client) discover(ctx context.Context) (*endpoints, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metadataURL(), nil)
	if err != nil {
		return nil, fmt.Errorf("PDP metadata: %w", urlerr.Strip(err))
	}
	c.setHeaders(req)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// Errors reach logs and audit records; the PDP's address may
		// have come from a secret reference, so it is left out.
		return nil, fmt.Errorf("PDP metadata: %w", urlerr.Strip(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		// No metadata: the endpoints are at the specification's paths.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return &endpoints{single: c.pdp + "/access/v1/evaluation", batch: c.pdp + "/access/v1/evaluations", assumed: true}, nil
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return nil, fmt.Errorf("PDP metadata: status %d", resp.StatusCode)
	}
	var md struct {
		PDP         string `json:"policy_decision_point"`
		Evaluation  string `json:"access_evaluation_endpoint"`
		Evaluations string `json:"access_evaluations_endpoint"`
	}
	if err := readJSON(resp.Body, &md); err != nil {
		return nil, fmt.Errorf("PDP metadata: %w", err)
	}
	if md.PDP != c.pdp && md.PDP != c.pdp+"/" {
		return nil, errors.New("PDP metadata: policy_decision_point is not the configured PDP (mix-up); refusing it")
	}
	if _, err := secureURL(md.Evaluation); err != nil {
		return nil, fmt.Errorf("PDP metadata: access_evaluation_endpoint %w", err)
	}
	if md.Evaluations != "" {
		if _, err := secureURL(md.Evaluations); err != nil {
			return nil, fmt.Errorf("PDP metadata: access_evaluations_endpoint %w", err)
		}
	}
	return &endpoints{single: md.Evaluation, batch: md.Evaluations}, nil
}

func (c *Client) setHeaders(req *http.Request) {
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
}

// readJSON decodes a body of at most maxResponse bytes.
func readJSON(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if len(data) > maxResponse {
		return errors.New("response larger than 1 MiB")
	}
	if err := json.Unmarshal(data, v); err != nil {
		// The decoder's message names a position and a JSON type, never
		// the body's content.
		return fmt.Errorf("malformed response: %w", err)
	}
	return nil
}

// post sends one evaluation request and decodes its answer into out.
func (c *Client) post(ctx context.Context, endpoint string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(data))
	if err != nil {
		return err
	}
	c.setHeaders(req)
	id := rand.Text()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-ID", id)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("PDP unreachable: %w", urlerr.Strip(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return statusError{resp.StatusCode}
	}
	if got := resp.Header.Get("X-Request-ID"); got != "" && got != id {
		return errors.New("PDP answered with the X-Request-ID of another request")
	}
	return readJSON(resp.Body, out)
}

// result is one decision as the PDP sent it.
type result struct {
	Decision *bool          `json:"decision"`
	Context  map[string]any `json:"context"`
}

func (r result) check() error {
	if r.Decision == nil {
		return errors.New("PDP result has no boolean decision")
	}
	return nil
}

// single asks one evaluation.
func (c *Client) single(ctx context.Context, ep *endpoints, e evaluation) (result, error) {
	var res result
	if err := c.post(ctx, ep.single, e, &res); err != nil {
		return result{}, err
	}
	return res, res.check()
}

// batch asks evals in one request. With deny_on_first_deny the PDP may
// stop after the first false, so fewer results are accepted when the last
// is a deny; anything else must answer every evaluation.
func (c *Client) batch(ctx context.Context, ep *endpoints, evals []evaluation, semantic string) ([]result, error) {
	body, err := newBatch(evals, semantic)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	var out struct {
		Evaluations []result `json:"evaluations"`
	}
	if err := c.post(ctx, ep.batch, body, &out); err != nil {
		var se statusError
		if ep.assumed && errors.As(err, &se) && se.code == http.StatusNotFound {
			c.noBatch.Store(true)
			return nil, errNoBatch
		}
		return nil, err
	}
	res := out.Evaluations
	for _, r := range res {
		if err := r.check(); err != nil {
			return nil, err
		}
	}
	short := semantic == denyOnFirstDeny && len(res) > 0 && len(res) < len(evals) && !*res[len(res)-1].Decision
	if len(res) != len(evals) && !short {
		return nil, fmt.Errorf("PDP answered %d of %d evaluations", len(res), len(evals))
	}
	return res, nil
}

// DecideContext answers r with the PDP; see the package documentation for
// what is asked. It fails closed: every error denies, with its cause in
// Errors.
func (c *Client) DecideContext(ctx context.Context, r policy.Request) policy.Decision {
	if policy.PassThrough(r.Method) {
		return policy.Decision{Effect: policy.Allow, Version: c.version}
	}
	m, ok := methods[r.Method]
	if !ok {
		return c.deny(fmt.Errorf("unknown method %q", r.Method))
	}
	if m.lists != "" && r.Target.Kind == m.lists {
		// A list method asked of an item is the item's visibility, as
		// policy.Snapshot.Decide answers it.
		e, err := listingQuestion(r)
		if err != nil {
			return c.deny(err)
		}
		return c.decideOne(ctx, e, true)
	}
	call, err := question(r, r.Method, false)
	if err != nil {
		return c.deny(err)
	}
	if r.Target.Kind == policy.KindServer {
		return c.decideOne(ctx, call, false)
	}
	list, err := listingQuestion(r)
	if err != nil {
		return c.deny(err)
	}
	ep, err := c.endpoints(ctx)
	if err != nil {
		return c.deny(err)
	}
	var res []result
	if c.hasBatch(ep) {
		res, err = c.batch(ctx, ep, []evaluation{list, call}, denyOnFirstDeny)
	}
	if !c.hasBatch(ep) {
		res, err = c.pair(ctx, ep, list, call)
	}
	if err != nil {
		return c.deny(err)
	}
	if !*res[0].Decision {
		return c.decision(res[0], true)
	}
	return c.decision(res[1], false)
}

// pair asks the listing question and then, only if it is allowed, the
// call: deny_on_first_deny by hand, for a PDP without a batch endpoint.
func (c *Client) pair(ctx context.Context, ep *endpoints, list, call evaluation) ([]result, error) {
	first, err := c.single(ctx, ep, list)
	if err != nil || !*first.Decision {
		return []result{first}, err
	}
	second, err := c.single(ctx, ep, call)
	return []result{first, second}, err
}

func (c *Client) decideOne(ctx context.Context, e evaluation, listing bool) policy.Decision {
	ep, err := c.endpoints(ctx)
	if err != nil {
		return c.deny(err)
	}
	res, err := c.single(ctx, ep, e)
	if err != nil {
		return c.deny(err)
	}
	return c.decision(res, listing)
}

// decision turns one result into a policy decision. A listing question
// answered true is Allow whatever its context: an item waiting for
// approval is still listed.
func (c *Client) decision(res result, listing bool) policy.Decision {
	d := policy.Decision{Reasons: reasons(res.Context), Version: c.version}
	switch {
	case !*res.Decision:
		d.Effect = policy.Deny
	case !listing && res.Context[ApprovalKey] == ApprovalRequired:
		d.Effect = policy.NeedsApproval
	default:
		d.Effect = policy.Allow
	}
	return d
}

func (c *Client) deny(err error) policy.Decision {
	return policy.Decision{Effect: policy.Deny, Errors: []string{"authzen: " + err.Error()}, Version: c.version}
}

// reasons collects context.policies (rule ids) and context.reason_admin (a
// string, or an object of language tag to string, in tag order).
func reasons(ctx map[string]any) []string {
	var out []string
	if ps, ok := ctx["policies"].([]any); ok {
		for _, p := range ps {
			if s, ok := p.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	switch ra := ctx["reason_admin"].(type) {
	case string:
		if ra != "" {
			out = append(out, ra)
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(ra)) {
			if s, ok := ra[k].(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// VisibleAll answers, for each request in order, whether its target is
// listed, from the listing questions of all of them in batch requests of
// at most Options.BatchSize evaluations (or one request per item when the
// PDP has no batch endpoint). A request that cannot be mapped (no
// principal, a kind without a list) is not visible, as in policy.Engine;
// any failure of the PDP refuses the whole list.
func (c *Client) VisibleAll(ctx context.Context, rs []policy.Request) ([]bool, error) {
	out := make([]bool, len(rs))
	var idx []int
	var evals []evaluation
	for i, r := range rs {
		e, err := listingQuestion(r)
		if err != nil {
			continue
		}
		idx = append(idx, i)
		evals = append(evals, e)
	}
	if len(evals) == 0 {
		return out, nil
	}
	ep, err := c.endpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("authzen: %w", err)
	}
	if c.hasBatch(ep) {
		chunks := (len(evals) + c.batchSize - 1) / c.batchSize
		err = c.parallel(ctx, chunks, func(ctx context.Context, n int) error {
			lo := n * c.batchSize
			hi := min(lo+c.batchSize, len(evals))
			res, err := c.batch(ctx, ep, evals[lo:hi], executeAll)
			if err != nil {
				return err
			}
			for j, r := range res {
				out[idx[lo+j]] = *r.Decision
			}
			return nil
		})
	}
	if !c.hasBatch(ep) {
		err = c.parallel(ctx, len(evals), func(ctx context.Context, i int) error {
			res, err := c.single(ctx, ep, evals[i])
			if err != nil {
				return err
			}
			out[idx[i]] = *res.Decision
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("authzen: %w", err)
	}
	return out, nil
}

// parallel runs f(0..n-1) with at most c.concurrency at once and returns
// the first error; the others are cancelled then.
func (c *Client) parallel(ctx context.Context, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() {
			first = err
			cancel(err)
		})
	}
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			fail(context.Cause(ctx))
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(ctx, i); err != nil {
				fail(err)
			}
		})
	}
	wg.Wait()
	return first
}
