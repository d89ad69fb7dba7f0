package chat

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/testredis"
)

// backplanes runs a test against the memory and the Redis backplane.
func backplanes(t *testing.T, fn func(t *testing.T, open func() Backplane, restart func())) {
	t.Run("memory", func(t *testing.T) {
		dir := t.TempDir()
		var bps []Backplane
		open := func() Backplane {
			m, err := NewMemory(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			bps = append(bps, m)
			return m
		}
		t.Cleanup(func() {
			for _, b := range bps {
				_ = b.Close()
			}
		})
		fn(t, open, nil)
	})
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		open := func() Backplane {
			r, err := NewRedis(context.Background(), srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		}
		fn(t, open, func() { srv.Restart(300 * time.Millisecond) })
	})
}

func post(text, id string) *Envelope {
	return &Envelope{V: Version, Type: TypeMessage, ID: id, Body: mustJSON(MessageBody{Text: text})}
}

func TestBackplaneNumbersKeepsAndDeduplicates(t *testing.T) {
	backplanes(t, func(t *testing.T, open func() Backplane, _ func()) {
		ctx := context.Background()
		b := open()
		for i := range 5 {
			seq, err := b.Append(ctx, "s", post(fmt.Sprint(i), fmt.Sprint("id", i)))
			if err != nil || seq != uint64(i+1) {
				t.Fatalf("append %d: seq %d, %v", i, seq, err)
			}
		}
		if seq, err := b.Append(ctx, "s", post("again", "id2")); err != nil || seq != 3 {
			t.Fatalf("a retried post got seq %d (%v), want its first, 3", seq, err)
		}
		got, err := b.Range(ctx, "s", 1, 2)
		if err != nil || len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
			t.Fatalf("range after 1: %v %v", got, err)
		}
		if got, _ := b.Range(ctx, "s", 5, 10); len(got) != 0 {
			t.Fatalf("range past the end: %d events", len(got))
		}
		if got, _ := b.Range(ctx, "other", 0, 10); len(got) != 0 {
			t.Fatal("streams are not separate")
		}
	})
}

// TestBackplaneOneOrderForEveryNode appends from many goroutines on two
// "nodes" and checks that their tails saw the same order.
func TestBackplaneOneOrderForEveryNode(t *testing.T) {
	backplanes(t, func(t *testing.T, open func() Backplane, _ func()) {
		nodes := []Backplane{open(), open()}
		if _, ok := nodes[0].(*Memory); ok {
			nodes[1] = nodes[0] // one process: the memory backplane is shared
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const n = 200
		seen := make([][]uint64, 2)
		var mu sync.Mutex
		var tails sync.WaitGroup
		for i, b := range nodes {
			tails.Add(1)
			go func() {
				defer tails.Done()
				_ = b.Tail(ctx, "s", 0, func(e *Envelope) {
					mu.Lock()
					seen[i] = append(seen[i], e.Seq)
					mu.Unlock()
				})
			}()
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n / 8 {
					if _, err := nodes[w%2].Append(ctx, "s", post("x", fmt.Sprint(w, "-", i))); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			done := len(seen[0]) == n && len(seen[1]) == n
			mu.Unlock()
			if done || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		tails.Wait()
		for i := range seen {
			if len(seen[i]) != n {
				t.Fatalf("node %d saw %d events, want %d", i, len(seen[i]), n)
			}
			for j, s := range seen[i] {
				if s != uint64(j+1) {
					t.Fatalf("node %d: event %d has seq %d", i, j, s)
				}
			}
		}
		if !slices.Equal(seen[0], seen[1]) {
			t.Fatal("the nodes saw different orders")
		}
	})
}

func TestBackplaneSurvivesRestart(t *testing.T) {
	backplanes(t, func(t *testing.T, open func() Backplane, restart func()) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := open()
		for i := range 3 {
			if _, err := b.Append(ctx, "s", post("before", fmt.Sprint("b", i))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var got []uint64
		tailing := make(chan struct{})
		go func() {
			defer close(tailing)
			_ = b.Tail(ctx, "s", 0, func(e *Envelope) {
				mu.Lock()
				got = append(got, e.Seq)
				mu.Unlock()
			})
		}()
		if restart != nil {
			restart() // Redis goes away and comes back under a live tail
		} else {
			_ = b.Close() // the memory backplane reopens from its file
			cancel()
			<-tailing
			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			b = open()
			mu.Lock()
			got = nil
			mu.Unlock()
			tailing = make(chan struct{})
			go func() {
				defer close(tailing)
				_ = b.Tail(ctx, "s", 0, func(e *Envelope) {
					mu.Lock()
					got = append(got, e.Seq)
					mu.Unlock()
				})
			}()
		}
		// Appends resume numbering where it left off; a retry of a post
		// from before the restart is still recognised.
		deadline := time.Now().Add(10 * time.Second)
		var seq uint64
		var err error
		for seq, err = b.Append(ctx, "s", post("after", "a0")); err != nil; seq, err = b.Append(ctx, "s", post("after", "a0")) {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if seq != 4 {
			t.Fatalf("first post after the restart got seq %d, want 4", seq)
		}
		if again, _ := b.Append(ctx, "s", post("before", "b1")); again != 2 {
			t.Fatalf("retry of a pre-restart post got seq %d, want 2", again)
		}
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= 4 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, []uint64{1, 2, 3, 4}) {
			t.Fatalf("tail across the restart saw %v, want [1 2 3 4]", got)
		}
	})
}
