package load

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0..100) of xs by the nearest-rank
// method; xs is sorted in place.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	rank := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[min(max(rank, 0), len(xs)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Quantiles are a distribution's summary in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms,omitempty"`
	P99 float64 `json:"p99_ms,omitempty"`
	Max float64 `json:"max_ms"`
	N   int     `json:"samples"`
}

func summarize(xs []float64) Quantiles {
	if len(xs) == 0 {
		return Quantiles{}
	}
	q := Quantiles{N: len(xs)}
	q.P50 = percentile(xs, 50)
	q.P95 = percentile(xs, 95)
	q.P99 = percentile(xs, 99)
	q.Max = xs[len(xs)-1]
	return q
}
