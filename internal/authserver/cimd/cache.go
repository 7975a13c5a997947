package cimd

import (
	"sync"
	"time"
)

// maxCacheEntries bounds the cache: client ids are chosen by whoever sends
// an authorization request, so an unbounded map would be theirs to fill.
const maxCacheEntries = 1024

// cache keeps fetched documents until their time-to-live runs out. Entries
// are never handed out: get and Fetch copy.
type cache struct {
	mu sync.Mutex
	m  map[string]cacheEntry
}

type cacheEntry struct {
	doc   *Document
	until time.Time
}

func newCache() *cache {
	return &cache{m: make(map[string]cacheEntry)}
}

func (c *cache) get(clientID string, now time.Time) (*Document, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[clientID]
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		delete(c.m, clientID)
		return nil, false
	}
	return e.doc, true
}

// put remembers doc until until. A full cache first drops expired entries,
// then arbitrary ones: a full cache costs a fetch, never correctness.
func (c *cache) put(clientID string, doc *Document, now, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[clientID]; !ok && len(c.m) >= maxCacheEntries {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxCacheEntries {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[clientID] = cacheEntry{doc: doc.clone(), until: until}
}
