package sfu

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/pion/rtp"
)

// fanout is one publisher layer with n started viewers, every one already
// forwarding (past its first keyframe).
type fanout struct {
	layer   *Layer
	buf     []byte
	seq     uint16
	ts      uint32
	writers []*nullWriter
}

func newFanout(tb testing.TB, n int) *fanout {
	tb.Helper()
	reg := NewRegistry(DefaultConfig())
	stream := reg.Stream("bench")
	pub := stream.StartPublication(HostID, &testSource{}, second)
	l, err := pub.AddLayer("", vp8Codec, ExtIDs{AbsCaptureTime: 3}, second)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fanout{layer: l}
	for range n {
		sub, err := stream.Subscribe("v")
		if err != nil {
			tb.Fatal(err)
		}
		w := &nullWriter{}
		f.writers = append(f.writers, w)
		if _, err := sub.DownTracks()[1].Bind(w, 1, []Codec{vp8Codec}, ExtIDs{TransportCC: 5, AbsCaptureTime: 3}); err != nil {
			tb.Fatal(err)
		}
		sub.Start(second)
	}
	key := marshal(tb, rtp.Header{PayloadType: 96, SequenceNumber: f.seq, Timestamp: f.ts, SSRC: 7, Marker: true}, vp8Payload(true, 1, 1280, 720, 1000))
	if err := l.Ingest(key, second); err != nil {
		tb.Fatal(err)
	}
	// A typical delta-frame packet: 1100-byte payload, the abs-capture-time
	// extension Chrome sends.
	h := rtp.Header{PayloadType: 96, SSRC: 7}
	_ = h.SetExtension(3, make([]byte, 8))
	f.buf = marshal(tb, h, vp8Payload(false, 2, 0, 0, 1100))
	for _, w := range f.writers {
		if w.n != 1 {
			tb.Fatalf("viewer did not start on the keyframe")
		}
	}
	return f
}

// next ingests the next packet of the stream.
func (f *fanout) next(now int64) {
	f.seq++
	if f.seq%4 == 0 {
		f.ts += 3000
	}
	binary.BigEndian.PutUint16(f.buf[2:], f.seq)
	binary.BigEndian.PutUint32(f.buf[4:], f.ts)
	_ = f.layer.Ingest(f.buf, now)
}

// BenchmarkForward measures the hot path: one packet in, n viewers out
// (header rewrite, transport-wide sequence number, send record; the writer
// itself is a no-op, so SRTP and the socket are not included).
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			f := newFanout(b, n)
			now := 2 * second
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				now += 100_000
				f.next(now)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/forwarded")
			if got := f.writers[n-1].n; got != b.N+1 {
				b.Fatalf("last viewer got %d packets, want %d", got, b.N+1)
			}
		})
	}
}

// TestForwardDoesNotAllocate guards the steady-state hot path: ingesting a
// packet and forwarding it to viewers allocates nothing.
func TestForwardDoesNotAllocate(t *testing.T) {
	f := newFanout(t, 10)
	now := 2 * second
	if allocs := testing.AllocsPerRun(1000, func() {
		now += 100_000
		f.next(now)
	}); allocs != 0 {
		t.Fatalf("forwarding one packet to 10 viewers allocates %.1f times; want 0", allocs)
	}
	if got := f.writers[9].n; got < 1000 {
		t.Fatalf("viewers got %d packets; the benchmark forwarded nothing", got)
	}
}
