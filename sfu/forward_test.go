package sfu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/pion/rtcp"
)

type simulcast struct {
	stream *Stream
	src    *testSource
	pub    *Publication
	layers []*video
}

func newSimulcast(t testing.TB, reg *Registry, now int64) *simulcast {
	t.Helper()
	s := &simulcast{stream: reg.Stream("demo"), src: &testSource{}}
	s.pub = s.stream.StartPublication(HostID, s.src, now)
	for i, rid := range []string{"l", "m", "h"} {
		l, err := s.pub.AddLayer(rid, vp8Codec, ExtIDs{}, now)
		if err != nil {
			t.Fatal(err)
		}
		s.layers = append(s.layers, &video{l: l, ssrc: uint32(1000 + i), seq: uint16(100 * (i + 1)), ts: uint32(5000 * (i + 1)), pid: uint16(10 * (i + 1)), w: 320 << i, h: 180 << i})
	}
	return s
}

// frameAll sends one frame on every layer.
func (s *simulcast) frameAll(t testing.TB, key bool, now int64) {
	for _, v := range s.layers {
		v.frame(t, key, 3, now)
	}
}

func subscribe(t testing.TB, r *Stream, now int64) (*Subscriber, *recorder) {
	t.Helper()
	sub, err := r.Subscribe("v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	_, video := sub.DownTracks()[0], sub.DownTracks()[1]
	if _, err := video.Bind(rec, 4242, []Codec{{MimeType: "video/VP8", ClockRate: 90000, PayloadType: 100}}, ExtIDs{}); err != nil {
		t.Fatal(err)
	}
	sub.Start(now)
	return sub, rec
}

// checkContinuous asserts one unbroken RTP stream: consecutive sequence
// numbers, non-decreasing timestamps, one SSRC and payload type, and
// continuous VP8 picture ids per frame.
func checkContinuous(t *testing.T, pkts []sent) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1].h, pkts[i].h
		if b.SequenceNumber != a.SequenceNumber+1 {
			t.Fatalf("packet %d: seq %d after %d", i, b.SequenceNumber, a.SequenceNumber)
		}
		if int32(b.Timestamp-a.Timestamp) < 0 {
			t.Fatalf("packet %d: timestamp went back %d → %d", i, a.Timestamp, b.Timestamp)
		}
		if b.SSRC != 4242 || b.PayloadType != 100 {
			t.Fatalf("packet %d: ssrc %d pt %d", i, b.SSRC, b.PayloadType)
		}
		pa := binary.BigEndian.Uint16(pkts[i-1].payload[2:]) & 0x7fff
		pb := binary.BigEndian.Uint16(pkts[i].payload[2:]) & 0x7fff
		if a.Timestamp != b.Timestamp && pb != (pa+1)&0x7fff {
			t.Fatalf("packet %d: picture id %d after %d", i, pb, pa)
		}
	}
}

func isKey(p sent) bool {
	return len(p.payload) > 4 && p.payload[0]&0x10 != 0 && p.payload[4]&0x01 == 0
}

func TestForwardStartsOnKeyframeAndSwitchesContinuously(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	s.frameAll(t, false, now) // packets before the viewer exists
	sub, rec := subscribe(t, s.stream, now)

	// Before any keyframe, nothing reaches the viewer, and a keyframe was
	// asked for on the layer it starts on.
	for range 3 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("viewer got %d packets before a keyframe", n)
	}
	target := sub.DownTracks()[1].fw.target
	if target == nil || s.src.count(target) != 1 {
		t.Fatalf("no keyframe request on the start layer")
	}

	// Keyframes arrive; the viewer starts on the highest layer (no bitrate
	// is known yet, so everything fits).
	now += 33 * millisecond
	s.frameAll(t, true, now)
	for range 5 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	pkts := rec.all()
	if len(pkts) != 18 || !isKey(pkts[0]) {
		t.Fatalf("got %d packets, first keyframe=%v; want 18 starting on a keyframe", len(pkts), len(pkts) > 0 && isKey(pkts[0]))
	}
	if w := vp8Width(pkts[0].payload); w != 1280 {
		t.Fatalf("started on %dpx wide layer, want 1280", w)
	}

	// Pin the low layer: the switch waits for its keyframe.
	sub.SetPreferences(Preferences{RID: "l"}, now)
	for range 2 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	if n := len(rec.all()); n != 24 {
		t.Fatalf("got %d packets while waiting to switch, want 24 (still the old layer)", n)
	}
	now += 33 * millisecond
	s.frameAll(t, true, now)
	for range 3 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	pkts = rec.all()
	if !isKey(pkts[24]) || vp8Width(pkts[24].payload) != 320 {
		t.Fatalf("switch did not land on the low layer's keyframe")
	}
	checkContinuous(t, pkts)
	if d := pkts[24].h.Timestamp - pkts[23].h.Timestamp; d < 1000 || d > 6000 {
		t.Fatalf("timestamp step across switch %d, want about one frame (3000)", d)
	}
}

