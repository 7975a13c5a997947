package gencache_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mandate-mcp/mandate/internal/store/gencache"
)

// changes is a store.ChangeStore whose generation the test sets.
type changes struct {
	gen uint64
	err error
}

func (c *changes) Generation(context.Context) (uint64, error) { return c.gen, c.err }

// loader counts its loads and returns the next value it is given.
type loader struct {
	n     int
	value string
	err   error
}

func (l *loader) load(context.Context) (string, error) {
	l.n++
	return l.value, l.err
}

func get(t *testing.T, c *gencache.Cache[string, string], k string, l *loader) string {
	t.Helper()
	v, err := c.Get(t.Context(), k, l.load)
	if err != nil {
		t.Fatalf("Get(%s): %v", k, err)
	}
	return v
}

func TestCachedWhileTheGenerationStands(t *testing.T) {
	ch := &changes{gen: 7}
	c := gencache.New[string, string](ch, 10)
	l := &loader{value: "v1"}
	for range 3 {
		if v := get(t, c, "k", l); v != "v1" {
			t.Fatalf("Get = %q, want v1", v)
		}
	}
	if l.n != 1 {
		t.Errorf("loaded %d times at one generation, want once", l.n)
	}
	ch.gen = 8
	l.value = "v2"
	if v := get(t, c, "k", l); v != "v2" || l.n != 2 {
		t.Errorf("after a change Get = %q with %d loads, want v2 with 2", v, l.n)
	}
}

// TestUnreadableGenerationCachesNothing guards the fail-safe: a cache that
// cannot tell whether it is current reads through and keeps nothing.
func TestUnreadableGenerationCachesNothing(t *testing.T) {
	ch := &changes{gen: 1}
	c := gencache.New[string, string](ch, 10)
	l := &loader{value: "old"}
	get(t, c, "k", l)
	ch.err = errors.New("database unreachable")
	l.value = "new"
	for range 2 {
		if v := get(t, c, "k", l); v != "new" {
			t.Errorf("Get with an unreadable generation = %q, want a fresh read", v)
		}
	}
	if l.n != 3 {
		t.Errorf("loaded %d times, want every time the generation was unreadable", l.n)
	}
}

func TestLoadErrorsAreNotCached(t *testing.T) {
	c := gencache.New[string, string](&changes{gen: 1}, 10)
	boom := errors.New("boom")
	l := &loader{err: boom}
	if _, err := c.Get(t.Context(), "k", l.load); !errors.Is(err, boom) {
		t.Fatalf("Get error = %v, want the load's", err)
	}
	l.err, l.value = nil, "v"
	if v := get(t, c, "k", l); v != "v" || l.n != 2 {
		t.Errorf("Get after a failed load = %q with %d loads, want a second load", v, l.n)
	}
}

// TestOlderGenerationIsNotKept: a value read at a generation older than
// what the cache already holds is served to its reader but not kept.
func TestOlderGenerationIsNotKept(t *testing.T) {
	ch := &changes{gen: 5}
	c := gencache.New[string, string](ch, 10)
	get(t, c, "a", &loader{value: "a5"})
	ch.gen = 4
	l := &loader{value: "b4"}
	get(t, c, "b", l)
	ch.gen = 5
	get(t, c, "b", l)
	if l.n != 2 {
		t.Errorf("a value read at an older generation was kept")
	}
	// An entry read at a later generation serves a reader at an earlier
	// one: it is newer than that reader asked for.
	ch.gen = 4
	la := &loader{value: "a4"}
	if v := get(t, c, "a", la); v != "a5" || la.n != 0 {
		t.Errorf("Get at an earlier generation = %q with %d loads, want the cached a5", v, la.n)
	}
}

func TestSizeIsBounded(t *testing.T) {
	c := gencache.New[string, string](&changes{gen: 1}, 2)
	l := &loader{value: "v"}
	for _, k := range []string{"a", "b", "c", "a", "b", "c"} {
		get(t, c, k, l)
	}
	// Three keys in a cache of two: at least one miss after the first
	// round, and never all three hits.
	if l.n < 4 {
		t.Errorf("%d loads for 3 keys in a cache of 2, want at least 4", l.n)
	}
	none := gencache.New[string, string](&changes{gen: 1}, 0)
	l = &loader{value: "v"}
	get(t, none, "a", l)
	get(t, none, "a", l)
	if l.n != 2 {
		t.Errorf("a cache of size 0 kept a value")
	}
}

func TestUpdateAndForget(t *testing.T) {
	c := gencache.New[string, string](&changes{gen: 1}, 10)
	l := &loader{value: "v"}
	get(t, c, "k", l)
	c.Update("k", func(v string) string { return v + "+" })
	c.Update("absent", func(string) string { t.Error("Update called f for an absent key"); return "" })
	if v := get(t, c, "k", l); v != "v+" || l.n != 1 {
		t.Errorf("Get after Update = %q with %d loads, want v+ from the cache", v, l.n)
	}
	c.Forget()
	if v := get(t, c, "k", l); v != "v" || l.n != 2 {
		t.Errorf("Get after Forget = %q with %d loads, want a fresh read", v, l.n)
	}
}
