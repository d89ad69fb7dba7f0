package signaling_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/sfu"
)

func TestMain(m *testing.M) {
	if os.Getenv("GLINT_HELPER") == "publisher" {
		helperPublisher()
		return
	}
	goleak.VerifyTestMain(m)
}

// helperPublisher runs in a child process so a test can kill it outright:
// no DELETE, no DTLS close, just silence, as when a phone loses its network.
func helperPublisher() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Publish(ctx, client.PublisherConfig{
		Endpoint: os.Getenv("GLINT_HELPER_ENDPOINT"), Token: testKey,
		Simulcast: true, Audio: true, Options: client.Options{Loopback: true},
	})
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("ready\n")
	select {}
}

// startHelperPublisher starts a publisher process and waits until it is live.
func startHelperPublisher(t *testing.T, n *node) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GLINT_HELPER=publisher", "GLINT_HELPER_ENDPOINT="+n.URL+"/whip/demo")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper publisher: %q %v", line, err)
	}
	return cmd
}

func roomState(n *node) string {
	if r := n.Reg.Lookup("demo"); r != nil {
		return r.State().String()
	}
	return "offline"
}

// checkClean asserts a viewer got one continuous stream that began on a
// keyframe.
func checkClean(t *testing.T, i int, s client.ViewerStats) {
	t.Helper()
	switch {
	case !s.FirstVideoKeyframe:
		t.Errorf("viewer %d: first video packet was not a keyframe", i)
	case s.SSRCChanges != 0:
		t.Errorf("viewer %d: SSRC changed %d times", i, s.SSRCChanges)
	case s.SeqJumps != 0:
		t.Errorf("viewer %d: %d sequence numbers never arrived", i, s.SeqJumps)
	case s.FrameGaps != 0:
		t.Errorf("viewer %d: %d frames skipped", i, s.FrameGaps)
	case s.AudioPackets == 0:
		t.Errorf("viewer %d: no audio", i)
	}
}

func TestSimulcastFanoutTwentyViewers(t *testing.T) {
	n := startNode(t, nodeOptions{})
	p := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	time.Sleep(500 * time.Millisecond) // the first keyframes have passed: viewers must ask for their own
	var viewers []*client.Viewer
	joinStart := time.Now()
	for range 20 {
		viewers = append(viewers, n.view(t, client.ViewerConfig{}))
	}
	joinSpan := time.Since(joinStart)
	eventually(t, 10*time.Second, "every viewer receiving", func() bool {
		for _, v := range viewers {
			if s := v.Stats(); s.VideoPackets < 200 || s.AudioPackets < 50 {
				return false
			}
		}
		return true
	})
	for i, v := range viewers {
		checkClean(t, i, v.Stats())
	}
	// Joins coalesce: one layer is asked for a keyframe at most once per
	// coalescing interval (500 ms), however many viewers arrive. Under load
	// some viewers also switch layers, which asks too, so the total is not a
	// fixed number, but never one per viewer and never two within an
	// interval on one layer (allowing 150 ms of delivery jitter).
	total := 0
	for rid, times := range p.KeyframeRequestTimes() {
		total += len(times)
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < 350*time.Millisecond {
				t.Errorf("layer %s asked for keyframes %v apart: not coalesced", rid, gap)
			}
		}
	}
	if total >= len(viewers) {
		t.Errorf("%d keyframe requests for %d joins", total, len(viewers))
	}
	t.Logf("20 joins over %v cost %d keyframe requests", joinSpan.Round(time.Millisecond), total)
	info := n.Reg.Lookup("demo").Info(sfu.Now())
	if info.Viewers != 20 || info.Video == nil || len(info.Video.Layers) != 3 {
		t.Fatalf("room info: %+v", info)
	}
}

// throttle is a viewer-side interceptor that drops incoming video beyond a
// byte rate, before pion's feedback interceptors see it: a link with a
// bandwidth limit.
type throttle struct {
	interceptor.NoOp
	rate   atomic.Int64 // bytes per second; 0 means unlimited
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (t *throttle) NewInterceptor(string) (interceptor.Interceptor, error) { return t, nil }

func (t *throttle) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if !strings.HasPrefix(info.MimeType, "video") {
		return r
	}
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, a, err := r.Read(b, a)
			if err != nil || t.allow(n) {
				return n, a, err
			}
		}
	})
}

