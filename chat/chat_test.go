package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func bigBurst() Config {
	c := DefaultConfig()
	c.Burst, c.Rate = 1000, 1000
	return c
}

func TestJoinGetsRecentMessagesAndResumeGetsWhatWasMissed(t *testing.T) {
	e := memEnv(t, bigBurst())
	poster := e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	for i := range 60 {
		if code := poster.errorCode(poster.send(TypeMessage, MessageBody{Text: fmt.Sprint("message ", i)})); code != "" {
			t.Fatalf("post %d: %s", i, code)
		}
	}
	poster.waitFor("the last message", func(ev Envelope) bool { return text(ev) == "message 59" })

	fresh := e.dial("") // anonymous, read-only
	fresh.waitFor("the backlog", func(ev Envelope) bool { return text(ev) == "message 59" })
	msgs := fresh.all(TypeMessage)
	if len(msgs) != 50 || text(msgs[0]) != "message 10" {
		t.Fatalf("a new client got %d messages starting %q, want the last 50", len(msgs), text(msgs[0]))
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Seq != msgs[i-1].Seq+1 {
			t.Fatalf("backlog out of order at %d", i)
		}
	}
	back := e.dial(fmt.Sprint("after=", msgs[45].Seq))
	back.waitFor("the missed messages", func(ev Envelope) bool { return text(ev) == "message 59" })
	if got := back.all(TypeMessage); len(got) != 4 || text(got[0]) != "message 56" {
		t.Fatalf("resume got %d messages starting %q, want 56..59", len(got), text(got[0]))
	}
	// Read-only clients cannot post.
	if code := fresh.errorCode(fresh.send(TypeMessage, MessageBody{Text: "hi"})); code != CodeAuth {
		t.Fatalf("anonymous post: %q, want %q", code, CodeAuth)
	}
}

