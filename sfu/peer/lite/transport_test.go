package lite

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect makes a transport for v on m and runs ICE as a browser would:
// a nominated check, which the transport answers and checks back.
func connect(t *testing.T, m *testMux, v *testViewer, ev *events) *Transport {
	t.Helper()
	tr := m.New(ev.config(v.remote(), m, false))
	t.Cleanup(tr.Close)
	v.sUfrag, v.sPwd = tr.Credentials()
	if resp, err := v.check(nil, true); err != nil || resp.Type != stun.BindingSuccess {
		t.Fatalf("nominated check: %v %v", resp, err)
	}
	wait(t, "a path selected", func() bool { _, ok := tr.Addr(); return ok })
	return tr
}

// A whole session with a viewer built from pion's parts: ICE, DTLS, SRTP
// both ways, SRTCP replay refused, and the viewer's close_notify ending the
// transport.
func TestTransportCarriesASession(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	ev := newEvents()
	tr := connect(t, m, v, ev)
	if _, err := tr.WriteRTP(&rtp.Header{Version: 2, SSRC: 1}, []byte{1}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("a write before keys: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, out, in, err := v.handshake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ev.connected:
	case <-time.After(2 * time.Second):
		t.Fatal("OnConnected was not called")
	}
	// Media to the viewer decrypts with its keys.
	h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 9, SSRC: 1234}
	if _, err := tr.WriteRTP(h, []byte("frame")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-v.media:
		var got rtp.Header
		plain, err := in.DecryptRTP(nil, b, &got)
		if err != nil || got.SequenceNumber != 7 || string(plain[len(plain)-5:]) != "frame" {
			t.Fatalf("decrypted %v %q", err, plain)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no media reached the viewer")
	}
	// The viewer's RTCP waits for ReadRTCP, off the socket's reader; a
	// replayed packet is refused.
	raw, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: 1234}})
	sealed, err := out.EncryptRTCP(nil, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, _ = v.conn.WriteToUDPAddrPort(sealed, m.addr)
	}
	wait(t, "OnRTCP", func() bool { return ev.rtcp.Load() > 0 })
	time.Sleep(50 * time.Millisecond)
	var got []rtcp.Packet
	tr.ReadRTCP(func(p []rtcp.Packet) { got = append(got, p...) })
	if len(got) != 1 {
		t.Fatalf("%d RTCP packets read, want 1 (the replay refused)", len(got))
	}
	if pli, ok := got[0].(*rtcp.PictureLossIndication); !ok || pli.MediaSSRC != 1234 {
		t.Fatalf("read %v", got[0])
	}
	// The viewer leaves: close_notify ends the transport.
	_ = conn.Close()
	select {
	case err := <-ev.closed:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("closed with %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the viewer's close_notify did not end the transport")
	}
}

// Checks with the wrong password, a missing fingerprint or unknown
// credentials get no answer; both agents claiming to be controlled gets a
// 487 (RFC 8445 §7.3.1.1).
func TestTransportAnswersOnlyVerifiedChecks(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	tr := m.New(newEvents().config(v.remote(), m, false))
	defer tr.Close()
	v.sUfrag, v.sPwd = tr.Credentials()
	good := v.sPwd
	v.sPwd = "not-the-password-at-all"
	if _, err := v.check(nil, false); err == nil {
		t.Fatal("a check with a bad MESSAGE-INTEGRITY was answered")
	}
	v.sPwd = good
	raw, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(v.sUfrag+":"+v.ufrag),
		ice.AttrControlling(1), stun.NewShortTermIntegrity(good))
	before := m.passed.Load()
	_, _ = v.conn.WriteToUDPAddrPort(raw.Raw, m.addr)
	other, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(v.sUfrag+":someone"),
		ice.AttrControlling(1), stun.NewShortTermIntegrity(good), stun.Fingerprint)
	_, _ = v.conn.WriteToUDPAddrPort(other.Raw, m.addr)
	time.Sleep(100 * time.Millisecond)
	if m.passed.Load() != before {
		t.Fatal("a check naming the transport's ufrag was passed on to pion")
	}
	if _, ok := tr.Addr(); ok {
		t.Fatal("unverified checks selected a path")
	}
	resp, err := v.check(nil, false, ice.AttrControlled(1))
	if err != nil || resp.Type != stun.BindingError {
		t.Fatalf("a role conflict: %v %v", resp, err)
	}
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(resp); err != nil || code.Code != stun.CodeRoleConflict {
		t.Fatalf("error code %v %v, want 487", code.Code, err)
	}
	if resp, err := v.check(nil, false); err != nil || resp.Type != stun.BindingSuccess {
		t.Fatalf("a good check: %v %v", resp, err)
	}
}