func (t *throttle) allow(n int) bool {
	rate := float64(t.rate.Load())
	if rate == 0 {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.tokens = min(t.tokens+now.Sub(t.last).Seconds()*rate, rate/10) // 100 ms of burst
	t.last = now
	if t.tokens < float64(n) {
		return false
	}
	t.tokens -= float64(n)
	return true
}

func TestThrottledViewerMovesDownAndBackUp(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	th := &throttle{}
	slow := n.view(t, client.ViewerConfig{Options: client.Options{Interceptors: []interceptor.Factory{th}}})
	fast := n.view(t, client.ViewerConfig{})
	eventually(t, 10*time.Second, "both viewers on the top layer", func() bool {
		return slow.Stats().Layer == 2 && fast.Stats().Layer == 2 && slow.Stats().VideoPackets > 100
	})
	th.rate.Store(800_000 / 8) // below the top layer's 1.2 Mbit/s, above the middle's 0.5
	eventually(t, 15*time.Second, "the throttled viewer moving down", func() bool { return slow.Stats().Layer < 2 })
	t.Logf("throttled viewer moved to layer %d", slow.Stats().Layer)
	if fast.Stats().Layer != 2 {
		t.Fatal("the unthrottled viewer moved down too")
	}
	th.rate.Store(0)
	eventually(t, 40*time.Second, "the viewer moving back up once the limit is lifted", func() bool { return slow.Stats().Layer == 2 })
	s := slow.Stats()
	if s.SSRCChanges != 0 || !s.FirstVideoKeyframe {
		t.Fatalf("switching broke the stream: %+v", s)
	}
	t.Logf("layer changes: %v", s.Layers)
}

func TestPublisherKilledAndReconnectsWithinGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("a publisher process killed and restarted: runs in the full suite (make test), not with -short")
	}
	n := startNode(t, nodeOptions{grace: 20 * time.Second})
	helper := startHelperPublisher(t, n)
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	var viewers []*client.Viewer
	for range 3 {
		viewers = append(viewers, n.view(t, client.ViewerConfig{}))
	}
	eventually(t, 10*time.Second, "viewers receiving", func() bool {
		for _, v := range viewers {
			if v.Stats().VideoPackets < 100 {
				return false
			}
		}
		return true
	})
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the stream reconnecting", func() bool { return roomState(n) == "reconnecting" })
	before := make([]int, len(viewers))
	for i, v := range viewers {
		before[i] = v.Stats().VideoPackets
	}
	// The publisher comes back with the same key; viewers do not renegotiate.
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live again", func() bool { return roomState(n) == "live" })
	eventually(t, 10*time.Second, "every viewer receiving again", func() bool {
		for i, v := range viewers {
			if v.Stats().VideoPackets < before[i]+100 {
				return false
			}
		}
		return true
	})
	for i, v := range viewers {
		checkClean(t, i, v.Stats())
		if slices.ContainsFunc(v.States(), func(s webrtc.PeerConnectionState) bool {
			return s == webrtc.PeerConnectionStateDisconnected || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed
		}) {
			t.Errorf("viewer %d connection went through %v", i, v.States())
		}
	}
}

func TestViewersEndAfterGrace(t *testing.T) {
	n := startNode(t, nodeOptions{grace: 2 * time.Second})
	p := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "viewer receiving", func() bool { return v.Stats().VideoPackets > 50 })
	lostAt := time.Now()
	_ = p.Stop() // vanish without DELETE
	eventually(t, 5*time.Second, "the stream reconnecting", func() bool { return roomState(n) == "reconnecting" })
	eventually(t, 10*time.Second, "the viewer's session ending", func() bool {
		return v.PC.ConnectionState() == webrtc.PeerConnectionStateClosed
	})
	if d := time.Since(lostAt); d < 2*time.Second {
		t.Fatalf("viewer ended after %v, inside the 2 s grace period", d)
	}
	if st := roomState(n); st != "offline" {
		t.Fatalf("state %s after grace, want offline", st)
	}
	_, err := client.View(context.Background(), client.ViewerConfig{Endpoint: n.URL + "/whep/demo", Options: client.Options{Loopback: true}})
	if !client.IsStatus(err, 409) {
		t.Fatalf("WHEP after the stream ended: %v, want 409", err)
	}
}

