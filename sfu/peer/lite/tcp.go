package lite

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ICE-TCP limits: what an unauthenticated connection may cost.
const (
	// firstPacketWait bounds how long a new connection may take to send
	// its first frame, a STUN binding request.
	firstPacketWait = 3 * time.Second
	// maxFirstFrame bounds that first frame: a binding request is a few
	// hundred bytes.
	maxFirstFrame = 1024
	// maxUnverified bounds the connections waiting for their first frame.
	maxUnverified = 64
	// tcpReadBuffer is what a verified viewer connection reads into;
	// larger frames (which a viewer has no reason to send) are skipped.
	tcpReadBuffer = 4096
	// tcpWriteBuffer bounds what a stalled ICE-TCP viewer can queue; beyond
	// it its packets are dropped, and nobody else waits.
	tcpWriteBuffer = 1 << 20
	// maxTCPPaths bounds one transport's ICE-TCP connections.
	maxTCPPaths = 8
)

// Listener wraps the ICE-TCP listener for pion's TCP mux: a connection
// whose first frame is a binding request that a transport of m verifies
// (ufrag and MESSAGE-INTEGRITY) is served here; any other first frame is
// handed on, unread, to pion. Connections that send nothing, or junk, or
// too much first, or too many at once, are closed before costing more than
// a small buffer.
func (m *Mux) Listener(l net.Listener) net.Listener {
	ll := &listener{Listener: l, mux: m, conns: make(chan net.Conn), done: make(chan struct{}), paths: map[*tcpPath]struct{}{}}
	ll.wg.Add(1)
	go ll.acceptLoop()
	return ll
}

type listener struct {
	net.Listener
	mux     *Mux
	conns   chan net.Conn
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	closed  error
	pending atomic.Int32 // connections still waiting for their first frame

	mu    sync.Mutex
	paths map[*tcpPath]struct{} // viewers' connections, closed with the listener
}

func (l *listener) acceptLoop() {
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
		if l.pending.Add(1) > maxUnverified {
			l.pending.Add(-1)
			l.mux.tcpRefused.Add(1)
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go l.sort(c)
	}
}

// sort reads a connection's first frame (RFC 4571) and decides whose it
// is.
func (l *listener) sort(c net.Conn) {
	defer l.wg.Done()
	first, err := readFirst(c)
	l.pending.Add(-1)
	if err != nil {
		l.mux.tcpRefused.Add(1)
		_ = c.Close()
		return
	}
	if t := l.mux.byRequest(first); t != nil {
		if !t.verifyRequest(first) {
			// It names a viewer but cannot prove it: it must not take one of
			// the viewer's connection slots.
			l.mux.tcpRefused.Add(1)
			_ = c.Close()
			return
		}
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
			p.readLoop(t)
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

// readFirst reads the first frame: its length first, at most
// maxFirstFrame, within firstPacketWait.
func readFirst(c net.Conn) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(firstPacketWait))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 || n > maxFirstFrame {
		return nil, errors.New("ice-tcp: first frame of a bad size")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return b, nil
}

// track remembers a viewer's connection, unless the listener is closing.
func (l *listener) track(p *tcpPath) bool {
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

func (l *listener) untrack(p *tcpPath) {
	l.mu.Lock()
	delete(l.paths, p)
	l.mu.Unlock()
}

// Accept returns the connections that are not a transport's.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes the viewers' connections and waits for
// the connections being sorted.
func (l *listener) Close() error {
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

// readLoop feeds the connection's frames to t until it closes. Frames
// larger than the buffer are skipped.
func (p *tcpPath) readLoop(t *Transport) {
	defer p.close()
	buf := make([]byte, tcpReadBuffer)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
			t.pathClosed(p)
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > len(buf) {
			if _, err := io.CopyN(io.Discard, p.conn, int64(n)); err != nil {
				t.pathClosed(p)
				return
			}
			continue
		}
		if _, err := io.ReadFull(p.conn, buf[:n]); err != nil {
			t.pathClosed(p)
			return
		}
		t.receive(p, buf[:n])
	}
}