func TestBadInputGetsErrorsAndTheConnectionStays(t *testing.T) {
	e := memEnv(t, DefaultConfig())
	c := e.dial("")
	for _, frame := range [][]byte{
		[]byte("not json"),
		[]byte(`{"v":1}`),
		[]byte(`{"v":1,"type":"dance"}`),
		[]byte(`{"v":9,"type":"message"}`),
		[]byte(`{"v":1,"type":"message","body":"text"}`),
		bytes.Repeat([]byte("x"), MaxFrame+1),
	} {
		c.raw(frame)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(c.all(TypeError)) < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	codes := map[string]int{}
	for _, ev := range c.all(TypeError) {
		b, _ := body[ErrorBody](&ev)
		codes[b.Code]++
	}
	// The last but one is a post by a client that has not signed in.
	if fmt.Sprint(codes) != fmt.Sprint(map[string]int{CodeBadFrame: 2, CodeBadType: 2, CodeBadVersion: 1, CodeAuth: 1}) {
		t.Fatalf("error codes %v", codes)
	}
	// A forged token is refused on the same connection.
	if code := c.errorCode(c.send(TypeAuth, AuthBody{Token: "forged.token"})); code != CodeAuth {
		t.Fatalf("forged token: %q", code)
	}
	if ev := c.reply(c.send(TypePing, nil)); ev.Type != TypePong {
		t.Fatal("the connection did not survive bad input")
	}
	// Signing in later on the same connection works.
	if ev := c.reply(c.send(TypeAuth, AuthBody{Token: e.token("u9", "Zed", RoleViewer)})); ev.Type != TypeHello {
		t.Fatalf("auth: %+v", ev)
	}
	if code := c.errorCode(c.send(TypeMessage, "text")); code != CodeBadFrame {
		t.Fatalf("a body that is not an object: %q", code)
	}
	if code := c.errorCode(c.send(TypeMessage, MessageBody{Text: "hello"})); code != "" {
		t.Fatalf("post after auth: %s", code)
	}
}

func TestLimitsHold(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Burst, cfg.Rate = 3, 0.5
	e := memEnv(t, cfg)
	c := e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	var codes []string
	for i := range 5 {
		codes = append(codes, c.errorCode(c.send(TypeMessage, MessageBody{Text: fmt.Sprint("flood ", i)})))
	}
	if fmt.Sprint(codes) != fmt.Sprint([]string{"", "", "", CodeRate, CodeRate}) {
		t.Fatalf("a burst of 5 against a bucket of 3: %v", codes)
	}
	c2 := e.dial("token=" + e.token("u2", "Bob", RoleViewer))
	if code := c2.errorCode(c2.send(TypeMessage, MessageBody{Text: strings.Repeat("é", 501)})); code != CodeTooLong {
		t.Fatalf("501 characters: %q", code)
	}
	if code := c2.errorCode(c2.send(TypeMessage, MessageBody{Text: strings.Repeat("é", 500)})); code != "" {
		t.Fatalf("500 characters: %q", code)
	}
	c2.errorCode(c2.send(TypeMessage, MessageBody{Text: "Buy my stuff"}))
	if code := c2.errorCode(c2.send(TypeMessage, MessageBody{Text: "buy  MY stuff"})); code != CodeDuplicate {
		t.Fatalf("repeat: %q", code)
	}
	// c2 has used its bucket too; a third user is not slowed by either.
	if code := c2.errorCode(c2.send(TypeMessage, MessageBody{Text: "one more"})); code != CodeRate {
		t.Fatalf("c2's fourth post: %q", code)
	}
	c3 := e.dial("token=" + e.token("u3", "Cy", RoleViewer))
	if code := c3.errorCode(c3.send(TypeMessage, MessageBody{Text: "still fine"})); code != "" {
		t.Fatalf("other user: %q", code)
	}
}

func TestModerationIsEnforcedAndAudited(t *testing.T) {
	e := memEnv(t, bigBurst())
	host := e.dial("token=" + e.token("host:demo", "Host", RoleHost))
	mod := e.dial("token=" + e.token("u-mod", "Mo", RoleViewer))
	troll := e.dial("token=" + e.token("u-troll", "Troll", RoleViewer))
	watcher := e.dial("")

	// Only the host appoints moderators.
	if code := mod.errorCode(mod.send(TypeMod, TargetBody{User: "u-troll", Grant: true})); code != CodeForbidden {
		t.Fatalf("viewer appointing: %q", code)
	}
	if code := host.errorCode(host.send(TypeMod, TargetBody{User: "u-mod", Grant: true})); code != "" {
		t.Fatalf("host appointing: %q", code)
	}
	// The moderator deletes a message: everyone removes it.
	ack := troll.reply(troll.send(TypeMessage, MessageBody{Text: "spam spam"}))
	if code := mod.errorCode(mod.send(TypeDelete, DeleteBody{Seq: ack.Seq})); code != "" {
		t.Fatalf("delete: %q", code)
	}
	watcher.waitFor("the delete", func(ev Envelope) bool {
		b, _ := body[DeleteBody](&ev)
		return ev.Type == TypeDelete && b.Seq == ack.Seq
	})
	// Timeout, then ban; viewers cannot moderate; moderators cannot touch
	// the host.
	if code := troll.errorCode(troll.send(TypeBan, TargetBody{User: "u-mod"})); code != CodeForbidden {
		t.Fatalf("viewer banning: %q", code)
	}
	if code := mod.errorCode(mod.send(TypeTimeout, TargetBody{User: "u-troll", Seconds: 60})); code != "" {
		t.Fatalf("timeout: %q", code)
	}
	if code := troll.errorCode(troll.send(TypeMessage, MessageBody{Text: "let me talk"})); code != CodeBanned {
		t.Fatalf("timed-out post: %q", code)
	}
	mod.send(TypeBan, TargetBody{User: "u-troll"})
	mod.send(TypeUnban, TargetBody{User: "u-troll"})
	if code := mod.errorCode(mod.send(TypeBan, TargetBody{User: "host:demo"})); code == "" {
		t.Fatal("a moderator banned the host")
	}
	// Slow mode, comments off, blocked words.
	mod.reply(mod.send(TypeWords, WordsBody{Add: []string{"Badword"}}))
	if code := troll.errorCode(troll.send(TypeMessage, MessageBody{Text: "this is a BADWORD!"})); code != CodeBlocked {
		t.Fatalf("blocked word: %q", code)
	}
	mod.reply(mod.send(TypeSlow, SlowBody{Seconds: 30}))
	troll.errorCode(troll.send(TypeMessage, MessageBody{Text: "one"}))
	if code := troll.errorCode(troll.send(TypeMessage, MessageBody{Text: "two"})); code != CodeRate {
		t.Fatalf("slow mode: %q", code)
	}
	mod.reply(mod.send(TypeComments, CommentsBody{On: false}))
	if code := troll.errorCode(troll.send(TypeMessage, MessageBody{Text: "three"})); code != CodeClosed {
		t.Fatalf("comments off: %q", code)
	}
	if code := mod.errorCode(mod.send(TypeMessage, MessageBody{Text: "mods may still speak"})); code != "" {
		t.Fatalf("moderator with comments off: %q", code)
	}
	watcher.waitFor("settings", func(ev Envelope) bool {
		b, _ := body[ModerationBody](&ev)
		return ev.Type == TypeModeration && b.Action == "comments" && !b.Settings.Comments && b.Settings.Slow == 30
	})

	// The audit log has every action, with who and when.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/streams/demo/chat/audit", nil)
	req.Header.Set("Authorization", "Bearer "+e.token("u-mod", "Mo", RoleViewer))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var audit struct{ Actions []Envelope }
	_ = json.NewDecoder(resp.Body).Decode(&audit)
	var got []string
	for _, a := range audit.Actions {
		if a.From == nil || a.TS == 0 {
			t.Fatalf("audit entry without who or when: %+v", a)
		}
		if a.Type == TypeDelete {
			got = append(got, "delete by "+a.From.ID)
			continue
		}
		b, _ := body[ModerationBody](&a)
		got = append(got, b.Action+" by "+a.From.ID)
	}
	want := []string{"mod by host:demo", "delete by u-mod", "timeout by u-mod", "ban by u-mod", "unban by u-mod", "words by u-mod", "slow by u-mod", "comments by u-mod"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit %v\nwant  %v", got, want)
	}
	// A viewer may not read it.
	req.Header.Set("Authorization", "Bearer "+e.token("u-troll", "Troll", RoleViewer))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer reading the audit log: %d", resp2.StatusCode)
	}
}

