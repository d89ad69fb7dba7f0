package peer

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// Config holds the WebRTC transport settings.
type Config struct {
	// Port is the one UDP port (and ICE-TCP port) all media shares; 0 picks
	// a free port, for tests.
	Port int
	// IPs are the local addresses to gather candidates on. Empty means every
	// non-loopback interface.
	IPs []string
	// PublicIPs replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// TCP enables ICE-TCP candidates on Port.
	TCP bool
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepalive tune how
	// fast a vanished peer is noticed (pion's SetICETimeouts).
	ICEDisconnectedTimeout, ICEFailedTimeout, ICEKeepalive time.Duration
	// GatherTimeout bounds waiting for ICE candidates before answering.
	GatherTimeout time.Duration
	// ListenTCP opens the ICE-TCP listener; nil means net.Listen. Tests
	// inject listeners whose connections stall.
	ListenTCP func(network, address string) (net.Listener, error)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Port:                   8443,
		TCP:                    true,
		ICEDisconnectedTimeout: 4 * time.Second,
		ICEFailedTimeout:       6 * time.Second,
		ICEKeepalive:           2 * time.Second,
		GatherTimeout:          5 * time.Second,
	}
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("rtc port %d out of range", c.Port)
	}
	for _, ip := range slices.Concat(c.IPs, c.PublicIPs) {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("%q is not an IP address", ip)
		}
	}
	if c.ICEDisconnectedTimeout <= 0 || c.ICEFailedTimeout <= 0 || c.ICEKeepalive <= 0 || c.GatherTimeout <= 0 {
		return errors.New("ICE timeouts must be positive")
	}
	return nil
}

// Endpoint is the WebRTC side of a Glint node: the media port (Port),
// WHIP publishers on pion PeerConnections (publishers.go) and WHEP viewers
// on Glint's own transport (viewers.go). Each of the three keeps its own
// state; the Endpoint starts, runs and stops them together.
type Endpoint struct {
	cfg  Config
	reg  *sfu.Registry
	log  *slog.Logger
	port *Port

	// Publishers: pion's API, and RTCP that did not parse.
	pubAPI        *webrtc.API
	malformedRTCP atomic.Uint64

	// Viewers: the transports' DTLS certificate and fingerprint, and the
	// open sessions.
	cert        tls.Certificate
	fingerprint string
	viewers     map[*Viewer]struct{}
	connectWait time.Duration // connectWait; tests shorten it

	mu     sync.Mutex // guards viewers and closed
	closed bool
	wg     sync.WaitGroup // goroutines Close waits for (spawn)
}

// Stats are the endpoint's counters.
type Stats struct {
	// MalformedRTCP counts RTCP packets from publishers and viewers that
	// could not be parsed.
	MalformedRTCP uint64
	// ViewerRTCPDropped counts viewer RTCP dropped because its queue was
	// full; ICETCPRefused ICE-TCP connections closed before a verified
	// check.
	ViewerRTCPDropped, ICETCPRefused uint64
}

// Stats returns the counters.
func (n *Endpoint) Stats() Stats {
	ls := n.port.lite.Stats()
	return Stats{MalformedRTCP: n.malformedRTCP.Load() + ls.MalformedRTCP, ViewerRTCPDropped: ls.RTCPDropped, ICETCPRefused: ls.TCPRefused}
}

// NewEndpoint binds the media port and prepares the WebRTC stacks.
func NewEndpoint(cfg Config, reg *sfu.Registry, log *slog.Logger) (*Endpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Endpoint{cfg: cfg, reg: reg, log: log, viewers: map[*Viewer]struct{}{}, connectWait: connectWait}
	var err error
	if n.port, err = openPort(cfg, reg.Lanes(), log); err != nil {
		return nil, err
	}
	if n.pubAPI, err = n.newAPI(); err != nil {
		_ = n.Close()
		return nil, err
	}
	if err := n.makeCertificate(); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

// makeCertificate creates the viewer transports' DTLS certificate.
func (n *Endpoint) makeCertificate() error {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return fmt.Errorf("dtls certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("dtls certificate: %w", err)
	}
	fp, err := fingerprint.Fingerprint(leaf, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("dtls certificate: %w", err)
	}
	// RFC 8122 §5 writes the fingerprint in upper-case hex; Firefox refuses
	// an answer with lower-case hex.
	n.cert, n.fingerprint = cert, "sha-256 "+strings.ToUpper(fp)
	return nil
}

// Port returns the port number media is served on.
func (n *Endpoint) Port() int { return n.port.Number() }

// spawn runs fn on a goroutine that Close waits for, unless the node is
// closed: then it reports false and runs nothing. Adding to the wait group
// under the lock that Close takes first keeps Add from racing Close's Wait.
func (n *Endpoint) spawn(fn func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
	return true
}

// Close stops accepting sessions, closes every viewer and releases the port.
func (n *Endpoint) Close() error {
	n.mu.Lock()
	n.closed = true
	vs := make([]*Viewer, 0, len(n.viewers))
	for v := range n.viewers {
		vs = append(vs, v)
	}
	n.mu.Unlock()
	for _, v := range vs {
		_ = v.Close()
	}
	n.wg.Wait()
	var errs []error
	if n.port != nil {
		errs = append(errs, n.port.Close())
	}
	return errors.Join(errs...)
}
