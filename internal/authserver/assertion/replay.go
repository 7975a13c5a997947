package assertion

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultReplayEntries is NewMemoryReplayCache's size when given zero.
const DefaultReplayEntries = 100_000

// MemoryReplayCache is a ReplayCache for one process: ids are remembered
// until their assertion expires. When full of unexpired ids it refuses new
// ones rather than forgetting old ones, because forgetting would let an
// assertion be used twice.
type MemoryReplayCache struct {
	max int
	now func() time.Time // tests set a fake clock

	mu        sync.Mutex
	seen      map[string]time.Time
	lastSweep time.Time
}

var _ ReplayCache = (*MemoryReplayCache)(nil)

// errReplayFull is returned when the cache holds max unexpired ids.
var errReplayFull = errors.New("replay cache full")

// NewMemoryReplayCache returns an empty cache holding at most max ids. Zero
// means DefaultReplayEntries.
func NewMemoryReplayCache(max int) *MemoryReplayCache {
	if max <= 0 {
		max = DefaultReplayEntries
	}
	return &MemoryReplayCache{max: max, now: time.Now, seen: make(map[string]time.Time)}
}

// Use records key until exp, or returns ErrReplay if it is recorded already.
func (c *MemoryReplayCache) Use(_ context.Context, key string, exp time.Time) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[key]; ok && now.Before(until) {
		return ErrReplay
	}
	if len(c.seen) >= c.max || now.Sub(c.lastSweep) > time.Minute {
		c.lastSweep = now
		for k, until := range c.seen {
			if !now.Before(until) {
				delete(c.seen, k)
			}
		}
	}
	if len(c.seen) >= c.max {
		return errReplayFull
	}
	c.seen[key] = exp
	return nil
}