func TestReactionsArriveInBursts(t *testing.T) {
	e := memEnv(t, DefaultConfig())
	watcher := e.dial("")
	var fans []*client
	for i := range 5 {
		fans = append(fans, e.dial("token="+e.token(fmt.Sprint("fan", i), "Fan", RoleViewer)))
	}
	start := time.Now()
	for round := range 4 {
		for _, f := range fans {
			f.send(TypeReaction, ReactionBody{Emoji: "❤️"})
			if round%2 == 0 {
				f.send(TypeReaction, ReactionBody{Emoji: "🔥"})
			}
		}
	}
	watcher.waitFor("all 30 reactions", func(Envelope) bool {
		n := 0
		for _, ev := range watcher.all(TypeReactions) {
			b, _ := body[ReactionsBody](&ev)
			n += b.Counts["❤️"] + b.Counts["🔥"]
		}
		return n == 30
	})
	bursts := len(watcher.all(TypeReactions))
	if most := int(time.Since(start)/(250*time.Millisecond)) + 2; bursts > most {
		t.Fatalf("30 reactions became %d events; bursts every 250 ms allow at most %d", bursts, most)
	}
	if code := fans[0].errorCode(fans[0].send(TypeReaction, ReactionBody{Emoji: "💩"})); code != CodeBadFrame {
		t.Fatalf("unknown emoji: %q", code)
	}
}

// stuckTransport is a client whose network has stopped: Write blocks until
// released, then records what it is given.
type stuckTransport struct {
	release chan struct{}
	mu      sync.Mutex
	frames  [][]byte
	closed  chan string
}

func (s *stuckTransport) Write(f []byte) error {
	<-s.release
	s.mu.Lock()
	s.frames = append(s.frames, append([]byte(nil), f...))
	s.mu.Unlock()
	return nil
}

func (s *stuckTransport) Close(reason string) error { s.closed <- reason; return nil }

func TestSlowClientIsDroppedAlone(t *testing.T) {
	cfg := bigBurst()
	cfg.SendQueue = 16
	e := memEnv(t, cfg)
	stuck := &stuckTransport{release: make(chan struct{}), closed: make(chan string, 1)}
	slow, err := e.hub.Connect(context.Background(), "demo", stuck, "", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	fast := e.dial("")
	poster := e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	start := time.Now()
	for i := range 200 {
		if code := poster.errorCode(poster.send(TypeMessage, MessageBody{Text: fmt.Sprint("m", i)})); code != "" {
			t.Fatalf("post %d: %s", i, code)
		}
	}
	fast.waitFor("every message", func(ev Envelope) bool { return text(ev) == "m199" })
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("200 messages took %v to reach the healthy client", d)
	}
	select {
	case <-slow.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck client was not dropped")
	}
	waitRoomConns(t, e, 2)
	close(stuck.release)
	if r := <-stuck.closed; !strings.Contains(r, "too slow") {
		t.Fatalf("closed with %q", r)
	}
	stuck.mu.Lock()
	last := stuck.frames[len(stuck.frames)-1]
	n := len(stuck.frames)
	stuck.mu.Unlock()
	ev, err := ParseEnvelope(last)
	if err != nil || ev.Type != TypeClosed || !strings.Contains(string(ev.Body), "too slow") {
		t.Fatalf("last frame to the stuck client: %s", last)
	}
	if n > cfg.SendQueue+2 {
		t.Fatalf("the stuck client was sent %d frames, its queue holds %d", n, cfg.SendQueue)
	}
}

func waitRoomConns(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.hub.mu.Lock()
		r := e.hub.rooms["demo"]
		e.hub.mu.Unlock()
		if r.Connections() == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room has %d connections, want %d", r.Connections(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStreamTimeIsClamped(t *testing.T) {
	e := memEnv(t, DefaultConfig())
	e.streams.st.Store(200_000)
	c := e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	for _, st := range []int64{199_000, 1_000, 290_000} {
		c.send(TypeMessage, MessageBody{Text: fmt.Sprint("at ", st)}, func(e *Envelope) { e.ST = &st })
	}
	c.send(TypeMessage, MessageBody{Text: "no time"})
	c.waitFor("four messages", func(Envelope) bool { return len(c.all(TypeMessage)) == 4 })
	want := []int64{199_000, 80_000, 202_000, 200_000}
	for i, ev := range c.all(TypeMessage) {
		if ev.ST == nil || *ev.ST != want[i] {
			t.Fatalf("message %q has stream time %v, want %d", text(ev), ev.ST, want[i])
		}
	}
}

func httpPost(t *testing.T, url, auth string, body any) (*http.Response, []byte) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
