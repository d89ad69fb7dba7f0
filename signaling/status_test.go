package signaling_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
)

// offerFor makes a real pion offer: sendonly for a publisher, recvonly for a
// viewer, with the given video codec.
func offerFor(t *testing.T, dir webrtc.RTPTransceiverDirection, mime, fmtp string) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp}, PayloadType: 96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if dir == webrtc.RTPTransceiverDirectionSendonly {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp}, "v", "s")
		if err != nil {
			t.Fatal(err)
		}
		_, err = pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: dir})
		if err != nil {
			t.Fatal(err)
		}
	} else if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

type req struct {
	method, path, ctype, token, body string
	header                           map[string]string
}

func do(t *testing.T, base string, r req) (*http.Response, string) {
	t.Helper()
	hr, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestOfferStatuses(t *testing.T) {
	n := startNode(t, nodeOptions{iceServers: []signaling.ICEServer{{URL: "turn:turn.example.net:3478", Username: "u", Credential: "c"}}})
	vp8 := offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.MimeTypeVP8, "")
	h265 := offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.MimeTypeH265, "")
	viewH264 := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f")
	viewVP8 := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeVP8, "")
	noICE := strings.NewReplacer("a=ice-ufrag:", "a=x-ufrag:", "a=ice-pwd:", "a=x-pwd:").Replace(vp8)
	sdp := "application/sdp"

	// Before anyone publishes.
	for _, c := range []struct {
		name string
		r    req
		want int
	}{
		{"whep on an offline stream", req{method: "POST", path: "/whep/demo", ctype: sdp, body: viewVP8}, 409},
		{"whip without a key", req{method: "POST", path: "/whip/demo", ctype: sdp, body: vp8}, 401},
		{"whip with a wrong key", req{method: "POST", path: "/whip/demo", ctype: sdp, token: "nope", body: vp8}, 403},
		{"whip to an unknown stream", req{method: "POST", path: "/whip/nobody", ctype: sdp, token: testKey, body: vp8}, 404},
		{"whep to an unknown stream", req{method: "POST", path: "/whep/nobody", ctype: sdp, body: viewVP8}, 404},
		{"whip with a wrong content type", req{method: "POST", path: "/whip/demo", ctype: "text/plain", token: testKey, body: vp8}, 415},
		{"whep with no content type", req{method: "POST", path: "/whep/demo", body: viewVP8}, 415},
		{"whip over the body limit", req{method: "POST", path: "/whip/demo", ctype: sdp, token: testKey, body: vp8 + strings.Repeat("a=x\r\n", 14000)}, 413},
		{"unparsable offer", req{method: "POST", path: "/whip/demo", ctype: sdp, token: testKey, body: "hello"}, 400},
		{"offer without ICE credentials", req{method: "POST", path: "/whip/demo", ctype: sdp, token: testKey, body: noICE}, 400},
		{"viewer offer sent to WHIP", req{method: "POST", path: "/whip/demo", ctype: sdp, token: testKey, body: viewVP8}, 400},
		{"no supported codec", req{method: "POST", path: "/whip/demo", ctype: sdp, token: testKey, body: h265}, 406},
		{"method not allowed", req{method: "PUT", path: "/whip/demo", ctype: sdp, token: testKey, body: vp8}, 405},
		{"head on an endpoint", req{method: "HEAD", path: "/whep/demo"}, 200},
	} {
		resp, body := do(t, n.URL, c.r)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
		}
		if c.want == 409 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", c.name)
		}
		if c.want >= 400 && c.want != 405 && c.r.method != "HEAD" && !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: error body is %q, want problem+json", c.name, resp.Header.Get("Content-Type"))
		}
	}

	// A publisher goes live; the answer carries the session resource.
	p := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	if !strings.HasPrefix(p.Resource.ETag, `"`) || p.Resource.ETag == `"*"` {
		t.Errorf("ETag %q is not a strong entity tag", p.Resource.ETag)
	}
	if !strings.Contains(strings.Join(p.Resource.Links, ","), `<turn:turn.example.net:3478>; rel="ice-server"; username="u"; credential="c"; credential-type="password"`) {
		t.Errorf("no ice-server Link on 201: %v", p.Resource.Links)
	}
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	resp, body := do(t, n.URL, req{method: "POST", path: "/whep/demo", ctype: sdp, body: viewH264})
	if resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("viewer without the stream's codec: %d %s, want 406", resp.StatusCode, body)
	}
	v := n.view(t, client.ViewerConfig{})
	links := strings.Join(v.Resource.Links, ",")
	for _, ext := range []string{"urn:ietf:params:whep:ext:core:server-sent-events", "urn:ietf:params:whep:ext:core:layer"} {
		if !strings.Contains(links, ext) {
			t.Errorf("WHEP 201 lacks the %s link: %s", ext, links)
		}
	}
}