func vp8Width(p []byte) int { return int(binary.LittleEndian.Uint16(p[10:]) & 0x3fff) }

func TestDownSwitchStartsFromARecentKeyframe(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	sub, rec := subscribe(t, s.stream, now)
	late, lateRec := subscribe(t, s.stream, now)
	s.frameAll(t, true, now) // both viewers start on h
	now += 33 * millisecond
	s.frameAll(t, false, now)
	low := s.layers[0].l
	asked := s.src.count(low)

	// 33 ms after l's keyframe (another viewer's switch asked for it): the
	// viewer moves down at once, from that keyframe, without asking again.
	sub.SetPreferences(Preferences{RID: "l"}, now)
	pkts := rec.all()
	if len(pkts) != 12 || !isKey(pkts[6]) || vp8Width(pkts[6].payload) != 320 {
		t.Fatalf("got %d packets; want h's 2 frames, then l's keyframe and the frame after it", len(pkts))
	}
	if n := s.src.count(low); n != asked {
		t.Fatalf("%d keyframe requests for l; the recent keyframe should have served", n-asked)
	}
	now += 33 * millisecond
	s.frameAll(t, false, now)
	checkContinuous(t, rec.all())

	// Past switchReplay, the keyframe is too old: the switch asks for one
	// and waits for it.
	now += switchReplay
	s.frameAll(t, false, now)
	before := len(lateRec.all())
	late.SetPreferences(Preferences{RID: "l"}, now)
	if got := len(lateRec.all()); got != before || s.src.count(low) != asked+1 {
		t.Fatalf("old keyframe: %d packets sent at the switch, %d requests; want none sent and 1 request", got-before, s.src.count(low)-asked)
	}
}

func TestNACKAnsweredAcrossSwitch(t *testing.T) {
	now := second
	s, sub, rec := switchingSimulcast(t, now)
	s.frameAll(t, true, now)
	now += 33 * millisecond
	s.frameAll(t, false, now)
	sub.SetPreferences(Preferences{RID: "m"}, now)
	now += 33 * millisecond
	s.frameAll(t, true, now)
	pkts := rec.all()
	if len(pkts) != 9 {
		t.Fatalf("got %d packets, want 9", len(pkts))
	}
	// Ask again for one packet from before the switch and one after.
	first, last := pkts[1].h.SequenceNumber, pkts[7].h.SequenceNumber
	vt := sub.DownTracks()[1]
	vt.OnNACK([]rtcp.NackPair{{PacketID: first}, {PacketID: last}}, now)
	got := rec.all()[9:]
	if len(got) != 2 {
		t.Fatalf("got %d retransmissions, want 2", len(got))
	}
	for i, want := range []sent{pkts[1], pkts[7]} {
		if got[i].h.SequenceNumber != want.h.SequenceNumber || got[i].h.Timestamp != want.h.Timestamp || !bytes.Equal(got[i].payload, want.payload) {
			t.Fatalf("retransmission %d differs from the original", i)
		}
	}
	// A sequence number never sent is not answered.
	vt.OnNACK([]rtcp.NackPair{{PacketID: last + 100}}, now)
	if n := len(rec.all()); n != 11 {
		t.Fatalf("answered a NACK for an unsent packet")
	}
}

