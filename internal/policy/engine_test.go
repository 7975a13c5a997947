package policy

import (
	"errors"
	"sync"
	"testing"
)

func TestReloadKeepsOldSetOnProblems(t *testing.T) {
	e := NewEngine(nil)
	good := map[string][]byte{"a.cedar": []byte(`permit (principal, action == Action::"tools/call", resource == Tool::"a/b");`)}
	if problems, err := e.Reload(good); err != nil {
		t.Fatalf("Reload(good): %v %v", problems, err)
	}
	v := e.Snapshot().Version()
	if d := e.Decide(call(alice, "a", "b", nil)); d.Effect != Allow {
		t.Fatalf("after good reload: %v", d.Effect)
	}

	bad := map[string][]byte{
		"a.cedar": []byte(`permit (principal, action, resource);`),
		"b.cedar": []byte(`permit (principal, action, resource) when { context.nope };`),
	}
	problems, err := e.Reload(bad)
	if !errors.Is(err, ErrInvalidPolicy) || len(problems) == 0 || problems[0].File != "b.cedar" || problems[0].Line != 1 {
		t.Fatalf("Reload(bad) = %v, %v; want problems in b.cedar and ErrInvalidPolicy", problems, err)
	}
	if got := e.Snapshot().Version(); got != v {
		t.Fatalf("version after bad reload = %s, want the old %s", got, v)
	}
	if d := e.Decide(call(alice, "x", "y", nil)); d.Effect != Deny {
		t.Fatalf("bad reload widened the set: %v", d.Effect)
	}
	if d := e.Decide(call(alice, "a", "b", nil)); d.Effect != Allow {
		t.Fatalf("bad reload narrowed the set: %v", d.Effect)
	}
}

func TestSwapIsAtomicUnderLoad(t *testing.T) {
	allow := mustCompile(t, map[string]string{"a.cedar": `@id("allow") permit (principal, action, resource);`})
	deny := mustCompile(t, map[string]string{"d.cedar": `@id("deny") forbid (principal, action, resource);`})
	e := NewEngine(allow)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := call(alice, "a", "b", nil)
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := e.Decide(r)
				ok := (d.Effect == Allow && d.Version == allow.Version()) || (d.Effect == Deny && d.Version == deny.Version())
				if !ok {
					t.Errorf("decision mixes snapshots: %v from %s", d.Effect, d.Version)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if i%2 == 0 {
			e.Swap(deny)
		} else {
			e.Swap(allow)
		}
	}
	close(stop)
	wg.Wait()
	if prev := e.Swap(nil); prev != allow {
		t.Errorf("Swap returned %v, want the last snapshot", prev)
	}
}
