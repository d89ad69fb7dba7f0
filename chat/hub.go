package chat

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Streams is what chat needs to know about streams from the media side.
type Streams interface {
	// Known reports whether a stream exists.
	Known(stream string) bool
	// StreamTime returns the stream clock in milliseconds, and whether the
	// stream is live.
	StreamTime(stream string) (int64, bool)
	// CheckKey verifies a stream key (for host tokens).
	CheckKey(stream, key string) error
}

// Errors Connect returns.
var (
	ErrUnknownStream = errors.New("unknown stream")
	ErrReadOnly      = errors.New("this chat needs a token even to read")
)

// Hub holds a node's chat rooms.
type Hub struct {
	cfg     Config
	bp      Backplane
	signer  *Signer
	streams Streams
	log     *slog.Logger

	mu    sync.Mutex
	rooms map[string]*Room
	ctx   context.Context
	wg    sync.WaitGroup
}

// NewHub returns a hub. Rooms start following their logs once Run runs.
func NewHub(cfg Config, bp Backplane, signer *Signer, streams Streams, log *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Hub{cfg: cfg, bp: bp, signer: signer, streams: streams, log: log, rooms: map[string]*Room{}}, nil
}

// Run follows the rooms' logs until ctx ends, then waits for them.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	h.ctx = ctx
	for _, r := range h.rooms {
		h.follow(r)
	}
	h.mu.Unlock()
	<-ctx.Done()
	h.wg.Wait()
	// Tell every client the node is going: they reconnect elsewhere and
	// resume from their last sequence number.
	h.mu.Lock()
	rooms := make([]*Room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		conns := r.conns
		r.mu.Unlock()
		for _, c := range conns {
			c.drop("server shutting down; reconnect and resume")
		}
	}
	return nil
}

// follow starts a room's tail: it replays the log into the room's state,
// then delivers new events as they come. Called with h.mu held.
func (h *Hub) follow(r *Room) {
	if h.ctx == nil {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.bp.Tail(h.ctx, r.name, 0, r.deliver); err != nil && h.ctx.Err() == nil {
			h.log.Warn("chat log", "stream", r.name, "err", err)
		}
	}()
}

// Room returns a stream's room, starting it if needed.
func (h *Hub) Room(ctx context.Context, stream string) (*Room, error) {
	if !h.streams.Known(stream) {
		return nil, ErrUnknownStream
	}
	h.mu.Lock()
	r := h.rooms[stream]
	if r == nil {
		head, err := h.bp.Head(ctx, stream)
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		r = &Room{hub: h, name: stream, state: newRoomState(), readyAt: head,
			limits: map[string]*userLimits{}, reactions: map[string]int{}}
		if head > 0 {
			r.ready = make(chan struct{})
		}
		h.rooms[stream] = r
		h.follow(r)
	}
	ready := r.readyChan()
	h.mu.Unlock()
	if ready != nil {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return r, nil
}

func (r *Room) readyChan() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// Connect joins a client to a stream's chat. token may be empty for a
// read-only client; with resume, the client gets what it missed after
// sequence number after instead of the latest messages.
func (h *Hub) Connect(ctx context.Context, stream string, t Transport, token string, resume bool, after uint64) (*Conn, error) {
	var claims *Claims
	if token != "" {
		c, err := h.signer.Verify(token, stream)
		if err != nil {
			return nil, err
		}
		claims = &c
	} else if !h.cfg.Anonymous {
		return nil, ErrReadOnly
	}
	r, err := h.Room(ctx, stream)
	if err != nil {
		return nil, err
	}
	c := &Conn{room: r, t: t, queue: make(chan []byte, h.cfg.SendQueue), claims: claims, done: make(chan struct{})}
	if at, ok := t.(interface{ Addr() netip.Addr }); ok {
		c.addr = at.Addr()
	}
	r.join(ctx, c, resume, after)
	go c.writeLoop()
	return c, nil
}

// Signer returns the hub's token signer.
func (h *Hub) Signer() *Signer { return h.signer }

// Config returns the hub's settings.
func (h *Hub) Config() Config { return h.cfg }

// History returns a stream's events whose stream time is within [from,
// to] ms, oldest first, without deleted messages, starting after sequence
// number after; next is where a following call continues (0: done).
func (h *Hub) History(ctx context.Context, stream string, from, to int64, after uint64, limit int) (events []*Envelope, next uint64, err error) {
	r, err := h.Room(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	for len(events) < limit {
		batch, err := h.bp.Range(ctx, stream, after, 500)
		if err != nil {
			return nil, 0, err
		}
		if len(batch) == 0 {
			return events, 0, nil
		}
		r.mu.Lock()
		for _, e := range batch {
			after = e.Seq
			if e.ST == nil || *e.ST < from || *e.ST > to || (e.Type == TypeMessage && r.state.deleted[e.Seq]) {
				continue
			}
			if e.Type == TypeMessage || e.Type == TypeReactions || e.Type == TypeBadge {
				events = append(events, e)
				if len(events) == limit {
					break
				}
			}
		}
		r.mu.Unlock()
	}
	return events, after, nil
}

// Audit returns a stream's moderation actions and deletions, oldest first:
// who (from), when (ts), what (body).
func (h *Hub) Audit(ctx context.Context, stream string) ([]*Envelope, error) {
	var out []*Envelope
	var after uint64
	for {
		batch, err := h.bp.Range(ctx, stream, after, 1000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			return out, nil
		}
		for _, e := range batch {
			after = e.Seq
			if e.Type == TypeModeration || e.Type == TypeDelete {
				out = append(out, e)
			}
		}
	}
}

// Supporters lists a stream's badge buyers with their totals.
func (h *Hub) Supporters(ctx context.Context, stream string) ([]Supporter, error) {
	r, err := h.Room(ctx, stream)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.supporters(), nil
}

// Role returns what a token's holder may do in a stream now.
func (h *Hub) Role(ctx context.Context, stream string, c Claims) (Role, error) {
	r, err := h.Room(ctx, stream)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.role(c), nil
}

// RecordPurchase puts a completed badge purchase in the stream's log once
// per order, however often the provider reports it.
func (h *Hub) RecordPurchase(ctx context.Context, stream string, buyer Claims, tier, amount int, order string) error {
	r, err := h.Room(ctx, stream)
	if err != nil {
		return err
	}
	r.mu.Lock()
	u := r.userLocked(buyer)
	total := amount
	if sp := r.state.badges[buyer.Sub]; sp != nil {
		total += sp.Total
	}
	counted := r.state.orders[order]
	r.mu.Unlock()
	if counted {
		return nil
	}
	u.Badge = max(u.Badge, tier)
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	_, err = h.bp.Append(ctx, stream, &Envelope{V: Version, Type: TypeBadge, TS: time.Now().UnixMilli(), ID: "order:" + order,
		From: &u, ST: r.streamTime(nil), Body: mustJSON(BadgeBody{User: u, Tier: tier, Amount: amount, Total: total, Order: order})})
	return err
}

// Close releases the hub's log (a Redis connection, or the files of the
// memory log). Call it after Run has returned.
func (h *Hub) Close() error { return h.bp.Close() }
