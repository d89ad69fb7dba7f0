package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/load"
)

// loopClip is a small real H.264 clip, looped: a publisher whose frames a
// browser decodes, light enough to run several.
type loopClip struct {
	mu   sync.Mutex
	aus  [][][]byte
	keys []bool
	pos  int
}

func newLoopClip(t testing.TB) *loopClip {
	t.Helper()
	aus, keys, err := load.EncodeClip(context.Background(), "ffmpeg", 320, 180, 15, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	return &loopClip{aus: aus, keys: keys}
}

func (c *loopClip) Next(_ int, key bool) ([][]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; key && i < len(c.aus) && !c.keys[c.pos]; i++ {
		c.pos = (c.pos + 1) % len(c.aus)
	}
	au, k := c.aus[c.pos], c.keys[c.pos]
	c.pos = (c.pos + 1) % len(c.aus)
	return au, k
}

// clipGuest publishes a small real H.264 clip and Opus with an invite.
func clipGuest(t *testing.T, base, token string) *client.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := client.Publish(ctx, client.PublisherConfig{Endpoint: base + "/whip/demo?name=Clip", Token: token,
		Codec: "H264", Audio: true, FPS: 15, Video: newLoopClip(t), Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

type tileState struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Frames int    `json:"frames"`
	Width  int    `json:"width"`
}

// TestBrowserLiveRoom: the host goes live on /live and invites from the
// page; a guest joins from /guest/demo with the fake camera, two more
// guests from pion; the watch page shows four tiles of moving video, and
// the host removes the browser guest from /live.
func TestBrowserLiveRoom(t *testing.T) {
	const key = "browser-room-key-123"
	base, _ := startServe(t, "--stream-key", "demo="+key, "--hls-off")
	host := browser(t)
	if err := chromedp.Do(host,
		chromedp.Navigate(base+"/live?stream=demo&codec=VP8&quality=480&simulcast=0"),
		chromedp.SetValue("#key", key),
		chromedp.Click("#start"),
	); err != nil {
		t.Fatal(err)
	}
	poll(host, t, 15*time.Second, "the host connected", `window.glintLive.state === "connected"`)

	// The host invites from the page; the link opens the guest page.
	invite := func(name string) string {
		t.Helper()
		if _, err := chromedp.Run(host, chromedp.Evaluate[bool](`(() => { window.glintLive.invite = ""; return true })()`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(host,
			chromedp.SetValue("#guest-name", name),
			chromedp.Click(`#invite-form button`),
		); err != nil {
			t.Fatal(err)
		}
		poll(host, t, 5*time.Second, "an invite link", `window.glintLive.invite !== ""`)
		link, err := chromedp.Run(host, chromedp.Evaluate[string](`window.glintLive.invite`))
		if err != nil {
			t.Fatal(err)
		}
		return link
	}
	link := invite("Dee")
	if !strings.HasPrefix(link, base+"/guest/demo#invite=gi1.") {
		t.Fatalf("invite link %q", link)
	}
	guest, cancel := chromedp.NewContext(host)
	defer cancel()
	if err := chromedp.Do(guest, chromedp.Navigate(link), chromedp.Click("#start")); err != nil {
		t.Fatal(err)
	}
	poll(guest, t, 15*time.Second, "the guest on stage", `window.glintGuest.state === "connected"`)
	for _, name := range []string{"Ann", "Bo"} {
		l := invite(name)
		clipGuest(t, base, l[strings.Index(l, "#invite=")+len("#invite="):])
	}

	watch, cancelWatch := chromedp.NewContext(host)
	defer cancelWatch()
	if err := chromedp.Do(watch, chromedp.Navigate(base+"/watch/demo")); err != nil {
		t.Fatal(err)
	}
	poll(watch, t, 20*time.Second, "four tiles with pictures",
		`window.glintWatch.tiles().length === 4 && window.glintWatch.tiles().every((t) => t.frames > 5)`)
	tiles := func(ctx context.Context, obj string) []tileState {
		t.Helper()
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(`+obj+`.tiles())`))
		if err != nil {
			t.Fatal(err)
		}
		var out []tileState
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := tiles(watch, "window.glintWatch")
	time.Sleep(2 * time.Second)
	after := tiles(watch, "window.glintWatch")
	names := ""
	for i, tl := range after {
		names += tl.Name + "; "
		if i >= len(before) || tl.Frames-before[i].Frames < 5 {
			t.Fatalf("tile %d (%s) did not move: %+v then %+v", i, tl.Name, before, after)
		}
	}
	for _, want := range []string{"demo · host", "Dee", "Ann", "Bo"} {
		if !strings.Contains(names, want) {
			t.Fatalf("tiles %q lack %q", names, want)
		}
	}
	// Moderation is for a signed-in host or moderator: a viewer's page
	// does not show it (its grid once overrode the hidden attribute).
	if shown, err := chromedp.Run(watch, chromedp.Evaluate[bool](`getComputedStyle(document.getElementById("chat-mod")).display !== "none"`)); err != nil || shown {
		t.Fatalf("a viewer sees the moderation tools (%v)", err)
	}
	// The guest sees the others: the host and the two clip guests.
	poll(guest, t, 10*time.Second, "the guest seeing the three others",
		`window.glintGuest.tiles().length === 3 && window.glintGuest.tiles().every((t) => t.frames > 0)`)
	if dir := os.Getenv("GLINT_SCREENSHOTS"); dir != "" {
		for name, ctx := range map[string]context.Context{"room-watch": watch, "room-live": host, "room-guest": guest} {
			_ = chromedp.Do(ctx, chromedp.EmulateViewport(1000, 1150), chromedp.Sleep(1500*time.Millisecond))
			if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
				_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
			}
		}
	}

	// The host removes Dee from /live: her page leaves the stage, and the
	// watch page is down to three tiles.
	poll(host, t, 5*time.Second, "Dee in the host's guest list", `!!document.querySelector('#guests li b') && [...document.querySelectorAll('#guests li')].some((li) => li.textContent.includes("Dee"))`)
	if _, err := chromedp.Run(host, chromedp.Evaluate[bool](`(() => { [...document.querySelectorAll('#guests li')].find((li) => li.textContent.includes("Dee")).querySelector("button:last-of-type").click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	poll(guest, t, 10*time.Second, "the removed guest off stage", `window.glintGuest.state === "ended"`)
	poll(watch, t, 10*time.Second, "three tiles", `window.glintWatch.tiles().length === 3`)
}
