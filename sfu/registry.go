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
	// retransmits counts packets resent to viewers; rtxRefused NACKed
	// packets not resent because a viewer's budget was spent.
	retransmits, rtxRefused atomic.Uint64
	fanout                  Histogram // per packet: arrival to the last viewer's write

	watchMu  sync.Mutex
	watchers []*Watcher // copied on change: emit reads a snapshot

	lanes    []*lane
	nextLane atomic.Uint32
	lanesWG  sync.WaitGroup
	stopOnce sync.Once
}

// Fanout returns the histogram of fan-out times: from a packet's arrival to
// the return of the last viewer's write.
func (g *Registry) Fanout() *Histogram { return &g.fanout }

// MalformedRTP returns how many RTP packets from publishers were dropped as
// malformed since start.
func (g *Registry) MalformedRTP() uint64 { return g.malformed.Load() }

// NewRegistry returns an empty registry. cfg must be valid. With
// cfg.Workers lanes it starts their goroutines: Close stops them.
func NewRegistry(cfg Config) *Registry {
	g := &Registry{cfg: cfg, streams: map[string]*Stream{}}
	for i := range cfg.Workers {
		w := newLane(g, i)
		g.lanes = append(g.lanes, w)
		g.lanesWG.Add(1)
		go w.run(&g.lanesWG)
	}
	return g
}

// Close stops the fan-out lanes. Packets ingested after it are delivered
// to nobody.
func (g *Registry) Close() {
	g.stopOnce.Do(func() {
		for _, w := range g.lanes {
			close(w.quit)
		}
	})
	g.lanesWG.Wait()
}

// Lanes returns how many fan-out lanes the registry runs (0: packets are
// delivered on the ingest goroutine).
func (g *Registry) Lanes() int { return len(g.lanes) }

// lanesCount is how many sink lists a track keeps: one per lane, or one.
func (g *Registry) lanesCount() int { return max(len(g.lanes), 1) }

// pickLane spreads subscribers over the lanes, in turn.
func (g *Registry) pickLane() int {
	if len(g.lanes) == 0 {
		return 0
	}
	return int(g.nextLane.Add(1)-1) % len(g.lanes)
}

// Retransmits returns how many packets were resent to viewers, and how
// many NACKed packets were not because the viewer's budget was spent.
func (g *Registry) Retransmits() (sent, refused uint64) {
	return g.retransmits.Load(), g.rtxRefused.Load()
}

// LaneDrops returns how many packets lanes dropped because they were full.
func (g *Registry) LaneDrops() uint64 {
	var n uint64
	for _, w := range g.lanes {
		n += w.dropped.Load()
	}
	return n
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