// Media goes only to a path that answered the transport's own check. A
// viewer that nominates another address (one it does not own, a third
// party's) gets no media sent there: the transport checks it first, and
// the third party does not answer (RFC 7675 §4).
func TestTransportSendsOnlyWhereChecksAreAnswered(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	ev := newEvents()
	tr := connect(t, m, v, ev)
	first, _ := tr.Addr()
	if first != v.conn.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Fatalf("selected %v", first)
	}
	// The viewer sends a signed, nominated check from a socket whose owner
	// (the victim) never answers checks.
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	if resp, err := v.check(victim, true); err != nil || resp.Type != stun.BindingSuccess {
		t.Fatalf("the check from another address: %v %v", resp, err)
	}
	// The transport's own checks go to the victim (a few hundred bytes over
	// seconds), never media: the path stays on the viewer's address.
	time.Sleep(500 * time.Millisecond)
	if a, _ := tr.Addr(); a != first {
		t.Fatalf("media switched to %v, which never answered a check", a)
	}
	_ = victim.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 1500)
	n := 0
	for {
		k, err := victim.Read(buf)
		if err != nil {
			break
		}
		if buf[0] >= 4 {
			t.Fatalf("the victim received a non-STUN packet (%d bytes)", k)
		}
		n++
	}
	if n == 0 || n > maxCheckTries {
		t.Fatalf("the victim got %d checks, want 1..%d", n, maxCheckTries)
	}
	// A second socket of the viewer's own that answers is taken.
	v2 := newTestViewer(t, m.addr)
	v2.ufrag, v2.pwd = v.ufrag, v.pwd
	v2.sUfrag, v2.sPwd = v.sUfrag, v.sPwd
	if resp, err := v2.check(nil, true); err != nil || resp.Type != stun.BindingSuccess {
		t.Fatalf("check from the viewer's new address: %v %v", resp, err)
	}
	wait(t, "the switch to an address that answered", func() bool {
		a, _ := tr.Addr()
		return a == v2.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	})
}

