package relay

import (
	"context"
	"sync/atomic"
	"time"
)

// Member keeps one node in the directory: a heartbeat every third of the
// TTL with what Self reports, until Run's context ends; then the node
// withdraws. While Redis cannot be reached the node goes on serving what
// it has; its next heartbeat rebuilds its record and origins.
type Member struct {
	Dir  *Directory
	Self func() Node

	reachable atomic.Bool
	last      atomic.Pointer[Node]
}

// Run heartbeats until ctx ends.
func (m *Member) Run(ctx context.Context) {
	t := time.NewTicker(m.Dir.ttl / 3)
	defer t.Stop()
	for {
		m.beat(ctx)
		select {
		case <-ctx.Done():
			if n := m.last.Load(); n != nil {
				wctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = m.Dir.Withdraw(wctx, n.ID, n.Origins)
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

func (m *Member) beat(ctx context.Context) {
	n := m.Self()
	bctx, cancel := context.WithTimeout(ctx, m.Dir.ttl/3)
	defer cancel()
	err := m.Dir.Announce(bctx, n)
	was := m.reachable.Swap(err == nil)
	switch {
	case err != nil && (was || m.last.Load() == nil):
		m.Dir.log.Warn("mesh: the directory cannot be reached; serving what this node has", "err", err)
	case err == nil && !was && m.last.Load() != nil:
		m.Dir.log.Info("mesh: the directory is back; this node's record is rebuilt")
	}
	if err == nil {
		m.last.Store(&n)
	}
}

// Reachable reports whether the last heartbeat reached Redis.
func (m *Member) Reachable() bool { return m.reachable.Load() }
