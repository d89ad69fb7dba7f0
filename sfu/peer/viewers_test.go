package peer

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// testFingerprint is a well-formed sha-256 fingerprint for offers in tests.
const testFingerprint = "sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"

const viewerOfferSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=fingerprint:" + testFingerprint + "\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\n" +
	"a=extmap:3 " + extTransportCC + "\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n" +
	"a=extmap:3 " + extTransportCC + "\r\na=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 x-made-up\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sctp-port:5000\r\n"

// liveStream returns a stream with a VP8 publication and its registry.
func liveStream(t *testing.T) *sfu.Stream {
	t.Helper()
	st := sfu.NewRegistry(sfu.DefaultConfig()).Stream("demo")
	pub := st.StartPublication(sfu.HostID, nopSource{}, sfu.Now())
	if _, err := pub.AddLayer("", sfu.Codec{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now()); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestViewerAnswer(t *testing.T) {
	n := testNode(t)
	defer n.Close()
	o, err := ParseOffer(viewerOfferSDP, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if o.remote.Ufrag != "abcd" || o.remote.FingerprintHash != "sha-256" || o.remote.Active {
		t.Fatalf("remote ICE %+v", o.remote)
	}
	st := liveStream(t)
	v, ans, err := n.View(context.Background(), st, "v1", o, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ice := v.LocalICE()
	for _, want := range []string{
		"a=group:BUNDLE 0 1 2\r\n", "a=setup:passive\r\n", "a=ice-ufrag:" + ice.Ufrag + "\r\n",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n", "a=sendonly\r\n",
		"a=rtcp-fb:96 nack pli\r\n", "a=rtcp-rsize\r\n", "a=extmap:3 " + extTransportCC + "\r\n",
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "a=sctp-port:5000\r\n",
		"a=fingerprint:" + n.fingerprint + "\r\n", " typ host\r\n", "a=msid:demo ",
	} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	for _, not := range []string{"x-made-up", "rtx/90000", "PCMU", "sdes:mid"} {
		if strings.Contains(ans, not) {
			t.Errorf("answer carries %q, which Glint does not do:\n%s", not, ans)
		}
	}
	// A real WebRTC stack takes the answer.
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("glint", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	o2, err := ParseOffer(offer.SDP, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	v2, ans2, err := n.View(context.Background(), st, "v2", o2, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans2}); err != nil {
		t.Fatalf("pion refused the answer: %v", err)
	}
}

func TestViewerOfferNeedsCredentials(t *testing.T) {
	for name, sdp := range map[string]string{
		"no fingerprint":      strings.ReplaceAll(viewerOfferSDP, "a=fingerprint:"+testFingerprint+"\r\n", ""),
		"md5 fingerprint":     strings.ReplaceAll(viewerOfferSDP, testFingerprint, "md5 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"),
		"short fingerprint":   strings.ReplaceAll(viewerOfferSDP, testFingerprint, "sha-256 AA:BB"),
		"garbled fingerprint": strings.ReplaceAll(viewerOfferSDP, testFingerprint, strings.ReplaceAll(testFingerprint, "CC", "XY")),
		"bad setup":           strings.ReplaceAll(viewerOfferSDP, "a=setup:actpass", "a=setup:sideways"),
	} {
		if _, err := ParseOffer(sdp, RoleViewer); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	vo, err := ParseOffer(strings.ReplaceAll(viewerOfferSDP, "a=setup:actpass", "a=setup:passive"), RoleViewer)
	if err != nil || !vo.remote.Active {
		t.Fatalf("a passive offerer must make Glint the DTLS client: %+v %v", vo, err)
	}
}

type nopSource struct{}

func (nopSource) RequestKeyframe(*sfu.Layer) {}
func (nopSource) Close() error               { return nil }

// A viewer's ICE-TCP connection that is never used must not keep the
// endpoint from closing.
func TestICETCPConnectionsEndWithTheEndpoint(t *testing.T) {
	n := testNode(t)
	o, err := ParseOffer(viewerOfferSDP, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := n.View(context.Background(), liveStream(t), "v1", o, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	local := v.LocalICE()
	remote := v.RemoteICE()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoaPort(n.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(local.Ufrag+":"+remote.Ufrag),
		ice.AttrControlling(1), stun.NewShortTermIntegrity(local.Pwd), stun.Fingerprint)
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(req.Raw)))
	if _, err := c.Write(append(frame, req.Raw...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 2)); err != nil {
		t.Fatalf("the verified connection got no answer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the endpoint's Close waited on an idle viewer connection")
	}
}

// A viewer that keeps ICE alive, answering Glint's checks and sending its
// own, but never agrees DTLS keys is closed after connectWait: checks alone
// do not hold a session slot (the lock-out attack of anonymous offers).
func TestChecksAloneDoNotKeepASession(t *testing.T) {
	n := testNode(t)
	n.connectWait = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = n.Run(ctx) }()
	defer func() { cancel(); <-ran; _ = n.Close() }()

	o, err := ParseOffer(viewerOfferSDP, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := n.View(context.Background(), liveStream(t), "v1", o, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	local, remote := v.LocalICE(), v.RemoteICE()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: n.Port()}
	var answered atomic.Int32 // Glint's answers to the viewer's checks
	go func() {
		buf := make([]byte, 1500)
		for {
			k, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:k]...)}
			if m.Decode() != nil {
				continue
			}
			if m.Type == stun.BindingSuccess {
				answered.Add(1)
				continue
			}
			if m.Type != stun.BindingRequest {
				continue
			}
			// Glint's own check of this path: answer it, signed as the viewer.
			resp, err := stun.Build(m, stun.BindingSuccess, &stun.XORMappedAddress{IP: from.IP, Port: from.Port},
				stun.NewShortTermIntegrity(remote.Pwd), stun.Fingerprint)
			if err == nil {
				_, _ = conn.WriteToUDP(resp.Raw, from)
			}
		}
	}()
	closed := make(chan struct{})
	go func() { <-v.Done(); close(closed) }()
	deadline := time.After(n.connectWait + 5*time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-closed:
			if answered.Load() == 0 {
				t.Fatal("Glint never answered the viewer's checks: the attack did not get through ICE")
			}
			if held := time.Since(start); held < n.connectWait-time.Second {
				t.Fatalf("closed after %v, before the viewer had its time to connect", held)
			}
			return
		case <-deadline:
			t.Fatalf("a viewer sending checks but never DTLS still holds its session after %v", time.Since(start))
		case <-tick.C:
			req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(local.Ufrag+":"+remote.Ufrag),
				ice.AttrControlling(1), ice.UseCandidate(), stun.NewShortTermIntegrity(local.Pwd), stun.Fingerprint)
			if _, err := conn.WriteToUDP(req.Raw, server); err != nil {
				t.Fatal(err)
			}
		}
	}
}
