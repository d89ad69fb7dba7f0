package signaling_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/sfu"
)

// roomView is a room as a viewer is told of it.
type roomView struct {
	Slots []struct {
		Slot        int              `json:"slot"`
		AudioMid    string           `json:"audio_mid"`
		VideoMid    string           `json:"video_mid"`
		Broadcaster *sfu.Broadcaster `json:"broadcaster"`
	} `json:"slots"`
	Speaker      string            `json:"speaker"`
	Broadcasters []sfu.Broadcaster `json:"broadcasters"`
}

// who returns the broadcaster id in each slot ("" for empty ones).
func (r roomView) who() []string {
	out := make([]string, len(r.Slots))
	for i, s := range r.Slots {
		if s.Broadcaster != nil {
			out[i] = s.Broadcaster.ID
		}
	}
	return out
}

// latestRoom keeps the last room a viewer was told of, on one channel.
type latestRoom struct {
	mu   sync.Mutex
	room roomView
	n    int
}

func (l *latestRoom) set(b []byte) {
	var r roomView
	if json.Unmarshal(b, &r) != nil {
		return
	}
	l.mu.Lock()
	l.room, l.n = r, l.n+1
	l.mu.Unlock()
}

func (l *latestRoom) get() roomView {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.room
}

// followRoomEvents reads a viewer's WHEP event stream and keeps its room
// events.
func followRoomEvents(t *testing.T, session string) *latestRoom {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, session+"/events", nil)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %v %v", err, resp)
	}
	l := &latestRoom{}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "data: ") && event == "room":
				l.set([]byte(line[6:]))
			}
		}
	}()
	return l
}

// invite makes a guest invite with the host's key, returning its token.
func invite(t *testing.T, n *node, name string) (token, id string) {
	t.Helper()
	resp, body := do(t, n.URL, req{method: "POST", path: "/api/streams/demo/invites", token: testKey, ctype: "application/json", body: `{"name":"` + name + `"}`})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("invite: %d %s", resp.StatusCode, body)
	}
	var out struct {
		ID, Token, WHIP, Page string
		State                 string
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if out.WHIP != n.URL+"/whip/demo" || !strings.HasSuffix(out.Page, "/guest/demo#invite="+out.Token) || out.State != "pending" {
		t.Fatalf("invite answer: %s", body)
	}
	return out.Token, out.ID
}

func guest(t *testing.T, n *node, token string, tag uint8) (*client.Publisher, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := client.Publish(ctx, client.PublisherConfig{Endpoint: n.URL + "/whip/demo", Token: token, Audio: true, Tag: tag,
		Options: client.Options{Loopback: true}})
	if err == nil {
		t.Cleanup(func() { _ = p.Stop() })
	}
	return p, err
}

