package main

import (
	"slices"
	"time"
)

// latencies summarises every latency sample of a run. The percentiles are
// exact (nearest rank over the sorted samples), not read from histogram
// buckets, so that a difference of a few tens of microseconds between two
// runs is real and not an artefact of bucket boundaries.
type latencies struct {
	N                         int
	Mean, P50, P99, P999, Max time.Duration
}

// summarise sorts samples in place and returns their summary; the zero value
// if there are none.
func summarise(samples []time.Duration) latencies {
	if len(samples) == 0 {
		return latencies{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return latencies{
		N:    len(samples),
		Mean: sum / time.Duration(len(samples)),
		P50:  percentile(samples, 500),
		P99:  percentile(samples, 990),
		P999: percentile(samples, 999),
		Max:  samples[len(samples)-1],
	}
}

// percentile returns the nearest-rank quantile of sorted, which must not be
// empty: the smallest sample such that at least perMille/1000 of all samples
// are less than or equal to it. Integer arithmetic keeps the rank exact
// (0.99*100 is not 99 in floating point).
func percentile(sorted []time.Duration, perMille int) time.Duration {
	n := len(sorted)
	rank := (perMille*n + 999) / 1000
	return sorted[min(max(rank, 1), n)-1]
}

// ms converts d to fractional milliseconds for printing.
func ms(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
