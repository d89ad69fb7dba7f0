package sfu

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds a node's streams and drives their periodic work.
type Registry struct {
	cfg Config

	mu      sync.Mutex
	streams map[string]*Stream

	malformed atomic.Uint64 // node-wide, so it never goes back when layers go
	fanout    Histogram     // per packet: arrival to the last viewer's write

	watchMu  sync.Mutex
	watchers []*Watcher // copied on change: emit reads a snapshot
}

// Fanout returns the histogram of fan-out times: from a packet's arrival to
// the return of the last viewer's write.
func (g *Registry) Fanout() *Histogram { return &g.fanout }

// MalformedRTP returns how many RTP packets from publishers were dropped as
// malformed since start.
func (g *Registry) MalformedRTP() uint64 { return g.malformed.Load() }

// NewRegistry returns an empty registry. cfg must be valid.
func NewRegistry(cfg Config) *Registry {
	return &Registry{cfg: cfg, streams: map[string]*Stream{}}
}

// Config returns the registry's settings.
func (g *Registry) Config() Config { return g.cfg }

// Stream returns the stream called name, creating it if needed.
func (g *Registry) Stream(name string) *Stream {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.streams[name]
	if r == nil {
		r = newStream(g, name)
		g.streams[name] = r
	}
	return r
}

// Lookup returns the stream called name, or nil.
func (g *Registry) Lookup(name string) *Stream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.streams[name]
}

// Streams returns every stream, sorted by name.
func (g *Registry) Streams() []*Stream {
	g.mu.Lock()
	defer g.mu.Unlock()
	rs := slices.Collect(maps.Values(g.streams))
	slices.SortFunc(rs, func(a, b *Stream) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return rs
}

// Tick runs every stream's periodic work at time now.
func (g *Registry) Tick(now int64) {
	for _, r := range g.Streams() {
		r.tick(now)
	}
}

// TickInterval is how often Run calls Tick.
const TickInterval = 500 * time.Millisecond

// Run calls Tick every TickInterval until ctx ends.
func (g *Registry) Run(ctx context.Context) error {
	t := time.NewTicker(TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.Tick(Now())
		}
	}
}