func TestKeyframeRequestsCoalesce(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	for i := range 1000 {
		sub, err := s.stream.Subscribe("v")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.DownTracks()[1].Bind(&nullWriter{}, 1, []Codec{vp8Codec}, ExtIDs{}); err != nil {
			t.Fatal(err)
		}
		sub.Start(now + int64(i)*millisecond) // a thousand viewers over one second
	}
	total := 0
	for _, v := range s.layers {
		total += s.src.count(v.l)
	}
	if total > 3 {
		t.Fatalf("a thousand joins over 1s cost %d keyframe requests, want ≤ 3", total)
	}
}

func TestReconnectContinuesSameDownTrack(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	sub, rec := subscribe(t, s.stream, now)
	s.frameAll(t, true, now)
	now += 33 * millisecond
	s.frameAll(t, false, now)
	before := len(rec.all())

	s.pub.Lost(now)
	if st := s.stream.State(); st != StateReconnecting {
		t.Fatalf("state %v after loss, want reconnecting", st)
	}
	reg.Tick(now + second)
	if sub.Closed() {
		t.Fatal("viewer closed inside the grace period")
	}
	// The publisher returns with new SSRCs, sequence numbers and timestamps.
	now += 1500 * millisecond
	s2 := &simulcast{stream: s.stream, src: &testSource{}}
	s2.pub = s.stream.StartPublication(HostID, s2.src, now)
	for i, rid := range []string{"l", "m", "h"} {
		l, err := s2.pub.AddLayer(rid, vp8Codec, ExtIDs{}, now)
		if err != nil {
			t.Fatal(err)
		}
		s2.layers = append(s2.layers, &video{l: l, ssrc: uint32(7000 + i), seq: 60000, ts: 1 << 31, pid: 77, w: 320 << i, h: 180 << i})
	}
	if st := s.stream.State(); st != StateLive {
		t.Fatalf("state %v after reconnect, want live", st)
	}
	s2.frameAll(t, true, now)
	now += 33 * millisecond
	s2.frameAll(t, false, now)
	pkts := rec.all()
	if len(pkts) <= before {
		t.Fatal("no packets after reconnect")
	}
	checkContinuous(t, pkts)
	gap := pkts[before].h.Timestamp - pkts[before-1].h.Timestamp
	if gap < 90000*14/10 || gap > 90000*16/10 {
		t.Fatalf("timestamp gap across reconnect %d, want ≈1.5 s of 90 kHz", gap)
	}
}

func TestGraceExpiryEndsViewers(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	sub, _ := subscribe(t, s.stream, now)
	var reason error
	sub.OnClose(func(r error) { reason = r })
	s.pub.Lost(now)
	reg.Tick(now + 1900*millisecond)
	if sub.Closed() {
		t.Fatal("closed before the grace period ended")
	}
	reg.Tick(now + 2100*millisecond)
	if !sub.Closed() || !errors.Is(reason, ErrNotLive) {
		t.Fatalf("closed=%v reason=%v after grace; want closed with ErrNotLive", sub.Closed(), reason)
	}
	if st := s.stream.State(); st != StateOffline {
		t.Fatalf("state %v, want offline", st)
	}
	if _, err := s.stream.Subscribe("late"); !errors.Is(err, ErrNotLive) {
		t.Fatalf("subscribe to offline stream: %v", err)
	}
}

func TestTakeoverClosesOldPublisher(t *testing.T) {
	reg := NewRegistry(testConfig())
	s := newSimulcast(t, reg, second)
	src2 := &testSource{}
	s.stream.StartPublication(HostID, src2, 2*second)
	if !s.src.closed || !s.pub.Ended() {
		t.Fatal("old publisher not closed on takeover")
	}
	if err := s.layers[0].l.Ingest(make([]byte, 20), 2*second); !errors.Is(err, ErrPublicationEnded) {
		t.Fatalf("old layer still ingests: %v", err)
	}
	// The old connection's late "lost" must not disturb the new one.
	s.pub.Lost(3 * second)
	if st := s.stream.State(); st != StateLive {
		t.Fatalf("state %v, want live", st)
	}
}

