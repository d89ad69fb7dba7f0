package peer

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sctp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v4/packetio"
)

// transport is a viewer's connection, built from pion's parts instead of a
// PeerConnection: a controlled ICE agent on the shared socket that answers
// the viewer's checks and sends one triggered check back per address;
// pion's DTLS to agree SRTP keys, to hear the viewer leave, and to carry
// the data channel when the viewer opens one; and an SRTP context that
// encrypts each packet straight into one buffer written to the socket. No
// per-viewer read loop, SRTP session or interceptor chain.
type transport struct {
	node   *Node
	remote remoteICE
	cert   *tls.Certificate
	logs   logging.LoggerFactory

	// Called once: when keys are agreed, and when the transport ends.
	onConnected func()
	onFailed    func() // the transport ended on its own: failed, or closed by the viewer
	onRTCP      func([]rtcp.Packet)
	onChannel   func(*datachannel.DataChannel) bool // false: closed, not kept
	wantSCTP    bool

	lastSeen atomic.Int64 // unix ns of the last packet from the viewer

	mu         sync.Mutex // guards the fields below and the send path
	ufrags     []string
	pwd        string
	tcps       []*tcpPath       // ICE-TCP connections naming this transport
	checked    []netip.AddrPort // addresses that passed a check
	addrs      []netip.AddrPort // the UDP ones among them, routed to t
	tieBreaker uint64
	path       path
	out        *srtp.Context // encrypts what Glint sends
	hdr        rtp.Header
	plain      [sendBuf]byte
	sealed     [sendBuf]byte
	dconn      *dtlsConn
	dtls       *dtls.Conn
	sctp       *sctp.Association
	started    bool
	closed     bool

	rmu sync.Mutex    // the receive path, in packet order
	in  *srtp.Context // decrypts the viewer's SRTCP
	rb  [sendBuf]byte
}

// sendBuf holds any packet Glint sends or accepts; larger ones are dropped.
const sendBuf = 1500 + 64

// path is where a transport's packets go: a UDP address or a TCP stream.
type path interface {
	write(b []byte) error
	addr() netip.AddrPort
	close()
}

// remoteICE is what the viewer's offer says about its side.
type remoteICE struct {
	ufrag, pwd string
	fpHash     string // "sha-256"
	fp         string // "AB:CD:…"
	active     bool   // a=setup:passive in the offer: Glint is the DTLS client
}

var (
	errNotConnected = errors.New("transport not connected")
	errTooLarge     = errors.New("packet larger than the send buffer")
)

func newTransport(n *Node, remote remoteICE) *transport {
	t := &transport{node: n, remote: remote, cert: &n.cert, logs: pionLogs{n.log}}
	t.ufrags = []string{newUfrag()}
	t.pwd = rand.Text()
	t.tieBreaker = mrand.Uint64()
	t.lastSeen.Store(time.Now().UnixNano())
	n.lite.addUfrag(t.ufrags[0], t)
	return t
}

// credentials returns the current local ufrag and password.
func (t *transport) credentials() (string, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ufrags[len(t.ufrags)-1], t.pwd
}

// restart takes new remote credentials and makes new local ones (an ICE
// restart); keys and streams stay.
func (t *transport) restart(ufrag, pwd string) (string, string) {
	nu, np := newUfrag(), rand.Text()
	t.mu.Lock()
	t.remote.ufrag, t.remote.pwd = ufrag, pwd
	t.pwd = np
	t.ufrags = append(t.ufrags, nu)
	if len(t.ufrags) > 4 {
		t.node.lite.remove(t, t.ufrags[:1], nil)
		t.ufrags = t.ufrags[1:]
	}
	closed := t.closed
	t.mu.Unlock()
	if !closed {
		t.node.lite.addUfrag(nu, t)
	}
	return nu, np
}

// receive handles one packet from the viewer (RFC 7983 demultiplexing).
// It runs on the socket's reader and must not keep b.
func (t *transport) receive(p path, b []byte) {
	if len(b) == 0 {
		return
	}
	switch c := b[0]; {
	case c < 4:
		t.receiveSTUN(p, b)
	case c >= 20 && c < 64:
		t.lastSeen.Store(time.Now().UnixNano())
		t.receiveDTLS(b)
	case c >= 128 && c < 192 && len(b) >= 2 && b[1] >= 192 && b[1] <= 223:
		t.lastSeen.Store(time.Now().UnixNano())
		t.receiveRTCP(b)
	}
}

