package peer

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/fingerprint"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
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

// Node owns the media port and creates publisher and viewer sessions.
type Node struct {
	cfg Config
	reg *sfu.Registry
	log *slog.Logger

	pubAPI  *webrtc.API
	udp     ice.UDPMux
	tcp     ice.TCPMux
	lite    *liteMux
	closers []func() error

	// The viewer transports' DTLS certificate, its fingerprint and the
	// candidates every viewer answer carries.
	cert        tls.Certificate
	fingerprint string
	candidates  []string

	mu      sync.Mutex
	viewers map[*Viewer]struct{}
	closed  bool
	wg      sync.WaitGroup

	malformedRTCP atomic.Uint64
}

// MalformedRTCP returns how many RTCP packets from peers could not be parsed.
func (n *Node) MalformedRTCP() uint64 { return n.malformedRTCP.Load() }

// NewNode binds the media port and prepares the WebRTC stacks.
func NewNode(cfg Config, reg *sfu.Registry, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, reg: reg, log: log, viewers: map[*Viewer]struct{}{}, lite: newLiteMux()}
	if err := n.listen(); err != nil {
		_ = n.Close()
		return nil, err
	}
	var err error
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
func (n *Node) makeCertificate() error {
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

// listen opens the shared UDP port on every local address and, if
// enabled, the ICE-TCP listener. Each socket is read through the lite mux,
// which keeps viewers' packets and passes the rest to pion's mux.
func (n *Node) listen() error {
	logs := pionLogs{n.log}
	ips, err := n.localIPs()
	if err != nil {
		return err
	}
	var udps []ice.UDPMux
	var tcps []ice.TCPMux
	port := n.cfg.Port
	for _, ip := range ips {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return fmt.Errorf("listen udp %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		if port == 0 {
			port = c.LocalAddr().(*net.UDPAddr).Port //nolint:forcetypeassert // a UDP listener
		}
		m := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: &liteSocket{UDPConn: c, mux: n.lite}, Logger: logs.NewLogger("udpmux")})
		n.closers = append(n.closers, m.Close)
		udps = append(udps, m)
	}
	if n.cfg.TCP {
		hosts := n.cfg.IPs
		if len(hosts) == 0 {
			hosts = []string{""} // every address
		}
		for _, h := range hosts {
			l, err := n.listenTCP("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen tcp: %w", err)
			}
			tcps = append(tcps, n.tcpMux(newLiteListener(l, n.lite)))
		}
	}
	n.udp = ice.NewMultiUDPMuxDefault(udps...)
	if len(tcps) == 1 {
		n.tcp = tcps[0]
	} else if len(tcps) > 1 {
		n.tcp = ice.NewMultiTCPMuxDefault(tcps...)
	}
	n.candidates = candidates(ips, n.cfg.PublicIPs, port, n.cfg.TCP)
	return nil
}

// localIPs returns the configured addresses, or else every address of
// every interface that is up, leaving out loopback and link-local ones.
func (n *Node) localIPs() ([]net.IP, error) {
	if len(n.cfg.IPs) > 0 {
		ips := make([]net.IP, len(n.cfg.IPs))
		for i, s := range n.cfg.IPs {
			ips[i] = net.ParseIP(s)
		}
		return ips, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var ips []net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsLinkLocalMulticast() {
				continue
			}
			ips = append(ips, ipn.IP)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no usable network address: set the RTC IPs (--rtc-ip)")
	}
	return ips, nil
}

// candidates returns the host candidates viewers are told (RFC 8839 §5.1;
// RFC 6544 for ICE-TCP), UDP preferred.
func candidates(ips []net.IP, public []string, port int, tcp bool) []string {
	hosts := make([]string, 0, len(ips))
	for _, ip := range ips {
		hosts = append(hosts, ip.String())
	}
	if len(public) > 0 {
		hosts = public
	}
	var out []string
	for i, h := range hosts {
		out = append(out, fmt.Sprintf("candidate:%d 1 udp %d %s %d typ host", 1+2*i, 126<<24|(65535-i)<<8|255, h, port))
	}
	if tcp {
		for i, h := range hosts {
			out = append(out, fmt.Sprintf("candidate:%d 1 tcp %d %s %d typ host tcptype passive", 2+2*i, 90<<24|(65535-i)<<8|255, h, port))
		}
	}
	return out
}

