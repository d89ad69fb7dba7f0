package client

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Link emulates the network in front of a client, on what its socket
// receives: a bottleneck of a given rate with a FIFO queue (tail drop past
// 200 ms), random loss, and jitter: each datagram delayed at random on its
// own, so datagrams may arrive out of order, as netem's jitter does. Set
// it as Options.Link; it acts before decryption, so a retransmission of a
// packet the link dropped is new to the client, as behind a real link.
// Settings can change while datagrams flow.
type Link struct {
	rate   atomic.Int64  // bits per second; 0 is unlimited
	loss   atomic.Uint32 // per million datagrams
	jitter atomic.Int64  // most added delay, ns

	mu    sync.Mutex
	free  time.Time // when the bottleneck has sent what is queued
	rng   *rand.Rand
	drops int
}

// linkMaxQueue is how long a datagram may wait in the bottleneck's queue
// before the link drops it (a router's buffer).
const linkMaxQueue = 200 * time.Millisecond

// SetRate caps the link at bps bits per second; 0 lifts the cap.
func (l *Link) SetRate(bps int64) { l.rate.Store(bps) }

// SetLoss drops a fraction (0..1) of datagrams at random.
func (l *Link) SetLoss(fraction float64) { l.loss.Store(uint32(fraction * 1e6)) }

// SetJitter delays each datagram by up to d more, at random.
func (l *Link) SetJitter(d time.Duration) { l.jitter.Store(int64(d)) }

// Drops returns how many datagrams the link dropped (queue and loss).
func (l *Link) Drops() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drops
}

// admit decides the fate of a datagram of n bytes that arrived at now:
// when it leaves the link, or that it is dropped.
func (l *Link) admit(n int, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rng == nil {
		l.rng = rand.New(rand.NewPCG(uint64(now.UnixNano()), 1))
	}
	if loss := l.loss.Load(); loss > 0 && l.rng.Uint32N(1e6) < loss {
		l.drops++
		return time.Time{}, false
	}
	at := now
	if rate := l.rate.Load(); rate > 0 {
		start := now
		if l.free.After(now) {
			start = l.free
		}
		if start.Sub(now) > linkMaxQueue {
			l.drops++
			return time.Time{}, false
		}
		l.free = start.Add(time.Duration(int64(n+28) * 8 * int64(time.Second) / rate)) // UDP and IP headers too
		at = l.free
	}
	if j := l.jitter.Load(); j > 0 {
		at = at.Add(time.Duration(l.rng.Int64N(j)))
	}
	return at, true
}

// linkConn is a UDP socket whose reads come through a Link. Writes go
// straight out.
type linkConn struct {
	c   *net.UDPConn
	out chan datagram
}

type datagram struct {
	b    []byte
	from netip.AddrPort
	at   time.Time
}

// listen opens a UDP socket on ip behind the link.
func (l *Link) listen(ip net.IP) (*linkConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	lc := &linkConn{c: c, out: make(chan datagram, 4096)}
	queue := make(chan datagram, 4096)
	// A pump takes each datagram off the socket as it arrives, so the
	// link knows when it did.
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 1500)
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if at, ok := l.admit(n, time.Now()); ok {
				select {
				case queue <- datagram{b: buf[:n], from: from, at: at}:
				default: // the reader is far behind: lost
				}
			}
		}
	}()
	// Datagrams leave by their own time, earliest first.
	go func() {
		defer close(lc.out)
		var held []datagram
		for {
			var timer <-chan time.Time
			if len(held) > 0 {
				timer = time.After(time.Until(held[0].at))
			}
			select {
			case d, ok := <-queue:
				if !ok {
					return
				}
				i := sort.Search(len(held), func(i int) bool { return held[i].at.After(d.at) })
				held = append(held, datagram{})
				copy(held[i+1:], held[i:])
				held[i] = d
			case <-timer:
				for len(held) > 0 && !held[0].at.After(time.Now()) {
					lc.out <- held[0]
					held = held[1:]
				}
			}
		}
	}()
	return lc, nil
}

func (c *linkConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	d, ok := <-c.out
	if !ok {
		return 0, netip.AddrPort{}, net.ErrClosed
	}
	return copy(b, d.b), d.from, nil
}

func (c *linkConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

func (c *linkConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return c.c.WriteToUDPAddrPort(b, to)
}

func (c *linkConn) WriteTo(b []byte, to net.Addr) (int, error) { return c.c.WriteTo(b, to) }
func (c *linkConn) Close() error                               { return c.c.Close() }
func (c *linkConn) LocalAddr() net.Addr                        { return c.c.LocalAddr() }
func (c *linkConn) SetDeadline(t time.Time) error              { return c.c.SetDeadline(t) }
func (c *linkConn) SetReadDeadline(t time.Time) error          { return c.c.SetReadDeadline(t) }
func (c *linkConn) SetWriteDeadline(t time.Time) error         { return c.c.SetWriteDeadline(t) }