func TestSecondPublisherTakesOver(t *testing.T) {
	n := startNode(t, nodeOptions{})
	first := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "viewer receiving", func() bool { return v.Stats().VideoPackets > 50 })

	_, err := client.Publish(context.Background(), client.PublisherConfig{
		Endpoint: n.URL + "/whip/demo", Token: "not-the-key", Options: client.Options{Loopback: true}})
	if !client.IsStatus(err, 403) {
		t.Fatalf("publisher with a wrong key: %v, want 403", err)
	}
	before := v.Stats().VideoPackets
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "the first publisher closed", func() bool {
		return first.PC.ConnectionState() == webrtc.PeerConnectionStateClosed
	})
	eventually(t, 5*time.Second, "the viewer receiving from the new publisher", func() bool { return v.Stats().VideoPackets > before+100 })
	checkClean(t, 0, v.Stats())
}

// stallingListener hands out connections whose writes block while stalled,
// as a TCP connection to a peer that stopped reading does.
type stallingListener struct {
	net.Listener
	stalled atomic.Bool
	release chan struct{}
}

type stallingConn struct {
	net.Conn
	l *stallingListener
}

func (l *stallingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, l: l}, nil
}

func (c *stallingConn) Write(b []byte) (int, error) {
	if c.l.stalled.Load() {
		<-c.l.release
	}
	return c.Conn.Write(b)
}

func TestStalledViewerDelaysNobody(t *testing.T) {
	sl := &stallingListener{release: make(chan struct{})}
	n := startNodeWith(t, nodeOptions{tcp: true}, func(network, addr string) (net.Listener, error) {
		l, err := net.Listen(network, addr)
		sl.Listener = l
		return sl, err
	})
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	stuck := n.view(t, client.ViewerConfig{Options: client.Options{TCP: true}})
	fine := n.view(t, client.ViewerConfig{})
	eventually(t, 10*time.Second, "both viewers receiving", func() bool {
		return stuck.Stats().VideoPackets > 100 && fine.Stats().VideoPackets > 100
	})
	sl.stalled.Store(true)
	defer close(sl.release)
	stuckAt := stuck.Stats().VideoPackets
	start := fine.Stats().VideoPackets
	time.Sleep(3 * time.Second)
	s := fine.Stats()
	// 3 s of a 1.2 Mbit/s layer at 30 fps is well over 300 packets.
	if s.VideoPackets-start < 300 || s.FrameGaps != 0 || s.LastLatency > 100*time.Millisecond {
		t.Fatalf("the healthy viewer suffered: %d packets in 3 s, %d frame gaps, latency %v", s.VideoPackets-start, s.FrameGaps, s.LastLatency)
	}
	if got := stuck.Stats().VideoPackets; got > stuckAt+200 {
		t.Fatalf("the stalled viewer kept receiving (%d → %d): the stall did not take", stuckAt, got)
	}
}

func TestICERestartKeepsSession(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "viewer receiving", func() bool { return v.Stats().VideoPackets > 50 })

	restartICE(t, v.PC, v.Resource)
	before := v.Stats().VideoPackets
	eventually(t, 10*time.Second, "media after the restart", func() bool { return v.Stats().VideoPackets > before+100 })
	if s := v.Stats(); s.SSRCChanges != 0 {
		t.Fatalf("restart changed SSRC: %+v", s)
	}
}

// waitGathered waits for a test client's ICE gathering, failing rather
// than hanging the package if pion's promise never completes (seen once,
// the publisher client's gathering for an ICE restart, in a clean-clone
// make test; 30 reruns of that test passed).
func waitGathered(t *testing.T, gathered <-chan struct{}) {
	t.Helper()
	select {
	case <-gathered:
	case <-time.After(10 * time.Second):
		t.Fatal("the test client's ICE gathering did not complete in 10 s")
	}
}