func TestSessionLimit(t *testing.T) {
	n := startNode(t, nodeOptions{maxSessions: 1})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	_, err := client.View(context.Background(), client.ViewerConfig{Endpoint: n.URL + "/whep/demo", Options: client.Options{Loopback: true}})
	var se *client.StatusError
	if !client.IsStatus(err, 503) {
		t.Fatalf("viewer past the session limit: %v, want 503", err)
	}
	if errorsAs(err, &se); se.RetryAfter == "" {
		t.Fatal("503 without Retry-After")
	}
}

func errorsAs(err error, se **client.StatusError) bool {
	e, ok := err.(*client.StatusError) //nolint:errorlint // the client returns it unwrapped
	*se = e
	return ok
}

func TestSessionResource(t *testing.T) {
	n := startNode(t, nodeOptions{})
	p := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	whip := strings.TrimPrefix(p.Resource.URL, n.URL)
	whep := strings.TrimPrefix(v.Resource.URL, n.URL)
	frag := "a=ice-ufrag:" + fragValue(v.PC.LocalDescription().SDP, "ice-ufrag") +
		"\r\na=ice-pwd:" + fragValue(v.PC.LocalDescription().SDP, "ice-pwd") +
		"\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
	trickle := "application/trickle-ice-sdpfrag"
	for _, c := range []struct {
		name string
		r    req
		want int
	}{
		{"patch without If-Match", req{method: "PATCH", path: whep, ctype: trickle, body: frag}, 428},
		{"patch with a stale ETag", req{method: "PATCH", path: whep, ctype: trickle, body: frag, header: map[string]string{"If-Match": `"stale"`}}, 412},
		{"patch with a wrong type", req{method: "PATCH", path: whep, ctype: "application/sdp", body: frag, header: map[string]string{"If-Match": v.Resource.ETag}}, 415},
		{"patch a malformed fragment", req{method: "PATCH", path: whep, ctype: trickle, body: "garbage line", header: map[string]string{"If-Match": v.Resource.ETag}}, 400},
		{"trickle a candidate", req{method: "PATCH", path: whep, ctype: trickle, body: frag, header: map[string]string{"If-Match": v.Resource.ETag}}, 204},
		{"patch an unknown session", req{method: "PATCH", path: "/whep/demo/0123", ctype: trickle, body: frag, header: map[string]string{"If-Match": "*"}}, 404},
		{"patch a WHIP session without its key", req{method: "PATCH", path: whip, ctype: trickle, body: frag, header: map[string]string{"If-Match": p.Resource.ETag}}, 401},
		{"patch a WHIP session with a wrong key", req{method: "PATCH", path: whip, ctype: trickle, token: "nope", body: frag, header: map[string]string{"If-Match": p.Resource.ETag}}, 403},
		{"get a session", req{method: "GET", path: whep}, 204},
		{"get a WHIP session without its key", req{method: "GET", path: whip}, 401},
		{"get a WHIP session with its key", req{method: "GET", path: whip, token: testKey}, 204},
		{"preflight a session", req{method: "OPTIONS", path: whep, header: map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"}}, 204},
		{"delete a WHIP session without its key", req{method: "DELETE", path: whip}, 401},
		{"delete a viewer", req{method: "DELETE", path: whep}, 200},
		{"delete it again", req{method: "DELETE", path: whep}, 404},
	} {
		resp, body := do(t, n.URL, c.r)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.want)
		}
	}
	resp, _ := do(t, n.URL, req{method: "DELETE", path: whip, token: testKey})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete the publisher: %d", resp.StatusCode)
	}
	if st := roomState(n); st != "offline" {
		t.Fatalf("state %s after the publisher's DELETE, want offline", st)
	}
}

