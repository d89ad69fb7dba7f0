package chat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// BenchmarkDeliver measures one event's fan-out to N connections on a
// node: encoded once, the same bytes queued to each. Allocations per event
// do not grow with N.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprint("clients=", n), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.SendQueue = 1 << 16
			m, err := NewMemory("", nil)
			if err != nil {
				b.Fatal(err)
			}
			signer, _ := NewSigner(testSecret)
			hub, err := NewHub(cfg, m, signer, &streams{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			r, err := hub.Room(context.Background(), "demo")
			if err != nil {
				b.Fatal(err)
			}
			conns := make([]*Conn, n)
			for i := range conns {
				// Joined but with no writer: the queue is drained below.
				conns[i] = &Conn{room: r, t: discard{}, queue: make(chan []byte, cfg.SendQueue), done: make(chan struct{})}
				r.join(context.Background(), conns[i], false, 0)
			}
			st := int64(1000)
			e := &Envelope{V: Version, Type: TypeMessage, ST: &st, From: &User{ID: "u1", Name: "Ann", Role: RoleViewer},
				Body: mustJSON(MessageBody{Text: "a message of a typical length, about sixty characters"})}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e.Seq = uint64(i + 1)
				r.deliver(e)
				if i%1000 == 999 {
					b.StopTimer()
					for _, c := range conns {
						for len(c.queue) > 0 {
							<-c.queue
						}
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}
