package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySource supplies the public keys that sign one issuer's tokens. The set
// returned is shared: callers must not modify it.
type KeySource interface {
	Keys(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// KeyRefresher is a KeySource that can look again when a token names a key
// id it does not hold, which is how an issuer's key rotation is noticed.
// Refresh may return the current set without fetching when asked too often.
type KeyRefresher interface {
	KeySource
	Refresh(ctx context.Context) (*jose.JSONWebKeySet, error)
}

// Interface guards.
var (
	_ KeySource    = (*StaticKeys)(nil)
	_ KeyRefresher = (*RemoteJWKS)(nil)
)

// StaticKeys is a fixed key set: configured inline, or handed over by an
// in-process authorization server.
type StaticKeys struct {
	Set jose.JSONWebKeySet
}

// Keys returns the fixed set.
func (s *StaticKeys) Keys(context.Context) (*jose.JSONWebKeySet, error) {
	return &s.Set, nil
}

// Defaults and bounds of RemoteJWKS.
const (
	// DefaultMinRefresh is RemoteJWKS.MinRefresh's zero value: the least
	// time between two fetches, so that tokens naming random key ids cannot
	// turn Mandate into a load generator against the issuer.
	DefaultMinRefresh = 5 * time.Minute
	// DefaultMaxAge is RemoteJWKS.MaxAge's zero value.
	DefaultMaxAge = time.Hour
	// jwksTimeout bounds one fetch, whatever the caller's context says.
	jwksTimeout = 10 * time.Second
	// firstFetchRetry is the least time between fetch attempts while no
	// set has been fetched yet.
	firstFetchRetry = 10 * time.Second
	// maxJWKSBytes bounds one JWKS document; real ones are a few KiB.
	maxJWKSBytes = 1 << 20
)

// RemoteJWKS fetches an issuer's JSON Web Key Set from its jwks_uri and
// caches it. A token naming an unknown key id triggers at most one refetch
// per MinRefresh (key rotation); the set is also refetched once it is older
// than MaxAge, so a key the issuer withdrew stops verifying. A failed
// refetch keeps the last good set, so an issuer outage does not log
// everyone out; until a first fetch succeeds, verification is unavailable.
//
// A RemoteJWKS must not be copied after first use.
type RemoteJWKS struct {
	// URL is the issuer's jwks_uri.
	URL string
	// HTTPClient fetches URL. Nil means a client that follows no redirects
	// (the URL is used exactly as configured). Each fetch is bounded by a
	// 10 s timeout and a 1 MiB body either way.
	HTTPClient *http.Client
	// MinRefresh is the least time between two fetch attempts. Zero means
	// DefaultMinRefresh.
	MinRefresh time.Duration
	// MaxAge is how long a fetched set is used before it is fetched again.
	// Zero means DefaultMaxAge.
	MaxAge time.Duration

	fetchMu sync.Mutex // serializes fetches; guards tried
	cur     atomic.Pointer[jwksState]
	tried   time.Time        // last fetch attempt
	now     func() time.Time // tests set a fake clock
}

type jwksState struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

// Keys returns the cached set, fetching it first if there is none yet or
// it is older than MaxAge.
// A stale set is returned at once while another request refetches it.
func (r *RemoteJWKS) Keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	st := r.cur.Load()
	if st == nil {
		r.fetchMu.Lock()
	} else if r.clock().Sub(st.fetched) < r.maxAge() || !r.fetchMu.TryLock() {
		return st.set, nil
	}
	defer r.fetchMu.Unlock()
	return r.fetchLocked(ctx)
}

// Refresh fetches the set again unless the last attempt was less than
// MinRefresh ago, in which case it returns the cached set. A caller that
// finds a fetch in flight waits for its result.
func (r *RemoteJWKS) Refresh(ctx context.Context) (*jose.JSONWebKeySet, error) {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return r.fetchLocked(ctx)
}

// fetchLocked fetches the set unless a fetch was attempted within
// MinRefresh, and returns the freshest set it has. r.fetchMu is held.
func (r *RemoteJWKS) fetchLocked(ctx context.Context) (*jose.JSONWebKeySet, error) {
	now := r.clock()
	st := r.cur.Load()
	wait := r.minRefresh()
	if st == nil {
		// Without any set every request fails, so a failed first fetch
		// is retried sooner.
		wait = min(wait, firstFetchRetry)
	}
	if !r.tried.IsZero() && now.Sub(r.tried) < wait {
		if st == nil {
			return nil, fmt.Errorf("%w: no keys from %s yet", ErrUnavailable, r.URL)
		}
		return st.set, nil
	}
	r.tried = now
	set, err := r.get(ctx)
	if err != nil {
		if st != nil {
			return st.set, nil
		}
		return nil, fmt.Errorf("%w: fetch keys: %w", ErrUnavailable, err)
	}
	r.cur.Store(&jwksState{set: set, fetched: now})
	return set, nil
}

func (r *RemoteJWKS) get(ctx context.Context) (*jose.JSONWebKeySet, error) {
	// The fetch serves every request waiting on this issuer, so one
	// caller's cancellation must not fail it; the timeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", r.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", r.URL, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("GET %s: key set larger than %d bytes", r.URL, maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS parses a key set, skipping keys it cannot parse (an issuer may
// publish key types Mandate does not use) but failing when none is left.
func parseJWKS(body []byte) (*jose.JSONWebKeySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("parse key set: %w", err)
	}
	set := &jose.JSONWebKeySet{}
	for _, k := range raw.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(k); err != nil {
			continue
		}
		set.Keys = append(set.Keys, key)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("parse key set: no usable keys")
	}
	return set, nil
}

func (r *RemoteJWKS) client() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return noRedirectClient
}

var noRedirectClient = &http.Client{
	Timeout: jwksTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

func (r *RemoteJWKS) minRefresh() time.Duration {
	if r.MinRefresh > 0 {
		return r.MinRefresh
	}
	return DefaultMinRefresh
}

func (r *RemoteJWKS) maxAge() time.Duration {
	if r.MaxAge > 0 {
		return r.MaxAge
	}
	return DefaultMaxAge
}

func (r *RemoteJWKS) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}