// receiveSTUN answers a connectivity check (RFC 8445 §7.3, as the
// controlled agent) and takes the path the viewer nominates. Responses to
// Glint's own checks need nothing and are dropped.
func (t *transport) receiveSTUN(p path, b []byte) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return
	}
	var user stun.Username
	if user.GetFrom(m) != nil {
		return
	}
	local, remote, _ := strings.Cut(string(user), ":")
	t.mu.Lock()
	// Only the newest credentials are answered after a restart.
	known := local == t.ufrags[len(t.ufrags)-1] && remote == t.remote.ufrag
	pwd, closed := t.pwd, t.closed
	t.mu.Unlock()
	if closed || !known {
		return
	}
	if stun.NewShortTermIntegrity(pwd).Check(m) != nil || stun.Fingerprint.Check(m) != nil {
		return
	}
	to := p.addr()
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: to.Addr().AsSlice(), Port: int(to.Port())},
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	if err != nil {
		return
	}
	t.lastSeen.Store(time.Now().UnixNano())
	nominated := m.Contains(stun.AttrUseCandidate)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	fresh := !containsAddr(t.checked, to)
	if fresh && len(t.checked) < maxPaths {
		t.checked = append(t.checked, to)
		if _, udp := p.(udpPath); udp {
			t.addrs = append(t.addrs, to)
			t.node.lite.addAddr(to, t)
		}
	}
	if t.path == nil || nominated && t.path.addr() != to {
		t.path = p
	}
	rpwd := t.remote.pwd
	t.mu.Unlock()
	_ = p.write(resp.Raw)
	if fresh {
		// A triggered check (RFC 8445 §7.3.1.4): the viewer's agent nominates
		// the pair as soon as it sees one, rather than on its next tick.
		if req, err := stun.Build(stun.TransactionID, stun.BindingRequest,
			stun.NewUsername(remote+":"+local), ice.AttrControlled(t.tieBreaker),
			ice.PriorityAttr(hostPriority), stun.NewShortTermIntegrity(rpwd), stun.Fingerprint); err == nil {
			_ = p.write(req.Raw)
		}
	}
}

// hostPriority is the priority of Glint's host candidates' checks.
const hostPriority = 126<<24 | 65535<<8 | 255

// maxPaths bounds the addresses one viewer may check from.
const maxPaths = 8

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// addTCP takes an ICE-TCP connection whose first request named t; at most
// maxPaths, and none once t is closed.
func (t *transport) addTCP(p *tcpPath) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || len(t.tcps) >= maxPaths {
		return false
	}
	t.tcps = append(t.tcps, p)
	return true
}

// pathClosed forgets a TCP path that ended.
func (t *transport) pathClosed(p path) {
	t.mu.Lock()
	if t.path == p {
		t.path = nil
	}
	t.mu.Unlock()
}

// receiveDTLS feeds the DTLS connection, starting its handshake on the
// first record.
func (t *transport) receiveDTLS(b []byte) {
	t.mu.Lock()
	if t.closed || t.path == nil {
		t.mu.Unlock()
		return
	}
	if !t.started {
		t.started = true
		dc := newDTLSConn(t)
		if t.node.spawn(func() { t.handshake(dc) }) {
			t.dconn = dc
		}
	}
	dc := t.dconn
	t.mu.Unlock()
	if dc != nil {
		_, _ = dc.buf.Write(b)
	}
}

// handshakeTimeout bounds the DTLS handshake.
const handshakeTimeout = 15 * time.Second

