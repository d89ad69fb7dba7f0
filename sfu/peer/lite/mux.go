package lite

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// Mux routes packets on the shared sockets to the transports they belong
// to, first by the ICE ufrag a binding request names, then by the
// addresses that passed a check. It also paces every transport's own
// connectivity and consent checks (Run).
type Mux struct {
	log *slog.Logger

	mu         sync.RWMutex
	ufrags     map[string]*Transport                       // local ICE ufrag → transport
	addrs      map[netip.AddrPort]*Transport               // checked remote UDP address → transport
	txns       map[[stun.TransactionIDSize]byte]*Transport // Glint's own checks awaiting an answer
	transports map[*Transport]struct{}
	sockets    []*net.UDPConn
	senders    map[*net.UDPConn][]*net.UDPConn // a shared socket → sockets on its port that only send

	// Counters, for metrics.
	rtcpDropped atomic.Uint64 // viewer RTCP dropped: the viewer's queue was full
	malformed   atomic.Uint64 // viewer RTCP that decrypted but did not parse
	tcpRefused  atomic.Uint64 // ICE-TCP connections closed before a verified check
}

// NewMux returns an empty Mux.
func NewMux(log *slog.Logger) *Mux {
	return &Mux{
		log: log, ufrags: map[string]*Transport{}, addrs: map[netip.AddrPort]*Transport{},
		txns: map[[stun.TransactionIDSize]byte]*Transport{}, transports: map[*Transport]struct{}{},
		senders: map[*net.UDPConn][]*net.UDPConn{},
	}
}

// Stats are the Mux's counters.
type Stats struct {
	// RTCPDropped counts viewer RTCP packets dropped because the viewer's
	// queue was full (its RTCP is not read fast enough).
	RTCPDropped uint64
	// MalformedRTCP counts viewer RTCP that decrypted but did not parse.
	MalformedRTCP uint64
	// TCPRefused counts ICE-TCP connections closed before they carried a
	// verified check: junk, too slow, too large, or too many at once.
	TCPRefused uint64
}

// Stats returns the counters.
func (m *Mux) Stats() Stats {
	return Stats{RTCPDropped: m.rtcpDropped.Load(), MalformedRTCP: m.malformed.Load(), TCPRefused: m.tcpRefused.Load()}
}

func (m *Mux) register(t *Transport, ufrag string) {
	m.mu.Lock()
	m.ufrags[ufrag] = t
	m.transports[t] = struct{}{}
	m.mu.Unlock()
}

func (m *Mux) addUfrag(ufrag string, t *Transport) {
	m.mu.Lock()
	if _, live := m.transports[t]; live {
		m.ufrags[ufrag] = t
	}
	m.mu.Unlock()
}

func (m *Mux) addAddr(a netip.AddrPort, t *Transport) {
	m.mu.Lock()
	if _, live := m.transports[t]; live {
		if _, taken := m.addrs[a]; !taken {
			m.addrs[a] = t
		}
	}
	m.mu.Unlock()
}

// forget drops ufrags (and, with all, every address and the transport).
func (m *Mux) forget(t *Transport, ufrags []string, addrs []netip.AddrPort, all bool) {
	m.mu.Lock()
	for _, u := range ufrags {
		if m.ufrags[u] == t {
			delete(m.ufrags, u)
		}
	}
	for _, a := range addrs {
		if m.addrs[a] == t {
			delete(m.addrs, a)
		}
	}
	if all {
		delete(m.transports, t)
	}
	m.mu.Unlock()
}

func (m *Mux) addTxn(id [stun.TransactionIDSize]byte, t *Transport) {
	m.mu.Lock()
	m.txns[id] = t
	m.mu.Unlock()
}

func (m *Mux) dropTxn(id [stun.TransactionIDSize]byte) {
	m.mu.Lock()
	delete(m.txns, id)
	m.mu.Unlock()
}

// byResponse returns the transport whose check a STUN response answers:
// its transaction id is one only that transport sent.
func (m *Mux) byResponse(b []byte) *Transport {
	if len(b) < 20 || binary.BigEndian.Uint16(b[0:2]) != stun.BindingSuccess.Value() {
		return nil
	}
	var id [stun.TransactionIDSize]byte
	copy(id[:], b[8:20])
	m.mu.RLock()
	t := m.txns[id]
	m.mu.RUnlock()
	return t
}

func (m *Mux) byAddr(a netip.AddrPort) *Transport {
	m.mu.RLock()
	t := m.addrs[a]
	m.mu.RUnlock()
	return t
}

