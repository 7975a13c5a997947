package gateway

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/consent"
	"github.com/mandate-mcp/mandate/internal/identity"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"golang.org/x/crypto/chacha20poly1305"
)

// A stateless-era (2026-07-28) client cannot be sent a server-to-client
// request, so Mandate asks its human through multi-round-trip requests
// (C-10): the call is answered with an input_required result carrying an
// elicitation and a sealed requestState, and the client retries the same
// call with a new id, the user's answer in inputResponses and the state
// echoed back. Mandate uses it for two questions only: consent (a mandate
// is missing; URL-mode elicitation of the consent page) and approval (the
// policy wants a human's yes for this one call; form-mode elicitation).
//
// The state is attacker-controlled input on the way back. It is sealed
// with an AEAD, so nothing in it can be forged or read, and bound to the
// principal, the method, the target, the canonical argument digest and a
// short expiry, so it cannot be moved to another user, agent, call or
// time. It is redeemed at most once per replica. None of that makes a
// state grant anything by itself: a consent retry is decided from scratch
// (mandates are read on every call), and an approval is used through the
// approvals service, whose Use is single and store-wide. A state only says
// which question the answer in inputResponses belongs to.

// Purposes of a request state: the question it was issued with.
const (
	purposeConsent  = "consent"
	purposeApproval = "approval"
)

// Keys of Mandate's input requests in inputRequests and inputResponses.
const (
	consentInputKey  = "mandate_consent"
	approvalInputKey = "mandate_approval"
)

// consentStateTTL bounds how long a consent question can be answered: long
// enough to read and grant a mandate, short enough that a leaked state
// soon means nothing. An approval state lives as long as its approval.
const consentStateTTL = 10 * time.Minute

// RequestStateKeySize is the length of Options.RequestStateKey.
const RequestStateKeySize = chacha20poly1305.KeySize

// msgInvalidState refuses every retry whose state does not verify, for
// whatever reason, so a caller cannot probe which binding failed.
const msgInvalidState = "requestState is invalid or expired"

// inputRequiredMethods are the only requests an input_required result may
// answer (C-10); every other request keeps its error.
var inputRequiredMethods = map[string]bool{"tools/call": true, "resources/read": true, "prompts/get": true}

// requestState is the sealed payload of a requestState. Field names are
// short because the state travels on every retry.
type requestState struct {
	Purpose  string `json:"p"`
	Issuer   string `json:"iss"`
	User     string `json:"usr,omitempty"`
	Agent    string `json:"agt"`
	Method   string `json:"m"`
	Upstream string `json:"up"`
	Name     string `json:"n"`
	// Args is consent.ArgsHash of the arguments: the approval binding's
	// digest, so a state and an approval can never disagree on "same".
	Args     string `json:"a"`
	Approval string `json:"apr,omitempty"`
	Policy   string `json:"pv,omitempty"`
	Expiry   int64  `json:"exp"` // Unix seconds
	Nonce    string `json:"jti"`
}

// binds reports whether st was issued for this very call of p.
func (st requestState) binds(p *identity.Principal, method, upstream, name, argsHash string) bool {
	return p != nil && st.Issuer == p.Issuer && st.User == p.User && st.Agent == p.Agent &&
		st.Method == method && st.Upstream == upstream && st.Name == name && st.Args == argsHash
}

// stateSealer seals and opens request states and remembers which were
// redeemed.
type stateSealer struct {
	aead cipher.AEAD
	now  func() time.Time
	seen replayCache
}

// stateAAD separates request states from anything else the key might one
// day seal, and versions the format.
var stateAAD = []byte("mandate requestState v1")

// newStateSealer returns a sealer with key, or with a random key when key
// is empty. Any other length is a programming error of the composition
// root, which must not silently become a per-process key.
func newStateSealer(key []byte) *stateSealer {
	if len(key) == 0 {
		key = make([]byte, RequestStateKeySize)
		_, _ = rand.Read(key)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(fmt.Sprintf("gateway: RequestStateKey must be %d bytes: %v", RequestStateKeySize, err))
	}
	return &stateSealer{aead: aead, now: time.Now, seen: replayCache{max: maxRedeemed}}
}

// seal returns the requestState of st, with a fresh nonce.
func (s *stateSealer) seal(st requestState) (string, error) {
	st.Nonce = rand.Text()
	plain, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("seal request state: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, stateAAD)), nil
}

// maxStateLen bounds what open decrypts; Mandate's own states are a few
// hundred bytes.
const maxStateLen = 4096

// open authenticates token and checks its expiry. It does not redeem it.
func (s *stateSealer) open(token string) (requestState, error) {
	if len(token) > maxStateLen {
		return requestState{}, errors.New("request state too long")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return requestState{}, errors.New("malformed request state")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], stateAAD)
	if err != nil {
		return requestState{}, errors.New("request state fails authentication")
	}
	var st requestState
	if err := json.Unmarshal(plain, &st); err != nil {
		return requestState{}, fmt.Errorf("request state payload: %w", err)
	}
	if st.Nonce == "" || st.Purpose == "" {
		return requestState{}, errors.New("request state incomplete")
	}
	if !s.now().Before(time.Unix(st.Expiry, 0)) {
		return requestState{}, errors.New("request state expired")
	}
	return st, nil
}

// redeem marks st used; false means it was used before (a replay) or that
// no more states can be remembered right now.
func (s *stateSealer) redeem(st requestState) bool {
	return s.seen.redeem(st.Nonce, time.Unix(st.Expiry, 0), s.now())
}

// maxRedeemed bounds the replay cache. At the consent TTL it admits some
// 160 retries a second, sustained, per replica, before refusing more.
const maxRedeemed = 100_000

