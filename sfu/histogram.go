package sfu

import (
	"math/bits"
	"sync/atomic"
)

// HistogramBuckets is how many power-of-two microsecond buckets a Histogram
// has: bucket 0 holds durations under 1 µs, bucket i those under 2^i µs,
// the last everything longer.
const HistogramBuckets = 24

// Histogram counts durations in power-of-two microsecond buckets with
// atomic counters: one add per observation, safe from any goroutine.
type Histogram struct {
	buckets [HistogramBuckets]atomic.Uint64
	sumNs   atomic.Int64
}

// Observe records a duration in nanoseconds.
func (h *Histogram) Observe(ns int64) {
	us := max(ns/1000, 0)
	i := min(bits.Len64(uint64(us)), HistogramBuckets-1) //nolint:gosec // non-negative
	h.buckets[i].Add(1)
	h.sumNs.Add(ns)
}

// Snapshot returns each bucket's count and the sum of all observations.
func (h *Histogram) Snapshot() (counts [HistogramBuckets]uint64, sumNs int64) {
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
	}
	return counts, h.sumNs.Load()
}

// BucketUpperMicros is bucket i's upper bound in microseconds.
func BucketUpperMicros(i int) float64 {
	if i >= HistogramBuckets-1 {
		return 0 // +Inf
	}
	return float64(uint64(1) << i)
}
