package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// fullSuiteOnly skips a slow test (a browser, several processes) in the
// -short loop; the full suite, make test and CI, always runs it.
func fullSuiteOnly(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("%s: runs in the full suite (make test), not with -short", what)
	}
}

// chromium finds Debian's Chromium; a test that needs it fails, never
// skips, when it is missing.
func chromium(t testing.TB) string {
	t.Helper()
	fullSuiteOnly(t, "a Chromium test")
	for _, name := range []string{os.Getenv("GLINT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: run `make test` (it installs it), or `sudo apt-get install chromium`")
	return ""
}

// browser starts headless Chromium kept on loopback: no DNS, no background
// networking, a fake camera and microphone, loopback ICE candidates.
func browser(t testing.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// poll evaluates expr until it is true or the timeout passes.
func poll(ctx context.Context, t testing.TB, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(".status") ? document.querySelector(".status").textContent : document.title`))
			t.Fatalf("timed out after %v waiting for %s; the page says %q", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type watchState struct {
	Frames       int     `json:"frames"`
	FirstFrameAt float64 `json:"firstFrameAt"`
	Width        int     `json:"width"`
	Height       int     `json:"height"`
	Layer        string  `json:"layer"`
}

func TestBrowserGoLiveAndWatch(t *testing.T) {
	for _, codec := range []string{"VP8", "H264", "VP9", "AV1"} {
		t.Run(codec, func(t *testing.T) {
			const key = "browser-test-key-123"
			base, _ := startServe(t, "--stream-key", "demo="+key)
			live := browser(t)

			// Tab one goes live from the fake camera, with simulcast.
			if err := chromedp.Do(live,
				chromedp.Navigate(base+"/live?stream=demo&codec="+codec),
				chromedp.SetValue("#key", key),
				chromedp.Click("#start"),
			); err != nil {
				t.Fatal(err)
			}
			poll(live, t, 15*time.Second, "the publisher connected", `window.glintLive.state === "connected"`)
			// Chromium's bandwidth estimate starts near 300 kbit/s and takes
			// 15-20 s to ramp; until then its encoder drops frames on the upper
			// layers. Wait for all three layers, the top one at 15 fps or more,
			// so the watch measurement below measures Glint, not the ramp.
			var layers, topFPS int
			deadline := time.Now().Add(40 * time.Second)
			for (layers < 3 || topFPS < 15) && time.Now().Before(deadline) {
				_, body := get(t, base+"/api/streams/demo")
				var in struct {
					Video struct {
						Layers []struct {
							Height int
							FPS    float64
						}
					}
				}
				_ = json.Unmarshal([]byte(body), &in)
				layers, topFPS = len(in.Video.Layers), 0
				for _, l := range in.Video.Layers {
					if l.Height >= 720 {
						topFPS = int(l.FPS)
					}
				}
				time.Sleep(250 * time.Millisecond)
			}
			if layers != 3 || topFPS < 15 {
				_, body := get(t, base+"/api/streams/demo")
				t.Fatalf("Chromium sends %d simulcast layers, the 720p one at %d fps; want 3 layers and ≥ 15 fps: %s", layers, topFPS, body)
			}

			// Tab two watches: the first frame renders within 2 s of opening
			// the page, and frames keep coming for 10 s.
			watch, cancel := chromedp.NewContext(live)
			defer cancel()
			if err := chromedp.Do(watch, chromedp.Navigate(base+"/watch/demo")); err != nil {
				t.Fatal(err)
			}
			poll(watch, t, 5*time.Second, "the first rendered frame", `window.glintWatch.frames > 0`)
			s, err := chromedp.Run(watch, chromedp.Evaluate[watchState](`window.glintWatch`))
			if err != nil {
				t.Fatal(err)
			}
			if s.FirstFrameAt > 2000 {
				t.Fatalf("first frame rendered %.0f ms after the watch page opened, want ≤ 2000", s.FirstFrameAt)
			}
			t.Logf("%s: first frame %.0f ms after opening the watch page", codec, s.FirstFrameAt)
			// Keep watching for 10 s, switching layers on the way with the
			// page's quality menu: to the low layer at 3 s, back to automatic
			// at 6 s. Real decoders must keep rendering through both switches.
			setQuality := func(v string) {
				if _, err := chromedp.Run(watch, chromedp.Evaluate[bool](`(() => { const q = document.getElementById("quality"); q.value = "`+v+`"; q.dispatchEvent(new Event("change")); return true })()`)); err != nil {
					t.Fatal(err)
				}
			}
			last := s.Frames
			for i := range 10 {
				switch i {
				case 3:
					setQuality("l")
				case 6:
					if s.Width != 320 {
						t.Errorf("%s: picture %dx%d after choosing the low layer, want 320x180", codec, s.Width, s.Height)
					}
					setQuality("")
				}
				time.Sleep(time.Second)
				if s, err = chromedp.Run(watch, chromedp.Evaluate[watchState](`window.glintWatch`)); err != nil {
					t.Fatal(err)
				}
				if s.Frames-last < 10 {
					_, info := get(t, base+"/api/streams/demo")
					t.Fatalf("second %d: %d frames rendered, want ≥ 10; watch page %+v; server %s", i+1, s.Frames-last, s, info)
				}
				last = s.Frames
			}
			if s.Width == 0 || s.Height == 0 {
				t.Fatalf("no picture size reported: %+v", s)
			}
			t.Logf("%s: %d frames in the 10 s, last at %dx%d", codec, s.Frames, s.Width, s.Height)
			if dir := os.Getenv("GLINT_SCREENSHOTS"); dir != "" {
				for name, ctx := range map[string]context.Context{"live": live, "watch": watch} {
					_ = chromedp.Do(ctx, chromedp.EmulateViewport(1000, 1150), chromedp.Sleep(1500*time.Millisecond))
					png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
					if err == nil {
						_ = os.WriteFile(filepath.Join(dir, codec+"-"+name+".png"), png, 0o644)
					}
				}
			}
		})
	}
}
