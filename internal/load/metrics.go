package load

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// histogram is a Prometheus histogram read from a /metrics page: cumulative
// counts by upper bound (seconds).
type histogram map[float64]float64

// scrapeHistogram reads one histogram's buckets from a Prometheus text page.
func scrapeHistogram(ctx context.Context, hc *http.Client, url, name string) (histogram, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	h := histogram{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := name + `_bucket{le="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		upper := math.Inf(1)
		if le != "+Inf" {
			if upper, err = strconv.ParseFloat(le, 64); err != nil {
				continue
			}
		}
		if n, err := strconv.ParseFloat(strings.Fields(count)[0], 64); err == nil {
			h[upper] = n
		}
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("%s has no %s histogram", url, name)
	}
	return h, sc.Err()
}

// between summarizes the observations made between two scrapes: quantiles
// are the upper bounds of the buckets they fall in, in milliseconds.
func between(before, after histogram) Quantiles {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return Quantiles{}
	}
	q := Quantiles{N: int(total)}
	at := func(p float64) float64 {
		for _, b := range bounds {
			if after[b]-before[b] >= p*total {
				return b * 1000
			}
		}
		return math.Inf(1)
	}
	q.P50, q.P95, q.P99, q.Max = at(0.50), at(0.95), at(0.99), at(1)
	return q
}