// byRequest returns the transport a STUN binding request is addressed to:
// its USERNAME is "<our ufrag>:<their ufrag>" (RFC 8445 §7.2.2).
func (m *Mux) byRequest(b []byte) *Transport {
	if !stun.IsMessage(b) {
		return nil
	}
	user, ok := stunUsername(b)
	if !ok {
		return nil
	}
	local, _, _ := strings.Cut(user, ":")
	m.mu.RLock()
	t := m.ufrags[local]
	m.mu.RUnlock()
	return t
}

// stunUsername finds the USERNAME attribute of a STUN binding request
// without decoding the rest.
func stunUsername(b []byte) (string, bool) {
	const header = 20
	if len(b) < header || binary.BigEndian.Uint16(b[0:2]) != stun.BindingRequest.Value() {
		return "", false
	}
	end := header + int(binary.BigEndian.Uint16(b[2:4]))
	if end > len(b) {
		return "", false
	}
	for i := header; i+4 <= end; {
		typ := stun.AttrType(binary.BigEndian.Uint16(b[i:]))
		l := int(binary.BigEndian.Uint16(b[i+2:]))
		if i+4+l > end {
			return "", false
		}
		if typ == stun.AttrUsername {
			return string(b[i+4 : i+4+l]), true
		}
		i += 4 + (l+3)&^3
	}
	return "", false
}

// Socket wraps one shared UDP socket for pion's UDP mux: reads return only
// the packets no transport of m claimed. Glint's transports send their own
// checks from it too. Senders are sockets bound to the same address and
// port that are never read (the port's packets all arrive on c): a
// viewer's media leaves by the one its Config.Sender picks, so fan-out
// lanes each write on a socket of their own. Go serialises writes on one
// socket, and lanes sharing c took turns in sendto (BenchmarkParallelWrites).
func (m *Mux) Socket(c *net.UDPConn, senders ...*net.UDPConn) net.PacketConn {
	m.mu.Lock()
	m.sockets = append(m.sockets, c)
	if len(senders) > 0 {
		m.senders[c] = senders
	}
	m.mu.Unlock()
	return &socket{UDPConn: c, mux: m}
}

// socket is a shared UDP socket as pion's UDP mux sees it.
type socket struct {
	*net.UDPConn
	mux *Mux
}

// ReadFromAddrPort implements pion's allocation-free read.
func (s *socket) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := s.ReadFromUDPAddrPort(b)
		if err != nil || !s.route(b[:n], from) {
			return n, from, err
		}
	}
}

// WriteToAddrPort implements pion's allocation-free write.
func (s *socket) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return s.WriteToUDPAddrPort(b, to)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (s *socket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// route hands b to the transport it belongs to, if any: a binding request
// by the ufrag it names, a binding response by the transaction it answers,
// anything else by an address that passed a check. No address can be
// claimed ahead of its owner's checks. The transport does not keep b.
func (s *socket) route(b []byte, from netip.AddrPort) bool {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	var t *Transport
	switch {
	case len(b) > 0 && b[0] < 4: // STUN (RFC 7983)
		if t = s.mux.byRequest(b); t == nil {
			t = s.mux.byResponse(b)
		}
	default:
		t = s.mux.byAddr(from)
	}
	if t == nil {
		return false
	}
	t.receive(udpPath{conn: s.UDPConn, to: from}, b)
	return true
}

// udpPath sends to a viewer over a shared UDP socket.
type udpPath struct {
	conn *net.UDPConn
	to   netip.AddrPort
}

func (p udpPath) write(b []byte) error {
	_, err := p.conn.WriteToUDPAddrPort(b, p.to)
	return err
}

func (p udpPath) addr() netip.AddrPort { return p.to }

// sender returns p as media to the viewer leaves: from sender socket i of
// p's shared socket when it has senders, else p itself.
func (m *Mux) sender(p path, i int) path {
	up, ok := p.(udpPath)
	if !ok {
		return p
	}
	m.mu.RLock()
	ss := m.senders[up.conn]
	m.mu.RUnlock()
	if len(ss) == 0 {
		return p
	}
	return udpPath{conn: ss[i%len(ss)], to: up.to}
}

func (p udpPath) close() {}

// tick is how often Run looks for checks to send and consent to expire.
const tick = 50 * time.Millisecond

// Run sends every transport's connectivity and consent checks when they
// are due, and ends transports whose consent expired, until ctx ends.
func (m *Mux) Run(ctx context.Context) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	var ts []*Transport
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			ts = ts[:0]
			m.mu.RLock()
			for tr := range m.transports {
				ts = append(ts, tr)
			}
			m.mu.RUnlock()
			for _, tr := range ts {
				tr.tick(now)
			}
		}
	}
}

// localSockets returns the shared UDP sockets, for checks towards a
// viewer's candidates.
func (m *Mux) localSockets() []*net.UDPConn {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sockets
}