// Consent freshness: the selected path is checked every interval; when it
// stops answering for the timeout the transport ends, and answers on
// another path do not keep it alive.
func TestTransportConsentExpires(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	ev := newEvents()
	cfg := ev.config(v.remote(), m, false)
	cfg.ConsentInterval, cfg.ConsentTimeout = 100*time.Millisecond, 600*time.Millisecond
	tr := m.New(cfg)
	defer tr.Close()
	v.sUfrag, v.sPwd = tr.Credentials()
	if _, err := v.check(nil, true); err != nil {
		t.Fatal(err)
	}
	wait(t, "a path selected", func() bool { _, ok := tr.Addr(); return ok })
	// While the viewer answers, consent holds, and the viewer's own checks
	// (keepalives, nominated as pion's are) never put the consent checks
	// off: a real viewer's session outlives the timeout.
	start := v.checks.Load()
	for range 18 {
		if _, err := v.check(nil, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := v.checks.Load() - start; got < 4 {
		t.Fatalf("%d consent checks in 900 ms at a 100 ms interval", got)
	}
	select {
	case err := <-ev.closed:
		t.Fatalf("ended while consent was given: %v", err)
	default:
	}
	// The viewer stops answering on its path; another of its sockets keeps
	// answering checks of its own, which must not count for this path.
	v.answer.Store(false)
	other := newTestViewer(t, m.addr)
	other.ufrag, other.pwd, other.sUfrag, other.sPwd = v.ufrag, v.pwd, v.sUfrag, v.sPwd
	stopped := time.Now()
	for range 4 {
		_, _ = other.check(nil, false)
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-ev.closed:
		if !errors.Is(err, ErrConsentExpired) {
			t.Fatalf("ended with %v", err)
		}
		if d := time.Since(stopped); d < 500*time.Millisecond || d > 2*time.Second {
			t.Fatalf("consent expired %v after the last answer, timeout 600 ms", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("consent never expired")
	}
	if _, err := tr.WriteRTP(&rtp.Header{Version: 2}, nil); err == nil {
		t.Fatal("media still goes out after consent expired")
	}
}

// The transport checks the viewer's candidates itself: a viewer whose own
// checks cannot reach the server still connects, through the server's.
func TestTransportChecksTheViewersCandidates(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	tr := m.New(newEvents().config(v.remote(), m, false))
	defer tr.Close()
	v.sUfrag, v.sPwd = tr.Credentials()
	wait(t, "a check from the server", func() bool { return v.checks.Load() > 0 })
	// The server's check opened the way; the viewer nominates back.
	if _, err := v.check(nil, true); err != nil {
		t.Fatal(err)
	}
	wait(t, "a path selected", func() bool { _, ok := tr.Addr(); return ok })
	if err := tr.AddCandidates([]string{"candidate:9 1 udp 1 not-an-ip 9 typ host", "candidate:bad"}); err == nil {
		t.Fatal("a candidate without typ was taken")
	}
}

// After an ICE restart only the new credentials are answered; the path and
// keys stay.
func TestTransportRestart(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	tr := connect(t, m, v, newEvents())
	oldU, oldP := v.sUfrag, v.sPwd
	nu, np := tr.Restart("vwr2", "viewerpassword2222222222")
	v.ufrag, v.pwd = "vwr2", "viewerpassword2222222222"
	if _, err := v.check(nil, false); err == nil {
		t.Fatal("old credentials still answered after a restart")
	}
	v.sUfrag, v.sPwd = nu, np
	if _, err := v.check(nil, true); err != nil {
		t.Fatalf("new credentials not answered: %v", err)
	}
	if nu == oldU || np == oldP {
		t.Fatal("the restart kept the local credentials")
	}
	if _, ok := tr.Addr(); !ok {
		t.Fatal("the restart lost the path")
	}
}

// ICE-TCP before authentication: a connection that names a transport but
// cannot sign its check, sends an oversized first frame, or sends nothing,
// is closed without taking one of the transport's slots; a verified one is
// served.
func TestICETCPNeedsAVerifiedFirstCheck(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	tr := m.New(newEvents().config(v.remote(), m, false))
	defer tr.Close()
	ufrag, pwd := tr.Credentials()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := m.Listener(raw)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close() // pion's side: not a viewer's
		}
	}()
	frame := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	request := func(key string) []byte {
		req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":"+v.ufrag),
			ice.AttrControlling(1), stun.NewShortTermIntegrity(key), stun.Fingerprint)
		return req.Raw
	}
	dial := func(first []byte) net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if first != nil {
			_, _ = c.Write(first)
		}
		return c
	}
	closedSoon := func(c net.Conn, within time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(within))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
	}
	for range maxTCPPaths + 2 {
		c := dial(frame(request("wrong-password-xxxxxxxx")))
		if !closedSoon(c, time.Second) {
			t.Fatal("a connection with a forged check stayed open")
		}
		c.Close()
	}
	big := dial(append(binary.BigEndian.AppendUint16(nil, maxFirstFrame+1), make([]byte, maxFirstFrame+1)...))
	if !closedSoon(big, time.Second) {
		t.Fatal("an oversized first frame was read")
	}
	big.Close()
	silent := dial(nil)
	if !closedSoon(silent, firstPacketWait+time.Second) {
		t.Fatal("a silent connection outlived the first-frame wait")
	}
	silent.Close()
	good := dial(frame(request(pwd)))
	defer good.Close()
	_ = good.SetReadDeadline(time.Now().Add(2 * time.Second))
	var hdr [2]byte
	if _, err := good.Read(hdr[:]); err != nil {
		t.Fatalf("a verified connection got no answer: %v", err)
	}
	tr.mu.Lock()
	held := len(tr.tcps)
	tr.mu.Unlock()
	if held != 1 {
		t.Fatalf("the transport holds %d ICE-TCP connections, want the verified one", held)
	}
	if m.Stats().TCPRefused < maxTCPPaths+3 {
		t.Fatalf("refused %d connections", m.Stats().TCPRefused)
	}
}

// A flood of RTCP from one viewer is bounded: the queue holds
// maxRTCPQueue packets and the rest are dropped and counted, on the
// socket's reader, which never waits for ReadRTCP.
func TestRTCPQueueIsBounded(t *testing.T) {
	m := newTestMux(t)
	v := newTestViewer(t, m.addr)
	ev := newEvents()
	tr := connect(t, m, v, ev)
	pkt := make([]byte, 100)
	pkt[0], pkt[1] = 0x80, 200
	for i := range 1000 {
		_, _ = v.conn.WriteToUDPAddrPort(pkt, m.addr)
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // within the socket's buffer
		}
	}
	wait(t, "drops counted", func() bool { return m.Stats().RTCPDropped >= 500 })
	tr.qmu.Lock()
	queued := len(tr.queue)
	tr.qmu.Unlock()
	if queued > maxRTCPQueue {
		t.Fatalf("%d packets queued", queued)
	}
	if ev.rtcp.Load() != 1 {
		t.Fatalf("OnRTCP called %d times for one unread queue", ev.rtcp.Load())
	}
	tr.ReadRTCP(func([]rtcp.Packet) { t.Fatal("unauthenticated RTCP was handed out") })
}

