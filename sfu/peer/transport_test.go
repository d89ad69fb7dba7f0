package peer

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

func TestSTUNUsernameRoutesToItsTransport(t *testing.T) {
	m := newLiteMux()
	tr := &transport{}
	m.addUfrag("srvF", tr)
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername("srvF:cli1"),
		stun.NewShortTermIntegrity("pwd"), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.byRequest(req.Raw); got != tr {
		t.Fatal("a binding request naming the transport's ufrag was not routed to it")
	}
	other, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername("pubX:cli1"))
	if m.byRequest(other.Raw) != nil {
		t.Fatal("a request for another ufrag (a publisher's) was taken")
	}
	resp, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, stun.NewUsername("srvF:cli1"))
	if m.byRequest(resp.Raw) != nil {
		t.Fatal("a binding response was taken for a request")
	}
	for _, cut := range []int{0, 19, 20, 24, len(req.Raw) - 1} {
		if m.byRequest(req.Raw[:cut]) != nil && cut < 28 {
			t.Fatalf("a request cut to %d bytes was routed", cut)
		}
	}
	a := netip.MustParseAddrPort("127.0.0.1:5000")
	m.addAddr(a, tr)
	if m.byAddr(a) != tr {
		t.Fatal("checked address not routed")
	}
	m.remove(tr, []string{"srvF"}, []netip.AddrPort{a})
	if m.byAddr(a) != nil || m.byRequest(req.Raw) != nil {
		t.Fatal("a removed transport still gets packets")
	}
}

// FuzzViewerPacket feeds a viewer transport what anyone may send to the
// media port: it must neither panic nor answer a check it cannot verify.
func FuzzViewerPacket(f *testing.F) {
	n := &Node{lite: newLiteMux(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr := newTransport(n, remoteICE{ufrag: "cli1", pwd: "clientpassword0123456789"})
	ufrag, _ := tr.credentials()
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":cli1"),
		stun.NewShortTermIntegrity("wrong"), stun.Fingerprint)
	f.Add(req.Raw)
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6, 0, 200})
	f.Add([]byte{0x80, 200, 0, 1, 0, 0, 0, 1})
	f.Add([]byte{22, 0xfe, 0xfd, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, ok := stunUsername(b)
		if ok && len(u) > len(b) {
			t.Fatalf("username %q longer than the packet", u)
		}
		p := &recordPath{}
		tr.receive(p, b)
		if len(p.sent) > 0 {
			t.Fatalf("answered an unverifiable packet: %x", p.sent[0])
		}
	})
}

// recordPath is a path that keeps what is written to it.
type recordPath struct{ sent [][]byte }

func (p *recordPath) write(b []byte) error {
	p.sent = append(p.sent, append([]byte(nil), b...))
	return nil
}
func (p *recordPath) addr() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:9") }
func (p *recordPath) close()               {}

const viewerOfferSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\na=fingerprint:sha-256 AA:BB\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\n" +
	"a=extmap:3 " + extTransportCC + "\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtcp-fb:111 transport-cc\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n" +
	"a=extmap:3 " + extTransportCC + "\r\na=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 transport-cc\r\na=rtcp-fb:96 x-made-up\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sctp-port:5000\r\n"

