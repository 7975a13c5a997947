package cli

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// gcHeadroom is the garbage Mandate lets accumulate between collections.
// Its garbage is per message and its live heap small, so a generous fixed
// headroom cuts the collector's CPU on the forwarding path by about a third;
// a fixed headroom (rather than a fixed GOGC) keeps memory per idle session
// flat when thousands of sessions make the live heap large.
const gcHeadroom = 48 << 20

// tuneGC adjusts GOGC every 100 ms so that the heap goal is the live heap
// plus gcHeadroom, between GOGC=100 (the runtime's default) and GOGC=400.
// It returns when ctx ends. Operators who set GOGC themselves are not
// overridden (the caller checks).
func tuneGC(ctx context.Context) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	apply := func() {
		metrics.Read(sample)
		live := int64(1 << 20)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = max(live, int64(sample[0].Value.Uint64()))
		}
		debug.SetGCPercent(int(min(400, max(100, 100*gcHeadroom/live))))
	}
	apply()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			apply()
		}
	}
}
