package client

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
)

// Link emulates the network in front of a viewer: a bottleneck of a given
// rate with a FIFO queue (tail drop past MaxQueue), random loss, and
// jitter that keeps packets in order. Add it to a viewer's
// Options.Interceptors: it sits nearest the network, so the viewer's
// transport-wide feedback and NACKs see what the link did, as they would
// behind a real one. Settings can change while packets flow.
type Link struct {
	interceptor.NoOp

	rate   atomic.Int64  // bits per second; 0 is unlimited
	loss   atomic.Uint32 // per million packets
	jitter atomic.Int64  // most added delay, ns

	mu        sync.Mutex
	free      time.Time // when the bottleneck has sent what is queued
	delivered time.Time // the last delivery, to keep order under jitter
	rng       *rand.Rand
	drops     int
}

// linkMaxQueue is how long a packet may wait in the bottleneck's queue
// before the link drops it (a router's buffer).
const linkMaxQueue = 200 * time.Millisecond

// SetRate caps the link at bps bits per second; 0 lifts the cap.
func (l *Link) SetRate(bps int64) { l.rate.Store(bps) }

// SetLoss drops a fraction (0..1) of packets at random.
func (l *Link) SetLoss(fraction float64) { l.loss.Store(uint32(fraction * 1e6)) }

// SetJitter delays each packet by up to d more, at random, in order.
func (l *Link) SetJitter(d time.Duration) { l.jitter.Store(int64(d)) }

// Drops returns how many packets the link dropped (queue and loss).
func (l *Link) Drops() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.drops
}

// NewInterceptor returns the link itself: one link per viewer.
func (l *Link) NewInterceptor(string) (interceptor.Interceptor, error) { return l, nil }

// BindRemoteStream passes the stream's packets through the link.
func (l *Link) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, a, err := r.Read(b, a)
			if err != nil {
				return n, a, err
			}
			if at, ok := l.admit(n); ok {
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				}
				return n, a, nil
			}
		}
	})
}

// admit decides a packet of n bytes' fate: when it leaves the link, or
// that it is dropped.
func (l *Link) admit(n int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rng == nil {
		l.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	}
	now := time.Now()
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
	if at.Before(l.delivered) {
		at = l.delivered
	}
	l.delivered = at
	return at, true
}
