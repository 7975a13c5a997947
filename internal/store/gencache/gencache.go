// Package gencache keeps what was read from a store for as long as the
// store's change generation (store.ChangeStore) stays the same. Every
// lookup reads the generation first, so a change written by any process
// sharing the database, such as a revocation or a suspension, empties the
// cache for the very next lookup; what it saves is reading and decoding
// the records themselves.
package gencache

import (
	"context"
	"sync"

	"github.com/mandate-mcp/mandate/internal/store"
)

// Cache maps keys to values read from a store at one generation. It holds
// at most its size of entries; past that a new entry evicts an arbitrary
// one, which costs a miss rather than memory without bound. Values are
// shared between callers, so they must not be modified.
type Cache[K comparable, V any] struct {
	changes store.ChangeStore
	size    int

	mu  sync.RWMutex
	gen uint64 // the generation every entry was read at
	m   map[K]V
}

// New returns an empty cache of at most size entries, valid while changes
// reports the generation they were read at. A size below one caches
// nothing.
func New[K comparable, V any](changes store.ChangeStore, size int) *Cache[K, V] {
	return &Cache[K, V]{changes: changes, size: size, m: make(map[K]V)}
}

// Get returns the value of k, calling load for it unless it was cached at
// the store's current generation. The generation is read before load runs,
// so a value is never filed under a generation older than what it was read
// from. When the generation cannot be read, Get calls load and caches
// nothing: the cache cannot tell whether what it holds is current. An error
// from load is returned as it is and not cached.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	g, err := c.changes.Generation(ctx)
	if err != nil {
		return load(ctx)
	}
	c.mu.RLock()
	v, ok := c.m[k]
	// An entry read at a later generation than g is newer than what g
	// promises, so it may be served too.
	ok = ok && c.gen >= g
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err = load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case g > c.gen:
		clear(c.m)
		c.gen = g
	case g < c.gen:
		// A newer generation was cached while load ran; v may be older
		// than it, so it is returned but not kept.
		return v, nil
	}
	if len(c.m) >= c.size {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	if c.size > 0 {
		c.m[k] = v
	}
	return v, nil
}

// Update replaces the cached value of k, if there is one, by f of it. It is
// for changes the generation deliberately ignores, which the caller learnt
// of first-hand, such as the use count a consumed mandate has left.
func (c *Cache[K, V]) Update(k K, f func(V) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		c.m[k] = f(v)
	}
}

// Forget drops every entry.
func (c *Cache[K, V]) Forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
