package chat

import (
	"encoding/json"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Transport carries frames to one client: a WebSocket or a data channel.
// Write is called from the connection's writer goroutine only.
type Transport interface {
	Write(frame []byte) error
	Close(reason string) error
}

// Conn is one client in a room.
type Conn struct {
	room  *Room
	t     Transport
	queue chan []byte
	// backlog is written before the queue: the hello and the recent or
	// missed events, set by join before the writer starts.
	backlog [][]byte

	addr netip.Addr // the client's, when its transport knows it

	mu     sync.Mutex
	claims *Claims // nil: read-only

	closed atomic.Bool
	reason atomic.Pointer[string]
	done   chan struct{}
}

// enqueue hands a frame to the writer without waiting; a full queue drops
// the client, which has fallen too far behind.
func (c *Conn) enqueue(frame []byte) {
	if c.closed.Load() {
		return
	}
	select {
	case c.queue <- frame:
	default:
		c.drop("too slow: the client fell behind")
	}
}

// batchWriter is a transport that can send several frames as one batch,
// when its client asked for batches.
type batchWriter interface {
	Batches() bool
	WriteBatch(frames [][]byte) error
}

// maxBatch bounds the events sent in one batch.
const maxBatch = 64

// Pinger is a transport that wants keepalives while the client is idle.
type Pinger interface {
	Ping() error
}

// pingInterval is how often an idle-proof transport is pinged.
const pingInterval = 30 * time.Second

// writeLoop sends queued frames until the connection closes.
func (c *Conn) writeLoop() {
	var ping <-chan time.Time
	pinger, ok := c.t.(Pinger)
	if ok {
		t := time.NewTicker(pingInterval)
		defer t.Stop()
		ping = t.C
	}
	bw, _ := c.t.(batchWriter)
	batch := make([][]byte, 0, maxBatch)
	if bw == nil || !bw.Batches() {
		batch = nil
	}
	for i, f := range c.backlog {
		c.backlog[i] = nil
		if err := c.t.Write(f); err != nil {
			c.Close()
			break
		}
	}
	c.backlog = nil
	for {
		select {
		case <-ping:
			if err := pinger.Ping(); err != nil {
				c.Close()
				return
			}
		case f := <-c.queue:
			if err := c.write(f, batch, bw); err != nil {
				c.Close()
				return
			}
		case <-c.done:
			if r := c.reason.Load(); r != nil {
				b, _ := json.Marshal(problem(TypeClosed, "closed", *r, ""))
				_ = c.t.Write(b)
				_ = c.t.Close(*r)
			} else {
				_ = c.t.Close("bye")
			}
			return
		}
	}
}

// write sends f and, to a client that takes batches (batch not nil, bw
// its transport), whatever else is queued (up to maxBatch events) in the
// same message.
func (c *Conn) write(f []byte, batch [][]byte, bw batchWriter) error {
	if batch == nil {
		return c.t.Write(f)
	}
	batch = append(batch[:0], f)
	for len(batch) < maxBatch {
		select {
		case g := <-c.queue:
			batch = append(batch, g)
			continue
		default:
		}
		break
	}
	var err error
	if len(batch) == 1 {
		err = c.t.Write(f)
	} else {
		err = bw.WriteBatch(batch)
	}
	clear(batch)
	return err
}

// drop ends a connection with a reason the client is told.
func (c *Conn) drop(reason string) {
	c.reason.CompareAndSwap(nil, &reason)
	c.Close()
}

// Close removes the connection from its room. Safe to call repeatedly.
func (c *Conn) Close() {
	if c.closed.Swap(true) {
		return
	}
	close(c.done)
	c.room.leave(c)
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Receive handles one frame from the client. It never blocks on other
// clients; failures go back to this client as error events.
func (c *Conn) Receive(frame []byte) {
	if c.closed.Load() {
		return
	}
	if err := c.room.handle(c, frame); err != nil {
		ref := ""
		if e, perr := ParseEnvelope(frame); perr == nil {
			ref = e.Ref
		}
		c.sendError(err, ref)
	}
}

func (c *Conn) send(e *Envelope) {
	b, err := json.Marshal(e)
	if err == nil {
		c.enqueue(b)
	}
}

func (c *Conn) sendError(err error, ref string) {
	re, ok := err.(*reqError) //nolint:errorlint // our own type, never wrapped
	if !ok {
		re = &reqError{code: CodeUnavailable, reason: "chat is unavailable; try again"}
	}
	c.send(problem(TypeError, re.code, re.reason, ref))
}

// identity returns the connection's claims, nil when read-only.
func (c *Conn) identity() *Claims {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claims
}