// restartICE performs an RFC 9725 ICE restart: a new offer's credentials
// and candidates go in a PATCH with If-Match: *, and the server's new ones
// come back in the 200's fragment.
func restartICE(t *testing.T, pc *webrtc.PeerConnection, res *client.Resource) {
	t.Helper()
	ctx := context.Background()
	offer, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	waitGathered(t, gathered)
	frag := fragmentOf(t, pc.LocalDescription().SDP)
	resp, body, err := res.Patch(ctx, frag, "*")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("restart PATCH: %v %v %s", err, resp, body)
	}
	if resp.Header.Get("ETag") == "" || resp.Header.Get("ETag") == res.ETag {
		t.Fatalf("restart kept ETag %q", resp.Header.Get("ETag"))
	}
	// Apply the server's new ICE parameters to the previous answer.
	answer := pc.RemoteDescription().SDP
	ufrag, pwd := fragValue(string(body), "ice-ufrag"), fragValue(string(body), "ice-pwd")
	var lines []string
	for _, l := range strings.Split(answer, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			l = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			l = "a=ice-pwd:" + pwd
		case strings.HasPrefix(l, "a=candidate:"):
			continue
		}
		lines = append(lines, l)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: strings.Join(lines, "\r\n")}); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") {
			mid := "0"
			if err := pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(l, "a="), SDPMid: &mid}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fragmentOf builds the RFC 8840 fragment of an offer: ICE credentials and
// candidates.
func fragmentOf(t *testing.T, offer string) string {
	t.Helper()
	var b strings.Builder
	var mid string
	for _, l := range strings.Split(offer, "\r\n") {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"), strings.HasPrefix(l, "a=ice-pwd:"):
			if !strings.Contains(b.String(), l[:10]) {
				b.WriteString(l + "\r\n")
			}
		case strings.HasPrefix(l, "a=mid:") && mid == "":
			mid = l
		}
	}
	b.WriteString("m=audio 9 RTP/AVP 0\r\n" + mid + "\r\n")
	for _, l := range strings.Split(offer, "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") && !strings.Contains(b.String(), l) {
			b.WriteString(l + "\r\n")
		}
	}
	return b.String()
}

func fragValue(frag, key string) string {
	for _, l := range strings.Split(frag, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a="+key+":"); ok {
			return v
		}
	}
	return ""
}

func TestSingleEncodingPublisher(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "media", func() bool { s := v.Stats(); return s.VideoPackets > 200 && s.AudioPackets > 50 })
	checkClean(t, 0, v.Stats())
	if l := n.Reg.Lookup("demo").Info(sfu.Now()).Video.Layers; len(l) != 1 || l[0].RID != "" {
		t.Fatalf("layers %+v, want one without a rid", l)
	}
}

// lossyUplink drops the first transmission of every 20th video packet a
// publisher sends (retransmissions pass) and counts the sequence numbers
// the server NACKs.
type lossyUplink struct {
	interceptor.NoOp
	mu      sync.Mutex
	dropped map[uint16]bool
	nacked  map[uint16]int
	n       int
}

func (l *lossyUplink) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

func (l *lossyUplink) BindLocalStream(info *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	if !strings.HasPrefix(info.MimeType, "video") {
		return w
	}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		l.mu.Lock()
		_, again := l.dropped[h.SequenceNumber]
		l.n++
		drop := !again && l.n%20 == 0
		if drop {
			l.dropped[h.SequenceNumber] = true
		}
		l.mu.Unlock()
		if drop {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

func (l *lossyUplink) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil {
			if pkts, perr := rtcp.Unmarshal(b[:n]); perr == nil {
				l.mu.Lock()
				for _, p := range pkts {
					if nk, ok := p.(*rtcp.TransportLayerNack); ok {
						for _, pair := range nk.Nacks {
							for _, s := range pair.PacketList() {
								l.nacked[s]++
							}
						}
					}
				}
				l.mu.Unlock()
			}
		}
		return n, a, err
	})
}

