package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/glintlive/glint/internal/client"
)

// liveLayer is what /live reports of one of its encodings.
type liveLayer struct {
	Bitrate float64 `json:"bitrate"`
	FPS     float64 `json:"fps"`
}

// A Chromium publisher on /live with simulcast and one viewer pinned to
// the low layer stops encoding the top two (the node tells it over the
// glint data channel), and starts the top one again when the viewer
// wants it.
func TestBrowserUnwatchedLayersAreNotEncoded(t *testing.T) {
	const key = "browser-pause-key-1234"
	base, out := startServe(t, "--stream-key", "demo="+key, "--hls-off", "--log-level", "info")
	defer func() {
		if t.Failed() {
			t.Logf("node log:\n%s", out.String())
		}
	}()
	live := browser(t)
	if err := chromedp.Do(live,
		chromedp.Navigate(base+"/live?stream=demo&codec=VP8&quality=480"),
		chromedp.SetValue("#key", key),
		chromedp.Click("#start"),
	); err != nil {
		t.Fatal(err)
	}
	poll(live, t, 15*time.Second, "the publisher connected", `window.glintLive.state === "connected"`)
	layers := func() map[string]liveLayer {
		t.Helper()
		raw, err := chromedp.Run(live, chromedp.Evaluate[string](`JSON.stringify(window.glintLive.layers)`))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]liveLayer{}
		_ = json.Unmarshal([]byte(raw), &out)
		return out
	}
	// Nobody watches: all but the lowest layer stop (h is not even sent
	// until Chromium's estimate ramps up; m is).
	poll(live, t, 10*time.Second, "the page told to pause m", `window.glintLive.paused.includes("m")`)

	time.Sleep(3 * time.Second) // two stats windows with m stopped
	if ls := layers(); ls["m"].Bitrate > 10_000 || ls["l"].Bitrate < 20_000 {
		t.Fatalf("with nobody watching m the page sends %+v", ls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, err := client.View(ctx, client.ViewerConfig{Endpoint: base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = v.Close(context.Background()) }()
	pin := func(body string) {
		t.Helper()
		u := ""
		for _, l := range v.Resource.Links {
			if strings.Contains(l, `rel="urn:ietf:params:whep:ext:core:layer"`) {
				u = l[strings.Index(l, "<")+1 : strings.Index(l, ">")]
			}
		}
		abs, err := v.Resource.Resolve(u)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(abs, "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("layer selection %s: %v %v", body, resp, err)
		}
		_ = resp.Body.Close()
	}
	// A viewer wants m: it is encoded again.
	pin(`{"encodingId":"m"}`)
	poll(live, t, 10*time.Second, "m asked back", `!window.glintLive.paused.includes("m")`)
	poll(live, t, 20*time.Second, "m sending", `(window.glintLive.layers.m || {}).bitrate > 50000`)
	sending := layers()
	// The viewer goes down to l: m stops again, and what the page sends
	// falls with it.
	pin(`{"encodingId":"l"}`)
	poll(live, t, 10*time.Second, "the page told to pause m again", `window.glintLive.paused.includes("m")`)
	time.Sleep(3 * time.Second)
	paused := layers()
	if paused["m"].Bitrate > 10_000 || paused["l"].Bitrate < 20_000 {
		t.Fatalf("with only l watched the page sends %+v", paused)
	}
	total := func(ls map[string]liveLayer) float64 { return ls["l"].Bitrate + ls["m"].Bitrate + ls["h"].Bitrate }
	t.Logf("the page's video uplink: %.0f kbit/s with m watched, %.0f kbit/s with only l", total(sending)/1000, total(paused)/1000)
	t.Logf("layers with only l watched: %+v", layers())
}

// The go-live page looks after the phone: a battery at 15 % and not
// charging (a stand-in for the Battery Status API, which headless
// Chromium does not feed) steps the top layer down and says why; plugged
// in, the layer is restored; at 8 % the streamer is told to cut the
// settings.
func TestBrowserLiveStepsDownOnALowBattery(t *testing.T) {
	const key = "browser-battery-key-12"
	base, _ := startServe(t, "--stream-key", "demo="+key, "--hls-off")
	live := browser(t)
	battery := `(() => {
		const b = new EventTarget();
		b.level = 0.9; b.charging = false;
		window.__battery = (level, charging) => { b.level = level; b.charging = charging; b.dispatchEvent(new Event('levelchange')); };
		navigator.getBattery = async () => b;
	})();`
	if err := chromedp.Do(live, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: battery})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(live,
		chromedp.Navigate(base+"/live?stream=demo&codec=VP8&quality=480"),
		chromedp.SetValue("#key", key),
		chromedp.Click("#start"),
	); err != nil {
		t.Fatal(err)
	}
	poll(live, t, 15*time.Second, "the publisher connected", `window.glintLive.state === "connected"`)
	const topScale = `(() => { for (const tr of window.glintLive.pc.getTransceivers()) { const e = tr.sender.getParameters().encodings; if (e && e.length > 1) return e[e.length-1].scaleResolutionDownBy || 1; } return 0; })()`
	scaleIs := func(what string, want int) {
		t.Helper()
		poll(live, t, 5*time.Second, what, topScale+` === `+strconv.Itoa(want))
	}
	poll(live, t, 5*time.Second, "the battery read", `window.glintLive.device && window.glintLive.device.battery === 0.9`)
	scaleIs("the top layer at full size at a full battery", 1)
	run := func(js string) {
		t.Helper()
		if _, err := chromedp.Run(live, chromedp.Evaluate[bool](`(() => { `+js+`; return true })()`)); err != nil {
			t.Fatal(err)
		}
	}
	run(`window.__battery(0.15, false)`)
	poll(live, t, 5*time.Second, "stepped down", `window.glintLive.device.stepped && document.getElementById("device").textContent.includes("battery at 15")`)
	scaleIs("the top layer at half size at 15 %", 2)
	run(`window.__battery(0.08, false)`)
	poll(live, t, 5*time.Second, "told to cut the settings", `document.getElementById("device").textContent.includes("lower the quality")`)
	run(`window.__battery(0.08, true)`)
	poll(live, t, 5*time.Second, "restored when charging", `!window.glintLive.device.stepped && document.getElementById("device").hidden`)
	scaleIs("the top layer at full size on charge", 1)
}

// An SRT encoder sending H.265 (ffmpeg, libx265, AAC) is watched on the
// watch page in Chromium — moving video — and over LL-HLS, whose
// playlist appears; an RTMP encoder's stream does the same (the
// transcoder makes H.264 of either).
func TestBrowserWatchesEncoderStreams(t *testing.T) {
	ffmpeg(t)
	const key = "browser-encoder-key-1"
	base, out := startServe(t, "--stream-key", "demo="+key, "--srt-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`SRT: +(srt://\S+)\?streamid=`).FindStringSubmatch(out.String())
	r := regexp.MustCompile(`RTMP: +(rtmp://\S+/live)`).FindStringSubmatch(out.String())
	if m == nil || r == nil {
		t.Fatalf("the banner names no SRT or RTMP URL:\n%s", out.String())
	}
	watch := browser(t)
	for _, c := range []struct{ name, url, codec string }{
		{"H.265 over SRT", m[1] + "?streamid=publish:demo:" + key + "&latency=120000", "libx265"},
		{"H.264 over RTMP", r[1] + "/" + key, "libx264"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		format := "mpegts"
		if strings.HasPrefix(c.url, "rtmp") {
			format = "flv"
		}
		enc := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", "30", "-c:v", c.codec, "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", format, c.url)
		if err := enc.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			if _, body := get(t, base+"/api/streams/demo"); strings.Contains(body, `"state":"live"`) && strings.Contains(body, `"video/H264"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stream never went live", c.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := chromedp.Do(watch, chromedp.Navigate(base+"/watch/demo")); err != nil {
			t.Fatal(err)
		}
		poll(watch, t, 10*time.Second, c.name+": the first frame", `window.glintWatch.frames > 0`)
		before, _ := chromedp.Run(watch, chromedp.Evaluate[int](`window.glintWatch.frames`))
		time.Sleep(2 * time.Second)
		after, _ := chromedp.Run(watch, chromedp.Evaluate[int](`window.glintWatch.frames`))
		if after-before < 15 {
			t.Fatalf("%s: %d frames in 2 s on the watch page", c.name, after-before)
		}
		for deadline := time.Now().Add(20 * time.Second); ; {
			code, body := get(t, base+"/hls/demo/index.m3u8")
			if code == http.StatusOK && strings.Contains(body, "#EXT-X-STREAM-INF") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no LL-HLS playlist: %d %s", c.name, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		_ = enc.Wait()
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, body := get(t, base+"/api/streams/demo"); !strings.Contains(body, `"state":"live"`) {
				break // reconnecting: the next encoder takes over
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stream stayed live after its encoder left", c.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
