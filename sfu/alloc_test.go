package sfu

import (
	"testing"
)

// allocHarness is a simulcast stream with measured layer bitrates and one
// started viewer whose estimate a test sets directly.
type allocHarness struct {
	s   *simulcast
	sub *Subscriber
	dt  *DownTrack
	rec *recorder
}

func newAllocHarness(t *testing.T, now int64) *allocHarness {
	t.Helper()
	cfg := testConfig()
	cfg.KeyframeCache = 0 // the viewer has not started on any layer
	reg := NewRegistry(cfg)
	s := newSimulcast(t, reg, now)
	s.frameAll(t, true, now) // sizes known, layers active
	for i, br := range []uint64{150_000, 500_000, 1_200_000} {
		s.layers[i].l.stats.bitrate.Store(br)
	}
	sub, rec := subscribe(t, s.stream, now)
	return &allocHarness{s: s, sub: sub, dt: sub.DownTracks()[1], rec: rec}
}

func (h *allocHarness) target(est float64, now int64) string {
	h.sub.mu.Lock()
	defer h.sub.mu.Unlock()
	h.sub.bwe.est = est
	h.sub.allocateLocked(now)
	if h.dt.fw.target == nil {
		return ""
	}
	return h.dt.fw.target.rid
}

func TestAllocationFollowsBudget(t *testing.T) {
	now := second
	h := newAllocHarness(t, now)
	for _, c := range []struct {
		est  float64
		want string
	}{{2_000_000, "h"}, {700_000, "m"}, {200_000, "l"}, {50_000, "l"}, {1_300_000, "m"}, {1_500_000, "h"}} {
		if got := h.target(c.est, now); got != c.want {
			t.Errorf("estimate %.0f: layer %q, want %q", c.est, got, c.want)
		}
	}
}

func TestAllocationHonoursMaxHeightAndPins(t *testing.T) {
	now := second
	h := newAllocHarness(t, now)
	h.sub.SetPreferences(Preferences{MaxHeight: 360}, now)
	if got := h.target(10_000_000, now); got != "m" {
		t.Errorf("max height 360: layer %q, want m (640x360)", got)
	}
	h.sub.SetPreferences(Preferences{MaxHeight: 100}, now)
	if got := h.target(10_000_000, now); got != "l" {
		t.Errorf("max height below every layer: %q, want the lowest", got)
	}
	h.sub.SetPreferences(Preferences{RID: "l"}, now)
	if got := h.target(10_000_000, now); got != "l" {
		t.Errorf("pinned l: %q", got)
	}
	h.sub.SetPreferences(Preferences{RID: "h"}, now)
	if got := h.target(100_000, now); got != "h" {
		t.Errorf("pinned h on a tiny budget: %q (a pin is the viewer's choice)", got)
	}
}

func TestAllocationSkipsPausedLayers(t *testing.T) {
	now := second
	h := newAllocHarness(t, now)
	later := now + 3*second
	for _, v := range h.s.layers[:2] { // the publisher stopped sending h
		v.frame(t, false, 1, later)
	}
	if got := h.target(10_000_000, later); got != "m" {
		t.Fatalf("top layer paused: %q, want m", got)
	}
}

func TestFailedUpSwitchBacksOff(t *testing.T) {
	now := second
	h := newAllocHarness(t, now)
	h.target(700_000, now)
	now += 33 * millisecond
	h.s.frameAll(t, true, now) // the viewer is now on m
	if h.dt.fw.cur == nil || h.dt.fw.cur.rid != "m" {
		t.Fatal("viewer not on m")
	}
	if got := h.target(2_000_000, now); got != "h" {
		t.Fatalf("stream to grow: %q, want h", got)
	}
	// Congestion a second after going up: back down, and h is held back.
	now += second
	h.sub.bwe.congestedAt = now
	if got := h.target(700_000, now); got != "m" {
		t.Fatalf("after congestion: %q, want m", got)
	}
	if got := h.target(2_000_000, now+second); got != "m" {
		t.Fatalf("1 s after a failed up-switch: %q, want m (backing off)", got)
	}
	if got := h.target(2_000_000, now+backoffMin+millisecond); got != "h" {
		t.Fatalf("after the backoff: %q, want h", got)
	}
}

func TestSwitchKeepsTimestampsOnThePublishersClock(t *testing.T) {
	now := second
	s, sub, rec := switchingSimulcast(t, now)
	// Every layer's sender report says: frame 0 was captured at NTP T.
	const ntpT = uint64(0xe0000000) << 32
	for _, v := range s.layers {
		v.l.IngestSenderReport(ntpT, v.ts, now)
	}
	s.frameAll(t, true, now)
	sub.SetPreferences(Preferences{RID: "l"}, now)
	now += 41 * millisecond // arrival jitter: not 33 ms
	s.frameAll(t, true, now)
	pkts := rec.all()
	if len(pkts) != 6 {
		t.Fatalf("got %d packets, want 6", len(pkts))
	}
	// One frame later on the capture clock is exactly 3000 ticks, whatever
	// the arrival times say.
	if d := pkts[3].h.Timestamp - pkts[2].h.Timestamp; d != 3000 {
		t.Fatalf("timestamp step across the switch %d, want 3000 from the sender reports", d)
	}
	// The viewer's sender report, 41 ms after the publisher's, maps the same
	// capture clock onto the output timeline: the low layer's frame 0 was at
	// NTP T, so at T+41 ms the output RTP time is one frame (3000) back from
	// the switch packet plus 41 ms of 90 kHz.
	sr, ok := sub.DownTracks()[1].SenderReport(now, 0)
	if !ok {
		t.Fatal("no sender report")
	}
	wantNTP := ntpAdd(ntpT, 41*millisecond)
	wantRTP := pkts[3].h.Timestamp - 3000 + 41*90
	if sr.NTPTime != wantNTP || sr.RTPTime != wantRTP {
		t.Fatalf("sender report NTP %x RTP %d, want %x %d", sr.NTPTime, sr.RTPTime, wantNTP, wantRTP)
	}
}