func (n *Node) listenTCP(network, address string) (net.Listener, error) {
	if n.cfg.ListenTCP != nil {
		return n.cfg.ListenTCP(network, address)
	}
	return net.Listen(network, address)
}

// tcpWriteBuffer bounds what a stalled ICE-TCP viewer can queue; beyond it
// its packets are dropped, and nobody else waits.
const tcpWriteBuffer = 1 << 20

func (n *Node) tcpMux(l net.Listener) ice.TCPMux {
	m := ice.NewTCPMuxDefault(ice.TCPMuxParams{
		Listener:        l,
		Logger:          pionLogs{n.log}.NewLogger("tcpmux"),
		ReadBufferSize:  64,
		WriteBufferSize: tcpWriteBuffer,
	})
	n.closers = append(n.closers, m.Close)
	return m
}

// Port returns the UDP port media is served on.
func (n *Node) Port() int {
	for _, a := range n.udp.GetListenAddresses() {
		if u, ok := a.(*net.UDPAddr); ok {
			return u.Port
		}
	}
	return 0
}

// newAPI prepares pion's stack for publishers.
func (n *Node) newAPI() (*webrtc.API, error) {
	m, err := newMediaEngine()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	// Losses from the publisher are recovered once, for every viewer.
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorMaxNacksPerPacket(5))
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	// Transport-wide feedback lets the publisher's encoder ramp up.
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(tw)

	se := webrtc.SettingEngine{LoggerFactory: pionLogs{n.log}}
	se.SetICEUDPMux(n.udp)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if n.tcp != nil {
		se.SetICETCPMux(n.tcp)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(n.cfg.ICEDisconnectedTimeout, n.cfg.ICEFailedTimeout, n.cfg.ICEKeepalive)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.DisableActiveTCP(true)
	if len(n.cfg.IPs) > 0 {
		allowed := n.cfg.IPs
		se.SetIPFilter(func(ip net.IP) bool {
			return slices.ContainsFunc(allowed, func(a string) bool { return net.ParseIP(a).Equal(ip) })
		})
		for _, a := range allowed {
			if net.ParseIP(a).IsLoopback() {
				se.SetIncludeLoopbackCandidate(true)
			}
		}
	}
	if len(n.cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: n.cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// newPC creates a PeerConnection for a session.
func (n *Node) newPC(api *webrtc.API) (*webrtc.PeerConnection, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
}

// answer applies an offer and returns the complete answer, with every
// candidate gathered (WHIP and WHEP servers do not trickle).
func (n *Node) answer(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		if errors.Is(err, sfu.ErrNoCodec) {
			return "", fmt.Errorf("%w: %w", ErrNoCodec, err)
		}
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.GatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

// Run writes sender reports to every viewer once a second, and closes
// viewers that went silent, until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.mu.Lock()
			vs := make([]*Viewer, 0, len(n.viewers))
			for v := range n.viewers {
				vs = append(vs, v)
			}
			n.mu.Unlock()
			now, wall := sfu.Now(), ntpTime(time.Now())
			clock := time.Now()
			for _, v := range vs {
				if v.t.idle(clock, n.silence(v.t)) {
					v.log.Info("viewer went silent")
					_ = v.Close()
					continue
				}
				v.sendReports(now, wall)
			}
		}
	}
}

// connectWait is how long a new viewer may stay silent before it connects:
// browsers check within milliseconds of the answer.
const connectWait = 10 * time.Second

// silence is how long a viewer may send nothing (no checks, no RTCP)
// before it is taken for gone: once connected, as long as pion's agents
// take to call a peer failed (disconnected, then failed).
func (n *Node) silence(t *transport) time.Duration {
	if t.connected() {
		return n.cfg.ICEDisconnectedTimeout + n.cfg.ICEFailedTimeout
	}
	return connectWait
}

// ntpTime converts wall-clock time to a 64-bit NTP timestamp (RFC 5905).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) * (1 << 32) / uint64(time.Second)
	return secs<<32 | frac
}

// spawn runs fn on a goroutine that Close waits for, unless the node is
// closed: then it reports false and runs nothing. Adding to the wait group
// under the lock that Close takes first keeps Add from racing Close's Wait.
func (n *Node) spawn(fn func()) bool {
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
func (n *Node) Close() error {
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
	for _, c := range slices.Backward(n.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