// replayCache remembers redeemed nonces until their states expire, since
// an expired state is refused anyway. It is per process: with a shared
// RequestStateKey a state could be redeemed once on each replica, which is
// harmless because redeeming one grants nothing by itself (see above).
// When full of unexpired nonces it refuses new ones rather than forget one
// that could then be replayed.
type replayCache struct {
	mu        sync.Mutex
	max       int
	used      map[string]time.Time // nonce -> state expiry
	lastSweep time.Time
}

func (c *replayCache) redeem(nonce string, exp, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used == nil {
		c.used = map[string]time.Time{}
	}
	if _, dup := c.used[nonce]; dup {
		return false
	}
	if len(c.used) >= c.max && now.Sub(c.lastSweep) >= time.Second {
		// Sweeping is linear, so it happens at most once a second.
		c.lastSweep = now
		for n, e := range c.used {
			if !e.After(now) {
				delete(c.used, n)
			}
		}
	}
	if len(c.used) >= c.max {
		return false
	}
	c.used[nonce] = exp
	return true
}

// retry is a verified multi-round-trip retry: the state Mandate issued for
// this very call, and the client's answers.
type retry struct {
	state     requestState
	responses object
}

// answers reports whether r carries the answer to a question of purpose
// asked under policyVersion ("" for any version).
func (r *retry) answers(purpose, policyVersion string) bool {
	return r != nil && r.state.Purpose == purpose && (policyVersion == "" || r.state.Policy == policyVersion)
}

// elicitAnswer is an elicitation result; Approve is the one field of
// Mandate's approval form.
type elicitAnswer struct {
	Action  string `json:"action"`
	Content struct {
		Approve bool `json:"approve"`
	} `json:"content"`
}

// errMalformedAnswer is an inputResponses entry that is no elicitation
// result.
var errMalformedAnswer = errors.New("malformed elicitation result")

// answer returns the elicitation result under key; false when the client
// sent none.
func (r *retry) answer(key string) (elicitAnswer, bool, error) {
	raw, ok := r.responses[key]
	if !ok {
		return elicitAnswer{}, false, nil
	}
	var a elicitAnswer
	if err := json.Unmarshal(raw, &a); err != nil || a.Action == "" {
		return elicitAnswer{}, true, errMalformedAnswer
	}
	return a, true, nil
}

// retryOf verifies the requestState of a stateless-era item call. It
// returns nil, nil for a first attempt. A state that does not verify —
// forged, altered, expired, issued to another principal, for another
// method, target or arguments, or already redeemed — refuses the call:
// it is never read as consent or approval. A legacy-era request cannot
// carry one of Mandate's states (they are only issued to stateless-era
// clients), so its params pass on untouched.
func (g *Gateway) retryOf(sess *Session, req *jsonrpc.Request, params object, upstream, name string, args map[string]any) (*retry, *jsonrpc.Response) {
	raw, ok := params["requestState"]
	if !ok || !sess.modern {
		return nil, nil
	}
	invalid := func(why string, err error) (*retry, *jsonrpc.Response) {
		g.log.Info("retry refused: "+why, "method", req.Method, "upstream", upstream, "name", name, "agent", sess.Principal.Agent, "err", err)
		return nil, errorResponse(req.ID, codeInvalidParams, msgInvalidState)
	}
	var token string
	if err := json.Unmarshal(raw, &token); err != nil || token == "" {
		return invalid("requestState is not a string", err)
	}
	st, err := g.states.open(token)
	if err != nil {
		return invalid("requestState does not verify", err)
	}
	hash, err := consent.ArgsHash(args)
	if err != nil {
		return invalid("arguments cannot be digested", err)
	}
	if !st.binds(sess.Principal, req.Method, upstream, name, hash) {
		return invalid("requestState was issued for another principal or call", nil)
	}
	var responses object
	if r, ok := params["inputResponses"]; ok {
		if responses, err = decodeObject(r); err != nil {
			return nil, errorResponse(req.ID, codeInvalidParams, "inputResponses must be an object")
		}
	}
	if !g.states.redeem(st) {
		return invalid("requestState was already used", nil)
	}
	return &retry{state: st, responses: responses}, nil
}

// newState returns the state of a question about this call of p, to be
// answered before exp.
func newState(purpose string, p *identity.Principal, method, upstream, name, argsHash, policyVersion string, exp time.Time) requestState {
	return requestState{
		Purpose: purpose, Issuer: p.Issuer, User: p.User, Agent: p.Agent,
		Method: method, Upstream: upstream, Name: name, Args: argsHash,
		Policy: policyVersion, Expiry: exp.Unix(),
	}
}

// inputRequired answers req with an input_required result asking the
// client the one elicitation params under key, with st sealed as its
// requestState. The shape is InputRequiredResult of the 2026-07-28 schema:
// resultType, inputRequests (key -> an elicitation/create request) and
// requestState.
func (g *Gateway) inputRequired(req *jsonrpc.Request, key string, params map[string]any, st requestState) (*jsonrpc.Response, error) {
	token, err := g.states.seal(st)
	if err != nil {
		return nil, err
	}
	return resultResponse(req.ID, map[string]any{
		"resultType": "input_required",
		"inputRequests": map[string]any{
			key: map[string]any{"method": "elicitation/create", "params": params},
		},
		"requestState": token,
	}), nil
}

// retryFields are the parameters of a multi-round-trip retry. Mandate
// issues every state a stateless-era client holds (upstream legs are
// negotiated by Mandate itself), so they are Mandate's own and are not
// passed on.
var retryFields = []string{"requestState", "inputResponses"}

// stripRetryFields removes retryFields from params and reports whether it
// changed anything.
func stripRetryFields(params object) bool {
	changed := false
	for _, k := range retryFields {
		if _, ok := params[k]; ok {
			delete(params, k)
			changed = true
		}
	}
	return changed
}