func TestMalformedPacketsCounted(t *testing.T) {
	reg := NewRegistry(testConfig())
	s := newSimulcast(t, reg, second)
	l := s.layers[0].l
	for _, b := range [][]byte{
		nil, {0x80}, make([]byte, 11),
		{0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},             // version 1
		{0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},             // 15 CSRCs, no stream
		{0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde}, // truncated extension
		{0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 5},          // padding longer than packet
		{0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0},          // zero padding count
		make([]byte, MaxPacketSize+1),
	} {
		if err := l.Ingest(b, second); err == nil {
			t.Fatalf("accepted malformed packet %x", b)
		}
	}
	if n := l.Info(second).Malformed; n != 9 || reg.MalformedRTP() != 9 {
		t.Fatalf("malformed count %d (node %d), want 9", n, reg.MalformedRTP())
	}
}

func TestLayerWithoutKeyframeIsAskedForOne(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	s.frameAll(t, false, now) // the first keyframes were lost
	reg.Tick(now + 100*millisecond)
	for _, v := range s.layers {
		if s.src.count(v.l) != 1 {
			t.Fatalf("layer %s: %d keyframe requests, want 1", v.l.rid, s.src.count(v.l))
		}
	}
	s.frameAll(t, true, now+200*millisecond)
	reg.Tick(now + 2*second)
	for _, v := range s.layers {
		if s.src.count(v.l) != 1 {
			t.Fatalf("layer %s asked again after its keyframe", v.l.rid)
		}
		if in := v.l.Info(now); in.Height != v.h {
			t.Fatalf("layer %s height %d, want %d", v.l.rid, in.Height, v.h)
		}
	}
}

func TestNewViewerStartsFromCachedKeyframe(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	s.frameAll(t, true, now)
	for range 3 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	// 99 ms after the keyframe, within the 250 ms cache: no request upstream,
	// the viewer gets the keyframe and the three frames after it at once.
	sub, rec := subscribe(t, s.stream, now)
	top := s.layers[2]
	if n := s.src.count(top.l); n != 0 {
		t.Fatalf("%d keyframe requests; the cached keyframe should have served", n)
	}
	pkts := rec.all()
	if len(pkts) != 12 || !isKey(pkts[0]) {
		t.Fatalf("got %d packets (first a keyframe: %v), want the 4 cached frames (12 packets)", len(pkts), len(pkts) > 0 && isKey(pkts[0]))
	}
	now += 33 * millisecond
	s.frameAll(t, false, now)
	checkContinuous(t, rec.all())
	if got := top.l.Info(now).CachedStarts; got != 1 {
		t.Fatalf("cached starts %d, want 1", got)
	}

	// Past the cache age, a new viewer asks for a keyframe as before.
	now += 300 * millisecond
	sub2, err := s.stream.Subscribe("late")
	if err != nil {
		t.Fatal(err)
	}
	rec2 := &recorder{}
	if _, err := sub2.DownTracks()[1].Bind(rec2, 1, []Codec{vp8Codec}, ExtIDs{}); err != nil {
		t.Fatal(err)
	}
	sub2.Start(now)
	if n := s.src.count(top.l); n != 1 || len(rec2.all()) != 0 {
		t.Fatalf("stale cache: %d requests, %d packets; want 1 request and nothing sent yet", n, len(rec2.all()))
	}
	_ = sub
}

