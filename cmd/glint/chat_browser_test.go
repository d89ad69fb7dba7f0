package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/glintlive/glint/internal/client"
)

type shownAt struct {
	At       float64  `json:"at"`
	Playhead *float64 `json:"playhead"`
	ST       float64  `json:"st"`
}

// A message posted at stream time T shows on a viewer 3 s behind only when
// that viewer's playhead reaches T, and at once on a viewer who is not
// behind. Both viewers get chat over their WHEP session's data channel.
func TestBrowserChatFollowsThePlayhead(t *testing.T) {
	const key = "browser-chat-key-123"
	base, _ := startServe(t, "--stream-key", "demo="+key)
	live := browser(t)
	if err := chromedp.Do(live,
		chromedp.Navigate(base+"/live?stream=demo&codec=VP8&simulcast=0"),
		chromedp.SetValue("#key", key),
		chromedp.Click("#start"),
	); err != nil {
		t.Fatal(err)
	}
	poll(live, t, 15*time.Second, "the publisher connected", `window.glintLive.state === "connected"`)

	const ready = `window.glintWatch.playhead() !== null && window.glintChat.transport && window.glintChat.transport.kind === "datachannel"`
	now := openPage(live, t, base+"/watch/demo", "playing with a stream clock and chat on the data channel", ready)
	late := openPage(live, t, base+"/watch/demo?delay=3000", "playing with a stream clock and chat on the data channel", ready)

	// The delayed viewer settles about 3 s behind.
	var a, b float64
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		now(`window.glintWatch.playhead()`, &a)
		late(`window.glintWatch.playhead()`, &b)
		if a-b > 2500 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a-b < 2500 {
		t.Fatalf("the delayed viewer is only %.0f ms behind (playheads %.0f and %.0f)", a-b, a, b)
	}
	t.Logf("playheads: %.0f ms and %.0f ms (%.0f ms apart)", a, b, a-b)

	// A bot signs in as a guest and posts at the prompt viewer's moment.
	now(`window.glintWatch.playhead()`, &a)
	st := int64(a)
	seq := postChatAt(t, base, st, "did you see that?")
	shown := func(run func(string, any)) *shownAt { return shownOn(run, seq) }
	var sa, sb *shownAt
	deadline = time.Now().Add(10 * time.Second)
	for (sa == nil || sb == nil) && time.Now().Before(deadline) {
		if sa == nil {
			if sa = shown(now); sa != nil && shown(late) != nil {
				t.Fatal("the delayed viewer showed the message as early as the prompt one")
			}
		}
		if sb == nil {
			sb = shown(late)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sa == nil || sb == nil {
		t.Fatalf("message shown: prompt viewer %v, delayed viewer %v", sa, sb)
	}
	if sb.Playhead == nil || *sb.Playhead < float64(st) {
		t.Fatalf("the delayed viewer showed a message from %d ms at playhead %v", st, sb.Playhead)
	}
	if gap := sb.At - sa.At; gap < 2000 {
		t.Fatalf("the delayed viewer showed the message %.0f ms after the prompt one, want ≥ 2000", gap)
	}
	t.Logf("posted at stream time %d ms: shown at playhead %.0f on the prompt viewer, %.0f on the delayed one, %.0f ms later",
		st, *sa.Playhead, *sb.Playhead, sb.At-sa.At)
}

// The watch page's chat panel, as people use it: a viewer signs in by
// name, chats, reacts and buys a badge with the test provider; the host
// signs in with the stream key, deletes the viewer's message, sees the
// supporter and turns comments off.
func TestBrowserChatPanel(t *testing.T) {
	const key = "browser-panel-key-123"
	base, _ := startServe(t, "--stream-key", "demo="+key)
	pub, err := client.Publish(context.Background(), client.PublisherConfig{Endpoint: base + "/whip/demo", Token: key,
		Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close(context.Background()) }()

	viewer := browser(t)
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	logHas := func(ctx context.Context, text string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#chat-log li")].some((li) => li.textContent.includes(%q))`, text)
	}
	run(viewer, "open the watch page", chromedp.Navigate(base+"/watch/demo"))
	poll(viewer, t, 10*time.Second, "chat connected", `!!(window.glintChat && window.glintChat.transport)`)
	run(viewer, "join chat", chromedp.SetValue("#chat-name", "Vic"), chromedp.Click("#chat-signin button"))
	poll(viewer, t, 5*time.Second, "signed in", `!document.getElementById("chat-form").hidden && window.glintChat.me && window.glintChat.me.name === "Vic"`)
	run(viewer, "post", chromedp.SetValue("#chat-input", "hello from the page"), chromedp.Click("#chat-form button"))
	poll(viewer, t, 5*time.Second, "the message in the log", logHas(viewer, "hello from the page"))

	// A reaction comes back as a burst.
	run(viewer, "react", chromedp.Click("#chat-reactions button"))
	poll(viewer, t, 5*time.Second, "a reaction burst", `Object.values(window.glintChat.shown).some((s) => s.type === "reactions")`)

	// Buy the second tier with the test provider, and come back.
	run(viewer, "open the badges", chromedp.Click("#chat-buy"))
	poll(viewer, t, 5*time.Second, "the tiers", `document.querySelectorAll("#chat-tiers button").length === 3`)
	run(viewer, "choose tier 2", chromedp.Click("#chat-tiers button:nth-of-type(2)"))
	poll(viewer, t, 10*time.Second, "the test checkout", `location.pathname.startsWith("/api/payments/test/") && !!document.getElementById("pay")`)
	run(viewer, "pay", chromedp.Click("#pay"))
	poll(viewer, t, 10*time.Second, "back on the watch page", `location.pathname === "/watch/demo" && !!window.glintChat && window.glintChat.me && window.glintChat.me.badge === 2`)
	poll(viewer, t, 5*time.Second, "the badge line", logHas(viewer, "Vic bought a badge"))

	// The host, in another browser, signs in with the stream key.
	host := browser(t)
	run(host, "open the watch page", chromedp.Navigate(base+"/watch/demo"))
	poll(host, t, 10*time.Second, "chat connected", `!!(window.glintChat && window.glintChat.transport)`)
	run(host, "sign in as host", chromedp.Click("details summary"), chromedp.SetValue("#chat-key", key), chromedp.Click("#chat-hostform button"))
	poll(host, t, 5*time.Second, "the moderation tools", `!document.getElementById("chat-mod").hidden`)
	poll(host, t, 5*time.Second, "the supporter list", `document.getElementById("chat-supporters").textContent.includes("Vic") && document.getElementById("chat-total").textContent.includes("$4.99")`)

	// The viewer posts again (with the heart); the host deletes it.
	run(viewer, "post again", chromedp.SetValue("#chat-input", "delete me please"), chromedp.Click("#chat-form button"))
	poll(host, t, 5*time.Second, "the message with a heart and moderation buttons",
		`[...document.querySelectorAll("#chat-log li")].some((li) => li.textContent.includes("delete me please") && li.querySelector(".heart") && li.querySelector(".mod button"))`)
	if _, err := chromedp.Run(host, chromedp.Evaluate[bool](`(() => { [...document.querySelectorAll("#chat-log li")].find((li) => li.textContent.includes("delete me please")).querySelector(".mod button").click(); return true })()`)); err != nil {
		t.Fatal(err)
	}
	poll(viewer, t, 5*time.Second, "the message gone for the viewer", `!(`+logHas(viewer, "delete me please")+`)`)

	// Comments off: the viewer's next post is refused, with the reason.
	run(host, "comments off", chromedp.Click("#chat-comments"))
	poll(viewer, t, 5*time.Second, "comments off", `document.getElementById("chat-state").textContent === "Comments are off"`)
	run(viewer, "post while off", chromedp.SetValue("#chat-input", "can I talk?"), chromedp.Click("#chat-form button"))
	poll(viewer, t, 5*time.Second, "the refusal", `document.getElementById("chat-note").textContent.includes("comments are off")`)
}

// openPage opens url in a new tab of root, waits until ready (a JS
// expression) holds, and returns a function that evaluates an expression
// there into out.
func openPage(root context.Context, t testing.TB, url, what, ready string) func(expr string, out any) {
	t.Helper()
	c, cancel := chromedp.NewContext(root)
	t.Cleanup(cancel)
	if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	poll(c, t, 30*time.Second, url+" "+what, ready)
	return func(expr string, out any) {
		t.Helper()
		v, err := chromedp.Run(c, chromedp.Evaluate[json.RawMessage](expr))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(v, out); err != nil {
			t.Fatalf("%s: %s", expr, v)
		}
	}
}

// postChatAt signs a bot in as a guest and posts text at stream time st
// over the chat WebSocket; it returns the message's sequence number.
func postChatAt(t *testing.T, base string, st int64, text string) uint64 {
	t.Helper()
	resp, err := http.Post(base+"/api/streams/demo/chat/token", "application/json", strings.NewReader(`{"name":"Bot"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/streams/demo/chat?token="+tok.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	if err := ws.WriteJSON(map[string]any{"v": 1, "type": "message", "ref": "m1", "st": st, "body": map[string]string{"text": text}}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var ev struct {
			Type string
			Ref  string
			Seq  uint64
			Body json.RawMessage
		}
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Ref == "m1" {
			if ev.Type != "ack" {
				t.Fatalf("post: %s %s", ev.Type, ev.Body)
			}
			return ev.Seq
		}
	}
}

// shownOn reads when a page showed message seq, or nil.
func shownOn(run func(string, any), seq uint64) *shownAt {
	var s *shownAt
	run(fmt.Sprintf(`window.glintChat.shown[%d] || null`, seq), &s)
	return s
}
