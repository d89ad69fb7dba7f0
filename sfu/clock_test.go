package sfu

import "testing"

// The clock a viewer gets maps the timestamps it receives to how long the
// stream has been live when that frame arrived, across a layer switch.
func TestSubscriberClockMapsRTPToStreamTime(t *testing.T) {
	reg := NewRegistry(testConfig())
	start := 10 * second
	s := newSimulcast(t, reg, start)
	if st, ok := s.stream.StreamTime(start + 1500*millisecond); !ok || st != 1500 {
		t.Fatalf("stream time 1.5 s after going live: %d %v", st, ok)
	}
	sub, rec := subscribe(t, s.stream, start)
	if _, _, _, ok := sub.Clock(); ok {
		t.Fatal("a clock before any packet")
	}
	now := start
	for i := range 30 {
		now = start + int64(i)*second/30
		s.frameAll(t, i == 0, now)
	}
	rtpTS, st, rate, ok := sub.Clock()
	pkts := rec.all()
	last := pkts[len(pkts)-1].h.Timestamp
	if !ok || rate != 90000 || rtpTS != last || st != (now-start)/millisecond {
		t.Fatalf("clock %d at %d ms (rate %d, ok %v); want %d at %d ms", rtpTS, st, rate, ok, last, (now-start)/millisecond)
	}
	// Frame i arrived at i/30 s: its timestamp maps back to that moment.
	first := pkts[0].h.Timestamp
	if got := st + int64(int32(first-rtpTS))*1000/int64(rate); got < -2 || got > 2 {
		t.Fatalf("the first frame maps to %d ms, want 0", got)
	}
	reg.Stream("demo").StartPublication(HostID, &testSource{}, now) // a takeover keeps the clock
	if st2, _ := s.stream.StreamTime(now); st2 != (now-start)/millisecond {
		t.Fatalf("a takeover restarted the stream clock: %d", st2)
	}
}