func TestPublisherLossRecoveredOnceForEveryone(t *testing.T) {
	n := startNode(t, nodeOptions{})
	up := &lossyUplink{dropped: map[uint16]bool{}, nacked: map[uint16]int{}}
	n.publish(t, client.PublisherConfig{Audio: true, Options: client.Options{Interceptors: []interceptor.Factory{up}}})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	var viewers []*client.Viewer
	for range 5 {
		viewers = append(viewers, n.view(t, client.ViewerConfig{}))
	}
	eventually(t, 10*time.Second, "viewers receiving", func() bool {
		for _, v := range viewers {
			if v.Stats().VideoPackets < 400 {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // let the last repairs land
	for i, v := range viewers {
		checkClean(t, i, v.Stats()) // every loss repaired: no sequence number missing
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	dropped, asked, requests := len(up.dropped), 0, 0
	for s := range up.dropped {
		if up.nacked[s] > 0 {
			asked++
		}
		requests += up.nacked[s]
	}
	t.Logf("publisher lost %d packets; the server asked for %d of them with %d NACK entries for 5 viewers", dropped, asked, requests)
	if dropped < 10 || asked < dropped*8/10 {
		t.Fatalf("%d packets lost, %d asked for again: the server did not recover the publisher's losses", dropped, asked)
	}
	if requests > dropped*2 {
		t.Fatalf("%d NACK entries for %d losses and 5 viewers: losses must be asked for once, not per viewer", requests, dropped)
	}
}

func TestPublisherICERestart(t *testing.T) {
	n := startNode(t, nodeOptions{})
	p := n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	v := n.view(t, client.ViewerConfig{})
	eventually(t, 5*time.Second, "viewer receiving", func() bool { return v.Stats().VideoPackets > 50 })
	restartICE(t, p.PC, p.Resource)
	before := v.Stats().VideoPackets
	eventually(t, 10*time.Second, "media after the publisher's restart", func() bool { return v.Stats().VideoPackets > before+100 })
	if roomState(n) != "live" {
		t.Fatalf("state %s after an ICE restart", roomState(n))
	}
	checkClean(t, 0, v.Stats())
}

// One viewer floods NACKs (thousands a second, each naming hundreds of
// packets). Its retransmits stay within its budget, the rest are refused
// and counted, and the other viewers get every packet at the same rate as
// before, with nothing lost: the flood's work runs on the flooder's lane,
// never on the socket reader that also carries the publisher's packets.
func TestNACKFloodLeavesOtherViewersAlone(t *testing.T) {
	n := startNode(t, nodeOptions{})
	n.publish(t, client.PublisherConfig{Simulcast: true, Audio: true})
	eventually(t, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	var others []*client.Viewer
	for range 3 {
		others = append(others, n.view(t, client.ViewerConfig{}))
	}
	var floodSSRC atomic.Uint32
	var highest atomic.Uint32
	flooder := n.view(t, client.ViewerConfig{OnPacket: func(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, _ time.Time) {
		if kind == webrtc.RTPCodecTypeVideo {
			floodSSRC.Store(p.SSRC)
			highest.Store(uint32(p.SequenceNumber))
		}
	}})
	eventually(t, 5*time.Second, "every viewer receiving", func() bool {
		for _, v := range append(others, flooder) {
			if v.Stats().VideoPackets < 100 {
				return false
			}
		}
		return true
	})
	rate := func() []int {
		var before []int
		for _, v := range others {
			before = append(before, v.Stats().VideoPackets)
		}
		time.Sleep(2 * time.Second)
		for i, v := range others {
			before[i] = v.Stats().VideoPackets - before[i]
		}
		return before
	}
	quiet := rate()
	sent0, refused0 := n.Reg.Retransmits()

	stop := make(chan struct{})
	var floods atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			top := uint16(highest.Load())
			var pairs []rtcp.NackPair
			for i := range 16 {
				pairs = append(pairs, rtcp.NackPair{PacketID: top - uint16(17*(i+1)), LostPackets: 0xffff})
			}
			_ = flooder.PC.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: floodSSRC.Load(), Nacks: pairs}})
			floods.Add(1)
			time.Sleep(500 * time.Microsecond)
		}
	}()
	flooded := rate()
	close(stop)
	sent, refused := n.Reg.Retransmits()
	sent, refused = sent-sent0, refused-refused0
	t.Logf("%d NACK packets in 2 s: %d retransmits sent, %d refused; others' packets per 2 s %v before, %v during", floods.Load(), sent, refused, quiet, flooded)
	// The budget: half the estimate (at most 20 Mbit/s) or 500 kbit/s, for
	// 2 s plus a quarter-second burst.
	if most := uint64(2900); sent > most { // 10 Mbit/s × 2.25 s in packets of ~1 KB
		t.Errorf("%d retransmits in 2 s, above the budget's %d", sent, most)
	}
	if refused < 10*sent || refused < 10000 {
		t.Errorf("only %d NACKed packets refused (%d sent)", refused, sent)
	}
	for i := range others {
		if flooded[i] < quiet[i]*9/10 {
			t.Errorf("viewer %d got %d packets in 2 s during the flood, %d before", i, flooded[i], quiet[i])
		}
		if s := others[i].Stats(); s.SeqJumps != 0 || s.FrameGaps != 0 {
			t.Errorf("viewer %d lost packets during the flood: %d never arrived, %d frames skipped", i, s.SeqJumps, s.FrameGaps)
		}
	}
}
