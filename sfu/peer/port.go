package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"syscall"

	"github.com/pion/ice/v4"

	"github.com/glintlive/glint/sfu/peer/lite"
)

// Port is the one media port every session shares: UDP on each local
// address and ICE-TCP on the same number. Viewers' packets are taken off
// it by the lite mux; the rest go on to pion's muxes, for publishers.
type Port struct {
	cfg        Config
	lite       *lite.Mux
	udp        ice.UDPMux
	tcp        ice.TCPMux
	closers    []func() error
	candidates []string
	number     int
}

// openPort binds the port on every local address and, if enabled, the
// ICE-TCP listener. With senders > 1 each address gets that many sockets
// that only send, one per fan-out lane (see listenUDP).
func openPort(cfg Config, senders int, log *slog.Logger) (*Port, error) {
	for attempt := 1; ; attempt++ {
		p, err := openPortOnce(cfg, senders, log)
		// A random UDP port's number may be taken on TCP: pick another.
		if err == nil || cfg.Port != 0 || !cfg.TCP || attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			return p, err
		}
	}
}

func openPortOnce(cfg Config, senders int, log *slog.Logger) (*Port, error) {
	p := &Port{cfg: cfg, lite: lite.NewMux(log)}
	logs := lite.Logs(log)
	ips, err := p.localIPs()
	if err != nil {
		return nil, err
	}
	var udps []ice.UDPMux
	var tcps []ice.TCPMux
	port := cfg.Port
	for _, ip := range ips {
		c, extra, err := listenUDP(ip, port, senders)
		if c == nil {
			_ = p.Close()
			return nil, fmt.Errorf("listen udp %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		if err != nil {
			log.Warn("fan-out lanes share the media socket", "addr", c.LocalAddr(), "err", err)
		}
		if port == 0 {
			port = c.LocalAddr().(*net.UDPAddr).Port //nolint:forcetypeassert // a UDP listener
		}
		for _, s := range extra {
			p.closers = append(p.closers, s.Close)
		}
		m := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: p.lite.Socket(c, extra...), Logger: logs.NewLogger("udpmux")})
		p.closers = append(p.closers, m.Close)
		udps = append(udps, m)
	}
	if cfg.TCP {
		hosts := cfg.IPs
		if len(hosts) == 0 {
			hosts = []string{""} // every address
		}
		for _, h := range hosts {
			l, err := p.listenTCP("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				_ = p.Close()
				return nil, fmt.Errorf("listen tcp: %w", err)
			}
			m := ice.NewTCPMuxDefault(ice.TCPMuxParams{
				Listener:        p.lite.Listener(l),
				Logger:          logs.NewLogger("tcpmux"),
				ReadBufferSize:  64,
				WriteBufferSize: tcpWriteBuffer,
			})
			p.closers = append(p.closers, m.Close)
			tcps = append(tcps, m)
		}
	}
	p.udp = ice.NewMultiUDPMuxDefault(udps...)
	if len(tcps) == 1 {
		p.tcp = tcps[0]
	} else if len(tcps) > 1 {
		p.tcp = ice.NewMultiTCPMuxDefault(tcps...)
	}
	p.number = port
	p.candidates = candidates(ips, cfg.PublicIPs, port, cfg.TCP)
	return p, nil
}

// tcpWriteBuffer bounds what a stalled ICE-TCP publisher can queue.
const tcpWriteBuffer = 1 << 20

// localIPs returns the configured addresses, or else every address of
// every interface that is up, leaving out loopback and link-local ones.
func (p *Port) localIPs() ([]net.IP, error) {
	if len(p.cfg.IPs) > 0 {
		ips := make([]net.IP, len(p.cfg.IPs))
		for i, s := range p.cfg.IPs {
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

func (p *Port) listenTCP(network, address string) (net.Listener, error) {
	if p.cfg.ListenTCP != nil {
		return p.cfg.ListenTCP(network, address)
	}
	return net.Listen(network, address)
}

// Number returns the port number media is served on.
func (p *Port) Number() int { return p.number }

// Close releases the sockets.
func (p *Port) Close() error {
	var errs []error
	for _, c := range slices.Backward(p.closers) {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}
