package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkBrowserLLHLSLatency measures LL-HLS latency in hls.js (headless
// Chromium, the watch page with ?transport=hls) over 5 runs, each a fresh
// node and a pion publisher of H.264 simulcast sending in real time: every
// 100 ms for 20 s, the wall clock less the program date of the frame on
// screen (EXT-X-PROGRAM-DATE-TIME is the stream clock, so this is the time
// from the publisher's send to the viewer's screen; the publisher's own
// capture and encode, and the viewer's decode after its playhead, are not
// in it). Reports p50 and p95 over all samples and the runs in which the
// video stalled (a "waiting" event after it started playing).
//
//	go test -run '^$' -bench BrowserLLHLSLatency -benchtime 1x -timeout 20m ./cmd/glint/
func BenchmarkBrowserLLHLSLatency(b *testing.B) {
	ffmpeg(b)
	const runs = 5
	var all []float64
	stalledRuns := 0
	for run := range runs {
		// A sub-benchmark of its own, so its browser and node are gone
		// before the next run starts.
		b.Run(fmt.Sprint("run", run+1), func(b *testing.B) {
			lags, stalls := latencyRun(b)
			b.ReportMetric(pct(lags, 50), "p50-ms")
			b.ReportMetric(pct(lags, 95), "p95-ms")
			b.ReportMetric(float64(stalls), "stalls")
			all = append(all, lags...)
			if stalls > 0 {
				stalledRuns++
			}
		})
	}
	b.Logf("%d runs, %d samples: p50 %.0f ms, p95 %.0f ms; %d runs stalled", runs, len(all), pct(all, 50), pct(all, 95), stalledRuns)
}

func latencyRun(b *testing.B) (lags []float64, stalls int) {
	const key = "hls-latency-key-123456"
	r := launch(b, "--stream-key", "demo="+key)
	defer func() { _ = r.Stop() }()
	pub := publishH264Clip(b, r.URL, key)
	defer func() { _ = pub.Stop() }()
	root := browser(b)
	page := openPage(root, b, r.URL+"/watch/demo?transport=hls", "playing LL-HLS",
		`window.glintWatch && glintWatch.transport === "hls" && glintWatch.playhead() > 0 && document.getElementById("video").currentTime > 1`)
	_, body := get(b, r.URL+"/api/streams/demo")
	var info struct {
		HLS struct {
			Start time.Time `json:"start"`
		} `json:"hls"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.HLS.Start.IsZero() {
		b.Fatalf("no HLS start in %s", body)
	}
	var ok bool
	page(`(() => { const v = document.getElementById("video"); window.stalls = 0;
		v.addEventListener("waiting", () => window.stalls++); return true })()`, &ok)
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		var playhead float64
		page(`glintWatch.playhead()`, &playhead)
		lags = append(lags, float64(time.Since(info.HLS.Start).Milliseconds())-playhead)
		time.Sleep(100 * time.Millisecond)
	}
	page(`window.stalls`, &stalls)
	return lags, stalls
}

// pct returns the p-th percentile of xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}
