package sfu

import (
	"sync"
	"sync/atomic"
)

// Job is work a subscriber's owner runs on the subscriber's lane, in order
// with the packets the lane delivers to it: a viewer's RTCP (NACKs answered
// from the cache, bandwidth feedback) runs there, off the socket reader.
type Job interface {
	RunJob()
}

// laneSize is how many packets a lane holds waiting; beyond it the
// newest are dropped for that lane's viewers (they ask again by NACK).
const laneSize = 512

// lane is one fan-out worker: a goroutine that delivers a stream's packets
// to the sinks assigned to it, and runs its subscribers' jobs. Each
// subscriber (so each viewer's packet order) lives on one lane; a layer's
// viewers are spread over all of them, so one stream uses every core and
// the last viewer no longer waits for all the others. A packet is copied
// once per lane that has sinks for it: the ingest goroutine never waits
// for a lane, and lanes never touch the layer's cache.
type lane struct {
	index int
	reg   *Registry

	mu      sync.Mutex
	pkts    []Packet // ring of copies
	layers  []*Layer
	head, n int
	jobs    []Job
	wake    chan struct{}
	quit    chan struct{}

	dropped atomic.Uint64
}

func newLane(g *Registry, i int) *lane {
	return &lane{index: i, reg: g, pkts: make([]Packet, laneSize), layers: make([]*Layer, laneSize),
		wake: make(chan struct{}, 1), quit: make(chan struct{})}
}

// push queues a copy of p for the lane's sinks of l's track. It never
// waits: a full lane drops the packet for its viewers.
func (w *lane) push(l *Layer, p *Packet) {
	w.mu.Lock()
	if w.n == laneSize {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	i := (w.head + w.n) % laneSize
	p.copyTo(&w.pkts[i])
	w.layers[i] = l
	w.n++
	w.mu.Unlock()
	w.signal()
}

// post queues a job. Jobs are never dropped: their owners post at most
// one at a time (they are edge-triggered).
func (w *lane) post(j Job) {
	w.mu.Lock()
	w.jobs = append(w.jobs, j)
	w.mu.Unlock()
	w.signal()
}

func (w *lane) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers what is queued until quit closes.
func (w *lane) run(done *sync.WaitGroup) {
	defer done.Done()
	var jobs []Job
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			head, n := w.head, w.n
			jobs = append(jobs[:0], w.jobs...)
			clear(w.jobs)
			w.jobs = w.jobs[:0]
			w.mu.Unlock()
			if n == 0 && len(jobs) == 0 {
				break
			}
			// The slots [head, head+n) are the lane's until it moves head:
			// producers write only past them.
			for k := range n {
				i := (head + k) % laneSize
				w.deliver(w.layers[i], &w.pkts[i])
				w.layers[i] = nil
			}
			for _, j := range jobs {
				j.RunJob()
			}
			clear(jobs)
			w.mu.Lock()
			w.head = (w.head + n) % laneSize
			w.n -= n
			w.mu.Unlock()
		}
	}
}

func (w *lane) deliver(l *Layer, p *Packet) {
	all := *l.track.sinks.Load()
	if w.index >= len(all) {
		return
	}
	sinks := all[w.index]
	for _, s := range sinks {
		s.Deliver(l, p)
	}
	if len(sinks) > 0 {
		w.reg.fanout.Observe(Now() - p.Arrival)
	}
}

// laned is a sink that says which lane it belongs to: a viewer's down
// tracks go where their subscriber is.
type laned interface {
	lane() int
}

// copyTo copies the packet into dst: the bytes it holds and its parsed
// fields, not the whole buffer.
func (p *Packet) copyTo(dst *Packet) {
	dst.size = uint16(copy(dst.buf[:p.size], p.buf[:p.size]))
	dst.payloadOff, dst.payloadEnd = p.payloadOff, p.payloadEnd
	dst.SequenceNumber, dst.Timestamp, dst.SSRC = p.SequenceNumber, p.Timestamp, p.SSRC
	dst.PayloadType, dst.Marker, dst.PaddingSize = p.PayloadType, p.Marker, p.PaddingSize
	dst.Keyframe, dst.Arrival = p.Keyframe, p.Arrival
	dst.absCaptureOff, dst.absCaptureLen, dst.audioLevel = p.absCaptureOff, p.absCaptureLen, p.audioLevel
	dst.picture = p.picture
}
