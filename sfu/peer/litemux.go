package peer

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// liteMux takes the packets of viewer transports (the light sessions Glint
// runs itself, see transport.go) off the shared sockets before pion's muxes
// see them. Everything else — publishers' traffic — passes through.
type liteMux struct {
	mu     sync.RWMutex
	ufrags map[string]*transport         // local ICE ufrag → transport
	addrs  map[netip.AddrPort]*transport // checked remote UDP address → transport
}

func newLiteMux() *liteMux {
	return &liteMux{ufrags: map[string]*transport{}, addrs: map[netip.AddrPort]*transport{}}
}

func (m *liteMux) addUfrag(ufrag string, t *transport) {
	m.mu.Lock()
	m.ufrags[ufrag] = t
	m.mu.Unlock()
}

func (m *liteMux) addAddr(a netip.AddrPort, t *transport) {
	m.mu.Lock()
	if _, taken := m.addrs[a]; !taken {
		m.addrs[a] = t
	}
	m.mu.Unlock()
}

// remove forgets every ufrag and address of t.
func (m *liteMux) remove(t *transport, ufrags []string, addrs []netip.AddrPort) {
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
	m.mu.Unlock()
}

func (m *liteMux) byAddr(a netip.AddrPort) *transport {
	m.mu.RLock()
	t := m.addrs[a]
	m.mu.RUnlock()
	return t
}

// byRequest returns the transport a STUN binding request is addressed to:
// its USERNAME is "<our ufrag>:<their ufrag>" (RFC 8445 §7.2.2).
func (m *liteMux) byRequest(b []byte) *transport {
	if !stun.IsMessage(b) {
		return nil
	}
	ufrag, ok := stunUsername(b)
	if !ok {
		return nil
	}
	local, _, _ := strings.Cut(ufrag, ":")
	m.mu.RLock()
	t := m.ufrags[local]
	m.mu.RUnlock()
	return t
}

// stunUsername finds the USERNAME attribute of a STUN message without
// decoding the rest.
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

// liteSocket is one shared UDP socket as pion's UDP mux sees it: reads
// return only the packets no viewer transport claimed.
type liteSocket struct {
	*net.UDPConn
	mux *liteMux
}

// ReadFromAddrPort implements pion's allocation-free read.
func (s *liteSocket) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := s.ReadFromUDPAddrPort(b)
		if err != nil || !s.route(b[:n], from) {
			return n, from, err
		}
	}
}

// WriteToAddrPort implements pion's allocation-free write.
func (s *liteSocket) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return s.WriteToUDPAddrPort(b, to)
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (s *liteSocket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := s.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// route hands b to the viewer transport it belongs to, if any. The
// transport must not keep b.
func (s *liteSocket) route(b []byte, from netip.AddrPort) bool {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	t := s.mux.byAddr(from)
	if t == nil {
		if t = s.mux.byRequest(b); t == nil {
			return false
		}
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

func (p udpPath) close() {}

// liteListener is the ICE-TCP listener as pion's TCP mux sees it: a
// connection whose first STUN request names a viewer transport is served
// here; the others are handed on with that first packet unread.
type liteListener struct {
	net.Listener
	mux    *liteMux
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	closed error

	mu    sync.Mutex
	paths map[*tcpPath]struct{} // viewers' connections, closed with the listener
}

// firstPacketWait bounds how long a new ICE-TCP connection may take to
// send its first STUN request.
const firstPacketWait = 10 * time.Second

func newLiteListener(l net.Listener, m *liteMux) *liteListener {
	ll := &liteListener{Listener: l, mux: m, conns: make(chan net.Conn), done: make(chan struct{}), paths: map[*tcpPath]struct{}{}}
	ll.wg.Add(1)
	go ll.acceptLoop()
	return ll
}

func (l *liteListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		l.wg.Add(1)
		go l.sort(c)
	}
}

// sort reads a connection's first framed packet (RFC 4571) and decides
// whose it is.
func (l *liteListener) sort(c net.Conn) {
	defer l.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(firstPacketWait))
	first, err := readFrame(c, make([]byte, maxFrame))
	if err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if t := l.mux.byRequest(first); t != nil {
		p := newTCPPath(c)
		if !t.addTCP(p) || !l.track(p) {
			p.close()
			return
		}
		t.receive(p, first)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.untrack(p)
			p.readLoop(t, first[:cap(first)])
		}()
		return
	}
	framed := make([]byte, 2+len(first))
	binary.BigEndian.PutUint16(framed, uint16(len(first)))
	copy(framed[2:], first)
	select {
	case l.conns <- &prefixConn{Conn: c, prefix: framed}:
	case <-l.done:
		_ = c.Close()
	}
}

// track remembers a viewer's connection, unless the listener is closing.
func (l *liteListener) track(p *tcpPath) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	l.paths[p] = struct{}{}
	return true
}

func (l *liteListener) untrack(p *tcpPath) {
	l.mu.Lock()
	delete(l.paths, p)
	l.mu.Unlock()
}

// Accept returns the connections that are not a viewer transport's.
func (l *liteListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for the connections being sorted.
func (l *liteListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		for p := range l.paths {
			p.close()
		}
		l.mu.Unlock()
		l.closed = l.Listener.Close()
	})
	l.wg.Wait()
	return l.closed
}

// prefixConn replays bytes already read before the connection's own.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(b, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// maxFrame is the largest RFC 4571 frame.
const maxFrame = 1<<16 - 1

// readFrame reads one length-prefixed packet into buf.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// tcpPath sends to a viewer over its ICE-TCP connection. Writes never
// block the fan-out: they queue up to tcpWriteBuffer bytes for a writer
// goroutine, and beyond that they are dropped.
type tcpPath struct {
	conn net.Conn
	to   netip.AddrPort

	mu     sync.Mutex
	queue  [][]byte
	queued int
	wake   chan struct{}
	done   chan struct{}
	once   sync.Once
}

var errTCPFull = errors.New("ice-tcp: send queue full")

func newTCPPath(c net.Conn) *tcpPath {
	p := &tcpPath{conn: c, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		p.to = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	go p.writeLoop()
	return p
}

func (p *tcpPath) write(b []byte) error {
	select {
	case <-p.done:
		return net.ErrClosed
	default:
	}
	frame := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(frame, uint16(len(b)))
	copy(frame[2:], b)
	p.mu.Lock()
	if p.queued+len(frame) > tcpWriteBuffer {
		p.mu.Unlock()
		return errTCPFull
	}
	p.queue = append(p.queue, frame)
	p.queued += len(frame)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

func (p *tcpPath) writeLoop() {
	var bufs net.Buffers
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		p.mu.Lock()
		bufs = append(bufs[:0], p.queue...)
		p.queue = p.queue[:0]
		p.queued = 0
		p.mu.Unlock()
		if _, err := bufs.WriteTo(p.conn); err != nil {
			p.close()
			return
		}
	}
}

func (p *tcpPath) addr() netip.AddrPort { return p.to }

func (p *tcpPath) close() {
	p.once.Do(func() {
		close(p.done)
		_ = p.conn.Close()
	})
}

// readLoop feeds the connection's packets to t until it closes.
func (p *tcpPath) readLoop(t *transport, buf []byte) {
	defer p.close()
	for {
		b, err := readFrame(p.conn, buf)
		if err != nil {
			t.pathClosed(p)
			return
		}
		t.receive(p, b)
	}
}