func (t *transport) handshake(dc *dtlsConn) {
	opts := []dtls.Option{
		dtls.WithCertificates(*t.cert),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithInsecureSkipVerify(true), // the certificate is checked against the offer's fingerprint
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithVerifyPeerCertificate(t.verifyPeer),
		dtls.WithLoggerFactory(t.logs),
	}
	var conn *dtls.Conn
	var err error
	if t.remote.active {
		copts := make([]dtls.ClientOption, 0, len(opts))
		for _, o := range opts {
			copts = append(copts, o)
		}
		conn, err = dtls.ClientWithOptions(dc, dc.RemoteAddr(), copts...)
	} else {
		sopts := []dtls.ServerOption{dtls.WithClientAuth(dtls.RequireAnyClientCert)}
		for _, o := range opts {
			sopts = append(sopts, o)
		}
		conn, err = dtls.ServerWithOptions(dc, dc.RemoteAddr(), sopts...)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		err = conn.HandshakeContext(ctx)
		cancel()
	}
	if err == nil {
		err = t.keys(conn)
	}
	if err != nil {
		t.node.log.Debug("viewer DTLS failed", "err", err)
		if conn != nil {
			_ = conn.Close()
		}
		t.close()
		t.onFailed()
		return
	}
	t.mu.Lock()
	closed := t.closed
	t.dtls = conn
	t.mu.Unlock()
	if closed {
		_ = conn.Close()
		return
	}
	t.onConnected()
	if t.wantSCTP {
		t.serveSCTP(conn)
	} else {
		// Nothing but an alert arrives on DTLS now; a close_notify ends the read.
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil && !errors.Is(err, io.ErrShortBuffer) {
				break
			}
		}
	}
	// The viewer closed DTLS (or its association), or Glint closed it.
	t.close()
	t.onFailed()
}

func (t *transport) verifyPeer(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	h, err := fingerprint.HashFromString(t.remote.fpHash)
	if err != nil {
		return err
	}
	fp, err := fingerprint.Fingerprint(cert, h)
	if err != nil {
		return err
	}
	if !strings.EqualFold(fp, t.remote.fp) {
		return errors.New("certificate does not match the offer's fingerprint")
	}
	return nil
}

// keys derives the SRTP contexts from the handshake (RFC 5764 §4.2).
func (t *transport) keys(conn *dtls.Conn) error {
	var profile srtp.ProtectionProfile
	switch p, _ := conn.SelectedSRTPProtectionProfile(); p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return fmt.Errorf("no SRTP profile agreed (%d)", p)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("no DTLS state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, t.remote.active); err != nil {
		return err
	}
	out, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return err
	}
	in, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTCPReplayProtection(256))
	if err != nil {
		return err
	}
	t.rmu.Lock()
	t.in = in
	t.rmu.Unlock()
	t.mu.Lock()
	t.out = out
	t.mu.Unlock()
	return nil
}

// serveSCTP runs the data channel association over DTLS and accepts the
// viewer's channels until it ends.
func (t *transport) serveSCTP(conn *dtls.Conn) {
	a, err := sctp.ClientWithOptions(sctp.WithNetConn(conn), sctp.WithLoggerFactory(t.logs),
		sctp.WithMaxReceiveBufferSize(256<<10), sctp.WithMaxMessageSize(maxMessage))
	if err != nil {
		t.node.log.Debug("viewer SCTP failed", "err", err)
		return
	}
	t.mu.Lock()
	closed := t.closed
	t.sctp = a
	t.mu.Unlock()
	if closed {
		_ = a.Close()
		return
	}
	var open []*datachannel.DataChannel // only the accepted one stays open
	for {
		dc, err := datachannel.Accept(a, &datachannel.Config{LoggerFactory: t.logs}, open...)
		if err != nil {
			return
		}
		if t.onChannel(dc) {
			open = append(open, dc)
		}
	}
}

// maxMessage is the largest data channel message Glint accepts.
const maxMessage = 16 << 10

// receiveRTCP decrypts and parses the viewer's feedback.
func (t *transport) receiveRTCP(b []byte) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.in == nil || len(b) > len(t.rb) {
		return
	}
	plain, err := t.in.DecryptRTCP(t.rb[:0], b, nil)
	if err != nil {
		return
	}
	pkts, err := rtcp.Unmarshal(plain)
	if err != nil {
		t.node.malformedRTCP.Add(1)
		return
	}
	t.onRTCP(pkts)
}