func TestViewerAnswer(t *testing.T) {
	n := testNode(t)
	defer n.Close()
	o, err := ParseOffer(viewerOfferSDP, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if o.remote.ufrag != "abcd" || o.remote.fp != "AA:BB" || o.remote.fpHash != "sha-256" || o.remote.active {
		t.Fatalf("remote ICE %+v", o.remote)
	}
	room := sfu.NewRegistry(sfu.DefaultConfig()).Stream("demo")
	pub := room.StartPublication(sfu.HostID, nopSource{}, sfu.Now())
	if _, err := pub.AddLayer("", sfu.Codec{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now()); err != nil {
		t.Fatal(err)
	}
	sub, err := room.Subscribe("v1")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(nil)
	tr := newTransport(n, o.remote)
	defer tr.close()
	tracks, err := answerTracks(o, sub.DownTracks(), tr)
	if err != nil {
		t.Fatal(err)
	}
	ufrag, pwd := tr.credentials()
	ans := buildAnswer(o, tracks, "demo", ufrag, pwd, n.fingerprint, n.candidates)
	for _, want := range []string{
		"a=group:BUNDLE 0 1 2\r\n", "a=setup:passive\r\n", "a=ice-ufrag:" + ufrag + "\r\n",
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n", "a=sendonly\r\n",
		"a=rtcp-fb:96 nack pli\r\n", "a=rtcp-rsize\r\n", "a=extmap:3 " + extTransportCC + "\r\n",
		"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", "a=sctp-port:5000\r\n",
		"a=fingerprint:" + n.fingerprint + "\r\n", " typ host\r\n", " tcptype passive\r\n", "a=msid:demo ",
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
	sub2, _ := room.Subscribe("v2")
	defer sub2.Close(nil)
	tr2 := newTransport(n, o2.remote)
	defer tr2.close()
	tracks2, err := answerTracks(o2, sub2.DownTracks(), tr2)
	if err != nil {
		t.Fatal(err)
	}
	u2, p2 := tr2.credentials()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer,
		SDP: buildAnswer(o2, tracks2, "demo", u2, p2, n.fingerprint, n.candidates)}); err != nil {
		t.Fatalf("pion refused the answer: %v", err)
	}
}

func TestViewerOfferNeedsCredentials(t *testing.T) {
	for name, sdp := range map[string]string{
		"no fingerprint": strings.ReplaceAll(viewerOfferSDP, "a=fingerprint:sha-256 AA:BB\r\n", ""),
		"bad setup":      strings.ReplaceAll(viewerOfferSDP, "a=setup:actpass", "a=setup:sideways"),
	} {
		if _, err := ParseOffer(sdp, RoleViewer); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	vo, err := ParseOffer(strings.ReplaceAll(viewerOfferSDP, "a=setup:actpass", "a=setup:passive"), RoleViewer)
	if err != nil || !vo.remote.active {
		t.Fatalf("a passive offerer must make Glint the DTLS client: %+v %v", vo, err)
	}
}

func TestPrefixConnReplaysFirstPacket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &prefixConn{Conn: a, prefix: []byte{0, 3, 'a', 'b', 'c'}}
	go func() { _, _ = b.Write([]byte{0, 2, 'd', 'e'}) }()
	_ = a.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, maxFrame)
	for _, want := range []string{"abc", "de"} {
		got, err := readFrame(c, buf)
		if err != nil || string(got) != want {
			t.Fatalf("frame %q, %v; want %q", got, err, want)
		}
	}
}

type nopSource struct{}

func (nopSource) RequestKeyframe(*sfu.Layer) {}
func (nopSource) Close() error               { return nil }

