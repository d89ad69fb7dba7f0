package chat

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// batchRecorder is a transport that records what it was asked to write.
type batchRecorder struct {
	mu      sync.Mutex
	batches bool
	singles [][]byte
	groups  [][][]byte
}

func (b *batchRecorder) Write(f []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.singles = append(b.singles, f)
	return nil
}
func (b *batchRecorder) Close(string) error { return nil }
func (b *batchRecorder) Batches() bool      { return b.batches }
func (b *batchRecorder) WriteBatch(fs [][]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.groups = append(b.groups, append([][]byte(nil), fs...))
	return nil
}

// What is queued when the writer gets to it goes out as one batch to a
// client that takes batches (at most maxBatch), in order; a client that
// does not gets one message per event.
func TestQueuedEventsGoOutAsOneBatch(t *testing.T) {
	for _, batches := range []bool{true, false} {
		rec := &batchRecorder{batches: batches}
		c := &Conn{t: rec, queue: make(chan []byte, 200), done: make(chan struct{})}
		for i := range 100 {
			c.queue <- fmt.Appendf(nil, `{"seq":%d}`, i)
		}
		stopped := make(chan struct{})
		go func() { defer close(stopped); c.writeLoop() }()
		deadline := time.Now().Add(5 * time.Second)
		for {
			rec.mu.Lock()
			n := len(rec.singles)
			for _, g := range rec.groups {
				n += len(g)
			}
			rec.mu.Unlock()
			if n == 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("batches %v: %d of 100 written", batches, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		close(c.done) // as Close does, without a room
		<-stopped
		rec.mu.Lock()
		if batches {
			if len(rec.groups) != 2 || len(rec.groups[0]) != maxBatch || len(rec.groups[1]) != 100-maxBatch || len(rec.singles) != 0 {
				t.Fatalf("100 queued events went out as %d batches and %d singles", len(rec.groups), len(rec.singles))
			}
			for i, f := range append(rec.groups[0], rec.groups[1]...) {
				if string(f) != fmt.Sprintf(`{"seq":%d}`, i) {
					t.Fatalf("event %d is %s", i, f)
				}
			}
		} else if len(rec.groups) != 0 || len(rec.singles) != 100 {
			t.Fatalf("a client without batches got %d batches", len(rec.groups))
		}
		rec.mu.Unlock()
	}
}

// Over a real WebSocket, a client that asked for batches and one that did
// not both get every message of a burst, in order.
func TestBatchedAndSingleClientsGetTheSameEvents(t *testing.T) {
	e := memEnv(t, bigBurst())
	batched := e.dial("batch=1&token=" + e.token("u1", "Ann", RoleViewer))
	single := e.dial("token=" + e.token("u2", "Bo", RoleViewer))
	poster := e.dial("token=" + e.token("u3", "Cy", RoleViewer))
	const posts = 40
	for i := range posts {
		poster.send(TypeMessage, MessageBody{Text: fmt.Sprintf("m%d", i)})
	}
	for _, c := range []*client{batched, single} {
		c.waitFor("the last post", func(ev Envelope) bool { return ev.Type == TypeMessage && text(ev) == fmt.Sprintf("m%d", posts-1) })
		var got []string
		for _, ev := range c.all(TypeMessage) {
			got = append(got, text(ev))
		}
		for i := range posts {
			if i >= len(got) || got[i] != fmt.Sprintf("m%d", i) {
				t.Fatalf("messages out of order or missing: %v", got)
			}
		}
	}
	if single.batches.Load() != 0 {
		t.Fatal("a client that did not ask for batches got one")
	}
	t.Logf("the batched client got %d batches", batched.batches.Load())
}
