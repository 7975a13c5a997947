// Package benchstat reports the latency percentiles the project's
// performance targets are stated in (a median and a 99th percentile),
// which a Go benchmark's ns/op, a mean, does not show. It is used by
// benchmarks only.
package benchstat

import (
	"slices"
	"testing"
	"time"
)

// Latencies collects the duration of each benchmark operation.
type Latencies []time.Duration

// Add records one operation.
func (l *Latencies) Add(d time.Duration) { *l = append(*l, d) }

// Report adds p50-us and p99-us to the benchmark's results.
func (l Latencies) Report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	s := slices.Clone(l)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	b.ReportMetric(float64(at(0.50))/1e3, "p50-us")
	b.ReportMetric(float64(at(0.99))/1e3, "p99-us")
}