// FuzzTransportPacket feeds a transport what anyone may send to the media
// port: it must neither panic nor answer a packet it cannot verify.
func FuzzTransportPacket(f *testing.F) {
	m := NewMux(newTestMuxLog())
	// No DTLS handshake starts (Spawn refuses): only what the socket
	// reader does is under test.
	tr := m.New(Config{Remote: Remote{Ufrag: "cli1", Pwd: "clientpassword0123456789"}, Spawn: func(func()) bool { return false }})
	defer tr.Close()
	ufrag, _ := tr.Credentials()
	req, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":cli1"),
		stun.NewShortTermIntegrity("wrong"), stun.Fingerprint)
	f.Add(req.Raw)
	resp, _ := stun.Build(stun.TransactionID, stun.BindingSuccess, stun.NewShortTermIntegrity("clientpassword0123456789"), stun.Fingerprint)
	f.Add(resp.Raw)
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
		tr.ReadRTCP(func([]rtcp.Packet) { t.Fatal("RTCP read without keys") })
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

func newTestMuxLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestWriteDoesNotAllocate guards the transport's half of the hot path:
// header, SRTP (AES-GCM) and the socket write allocate nothing.
func TestWriteDoesNotAllocate(t *testing.T) {
	m := NewMux(newTestMuxLog())
	tr := m.New(Config{Remote: Remote{Ufrag: "cli1", Pwd: "clientpassword0123456789"}})
	defer tr.Close()
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
	tr.selectLocked(&pair{p: udpPath{conn: src, to: sink.LocalAddr().(*net.UDPAddr).AddrPort()}, validated: true}, time.Now())
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

// A transport whose shared socket has senders sends media from the one
// its Config.Sender picks, and its checks from the shared socket.
func TestMediaLeavesByTheLanesSender(t *testing.T) {
	m := NewMux(newTestMuxLog())
	shared, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	var senders []*net.UDPConn
	for range 2 {
		// In the node the senders share the port (SO_REUSEPORT); here
		// their own ports tell the sink which one sent.
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		senders = append(senders, c)
	}
	m.Socket(shared, senders...)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	out, err := srtp.CreateContext(make([]byte, 16), make([]byte, 12), srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	tr := m.New(Config{Remote: Remote{Ufrag: "cli1", Pwd: "clientpassword0123456789"}, Sender: 3})
	defer tr.Close()
	tr.mu.Lock()
	tr.out = out
	tr.selectLocked(&pair{p: udpPath{conn: shared, to: sink.LocalAddr().(*net.UDPAddr).AddrPort()}, validated: true}, time.Now())
	tr.mu.Unlock()
	if _, err := tr.WriteRTP(&rtp.Header{Version: 2, PayloadType: 96, SSRC: 1}, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	_ = sink.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, from, err := sink.ReadFromUDPAddrPort(make([]byte, 1500))
	if err != nil {
		t.Fatal(err)
	}
	if want := senders[3%2].LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
		t.Fatalf("media came from %v, want sender 1 at %v (shared %v)", from, want, shared.LocalAddr())
	}
}

// Offers' fingerprints are checked when the offer is read: a hash DTLS can
// check, well-formed hex of the hash's length.
func TestParseRemoteChecksTheFingerprint(t *testing.T) {
	good := "sha-256 " + strings.Repeat("AB:", 31) + "AB"
	if r, err := ParseRemote("u", "p", good, "actpass"); err != nil || r.Active {
		t.Fatalf("a good offer: %+v %v", r, err)
	}
	if r, err := ParseRemote("u", "p", good, "passive"); err != nil || !r.Active {
		t.Fatal("a=setup:passive must make Glint the DTLS client")
	}
	for name, fp := range map[string]string{
		"md5":         "md5 " + strings.Repeat("AB:", 15) + "AB",
		"sha-1":       "sha-1 " + strings.Repeat("AB:", 19) + "AB",
		"short":       "sha-256 AB:CD",
		"not hex":     "sha-256 " + strings.Repeat("ZZ:", 31) + "ZZ",
		"one digit":   "sha-256 " + strings.Repeat("A:", 31) + "A",
		"none":        "",
		"hash only":   "sha-256",
		"unknown":     "whirlpool " + strings.Repeat("AB:", 31) + "AB",
		"three chars": "sha-256 " + strings.Repeat("ABC:", 31) + "ABC",
	} {
		if _, err := ParseRemote("u", "p", fp, "actpass"); err == nil {
			t.Errorf("%s: accepted %q", name, fp)
		}
	}
	if _, err := ParseRemote("u", "p", good, "sideways"); err == nil {
		t.Error("a=setup:sideways accepted")
	}
}
