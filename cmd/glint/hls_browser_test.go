package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/load"
)

// Overflow: with WebRTC full for the stream (--max-viewers-per-stream 1,
// taken by another viewer), WHEP answers 503 with a Link to the LL-HLS
// playlist and the watch page plays it with the vendored hls.js, says so,
// and its chat clock follows the HLS playhead. The latency from the
// stream's clock to the playhead is logged.
func TestBrowserWatchOverflowsToLLHLS(t *testing.T) {
	ffmpeg(t)
	const key = "hls-browser-key-123456"
	base, _ := startServe(t, "--stream-key", "demo="+key, "--max-viewers-per-stream", "1")
	clip, err := load.SimulcastClip(context.Background(), "ffmpeg", [3]int{150_000, 400_000, 900_000}, 15)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Publish(context.Background(), client.PublisherConfig{Endpoint: base + "/whip/demo", Token: key,
		Codec: "H264", Simulcast: true, Audio: true, FPS: 15, Video: clip, Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := client.View(ctx, client.ViewerConfig{Endpoint: base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Close(context.Background()) }()

	page := browser(t)
	if err := chromedp.Do(page, chromedp.Navigate(base+"/watch/demo")); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			state, _ := chromedp.Run(page, chromedp.Evaluate[string](`JSON.stringify({t: glintWatch.transport, ct: document.getElementById('video').currentTime, rs: document.getElementById('video').readyState, err: String(document.getElementById('video').error && document.getElementById('video').error.message), hls: typeof Hls, src: document.getElementById('video').currentSrc})`))
			t.Logf("page state: %s", state)
		}
	}()
	poll(page, t, 30*time.Second, "the page to fall back to LL-HLS and play 2 s",
		`window.glintWatch && glintWatch.transport === 'hls' && document.getElementById('video').currentTime > 2`)
	poll(page, t, 10*time.Second, "the transport shown", `document.getElementById('transport').textContent === 'LL-HLS'`)
	poll(page, t, 10*time.Second, "a chat clock on the HLS playhead", `typeof glintWatch.playhead() === 'number' && glintWatch.playhead() > 0`)
	playhead, err := chromedp.Run(page, chromedp.Evaluate[float64](`glintWatch.playhead()`))
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, base+"/api/streams/demo")
	var info struct {
		LiveSeconds float64 `json:"live_seconds"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	behind := info.LiveSeconds*1000 - playhead
	t.Logf("LL-HLS playhead %.0f ms into the stream, %.0f ms behind its clock", playhead, behind)
	if behind < 0 || behind > 10_000 {
		t.Fatalf("the HLS playhead is %.0f ms behind the stream clock", behind)
	}
}