func TestLiteAnswersOnlyVerifiedChecks(t *testing.T) {
	n := &Node{lite: newLiteMux(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr := newTransport(n, remoteICE{ufrag: "cli1", pwd: "clientpassword0123456789"})
	defer tr.close()
	ufrag, pwd := tr.credentials()
	check := func(user, key string, nominate bool) *recordPath {
		setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user)}
		if nominate {
			setters = append(setters, ice.UseCandidate())
		}
		req, err := stun.Build(append(setters, stun.NewShortTermIntegrity(key), stun.Fingerprint)...)
		if err != nil {
			t.Fatal(err)
		}
		p := &recordPath{}
		tr.receive(p, req.Raw)
		return p
	}
	if p := check(ufrag+":other", pwd, false); len(p.sent) != 0 {
		t.Fatal("answered a check from another remote ufrag")
	}
	if p := check(ufrag+":cli1", "not-the-password", false); len(p.sent) != 0 {
		t.Fatal("answered a check with a bad MESSAGE-INTEGRITY")
	}
	p := check(ufrag+":cli1", pwd, true)
	if len(p.sent) != 2 {
		t.Fatalf("a verified check from a new address got %d packets, want an answer and a triggered check", len(p.sent))
	}
	var trig stun.Message
	trig.Raw = p.sent[1]
	if err := trig.Decode(); err != nil || trig.Type != stun.BindingRequest || !trig.Contains(stun.AttrICEControlled) {
		t.Fatalf("triggered check %v: %v", trig.Type, err)
	}
	if err := stun.NewShortTermIntegrity("clientpassword0123456789").Check(&trig); err != nil {
		t.Fatalf("triggered check not signed with the viewer's password: %v", err)
	}
	if p2 := check(ufrag+":cli1", pwd, false); len(p2.sent) != 1 {
		t.Fatalf("a second check from the same address got %d packets, want only the answer", len(p2.sent))
	}
	var resp stun.Message
	resp.Raw = p.sent[0]
	if err := resp.Decode(); err != nil || resp.Type != stun.BindingSuccess {
		t.Fatalf("answer %v: %v", resp.Type, err)
	}
	if err := stun.NewShortTermIntegrity(pwd).Check(&resp); err != nil {
		t.Fatalf("answer not signed with the local password: %v", err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(&resp); err != nil || xor.Port != 9 {
		t.Fatalf("XOR-MAPPED-ADDRESS %v: %v", xor, err)
	}
	tr.mu.Lock()
	selected := tr.path == path(p)
	tr.mu.Unlock()
	if !selected {
		t.Fatal("the nominated path was not taken")
	}
	// After a restart only the new credentials are answered.
	nu, np := tr.restart("cli2", "clientpassword2222222222")
	if p := check(ufrag+":cli1", pwd, false); len(p.sent) != 0 {
		t.Fatal("old credentials still answered after a restart")
	}
	if p := check(nu+":cli2", np, false); len(p.sent) != 1 {
		t.Fatal("new credentials not answered after a restart")
	}
}

// TestICETCPConnectionsEndWithTheNode: a viewer's ICE-TCP connection that
// is never used must not keep the node from closing.
func TestICETCPConnectionsEndWithTheNode(t *testing.T) {
	n := testNode(t)
	tr := newTransport(n, remoteICE{ufrag: "cli1", pwd: "clientpassword0123456789"})
	ufrag, _ := tr.credentials()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoaPort(n.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":cli1"),
		stun.NewShortTermIntegrity("wrong"), stun.Fingerprint)
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(req.Raw)))
	if _, err := c.Write(append(frame, req.Raw...)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		tr.mu.Lock()
		held := len(tr.tcps)
		tr.mu.Unlock()
		if held == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection naming the transport was not handed to it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the node's Close waited on an idle viewer connection")
	}
	tr.close()
}

// TestViewerWriteDoesNotAllocate guards the transport's half of the hot
// path: header, SRTP (AES-GCM) and the socket write allocate nothing.
func TestViewerWriteDoesNotAllocate(t *testing.T) {
	n := &Node{lite: newLiteMux(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tr := newTransport(n, remoteICE{ufrag: "cli1", pwd: "clientpassword0123456789"})
	defer tr.close()
	out, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tr.mu.Lock()
	tr.out = out
	tr.path = udpPath{conn: src, to: sink.LocalAddr().(*net.UDPAddr).AddrPort()}
	tr.mu.Unlock()
	h := &rtp.Header{Version: 2, PayloadType: 96, SSRC: 1234, Extensions: make([]rtp.Extension, 0, 2)}
	_ = h.SetExtension(3, []byte{0, 1})
	payload := make([]byte, 1100)
	allocs := testing.AllocsPerRun(200, func() {
		h.SequenceNumber++
		if _, err := tr.WriteRTP(h, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a viewer write allocates %.1f times", allocs)
	}
}