func TestCORSAndDiscovery(t *testing.T) {
	n := startNode(t, nodeOptions{iceServers: []signaling.ICEServer{{URL: "stun:stun.example.net"}}})
	resp, _ := do(t, n.URL, req{method: "OPTIONS", path: "/whip/demo", header: map[string]string{
		"Origin": "https://studio.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}})
	h := resp.Header
	switch {
	case resp.StatusCode != http.StatusNoContent:
		t.Fatalf("preflight: %d", resp.StatusCode)
	case h.Get("Access-Control-Allow-Origin") != "*":
		t.Errorf("Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	case !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST"):
		t.Errorf("Allow-Methods %q", h.Get("Access-Control-Allow-Methods"))
	case !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization"):
		t.Errorf("Allow-Headers %q", h.Get("Access-Control-Allow-Headers"))
	case !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Location"):
		t.Errorf("Expose-Headers %q", h.Get("Access-Control-Expose-Headers"))
	case h.Get("Accept-Post") != "application/sdp":
		t.Errorf("Accept-Post %q", h.Get("Accept-Post"))
	case len(h.Values("Link")) != 0:
		t.Errorf("preflight lists ICE servers: %v", h.Values("Link"))
	}
}

func TestAPIAndEvents(t *testing.T) {
	n := startNode(t, nodeOptions{})
	resp, body := do(t, n.URL, req{method: "GET", path: "/api/streams"})
	var list struct {
		Streams []struct {
			Name, State string
		}
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || resp.StatusCode != http.StatusOK || len(list.Streams) != 2 || list.Streams[0].State != "offline" {
		t.Fatalf("streams before publishing: %d %s", resp.StatusCode, body)
	}
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "media", func() bool { return v.Stats().VideoPackets > 100 })
	time.Sleep(1200 * time.Millisecond) // one stats tick for bitrates and frame rates

	resp, body = do(t, n.URL, req{method: "GET", path: "/api/streams/demo"})
	var info struct {
		State   string
		Viewers int
		Video   struct {
			Codec  string
			Layers []struct {
				RID     string
				Width   int
				Height  int
				FPS     float64
				Bitrate uint64
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream info: %d %s", resp.StatusCode, body)
	}
	if info.State != "live" || info.Viewers != 1 || len(info.Video.Layers) != 3 {
		t.Fatalf("stream info: %s", body)
	}
	for i, l := range info.Video.Layers {
		wantH := 180 << i
		if l.Height != wantH || l.Width != wantH*16/9 || l.FPS < 20 || l.Bitrate == 0 {
			t.Errorf("layer %d: %+v, want %dp at ~30 fps with a bitrate", i, l, wantH)
		}
	}
	if resp, _ := do(t, n.URL, req{method: "GET", path: "/api/streams/nobody"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown stream: %d", resp.StatusCode)
	}

	// Layer selection pins the low layer; the events report it.
	layerURL, eventsURL := "", ""
	for _, l := range v.Resource.Links {
		u := strings.TrimSuffix(strings.TrimPrefix(strings.Split(l, ";")[0], "<"), ">")
		switch {
		case strings.Contains(l, "ext:core:layer"):
			layerURL = u
		case strings.Contains(l, "server-sent-events"):
			eventsURL = u
		}
	}
	if resp, _ := do(t, n.URL, req{method: "POST", path: layerURL, ctype: "application/json", body: "{not json"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad layer JSON: %d", resp.StatusCode)
	}
	if resp, _ := do(t, n.URL, req{method: "POST", path: layerURL, ctype: "application/json", body: `{"encodingId":"l"}`}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("layer selection: %d", resp.StatusCode)
	}
	eventually(t, 5*time.Second, "the viewer on the low layer", func() bool { return v.Stats().Layer == 0 })
	resp, _ = do(t, n.URL, req{method: "POST", path: eventsURL, ctype: "application/json", body: `["layers"]`})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") == "" {
		t.Fatalf("events subscription: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	er, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+resp.Header.Get("Location"), nil)
	es, err := http.DefaultClient.Do(er)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Body.Close()
	buf := make([]byte, 4096)
	got := ""
	for !strings.Contains(got, "event: layers") {
		k, err := es.Body.Read(buf)
		if err != nil {
			t.Fatalf("event stream: %v after %q", err, got)
		}
		got += string(buf[:k])
	}
	if !strings.Contains(got, `"active":"l"`) {
		t.Fatalf("layers event does not report the pinned layer: %q", got)
	}
	// One session may hold a few event streams, not any number.
	for i := 1; ; i++ {
		r, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+resp.Header.Get("Location"), nil)
		more, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer more.Body.Close()
		if more.StatusCode == http.StatusTooManyRequests {
			if i != 4 {
				t.Fatalf("event stream %d refused, want the 5th", i+1)
			}
			break
		}
		if i > 4 {
			t.Fatalf("%d event streams open on one session", i+1)
		}
	}
}

func TestPublicIPReplacesHostCandidates(t *testing.T) {
	n := startNode(t, nodeOptions{publicIPs: []string{"203.0.113.7"}})
	resp, body := do(t, n.URL, req{method: "POST", path: "/whip/demo", ctype: "application/sdp", token: testKey,
		body: offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.MimeTypeVP8, "")})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, " 203.0.113.7 ") || strings.Contains(body, " 127.0.0.1 ") {
		t.Fatalf("answer candidates do not advertise only the public IP:\n%s", body)
	}
}

func TestOfferWithDataChannelIsAnswered(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.CreateDataChannel("glint", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, n.URL, req{method: "POST", path: "/whep/demo", ctype: "application/sdp", body: offer.SDP})
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, "m=application ") || strings.Contains(body, "m=application 0 ") {
		t.Fatalf("offer with a data channel: %d, answer:\n%s", resp.StatusCode, body)
	}
}

// TestViewerDataChannelCarriesMessages runs the "glint" data channel over
// the viewer transport both ways, refuses a second label, and ends it with
// the session.
func TestViewerDataChannelCarriesMessages(t *testing.T) {
	n := startNode(t, nodeOptions{})
	got := make(chan string, 4)
	n.Srv.OnChannel(func(stream string, _ netip.Addr, ch *peer.Channel) {
		ch.OnMessage(func(b []byte) {
			got <- stream + ":" + string(b)
			_ = ch.Send([]byte("echo " + string(b)))
		})
	})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	dc, err := pc.CreateDataChannel("glint", nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pc.CreateDataChannel("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	echoes := make(chan string, 4)
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !strings.HasPrefix(string(m.Data), `{"type":"room"`) { // the room, announced to every viewer
			echoes <- string(m.Data)
		}
	})
	dc.OnOpen(func() { _ = dc.SendText("hello") })
	closed := make(chan struct{})
	dc.OnClose(func() { close(closed) })
	otherClosed := make(chan struct{})
	other.OnClose(func() { close(otherClosed) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	waitGathered(t, gathered)
	resp, body := do(t, n.URL, req{method: "POST", path: "/whep/demo", ctype: "application/sdp", body: pc.LocalDescription().SDP})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ch <-chan string, want string) {
		t.Helper()
		select {
		case v := <-ch:
			if v != want {
				t.Fatalf("%s: %q, want %q", what, v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", what)
		}
	}
	wait("message at the server", got, "demo:hello")
	wait("echo at the viewer", echoes, "echo hello")
	select {
	case <-otherClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("a channel of another label stayed open")
	}
	del, _ := do(t, n.URL, req{method: "DELETE", path: resp.Header.Get("Location")})
	if del.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", del.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the data channel outlived its session")
	}
}

func TestViewerClosingEndsItsSession(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "viewer receiving", func() bool { return v.Stats().VideoPackets > 20 })
	_ = v.PC.Close() // DTLS close_notify, no DELETE
	eventually(t, 1500*time.Millisecond, "the session ended", func() bool { _, n := n.Srv.Sessions(); return n == 0 })
}

func TestAbandonedSessionIsReclaimed(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	// A viewer posts an offer and vanishes before connecting.
	resp, body := do(t, n.URL, req{method: "POST", path: "/whep/demo", ctype: "application/sdp",
		body: offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeVP8, "")})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if _, v := n.Srv.Sessions(); v != 1 {
		t.Fatalf("%d viewer sessions, want 1", v)
	}
	eventually(t, 15*time.Second, "the abandoned session reclaimed", func() bool { _, v := n.Srv.Sessions(); return v == 0 })
	if got := n.Reg.Lookup("demo").Viewers(); got != 0 {
		t.Fatalf("room still counts %d viewers", got)
	}
}