// WriteRTP encrypts one packet and sends it (sfu.RTPWriter).
func (t *transport) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil || t.path == nil || t.closed {
		return 0, errNotConnected
	}
	n, err := h.MarshalTo(t.plain[:])
	if err != nil {
		return 0, err
	}
	pad := 0
	if h.Padding {
		pad = int(h.PaddingSize)
	}
	if n+len(payload)+pad+srtpMaxTag > len(t.plain) {
		return 0, errTooLarge
	}
	n += copy(t.plain[n:], payload)
	if pad > 0 {
		clear(t.plain[n : n+pad-1])
		t.plain[n+pad-1] = byte(pad)
		n += pad
	}
	sealed, err := t.out.EncryptRTP(t.sealed[:0], t.plain[:n], &t.hdr)
	if err != nil {
		return 0, err
	}
	if err := t.path.write(sealed); err != nil {
		return 0, err
	}
	return n, nil
}

// srtpMaxTag is the longest SRTP or SRTCP trailer (GCM tag plus index).
const srtpMaxTag = 16 + 4

// writeRTCP encrypts and sends compound RTCP.
func (t *transport) writeRTCP(pkts []rtcp.Packet) error {
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil || t.path == nil || t.closed {
		return errNotConnected
	}
	if len(raw)+srtpMaxTag > len(t.sealed) {
		return errTooLarge
	}
	sealed, err := t.out.EncryptRTCP(t.sealed[:0], raw, nil)
	if err != nil {
		return err
	}
	return t.path.write(sealed)
}

// idle reports whether the viewer has sent nothing for longer than d.
func (t *transport) idle(now time.Time, d time.Duration) bool {
	return now.UnixNano()-t.lastSeen.Load() > int64(d)
}

// connected reports whether keys are agreed.
func (t *transport) connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out != nil
}

// close ends the transport: the data channel association, DTLS with a
// close_notify when it is still up, and every path. It does not wait for
// the handshake goroutine.
func (t *transport) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	a, conn, dc, p := t.sctp, t.dtls, t.dconn, t.path
	ufrags, addrs, tcps := t.ufrags, t.addrs, t.tcps
	t.mu.Unlock()
	for _, tp := range tcps {
		tp.close()
	}
	t.node.lite.remove(t, ufrags, addrs)
	if a != nil {
		_ = a.Close()
	}
	if conn != nil {
		_ = conn.Close()
	}
	if dc != nil {
		_ = dc.buf.Close()
	}
	if p != nil {
		p.close()
	}
}

// dtlsConn is the packet connection DTLS runs over: records the socket
// reader hands in, and writes to the transport's current path.
type dtlsConn struct {
	t   *transport
	buf *packetio.Buffer
}

func newDTLSConn(t *transport) *dtlsConn {
	b := packetio.NewBuffer()
	b.SetLimitSize(256 << 10)
	return &dtlsConn{t: t, buf: b}
}

func (c *dtlsConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.buf.Read(b)
	return n, c.RemoteAddr(), err
}

func (c *dtlsConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.t.mu.Lock()
	p := c.t.path
	c.t.mu.Unlock()
	if p == nil {
		return 0, errNotConnected
	}
	if err := p.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *dtlsConn) Close() error { return c.buf.Close() }

func (c *dtlsConn) LocalAddr() net.Addr { return &net.UDPAddr{} }

func (c *dtlsConn) RemoteAddr() net.Addr {
	c.t.mu.Lock()
	p := c.t.path
	c.t.mu.Unlock()
	if p == nil {
		return &net.UDPAddr{}
	}
	return net.UDPAddrFromAddrPort(p.addr())
}

func (c *dtlsConn) SetDeadline(t time.Time) error      { return c.buf.SetReadDeadline(t) }
func (c *dtlsConn) SetReadDeadline(t time.Time) error  { return c.buf.SetReadDeadline(t) }
func (c *dtlsConn) SetWriteDeadline(_ time.Time) error { return nil }

// newUfrag returns an ICE username fragment: 8 random characters of
// ICE's alphabet (RFC 8839 §5.4); passwords are a whole rand.Text.
func newUfrag() string { return rand.Text()[:8] }
