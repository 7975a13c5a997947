// Package authzentest is an in-process policy decision point that speaks
// the OpenID AuthZEN Authorization API 1.0, for tests of Mandate's AuthZEN
// client and of the gateway in front of it. It is written from the
// specification, not from the client, so a client that only works against
// itself is caught: it publishes PDP metadata, serves the Access Evaluation
// and Access Evaluations endpoints with default values overridden per item
// and all three evaluation semantics, refuses a request whose subject,
// action or resource lacks a required field with 400, and echoes
// X-Request-ID. Decisions come from a Rule the test passes in; knobs
// (Faults) make it misbehave the ways a real PDP or network can.
package authzentest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Paths of the endpoints, relative to the PDP identifier.
const (
	EvaluationPath  = "/access/v1/evaluation"
	EvaluationsPath = "/access/v1/evaluations"
	// MetadataPath is inserted between the host and the identifier's path
	// (RFC 8615), as the specification requires.
	MetadataPath = "/.well-known/authzen-configuration"
)

// Evaluation semantics of a batch request (options.evaluations_semantic).
const (
	ExecuteAll          = "execute_all"
	DenyOnFirstDeny     = "deny_on_first_deny"
	PermitOnFirstPermit = "permit_on_first_permit"
)

// maxRequest bounds a request body, as the specification advises a PDP to.
const maxRequest = 4 << 20

// Entity is a subject or a resource.
type Entity struct {
	Type       string
	ID         string
	Properties map[string]any
}

// Action is what the subject asks to do.
type Action struct {
	Name       string
	Properties map[string]any
}

// Evaluation is one access question, after default values were applied.
type Evaluation struct {
	Subject  Entity
	Action   Action
	Resource Entity
	// Context is the request's context object; nil when it had none.
	Context map[string]any
}

// Rule decides one evaluation: the decision and the response context (nil
// for none).
type Rule func(Evaluation) (bool, map[string]any)

// Faults make the PDP misbehave. The zero value is a well-behaved PDP.
type Faults struct {
	// Delay holds every evaluation response this long (or until the
	// client gives up).
	Delay time.Duration
	// Status, when not zero, answers every evaluation request with this
	// status and a plain-text body instead of a decision.
	Status int
	// Garbage answers every evaluation request with 200 and a body that
	// is not JSON.
	Garbage bool
	// NoMetadata answers the metadata URL with 404, so a client must use
	// the default endpoint paths.
	NoMetadata bool
	// NoBatch leaves access_evaluations_endpoint out of the metadata and
	// answers the batch path with 404: the endpoint is optional.
	NoBatch bool
	// MetadataPDP, when set, is the policy_decision_point the metadata
	// claims instead of the PDP's own identifier (a mix-up).
	MetadataPDP string
	// RequestID, when set, is the X-Request-ID sent back instead of the
	// request's own.
	RequestID string
	// DropResults removes this many results from the end of every batch
	// response.
	DropResults int
	// NoDecision sends results without their decision member.
	NoDecision bool
}

// Options configure a PDP. The zero value serves at the root of its host.
type Options struct {
	// Path is the path of the PDP identifier, such as "/tenant1" for a
	// multi-tenant PDP; "" means none. The endpoints live under it and the
	// metadata at MetadataPath followed by it.
	Path string
}

// Request is one HTTP request the PDP received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Stats count what the PDP served.
type Stats struct {
	// Metadata is the number of metadata requests.
	Metadata int
	// Single and Batch are the requests to the evaluation and the
	// evaluations endpoints.
	Single, Batch int
	// Evaluations is the number of evaluations decided by the rule.
	Evaluations int
	// BatchSizes is the length of each batch request's evaluations array.
	BatchSizes []int
}

// PDP is a running policy decision point on a loopback port.
type PDP struct {
	// URL is the PDP identifier: scheme, host and Options.Path.
	URL string

	srv  *httptest.Server
	path string
	rule Rule

	mu       sync.Mutex
	faults   Faults
	stats    Stats
	requests []Request
}

// New starts a PDP that decides with rule. Close stops it.
func New(rule Rule, opts *Options) *PDP {
	p := &PDP{rule: rule}
	if opts != nil {
		p.path = strings.TrimSuffix(opts.Path, "/")
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL + p.path
	return p
}

// Close stops the PDP.
func (p *PDP) Close() { p.srv.Close() }

// SetFaults replaces the faults in effect.
func (p *PDP) SetFaults(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
}

// Stats returns what the PDP served so far.
func (p *PDP) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.BatchSizes = append([]int(nil), p.stats.BatchSizes...)
	return s
}

// Requests returns every request received so far, in order.
func (p *PDP) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Reset forgets the requests and statistics recorded so far.
func (p *PDP) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = Stats{}
	p.requests = nil
}

