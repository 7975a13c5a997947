package authn

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/mandate-mcp/mandate/internal/identity"
)

// DefaultCacheSize is JWTOptions.CacheSize's zero value.
const DefaultCacheSize = 10_000

// tokenCache remembers verified tokens until they expire, so a client
// presenting the same token on every request pays for one signature check.
// It is keyed by the token's SHA-256, never the token itself, and holds
// principals no caller can reach: get and put copy.
type tokenCache struct {
	max int

	mu        sync.RWMutex
	m         map[[sha256.Size]byte]cacheEntry
	lastSweep time.Time
}

type cacheEntry struct {
	p     *identity.Principal
	until time.Time // the instant the token stops verifying (exp + skew)
}

func newTokenCache(size int) *tokenCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultCacheSize
	}
	return &tokenCache{max: size, m: make(map[[sha256.Size]byte]cacheEntry)}
}

// get returns a copy of the principal of a token verified before and not
// yet expired at now.
func (c *tokenCache) get(key [sha256.Size]byte, now time.Time) (*identity.Principal, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	return clonePrincipal(e.p), true
}

// put remembers a copy of p until until. When the cache is full it first
// drops expired entries (at most once a second), then arbitrary ones: a
// full cache costs speed, never correctness.
func (c *tokenCache) put(key [sha256.Size]byte, p *identity.Principal, until, now time.Time) {
	if c == nil || !now.Before(until) {
		return
	}
	e := cacheEntry{p: clonePrincipal(p), until: until}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		if now.Sub(c.lastSweep) >= time.Second {
			c.lastSweep = now
			for k, old := range c.m {
				if !now.Before(old.until) {
					delete(c.m, k)
				}
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

// len reports the number of entries, expired ones included.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// clonePrincipal returns a deep copy of p.
func clonePrincipal(p *identity.Principal) *identity.Principal {
	q := *p
	q.Groups = cloneStrings(p.Groups)
	q.Scopes = cloneStrings(p.Scopes)
	if p.Chain != nil {
		q.Chain = append([]identity.Actor(nil), p.Chain...)
	}
	return &q
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}
