package httpx

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// ClientIP is the address a request came from: its connection's peer.
// Glint trusts no forwarding header; behind a proxy, every client shares
// the proxy's address and its limits.
func ClientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		// One IPv6 client usually holds a whole /64.
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// maxKeys bounds what a Limiter or Backoff remembers; past it, the entries
// idle longest are forgotten first.
const maxKeys = 100_000

// Limiter is a token bucket per client address: Rate requests a second,
// Burst at once. It remembers at most 100,000 addresses.
type Limiter struct {
	Rate  float64
	Burst int

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// Allow reports whether addr may make a request now; when not, it says
// how long until it may.
func (l *Limiter) Allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	if l.Rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[netip.Addr]*bucket{}
	}
	l.forgetIdle(now)
	b := l.buckets[addr]
	if b == nil {
		b = &bucket{tokens: float64(l.Burst), last: now}
		l.buckets[addr] = b
	}
	b.tokens = min(float64(l.Burst), b.tokens+now.Sub(b.last).Seconds()*l.Rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.Rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// forgetIdle drops full buckets (idle long enough to refill) every few
// seconds, and any when the map is over its bound.
func (l *Limiter) forgetIdle(now time.Time) {
	if now.Sub(l.sweep) < 5*time.Second && len(l.buckets) < maxKeys {
		return
	}
	l.sweep = now
	refill := time.Duration(float64(l.Burst) / l.Rate * float64(time.Second))
	for a, b := range l.buckets {
		if now.Sub(b.last) > refill || len(l.buckets) >= maxKeys {
			delete(l.buckets, a)
		}
	}
}

// Backoff slows guessing: after Free failures from one address, each
// further failure blocks it for twice as long as the last (from 1 s up
// to Max). A success clears the address.
type Backoff struct {
	Free int
	Max  time.Duration

	mu    sync.Mutex
	state map[netip.Addr]*backoff
}

type backoff struct {
	failures int
	until    time.Time
	last     time.Time
}

// Blocked reports whether addr must wait, and how long.
func (b *Backoff) Blocked(addr netip.Addr, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state[addr]
	if s == nil || !now.Before(s.until) {
		return false, 0
	}
	return true, s.until.Sub(now)
}

// Fail records a failure from addr.
func (b *Backoff) Fail(addr netip.Addr, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == nil {
		b.state = map[netip.Addr]*backoff{}
	}
	if len(b.state) >= maxKeys {
		for a, s := range b.state {
			if now.Sub(s.last) > b.Max {
				delete(b.state, a)
			}
		}
		if len(b.state) >= maxKeys {
			clear(b.state)
		}
	}
	s := b.state[addr]
	if s == nil || now.Sub(s.last) > 2*b.Max {
		s = &backoff{}
		b.state[addr] = s
	}
	s.failures++
	s.last = now
	if over := s.failures - b.Free; over > 0 {
		wait := time.Second << min(over-1, 16)
		s.until = now.Add(min(wait, b.Max))
	}
}

// Succeed clears addr's failures.
func (b *Backoff) Succeed(addr netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.state, addr)
}
