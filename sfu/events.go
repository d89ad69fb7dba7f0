package sfu

import (
	"context"
	"errors"
	"sync"
)

// EventKind says what happened to a stream.
type EventKind uint8

// Stream lifecycle events, in the order a stream goes through them.
const (
	// EventLive: a participant started publishing on an offline stream.
	EventLive EventKind = iota + 1
	// EventLayers: a publication gained a layer (a codec, a simulcast
	// encoding); Event.Layers says how many it has.
	EventLayers
	// EventReconnecting: a publisher's connection dropped; viewers wait
	// for it until the reconnect grace ends.
	EventReconnecting
	// EventPublication: a new publication replaced the participant's
	// previous one: a publisher returning within the grace, or a takeover.
	EventPublication
	// EventEnded: a participant's publication ended for good (goodbye, or
	// the grace ran out). For the host, the stream is offline.
	EventEnded
	// EventJoined: a guest joined the host's room (its first
	// publication; a return within its grace is EventPublication).
	EventJoined
	// EventSpeaker: Participant is now the active speaker.
	EventSpeaker
	// EventMuted: the host muted or unmuted Participant's audio or video.
	EventMuted
)

func (k EventKind) String() string {
	switch k {
	case EventLive:
		return "live"
	case EventLayers:
		return "layers"
	case EventReconnecting:
		return "reconnecting"
	case EventPublication:
		return "publication"
	case EventEnded:
		return "ended"
	case EventJoined:
		return "joined"
	case EventSpeaker:
		return "speaker"
	case EventMuted:
		return "muted"
	}
	return "unknown"
}

// Event is one step in a stream's life. Subscribers of the core (the HLS
// bridge, the recorder, the relay, webhooks) follow these instead of
// polling.
type Event struct {
	Kind        EventKind
	Stream      string
	Participant string // HostID for the main publisher, else a guest's id
	At          int64  // Now() units
	Layers      int    // EventLayers: the publication's layers, audio included
}

// ErrWatcherClosed is returned by Watcher.Next after Close.
var ErrWatcherClosed = errors.New("sfu: watcher closed")

// maxPending bounds the events a slow watcher may have unread; beyond it
// the oldest are dropped and counted.
const maxPending = 4096

// Watcher receives every stream's lifecycle events in the order they
// happened. It never slows the core: a watcher more than maxPending events
// behind loses the oldest (Dropped counts them).
type Watcher struct {
	reg *Registry

	mu      sync.Mutex
	queue   []Event
	wake    chan struct{}
	dropped uint64
	closed  bool
}

// Watch returns a Watcher of every stream's events from now on. Close it
// when done.
func (g *Registry) Watch() *Watcher {
	w := &Watcher{reg: g, wake: make(chan struct{}, 1)}
	g.watchMu.Lock()
	g.watchers = append(g.watchers, w)
	g.watchMu.Unlock()
	return w
}

// Next returns the next event, waiting until one happens, ctx ends or the
// watcher is closed.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			ev := w.queue[0]
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return ev, nil
		}
		closed := w.closed
		w.mu.Unlock()
		if closed {
			return Event{}, ErrWatcherClosed
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Dropped returns how many events the watcher lost by falling behind.
func (w *Watcher) Dropped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Close stops the watcher; Next returns ErrWatcherClosed once the queue
// is read.
func (w *Watcher) Close() {
	g := w.reg
	g.watchMu.Lock()
	for i, x := range g.watchers {
		if x == w {
			g.watchers = append(g.watchers[:i:i], g.watchers[i+1:]...)
			break
		}
	}
	g.watchMu.Unlock()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) push(ev Event) {
	w.mu.Lock()
	if len(w.queue) >= maxPending {
		w.queue = w.queue[1:]
		w.dropped++
	}
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// emit hands ev to every watcher and wakes whoever waits on the stream's
// Changed channel. Callers hold the stream's lock, so a stream's events
// reach watchers in the order its state changed; watchers' locks are
// leaves.
func (r *Stream) emitLocked(ev Event) {
	ev.Stream = r.name
	g := r.reg
	g.watchMu.Lock()
	ws := g.watchers
	g.watchMu.Unlock()
	for _, w := range ws {
		w.push(ev)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// Changed returns a channel closed at the stream's next lifecycle event:
// a cheap wake-up for whoever shows the stream's state (a viewer's event
// stream), with no goroutine per waiter.
func (r *Stream) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}