func (p *PDP) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err != nil || len(body) > maxRequest {
		http.Error(w, "request body too large or unreadable", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.requests = append(p.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	f := p.faults
	p.mu.Unlock()

	if id := r.Header.Get("X-Request-ID"); id != "" || f.RequestID != "" {
		if f.RequestID != "" {
			id = f.RequestID
		}
		w.Header().Set("X-Request-ID", id)
	}

	switch r.URL.Path {
	case MetadataPath + p.path:
		p.metadata(w, r, f)
	case p.path + EvaluationPath:
		p.evaluate(w, r, body, f, false)
	case p.path + EvaluationsPath:
		if f.NoBatch {
			http.NotFound(w, r)
			return
		}
		p.evaluate(w, r, body, f, true)
	default:
		http.NotFound(w, r)
	}
}

func (p *PDP) metadata(w http.ResponseWriter, r *http.Request, f Faults) {
	if r.Method != http.MethodGet {
		http.Error(w, "metadata is read with GET", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.stats.Metadata++
	p.mu.Unlock()
	if f.NoMetadata {
		http.NotFound(w, r)
		return
	}
	md := map[string]string{
		"policy_decision_point":      p.URL,
		"access_evaluation_endpoint": p.URL + EvaluationPath,
	}
	if f.MetadataPDP != "" {
		md["policy_decision_point"] = f.MetadataPDP
	}
	if !f.NoBatch {
		md["access_evaluations_endpoint"] = p.URL + EvaluationsPath
	}
	writeJSON(w, md)
}

// evaluate serves both endpoints: the batch one without an evaluations
// array behaves as the single one, as the specification says.
func (p *PDP) evaluate(w http.ResponseWriter, r *http.Request, body []byte, f Faults, batch bool) {
	if r.Method != http.MethodPost {
		http.Error(w, "evaluations are requested with POST", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "content-type must be application/json", http.StatusBadRequest)
		return
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	p.mu.Lock()
	if batch {
		p.stats.Batch++
	} else {
		p.stats.Single++
	}
	p.mu.Unlock()
	switch {
	case f.Status != 0:
		http.Error(w, "injected failure", f.Status)
		return
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "<html>not a decision</html>")
		return
	}

	req, err := parseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !batch || len(req.items) == 0 {
		e, err := merge(req.top, item{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, p.decide(e, f))
		return
	}

	semantic := ExecuteAll
	if req.options.Semantic != nil {
		semantic = *req.options.Semantic
	}
	switch semantic {
	case ExecuteAll, DenyOnFirstDeny, PermitOnFirstPermit:
	default:
		http.Error(w, "unknown options.evaluations_semantic", http.StatusBadRequest)
		return
	}
	evals := make([]Evaluation, len(req.items))
	for i, it := range req.items {
		if evals[i], err = merge(req.top, it); err != nil {
			http.Error(w, fmt.Sprintf("evaluations[%d]: %v", i, err), http.StatusBadRequest)
			return
		}
	}
	p.mu.Lock()
	p.stats.BatchSizes = append(p.stats.BatchSizes, len(evals))
	p.mu.Unlock()
	results := make([]map[string]any, 0, len(evals))
	for _, e := range evals {
		res := p.decide(e, f)
		results = append(results, res)
		ok, _ := res["decision"].(bool)
		if (semantic == DenyOnFirstDeny && !ok) || (semantic == PermitOnFirstPermit && ok) {
			break
		}
	}
	results = results[:max(0, len(results)-f.DropResults)]
	writeJSON(w, map[string]any{"evaluations": results})
}

func (p *PDP) decide(e Evaluation, f Faults) map[string]any {
	p.mu.Lock()
	p.stats.Evaluations++
	p.mu.Unlock()
	ok, ctx := p.rule(e)
	res := map[string]any{"decision": ok}
	if f.NoDecision {
		delete(res, "decision")
	}
	if ctx != nil {
		res["context"] = ctx
	}
	return res
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// item is one 4-tuple as sent: any member may be absent.
type item struct {
	Subject  *entityJSON    `json:"subject"`
	Action   *actionJSON    `json:"action"`
	Resource *entityJSON    `json:"resource"`
	Context  map[string]any `json:"context"`
}

type entityJSON struct {
	Type       *string        `json:"type"`
	ID         *string        `json:"id"`
	Properties map[string]any `json:"properties"`
}

type actionJSON struct {
	Name       *string        `json:"name"`
	Properties map[string]any `json:"properties"`
}

type request struct {
	top     item
	items   []item
	options struct {
		Semantic *string `json:"evaluations_semantic"`
	}
}

// parseRequest decodes a request body; members of the wrong JSON type are
// a bad request, unknown members are ignored.
func parseRequest(body []byte) (request, error) {
	var raw struct {
		item
		Evaluations []item          `json:"evaluations"`
		Options     json.RawMessage `json:"options"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return request{}, fmt.Errorf("request is not a JSON object of the expected shape: %v", err)
	}
	if dec.More() {
		return request{}, fmt.Errorf("request has data after its JSON object")
	}
	req := request{top: raw.item, items: raw.Evaluations}
	if len(raw.Options) > 0 && string(raw.Options) != "null" {
		if err := json.Unmarshal(raw.Options, &req.options); err != nil {
			return request{}, fmt.Errorf("options: %v", err)
		}
	}
	return req, nil
}

// merge applies the top-level defaults to one item (an item's member
// replaces the default whole) and checks the required fields.
func merge(top, it item) (Evaluation, error) {
	s, a, r, c := top.Subject, top.Action, top.Resource, top.Context
	if it.Subject != nil {
		s = it.Subject
	}
	if it.Action != nil {
		a = it.Action
	}
	if it.Resource != nil {
		r = it.Resource
	}
	if it.Context != nil {
		c = it.Context
	}
	var missing []string
	need := func(ok bool, name string) {
		if !ok {
			missing = append(missing, name)
		}
	}
	need(s != nil && s.Type != nil, "subject.type")
	need(s != nil && s.ID != nil, "subject.id")
	need(a != nil && a.Name != nil, "action.name")
	need(r != nil && r.Type != nil, "resource.type")
	need(r != nil && r.ID != nil, "resource.id")
	if len(missing) > 0 {
		return Evaluation{}, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return Evaluation{
		Subject:  Entity{Type: *s.Type, ID: *s.ID, Properties: s.Properties},
		Action:   Action{Name: *a.Name, Properties: a.Properties},
		Resource: Entity{Type: *r.Type, ID: *r.ID, Properties: r.Properties},
		Context:  c,
	}, nil
}
