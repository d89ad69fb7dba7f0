package sfu

import (
	"math/bits"
	"sync/atomic"
)

// HistogramBuckets is how many buckets a Histogram has: durations below
// 4 µs by the microsecond, then four buckets per doubling (log-linear, so
// every bucket is within 25% of its neighbour), the last holding anything
// from about 8 s up.
const HistogramBuckets = 96

// Histogram counts durations in log-linear microsecond buckets with atomic
// counters: one add per observation, safe from any goroutine.
type Histogram struct {
	buckets [HistogramBuckets]atomic.Uint64
	sumNs   atomic.Int64
}

// bucketOf returns the bucket of a duration in microseconds.
func bucketOf(us uint64) int {
	if us < 4 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us is in [2^e, 2^(e+1))
	sub := int(us>>(e-2)) & 3
	return min(4+(e-2)*4+sub, HistogramBuckets-1)
}

// BucketUpperMicros is bucket i's exclusive upper bound in microseconds,
// or 0 for the last bucket (+Inf).
func BucketUpperMicros(i int) float64 {
	switch {
	case i >= HistogramBuckets-1:
		return 0
	case i < 4:
		return float64(i + 1)
	}
	e, sub := (i-4)/4+2, (i-4)%4
	return float64(uint64(4+sub+1) << (e - 2))
}

// Observe records a duration in nanoseconds.
func (h *Histogram) Observe(ns int64) {
	h.buckets[bucketOf(uint64(max(ns/1000, 0)))].Add(1)
	h.sumNs.Add(ns)
}

// Snapshot returns each bucket's count and the sum of all observations.
func (h *Histogram) Snapshot() (counts [HistogramBuckets]uint64, sumNs int64) {
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
	}
	return counts, h.sumNs.Load()
}