func TestPaddingKeepsTheSequenceMapping(t *testing.T) {
	l := &Layer{}
	f := newForwarder(90000)
	f.target = l
	pkt := func(seq uint16, key, marker bool) *Packet {
		return &Packet{SequenceNumber: seq, Timestamp: 3000, Keyframe: key, Marker: marker}
	}
	first := f.forward(l, pkt(10, true, false))
	if first.reason != forwarded {
		t.Fatalf("keyframe not forwarded: %v", first.reason)
	}
	o := first.seq
	if _, _, ok := f.pad(2); ok {
		t.Fatal("padding allowed in the middle of a frame")
	}
	if r := f.forward(l, pkt(12, false, true)); r.seq != o+2 { // 11 is late
		t.Fatalf("frame end went out as %d, want %d", r.seq, o+2)
	}
	padFirst, padTS, ok := f.pad(2)
	if !ok || padFirst != o+3 || padTS != first.ts {
		t.Fatalf("pad: first %d ts %d ok %v; want %d, %d, true", padFirst, padTS, ok, o+3, first.ts)
	}
	if r := f.forward(l, pkt(11, false, false)); r.reason != forwarded || r.seq != o+1 {
		t.Fatalf("late packet from before the padding: %v as %d, want forwarded as %d", r.reason, r.seq, o+1)
	}
	if r := f.forward(l, pkt(13, false, true)); r.seq != o+5 {
		t.Fatalf("packet after the padding went out as %d, want %d", r.seq, o+5)
	}
	for _, c := range []struct {
		out     uint16
		src     uint16
		padding bool
	}{{o + 1, 11, false}, {o + 3, 0, true}, {o + 4, 0, true}, {o + 5, 13, false}} {
		e, src, padding, ok := f.lookup(c.out)
		if !ok || padding != c.padding || !padding && src != c.src {
			t.Fatalf("lookup(%d) = %d, padding %v, ok %v; want %d, padding %v", c.out, src, padding, ok, c.src, c.padding)
		}
		if padding && e.padTS != first.ts {
			t.Fatalf("padding %d: timestamp %d, want %d", c.out, e.padTS, first.ts)
		}
	}
	if _, _, _, ok := f.lookup(o + 6); ok {
		t.Fatal("lookup answered a sequence number not sent yet")
	}
}

func TestProbePaddingGoesBetweenFrames(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	s := newSimulcast(t, reg, now)
	sub, err := s.stream.Subscribe("v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	video := sub.DownTracks()[1]
	if _, err := video.Bind(rec, 4242, []Codec{{MimeType: "video/VP8", ClockRate: 90000, PayloadType: 100}}, ExtIDs{TransportCC: 3}); err != nil {
		t.Fatal(err)
	}
	sub.Start(now)
	s.frameAll(t, true, now)
	sub.mu.Lock()
	started := sub.bwe.startProbe(1_500_000, 400_000, now)
	sub.mu.Unlock()
	if !started {
		t.Fatal("probe did not start")
	}
	for range 12 {
		now += 33 * millisecond
		s.frameAll(t, false, now)
	}
	pkts := rec.all()
	var padding, paddingBytes int
	for i, p := range pkts {
		if i > 0 && p.h.SequenceNumber != pkts[i-1].h.SequenceNumber+1 {
			t.Fatalf("packet %d: seq %d after %d", i, p.h.SequenceNumber, pkts[i-1].h.SequenceNumber)
		}
		if len(p.payload) != 0 {
			continue
		}
		padding++
		paddingBytes += int(p.h.PaddingSize)
		if !p.h.Padding || p.h.PaddingSize == 0 || p.h.Marker {
			t.Fatalf("packet %d: empty but not padding: %+v", i, p.h)
		}
		if prev := pkts[i-1]; !prev.h.Marker && len(prev.payload) != 0 || prev.h.Timestamp != p.h.Timestamp {
			t.Fatalf("padding %d not right after a frame's end with its timestamp", i)
		}
		if len(p.h.GetExtension(3)) != 2 {
			t.Fatalf("padding %d carries no transport-wide sequence number", i)
		}
	}
	// 400 kbit/s for the probe's 300 ms is 15 kB, sent in bursts.
	if padding == 0 || paddingBytes > 15_000 || paddingBytes < 10_000 {
		t.Fatalf("%d padding packets of %d bytes; want 10-15 kB", padding, paddingBytes)
	}
	// A lost padding packet is answered with padding: the receiver waits
	// on the gap otherwise.
	var lost sent
	for _, p := range pkts {
		if len(p.payload) == 0 {
			lost = p
			break
		}
	}
	video.OnNACK([]rtcp.NackPair{{PacketID: lost.h.SequenceNumber}}, now)
	got := rec.all()[len(pkts):]
	if len(got) != 1 || len(got[0].payload) != 0 || got[0].h.SequenceNumber != lost.h.SequenceNumber || got[0].h.Timestamp != lost.h.Timestamp {
		t.Fatalf("NACK of padding %d answered with %+v", lost.h.SequenceNumber, got)
	}
}
