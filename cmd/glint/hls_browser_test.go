package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glintlive/glint/internal/client"
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
	publishH264Clip(t, base, key)
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

// Chat follows the HLS playhead: a message posted at the WebRTC viewer's
// moment shows on the LL-HLS viewer (chat over the WebSocket) only when its
// own playhead, further behind, gets there.
func TestBrowserChatFollowsTheHLSPlayhead(t *testing.T) {
	ffmpeg(t)
	const key = "hls-chat-key-12345678"
	base, _ := startServe(t, "--stream-key", "demo="+key)
	publishH264Clip(t, base, key)
	root := browser(t)
	rtc := openPage(root, t, base+"/watch/demo", "playing with a stream clock", `window.glintWatch.playhead() !== null && window.glintChat.transport && window.glintChat.transport.kind === "datachannel"`)
	hls := openPage(root, t, base+"/watch/demo?transport=hls", "playing LL-HLS with a stream clock", `window.glintWatch.transport === "hls" && window.glintWatch.playhead() > 500 && document.getElementById("video").currentTime > 1 && window.glintChat.transport && window.glintChat.transport.kind === "websocket"`)
	var a, b float64
	rtc(`window.glintWatch.playhead()`, &a)
	hls(`window.glintWatch.playhead()`, &b)
	t.Logf("playheads: WebRTC %.0f ms, LL-HLS %.0f ms (%.0f ms behind)", a, b, a-b)
	if a-b < 300 {
		t.Fatalf("the HLS viewer is only %.0f ms behind the WebRTC one", a-b)
	}

	rtc(`window.glintWatch.playhead()`, &a)
	st := int64(a)
	seq := postChatAt(t, base, st, "now!")
	shown := func(run func(string, any)) *shownAt { return shownOn(run, seq) }
	var sa, sb *shownAt
	deadline := time.Now().Add(10 * time.Second)
	for (sa == nil || sb == nil) && time.Now().Before(deadline) {
		if sa == nil {
			sa = shown(rtc)
		}
		if sb == nil {
			sb = shown(hls)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sa == nil || sb == nil {
		t.Fatalf("message shown: WebRTC viewer %v, HLS viewer %v", sa, sb)
	}
	if sb.Playhead == nil || *sb.Playhead < float64(st) {
		t.Fatalf("the HLS viewer showed a message from %d ms at playhead %v", st, sb.Playhead)
	}
	gap := sb.At - sa.At
	t.Logf("posted at stream time %d ms: shown on the HLS viewer %.0f ms after the WebRTC one (playheads %.0f ms apart)", st, gap, a-b)
	if gap < (a-b)/3 {
		t.Fatalf("the HLS viewer showed the message %.0f ms after the WebRTC one; they are %.0f ms apart", gap, a-b)
	}
}

// The replay page of a recording (/vod/{stream}/{start}) plays the VOD and
// shows each chat message when its playhead reaches the stream time the
// message was written at, not before.
func TestBrowserReplayShowsChatAtStreamTime(t *testing.T) {
	ffmpeg(t)
	const key = "vod-replay-key-1234567"
	base, _ := startServe(t, "--stream-key", "demo="+key)
	pub := publishH264Clip(t, base, key)
	streamMS := func() int64 {
		_, body := get(t, base+"/api/streams/demo")
		var info struct {
			LiveSeconds float64 `json:"live_seconds"`
		}
		if err := json.Unmarshal([]byte(body), &info); err != nil {
			t.Fatal(err)
		}
		return int64(info.LiveSeconds * 1000)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get(t, base+"/hls/demo/index.m3u8"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream was never packaged")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	st1 := streamMS()
	seq1 := postChatAt(t, base, st1, "first")
	time.Sleep(2 * time.Second)
	st2 := streamMS()
	seq2 := postChatAt(t, base, st2, "second")
	time.Sleep(1500 * time.Millisecond)
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var id string
	for id == "" {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("no ended recording")
		}
		time.Sleep(200 * time.Millisecond)
		_, body := get(t, base+"/api/vods")
		var list struct {
			VODs []struct {
				ID   string
				Live bool
			}
		}
		if json.Unmarshal([]byte(body), &list) == nil && len(list.VODs) > 0 && !list.VODs[0].Live {
			id = list.VODs[0].ID
		}
	}

	// The recording starts at its first segment, after the stream's start
	// and before the first message.
	_, body := get(t, base+"/api/vods/"+id)
	var detail struct {
		StreamStartMS int64 `json:"stream_start_ms"`
		Chapters      []struct{ Title string }
	}
	if err := json.Unmarshal([]byte(body), &detail); err != nil || detail.StreamStartMS < 0 || detail.StreamStartMS >= st1 ||
		len(detail.Chapters) == 0 || detail.Chapters[0].Title != "Start" {
		t.Fatalf("GET /api/vods/%s: %s", id, body)
	}
	if code, _ := get(t, base+"/api/vods/demo/nothing"); code != 404 {
		t.Fatalf("an unknown recording: %d", code)
	}

	page := openPage(browser(t), t, base+"/vod/"+id, "replaying with the chat loaded",
		`window.glintVOD && glintVOD.ready && glintVOD.events >= 2 && glintVOD.playhead() !== null`)
	var s1, s2 *shownAt
	end := time.Now().Add(20 * time.Second)
	for (s1 == nil || s2 == nil) && time.Now().Before(end) {
		if s1 == nil {
			s1 = shownOn(page, seq1)
		}
		if s2 == nil {
			s2 = shownOn(page, seq2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s1 == nil || s2 == nil || s1.Playhead == nil || s2.Playhead == nil {
		t.Fatalf("shown on the replay: %+v %+v", s1, s2)
	}
	t.Logf("written at stream time %d and %d ms; shown at playheads %.0f and %.0f ms, %.0f ms apart on the wall",
		st1, st2, *s1.Playhead, *s2.Playhead, s2.At-s1.At)
	for _, c := range []struct {
		st int64
		s  *shownAt
	}{{st1, s1}, {st2, s2}} {
		if *c.s.Playhead < float64(c.st) || *c.s.Playhead > float64(c.st)+500 {
			t.Errorf("a message of stream time %d ms was shown at playhead %.0f ms", c.st, *c.s.Playhead)
		}
	}
	if gap := s2.At - s1.At; gap < float64(st2-st1)*0.7 {
		t.Errorf("messages %d ms apart in the stream were shown %.0f ms apart", st2-st1, gap)
	}
}
