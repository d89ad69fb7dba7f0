package sfu

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// vp8Payload returns a VP8 payload with a 15-bit picture id; keyframes carry
// a frame header with the given size.
func vp8Payload(key bool, pid uint16, w, h int, extra int) []byte {
	b := []byte{0x90, 0x80, 0x80 | byte(pid>>8), byte(pid)}
	if key {
		b = append(b, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(h), byte(h>>8))
	} else {
		b = append(b, 0x01, 0x00, 0x00)
	}
	return append(b, make([]byte, extra)...)
}

func marshal(t testing.TB, h rtp.Header, payload []byte) []byte {
	t.Helper()
	h.Version = 2
	b, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testSource records keyframe requests.
type testSource struct {
	mu       sync.Mutex
	requests map[*Layer]int
	closed   bool
}

func (s *testSource) RequestKeyframe(l *Layer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requests == nil {
		s.requests = map[*Layer]int{}
	}
	s.requests[l]++
}

func (s *testSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *testSource) count(l *Layer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[l]
}

// sent is one packet a viewer got.
type sent struct {
	h       rtp.Header
	payload []byte
}

// recorder is an RTPWriter that keeps copies of what it was given.
type recorder struct {
	mu   sync.Mutex
	pkts []sent
}

func (r *recorder) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hc := h.Clone()
	r.pkts = append(r.pkts, sent{h: hc, payload: append([]byte(nil), payload...)})
	return len(payload), nil
}

func (r *recorder) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.pkts...)
}

// nullWriter discards packets, for benchmarks.
type nullWriter struct{ n int }

func (w *nullWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.n++
	return len(payload), nil
}

var (
	vp8Codec  = Codec{MimeType: "video/VP8", ClockRate: 90000, PayloadType: 96}
	opusCodec = Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2, PayloadType: 111}
)

// switchingSimulcast is a simulcast stream and a viewer of it whose
// switches wait for the new layer's next keyframe (no keyframe cache).
func switchingSimulcast(t *testing.T, now int64) (*simulcast, *Subscriber, *recorder) {
	t.Helper()
	cfg := testConfig()
	cfg.KeyframeCache = 0
	s := newSimulcast(t, NewRegistry(cfg), now)
	sub, rec := subscribe(t, s.stream, now)
	return s, sub, rec
}

func testConfig() Config {
	c := DefaultConfig()
	c.ReconnectGrace = 2 * time.Second
	return c
}

// video is a synthetic simulcast publisher for one layer.
type video struct {
	l      *Layer
	ssrc   uint32
	seq    uint16
	ts     uint32
	pid    uint16
	w, h   int
	frames int
}

// frame writes one frame of n packets at time now.
func (v *video) frame(t testing.TB, key bool, n int, now int64) {
	t.Helper()
	for i := range n {
		var payload []byte
		if i == 0 {
			payload = vp8Payload(key, v.pid, v.w, v.h, 100)
		} else {
			payload = append([]byte{0x80, 0x80, 0x80 | byte(v.pid>>8), byte(v.pid)}, make([]byte, 100)...)
		}
		b := marshal(t, rtp.Header{PayloadType: 96, SequenceNumber: v.seq, Timestamp: v.ts, SSRC: v.ssrc, Marker: i == n-1}, payload)
		if err := v.l.Ingest(b, now); err != nil {
			t.Fatal(err)
		}
		v.seq++
	}
	v.ts += 3000
	v.pid = (v.pid + 1) & 0x7fff
	v.frames++
}
