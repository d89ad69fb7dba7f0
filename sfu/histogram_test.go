package sfu

import "testing"

func TestHistogramBuckets(t *testing.T) {
	for _, us := range []uint64{0, 1, 3, 4, 5, 7, 8, 9, 10, 100, 1000, 1023, 1024, 4095, 4096, 5000, 8191, 1e6, 7e6} {
		i := bucketOf(us)
		lo := 0.0
		if i > 0 {
			lo = BucketUpperMicros(i - 1)
		}
		if up := BucketUpperMicros(i); float64(us) < lo || (up != 0 && float64(us) >= up) {
			t.Errorf("%d µs in bucket %d [%v, %v)", us, i, lo, up)
		}
		if up := BucketUpperMicros(i); up != 0 && i >= 4 && (up-lo)/lo > 0.25+1e-9 {
			t.Errorf("bucket %d [%v, %v) wider than 25%%", i, lo, up)
		}
	}
	if bucketOf(1<<40) != HistogramBuckets-1 || BucketUpperMicros(HistogramBuckets-1) != 0 {
		t.Error("overflow bucket")
	}
	var h Histogram
	h.Observe(4_500_000) // 4.5 ms
	c, sum := h.Snapshot()
	if c[bucketOf(4500)] != 1 || sum != 4_500_000 {
		t.Error("observe")
	}
}
