package lite

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"
	"github.com/pion/transport/v4/packetio"
)

// testMux is a Mux on one UDP socket on 127.0.0.1, read the way pion's UDP
// mux reads it (what no transport claims is counted as passed on).
type testMux struct {
	*Mux
	conn     *net.UDPConn
	addr     netip.AddrPort
	passed   atomic.Int64
	cert     tls.Certificate
	cancel   context.CancelFunc
	finished sync.WaitGroup
}

func newTestMux(t *testing.T) *testMux {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	m := &testMux{Mux: NewMux(slog.New(slog.NewTextHandler(io.Discard, nil))), conn: c, cert: cert}
	m.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
	sock := m.Socket(c).(*socket)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.finished.Add(2)
	go func() {
		defer m.finished.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := sock.ReadFromAddrPort(buf); err != nil {
				return
			}
			m.passed.Add(1)
		}
	}()
	go func() {
		defer m.finished.Done()
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		_ = c.Close()
		m.finished.Wait()
	})
	return m
}

// testViewer is the viewer's side, built from pion's parts the way a
// browser behaves: a controlling ICE agent that answers the server's
// checks, then a DTLS client and SRTP.
type testViewer struct {
	t            *testing.T
	conn         *net.UDPConn
	ufrag, pwd   string
	cert         tls.Certificate
	fp           string
	server       netip.AddrPort
	sUfrag, sPwd string

	answer    atomic.Bool  // answer the server's checks
	checks    atomic.Int32 // server checks seen
	dtlsIn    *packetio.Buffer
	media     chan []byte
	mu        sync.Mutex
	responses map[[stun.TransactionIDSize]byte]chan *stun.Message
	done      chan struct{}
}

func newTestViewer(t *testing.T, server netip.AddrPort) *testViewer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	fp, _ := fingerprint.Fingerprint(leaf, crypto.SHA256)
	v := &testViewer{
		t: t, conn: c, ufrag: "vwr1", pwd: "viewerpassword0123456789", cert: cert, fp: strings.ToUpper(fp), server: server,
		dtlsIn: packetio.NewBuffer(), media: make(chan []byte, 256), responses: map[[stun.TransactionIDSize]byte]chan *stun.Message{},
		done: make(chan struct{}),
	}
	v.answer.Store(true)
	go v.read()
	t.Cleanup(func() { _ = c.Close(); <-v.done; _ = v.dtlsIn.Close() })
	return v
}

func (v *testViewer) remote() Remote {
	return Remote{Ufrag: v.ufrag, Pwd: v.pwd, FingerprintHash: "sha-256", Fingerprint: v.fp,
		Candidates: []string{"candidate:1 1 udp 2130706431 " + v.conn.LocalAddr().(*net.UDPAddr).IP.String() + " " +
			strconv.Itoa(v.conn.LocalAddr().(*net.UDPAddr).Port) + " typ host"}}
}

func (v *testViewer) read() {
	defer close(v.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := v.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b := append([]byte(nil), buf[:n]...)
		switch c := b[0]; {
		case c < 4:
			m := &stun.Message{Raw: b}
			if m.Decode() != nil {
				continue
			}
			switch m.Type {
			case stun.BindingRequest:
				v.checks.Add(1)
				if !v.answer.Load() || stun.NewShortTermIntegrity(v.pwd).Check(m) != nil {
					continue
				}
				resp, _ := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
					&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
					stun.NewShortTermIntegrity(v.pwd), stun.Fingerprint)
				_, _ = v.conn.WriteToUDPAddrPort(resp.Raw, from)
			default:
				v.mu.Lock()
				ch := v.responses[m.TransactionID]
				v.mu.Unlock()
				if ch != nil {
					ch <- m
				}
			}
		case c >= 20 && c < 64:
			_, _ = v.dtlsIn.Write(b)
		case c >= 128 && c < 192:
			select {
			case v.media <- b:
			default:
			}
		}
	}
}

// check sends a binding request from conn (the viewer's own socket when
// nil) and waits for the answer.
func (v *testViewer) check(conn *net.UDPConn, nominate bool, attrs ...stun.Setter) (*stun.Message, error) {
	if conn == nil {
		conn = v.conn
	}
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(v.sUfrag + ":" + v.ufrag)}
	if len(attrs) == 0 {
		attrs = []stun.Setter{ice.AttrControlling(1)}
	}
	setters = append(setters, attrs...)
	if nominate {
		setters = append(setters, ice.UseCandidate())
	}
	setters = append(setters, stun.NewShortTermIntegrity(v.sPwd), stun.Fingerprint)
	req, err := stun.Build(setters...)
	if err != nil {
		return nil, err
	}
	ch := make(chan *stun.Message, 1)
	v.mu.Lock()
	v.responses[req.TransactionID] = ch
	v.mu.Unlock()
	if _, err := conn.WriteToUDPAddrPort(req.Raw, v.server); err != nil {
		return nil, err
	}
	if conn != v.conn {
		// Another socket: read its answer there.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return nil, err
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() == nil && m.TransactionID == req.TransactionID {
				return m, nil
			}
		}
	}
	select {
	case m := <-ch:
		return m, nil
	case <-time.After(2 * time.Second):
		return nil, errors.New("no answer to the check")
	}
}

// handshake runs DTLS as the client and returns the SRTP contexts:
// encrypting towards the server, decrypting from it.
func (v *testViewer) handshake(ctx context.Context) (*dtls.Conn, *srtp.Context, *srtp.Context, error) {
	pc := &viewerPacketConn{v: v}
	conn, err := dtls.ClientWithOptions(pc, net.UDPAddrFromAddrPort(v.server),
		dtls.WithCertificates(v.cert), dtls.WithInsecureSkipVerify(true),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM), dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, nil, nil, err
	}
	state, _ := conn.ConnectionState()
	cfg := srtp.Config{Profile: srtp.ProtectionProfileAeadAes128Gcm}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, true); err != nil {
		return nil, nil, nil, err
	}
	out, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	if err != nil {
		return nil, nil, nil, err
	}
	in, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, cfg.Profile)
	return conn, out, in, err
}

type viewerPacketConn struct{ v *testViewer }

func (c *viewerPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.v.dtlsIn.Read(b)
	return n, net.UDPAddrFromAddrPort(c.v.server), err
}

func (c *viewerPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	return c.v.conn.WriteToUDPAddrPort(b, c.v.server)
}
func (c *viewerPacketConn) Close() error                       { return nil }
func (c *viewerPacketConn) LocalAddr() net.Addr                { return c.v.conn.LocalAddr() }
func (c *viewerPacketConn) SetDeadline(t time.Time) error      { return c.v.dtlsIn.SetReadDeadline(t) }
func (c *viewerPacketConn) SetReadDeadline(t time.Time) error  { return c.v.dtlsIn.SetReadDeadline(t) }
func (c *viewerPacketConn) SetWriteDeadline(_ time.Time) error { return nil }

// events records a transport's callbacks.
type events struct {
	connected chan struct{}
	closed    chan error
	rtcp      atomic.Int32
}

func newEvents() *events {
	return &events{connected: make(chan struct{}, 1), closed: make(chan error, 1)}
}

func (e *events) config(r Remote, m *testMux, dc bool) Config {
	return Config{
		Remote: r, Certificate: &m.cert, DataChannel: dc,
		OnConnected: func() { e.connected <- struct{}{} },
		OnClosed:    func(err error) { e.closed <- err },
		OnRTCP:      func() { e.rtcp.Add(1) },
	}
}

func wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