// TestLiveRoom runs a host and three guests to a four-slot viewer: every
// slot carries its broadcaster, a fifth is refused, a guest leaving frees
// its slot for the next one on the same m-line, the host's controls
// (remove, mute, end) reach every viewer, and a guest can do none of them.
func TestLiveRoom(t *testing.T) {
	n := startNode(t, nodeOptions{})
	host := n.publish(t, client.PublisherConfig{Audio: true, Tag: 1})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })

	var dc latestRoom
	v := n.view(t, client.ViewerConfig{Slots: 4, OnMessage: func(b []byte) {
		var env struct {
			Type string          `json:"type"`
			Body json.RawMessage `json:"body"`
		}
		if json.Unmarshal(b, &env) == nil && env.Type == "room" {
			dc.set(env.Body)
		}
	}})
	sse := followRoomEvents(t, v.Resource.URL)
	eventually(t, 5*time.Second, "the host in slot 0", func() bool {
		r := sse.get()
		return len(r.Slots) == 4 && r.Slots[0].Broadcaster != nil && r.Slots[0].Broadcaster.Role == sfu.RoleHost
	})

	// Bad tokens: no invite without the key; a guest's invite is no key.
	tok1, _ := invite(t, n, "Ann")
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {tok1, http.StatusForbidden}, {"wrong-key-1234567", http.StatusForbidden}} {
		if resp, _ := do(t, n.URL, req{method: "POST", path: "/api/streams/demo/invites", token: c.token}); resp.StatusCode != c.want {
			t.Fatalf("invite with %q: %d, want %d", c.token, resp.StatusCode, c.want)
		}
	}
	if _, err := guest(t, n, tok1[:len(tok1)-2]+"xx", 9); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a tampered invite: %v, want 403", err)
	}
	tokOther, _ := invite(t, n, "Mallory")
	if resp, _ := do(t, n.URL, req{method: "POST", path: "/whip/other", token: tokOther, ctype: "application/sdp", body: "v=0"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an invite for demo used on another stream: %d, want 403", resp.StatusCode)
	}

	// A guest with a codec Glint does not take gets what a host would,
	// and keeps its invite.
	h265 := offerFor(t, webrtc.RTPTransceiverDirectionSendonly, "video/H265", "")
	if resp, body := do(t, n.URL, req{method: "POST", path: "/whip/demo", ctype: "application/sdp", token: tok1, body: h265}); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("a guest offering H.265 only: %d %s, want 406", resp.StatusCode, body)
	}
	g1, err := guest(t, n, tok1, 2)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := invite(t, n, "Bo")
	g2, err := guest(t, n, tok2, 3)
	if err != nil {
		t.Fatal(err)
	}
	tok3, _ := invite(t, n, "Cy")
	if _, err := guest(t, n, tok3, 4); err != nil {
		t.Fatal(err)
	}
	tagOf := map[string]uint8{"Ann": 2, "Bo": 3, "Cy": 4}
	eventually(t, 5*time.Second, "four broadcasters announced", func() bool {
		r := sse.get()
		return len(r.Broadcasters) == 4 && !slicesHasEmpty(r.who())
	})
	if dcRoom := dc.get(); len(dcRoom.Broadcasters) != 4 {
		eventually(t, 5*time.Second, "the room on the data channel", func() bool { return len(dc.get().Broadcasters) == 4 })
	}
	// Each slot's video comes from the broadcaster announced in it, and
	// its audio flows.
	room := sse.get()
	for _, s := range room.Slots {
		want := uint8(1)
		if s.Broadcaster.Role == sfu.RoleGuest {
			want = tagOf[s.Broadcaster.Name]
		}
		eventually(t, 5*time.Second, "video of "+s.Broadcaster.Name, func() bool {
			st, ok := v.SlotStats(s.VideoMid)
			return ok && st.Tags[want] > 5 && st.LastTag == want
		})
		eventually(t, 5*time.Second, "audio of "+s.Broadcaster.Name, func() bool {
			st, ok := v.SlotStats(s.AudioMid)
			return ok && st.Packets > 5
		})
	}

	// A fifth broadcaster is refused; a used invite is not a second seat.
	tok4, _ := invite(t, n, "Di")
	if _, err := guest(t, n, tok4, 5); !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("a fifth broadcaster: %v, want 409", err)
	}

	// Bo leaves; his slot empties, and Di takes it on the same m-line:
	// one SSRC, no renegotiation.
	slotOf := func(name string) int {
		for i, s := range sse.get().Slots {
			if s.Broadcaster != nil && s.Broadcaster.Name == name {
				return i
			}
		}
		return -1
	}
	bo := slotOf("Bo")
	if err := g2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "Bo's slot empty", func() bool { return sse.get().Slots[bo].Broadcaster == nil })
	if _, err := guest(t, n, tok2, 3); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("Bo's used invite after he left: %v, want 403", err)
	}
	if _, err := guest(t, n, tok4, 5); err != nil {
		t.Fatal("Di after Bo left:", err)
	}
	eventually(t, 5*time.Second, "Di in Bo's slot", func() bool { return slotOf("Di") == bo })
	mid := sse.get().Slots[bo].VideoMid
	eventually(t, 5*time.Second, "Di's video in the slot", func() bool {
		st, _ := v.SlotStats(mid)
		return st.LastTag == 5 && st.Tags[5] > 5
	})
	if st, _ := v.SlotStats(mid); st.SSRCs != 1 {
		t.Fatalf("the slot's video came on %d SSRCs, want 1 (no renegotiation)", st.SSRCs)
	}

	// A revoked invite is refused.
	tok5, id5 := invite(t, n, "Ed")
	if resp, _ := do(t, n.URL, req{method: "DELETE", path: "/api/streams/demo/invites/" + id5, token: testKey}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if _, err := guest(t, n, tok5, 6); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a revoked invite: %v, want 403", err)
	}
	resp, body := do(t, n.URL, req{method: "GET", path: "/api/streams/demo/invites", token: testKey})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"state":"revoked"`) || !strings.Contains(body, `"state":"used"`) {
		t.Fatalf("invites: %d %s", resp.StatusCode, body)
	}

	// A guest cannot moderate, mute or end the room.
	annID := ""
	for _, b := range sse.get().Broadcasters {
		if b.Name == "Ann" {
			annID = b.ID
		}
	}
	for _, r := range []req{
		{method: "DELETE", path: "/api/streams/demo/broadcasters/" + annID, token: tok1},
		{method: "PATCH", path: "/api/streams/demo/broadcasters/" + annID, token: tok1, ctype: "application/json", body: `{"video_muted":true}`},
		{method: "POST", path: "/api/streams/demo/end", token: tok1},
	} {
		if resp, _ := do(t, n.URL, r); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a guest's %s %s: %d, want 403", r.method, r.path, resp.StatusCode)
		}
	}

	// The host mutes Ann's video: it stops for the viewer.
	ann := slotOf("Ann")
	annMid := sse.get().Slots[ann].VideoMid
	if resp, body := do(t, n.URL, req{method: "PATCH", path: "/api/streams/demo/broadcasters/" + annID, token: testKey, ctype: "application/json", body: `{"video_muted":true}`}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("mute: %d %s", resp.StatusCode, body)
	}
	eventually(t, 5*time.Second, "Ann shown muted", func() bool {
		s := sse.get().Slots[ann].Broadcaster
		return s != nil && s.VideoMuted
	})
	time.Sleep(200 * time.Millisecond)
	before, _ := v.SlotStats(annMid)
	time.Sleep(500 * time.Millisecond)
	if after, _ := v.SlotStats(annMid); after.Packets != before.Packets {
		t.Fatalf("muted video still arrives: %d packets more", after.Packets-before.Packets)
	}

	// The host removes Ann: her connection closes, her slot empties.
	if resp, body := do(t, n.URL, req{method: "DELETE", path: "/api/streams/demo/broadcasters/" + annID, token: testKey}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remove: %d %s", resp.StatusCode, body)
	}
	eventually(t, 5*time.Second, "Ann's slot empty", func() bool { return sse.get().Slots[ann].Broadcaster == nil })
	if _, err := guest(t, n, tok1, 2); !client.IsStatus(err, http.StatusForbidden) {
		t.Fatalf("a removed guest back with its invite: %v, want 403", err)
	}
	eventually(t, 5*time.Second, "Ann's connection closed", func() bool {
		st := g1.PC.ConnectionState()
		return st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected
	})

	// The host ends the room: the viewer's session ends.
	if resp, _ := do(t, n.URL, req{method: "POST", path: "/api/streams/demo/end", token: testKey}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("end: %d", resp.StatusCode)
	}
	eventually(t, 5*time.Second, "viewers gone", func() bool { _, vs := n.Srv.Sessions(); return vs == 0 })
	eventually(t, 5*time.Second, "offline", func() bool { return roomState(n) == "offline" })
	_ = host
}

func slicesHasEmpty(ids []string) bool {
	for _, id := range ids {
		if id == "" {
			return true
		}
	}
	return false
}

// TestActiveSpeakerIsAnnounced: the louder synthetic voice becomes the
// speaker, and a two-slot viewer is given the speaking guest.
func TestActiveSpeakerIsAnnounced(t *testing.T) {
	n := startNode(t, nodeOptions{})
	host := n.publish(t, client.PublisherConfig{Audio: true, Tag: 1})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	tok1, _ := invite(t, n, "Ann")
	g1, err := guest(t, n, tok1, 2)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := invite(t, n, "Bo")
	g2, err := guest(t, n, tok2, 3)
	if err != nil {
		t.Fatal(err)
	}
	v := n.view(t, client.ViewerConfig{Slots: 2})
	sse := followRoomEvents(t, v.Resource.URL)
	eventually(t, 5*time.Second, "Ann, the first guest, in the second slot", func() bool {
		r := sse.get()
		return len(r.Slots) == 2 && r.Slots[1].Broadcaster != nil && r.Slots[1].Broadcaster.Name == "Ann"
	})
	speaker := func() string {
		for _, b := range sse.get().Broadcasters {
			if b.Speaking {
				return b.Name
			}
		}
		return ""
	}
	host.SetAudioLevel(40)
	eventually(t, 5*time.Second, "the host speaking", func() bool { return sse.get().Speaker == sfu.HostID })
	host.SetAudioLevel(127)
	g2.SetAudioLevel(20)
	eventually(t, 5*time.Second, "Bo speaking", func() bool { return speaker() == "Bo" })
	eventually(t, 5*time.Second, "Bo in the second slot", func() bool {
		r := sse.get()
		return r.Slots[1].Broadcaster != nil && r.Slots[1].Broadcaster.Name == "Bo"
	})
	mid := sse.get().Slots[1].VideoMid
	eventually(t, 5*time.Second, "Bo's video in the second slot", func() bool {
		st, _ := v.SlotStats(mid)
		return st.LastTag == 3
	})
	g2.SetAudioLevel(127)
	g1.SetAudioLevel(10)
	eventually(t, 5*time.Second, "Ann speaking", func() bool { return speaker() == "Ann" })
}

// A node that relays a stream from another does not run its room: guests
// and the host's controls are sent to the origin with a 409 saying so.
func TestRelayedStreamRefusesRoomRequests(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.Srv.SetRelayed(func(stream string) bool { return stream == "demo" })
	n.publish(t, client.PublisherConfig{Audio: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	tok, _ := invite(t, n, "Ann")
	if _, err := guest(t, n, tok, 2); !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("a guest on a relaying node: %v, want 409", err)
	}
	if resp, body := do(t, n.URL, req{method: "POST", path: "/api/streams/demo/end", token: testKey}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "relays") {
		t.Fatalf("ending the room on a relaying node: %d %s", resp.StatusCode, body)
	}
}
