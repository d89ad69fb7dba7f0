package lite

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/sctp"
	"github.com/pion/srtp/v3"
	"github.com/pion/transport/v4/packetio"
)

// handshakeTimeout bounds the DTLS handshake.
const handshakeTimeout = 15 * time.Second

// MaxMessage is the largest data channel message a transport accepts.
const MaxMessage = 16 << 10

// maxHeld bounds the DTLS records kept while no path has answered a check.
const maxHeld = 16

// receiveDTLS feeds the DTLS connection, starting its handshake on the
// first record.
func (t *Transport) receiveDTLS(b []byte) {
	t.mu.Lock()
	if t.closed || t.cfg.Certificate == nil {
		t.mu.Unlock()
		return
	}
	if !t.started {
		t.started = true
		dc := newDTLSConn(t)
		if t.cfg.Spawn == nil || t.cfg.Spawn(func() { t.handshake(dc) }) {
			t.dconn = dc
			if t.cfg.Spawn == nil {
				go t.handshake(dc)
			}
		}
	}
	dc := t.dconn
	t.mu.Unlock()
	if dc != nil {
		_, _ = dc.buf.Write(b)
	}
}

func (t *Transport) handshake(dc *dtlsConn) {
	logs := Logs(t.log)
	opts := []dtls.Option{
		dtls.WithCertificates(*t.cfg.Certificate),
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithInsecureSkipVerify(true), // the certificate is checked against the offer's fingerprint
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithVerifyPeerCertificate(t.verifyPeer),
		dtls.WithLoggerFactory(logs),
	}
	var conn *dtls.Conn
	var err error
	if t.cfg.Remote.Active {
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
		t.log.Debug("viewer DTLS failed", "err", err)
		if conn != nil {
			_ = conn.Close()
		}
		t.end(fmt.Errorf("dtls: %w", err))
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
	if t.cfg.OnConnected != nil {
		t.cfg.OnConnected()
	}
	if t.cfg.DataChannel {
		t.serveSCTP(conn)
	} else {
		// Nothing but an alert arrives on DTLS now; a close_notify ends the
		// read.
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil && !errors.Is(err, io.ErrShortBuffer) {
				break
			}
		}
	}
	// The viewer closed DTLS (or its association), or Glint closed it.
	t.end(ErrClosed)
}

func (t *Transport) verifyPeer(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	h, err := fingerprint.HashFromString(t.cfg.Remote.FingerprintHash)
	if err != nil {
		return err
	}
	fp, err := fingerprint.Fingerprint(cert, h)
	if err != nil {
		return err
	}
	if !strings.EqualFold(fp, t.cfg.Remote.Fingerprint) {
		return errors.New("certificate does not match the offer's fingerprint")
	}
	return nil
}

// srtcpReplayWindow is how far back SRTCP replay protection remembers.
const srtcpReplayWindow = 256

// keys derives the SRTP contexts from the handshake (RFC 5764 §4.2).
func (t *Transport) keys(conn *dtls.Conn) error {
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
	if err := cfg.ExtractSessionKeysFromDTLS(&state, t.cfg.Remote.Active); err != nil {
		return err
	}
	out, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return err
	}
	in, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTCPReplayProtection(srtcpReplayWindow))
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
func (t *Transport) serveSCTP(conn *dtls.Conn) {
	logs := Logs(t.log)
	a, err := sctp.ClientWithOptions(sctp.WithNetConn(conn), sctp.WithLoggerFactory(logs),
		sctp.WithMaxReceiveBufferSize(256<<10), sctp.WithMaxMessageSize(MaxMessage))
	if err != nil {
		t.log.Debug("viewer SCTP failed", "err", err)
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
	var open []*datachannel.DataChannel // only the accepted ones stay open
	for {
		dc, err := datachannel.Accept(a, &datachannel.Config{LoggerFactory: logs}, open...)
		if err != nil {
			return
		}
		if t.cfg.OnChannel != nil && t.cfg.OnChannel(dc) {
			open = append(open, dc)
		} else {
			_ = dc.Close()
		}
	}
}

// dtlsConn is the packet connection DTLS runs over: records the socket
// reader hands in, and writes to the selected path. Until a path has
// answered Glint's check, writes wait (up to maxHeld records) and go out
// when one does.
type dtlsConn struct {
	t   *Transport
	buf *packetio.Buffer
}

func newDTLSConn(t *Transport) *dtlsConn {
	b := packetio.NewBuffer()
	b.SetLimitSize(256 << 10)
	return &dtlsConn{t: t, buf: b}
}

func (c *dtlsConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.buf.Read(b)
	return n, c.RemoteAddr(), err
}

func (c *dtlsConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	t := c.t
	t.mu.Lock()
	// Writes go on while the transport closes: they carry the close_notify
	// and the association's end.
	if t.selected == nil {
		if t.closed {
			t.mu.Unlock()
			return 0, ErrClosed
		}
		if len(t.held) < maxHeld {
			t.held = append(t.held, append([]byte(nil), b...))
		}
		t.mu.Unlock()
		return len(b), nil
	}
	p := t.selected.p
	t.mu.Unlock()
	if err := p.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *dtlsConn) Close() error { return c.buf.Close() }

func (c *dtlsConn) LocalAddr() net.Addr { return &net.UDPAddr{} }

func (c *dtlsConn) RemoteAddr() net.Addr {
	if a, ok := c.t.Addr(); ok {
		return net.UDPAddrFromAddrPort(a)
	}
	return &net.UDPAddr{}
}

func (c *dtlsConn) SetDeadline(t time.Time) error      { return c.buf.SetReadDeadline(t) }
func (c *dtlsConn) SetReadDeadline(t time.Time) error  { return c.buf.SetReadDeadline(t) }
func (c *dtlsConn) SetWriteDeadline(_ time.Time) error { return nil }
