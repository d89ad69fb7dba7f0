package sfu

import (
	"math/rand/v2"
	"testing"

	"github.com/pion/rtcp"
)

// feedback builds a TWCC feedback for seqs [base, base+n): arrivals[i] is
// packet i's arrival in µs on the receiver's clock, or -1 if it was lost.
func feedback(count uint8, base uint16, arrivals []int64) *rtcp.TransportLayerCC {
	fb := &rtcp.TransportLayerCC{BaseSequenceNumber: base, PacketStatusCount: uint16(len(arrivals)), FbPktCount: count}
	prev := int64(-1)
	for _, a := range arrivals {
		sym := rtcp.TypeTCCPacketNotReceived
		if a >= 0 {
			if prev < 0 {
				fb.ReferenceTime = uint32(a / 64000)
				prev = int64(fb.ReferenceTime) * 64000
			}
			sym = rtcp.TypeTCCPacketReceivedLargeDelta
			fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: sym, Delta: a - prev})
			prev = a
		}
		fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{PacketStatusSymbol: sym, RunLength: 1})
	}
	return fb
}

// link simulates sending at rate bits/s in 1200-byte packets, with a given
// loss pattern and extra queueing delay per packet, feeding feedback every
// 100 ms for the given duration.
type link struct {
	e     *estimator
	now   int64
	seq   uint16
	count uint8
	queue int64 // µs of queueing delay
	// capacity, when set, is a bottleneck in bits/s: packets leave it no
	// faster; lossRate drops that share of packets at random.
	capacity float64
	lastOut  int64
	lossRate float64
	rng      *rand.Rand
}

// receiverOffset is the receiver clock's arbitrary distance from ours, in µs.
const receiverOffset = 123_456_789

func (l *link) run(seconds float64, rate float64, lossEvery int, queueGrowthUS int64) {
	const size = 1200
	gap := int64(float64(size*8) / rate * float64(second))
	steps := int(seconds * 10)
	for range steps {
		n := int(100 * millisecond / gap)
		base := l.seq
		arrivals := make([]int64, n)
		for i := range n {
			at := l.now + int64(i)*gap
			l.e.sent(l.seq, size, at, false)
			l.seq++
			l.queue += queueGrowthUS
			arrivals[i] = at/1000 + 5000 + l.queue + receiverOffset
			if l.capacity > 0 {
				arrivals[i] = max(arrivals[i], l.lastOut+int64(size*8*1e6/l.capacity))
				l.lastOut = arrivals[i]
			}
			if lossEvery != 0 && (i+1)%lossEvery == 0 || l.lossRate > 0 && l.rng.Float64() < l.lossRate {
				arrivals[i] = -1
			}
		}
		l.now += 100 * millisecond
		l.e.onTWCC(feedback(l.count, base, arrivals), l.now)
		l.count++
	}
}

func newTestEstimator() *estimator {
	e := newEstimator(DefaultConfig())
	return &e
}

func TestEstimatorKeepsInitialWhileLittleIsSent(t *testing.T) {
	e := newTestEstimator()
	(&link{e: e, now: second}).run(3, 40_000, 0, 0) // audio only while video waits for a keyframe
	if got := e.estimate(); got < DefaultConfig().InitialBitrate {
		t.Fatalf("estimate fell to %d with no loss and no queue; want ≥ the initial %d", got, DefaultConfig().InitialBitrate)
	}
}

func TestEstimatorDropsOnLoss(t *testing.T) {
	e := newTestEstimator()
	l := &link{e: e, now: second}
	l.run(2, 1_200_000, 0, 0)
	l.run(2, 1_200_000, 3, 0) // a third lost
	if got := e.estimate(); got > 1_200_000*85/100 {
		t.Fatalf("estimate %d after 33%% loss at 1.2 Mbit/s; want ≤ 85%% of the delivered rate", got)
	}
}

func TestEstimatorDropsOnGrowingQueue(t *testing.T) {
	e := newTestEstimator()
	l := &link{e: e, now: second}
	l.run(2, 1_200_000, 0, 0)
	l.run(2, 1_200_000, 0, 2000) // every packet 2 ms later than the last: a filling queue
	if got := e.estimate(); got >= 1_200_000 {
		t.Fatalf("estimate %d with a growing queue; want below the sending rate", got)
	}
}

func TestEstimatorGrowsWhenCalmButNotWithoutBound(t *testing.T) {
	e := newTestEstimator()
	e.est = 600_000
	l := &link{e: e, now: second}
	l.run(5, 500_000, 0, 0)
	got := e.estimate()
	if got <= 600_000 {
		t.Fatalf("estimate %d did not grow over 5 calm seconds", got)
	}
	if ceiling := uint64(500_000*probeCeilingFactor + probeCeilingExtra); got > ceiling {
		t.Fatalf("estimate %d grew past %d, a step above the delivered 500 kbit/s", got, ceiling)
	}
}

func TestEstimatorIgnoresDuplicateFeedback(t *testing.T) {
	e := newTestEstimator()
	e.sent(1, 1200, second, false)
	e.sent(2, 1200, second, false)
	fb := feedback(7, 1, []int64{-1})
	e.onTWCC(fb, second)
	e.onTWCC(fb, second) // the same compound packet read from a second sender
	e.onTWCC(feedback(8, 2, []int64{receiverOffset}), second+100*millisecond)
	if e.winLost != 1 {
		t.Fatalf("%d lost after one loss reported twice, want 1", e.winLost)
	}
}

func TestEstimatorLateIsNotLost(t *testing.T) {
	e := newTestEstimator()
	for s := uint16(1); s <= 4; s++ {
		e.sent(s, 1200, second, false)
	}
	// Packet 2 arrives after the feedback that covered it was sent: the
	// receiver reports it missing, then received with the next feedback.
	e.onTWCC(feedback(1, 1, []int64{receiverOffset, -1, receiverOffset + 2000}), second+50*millisecond)
	e.onTWCC(feedback(2, 2, []int64{receiverOffset + 5000, receiverOffset + 2000, receiverOffset + 7000}), second+150*millisecond)
	if e.winLost != 0 || e.winRecv != 4 {
		t.Fatalf("lost %d received %d, want 0 and 4", e.winLost, e.winRecv)
	}
	// Later still: counted lost after the second feedback, then taken back.
	e2 := newTestEstimator()
	for s := uint16(1); s <= 4; s++ {
		e2.sent(s, 1200, second, false)
	}
	e2.onTWCC(feedback(1, 1, []int64{receiverOffset, -1}), second+50*millisecond)
	e2.onTWCC(feedback(2, 3, []int64{receiverOffset + 3000}), second+150*millisecond)
	if e2.winLost != 1 {
		t.Fatalf("still missing after the next feedback: lost %d, want 1", e2.winLost)
	}
	e2.onTWCC(feedback(3, 2, []int64{receiverOffset + 9000, -1, receiverOffset + 4000}), second+250*millisecond)
	if e2.winLost != 0 {
		t.Fatalf("arrived at last: lost %d, want 0", e2.winLost)
	}
}

func TestEstimatorIgnoresLostRetransmissions(t *testing.T) {
	e := newTestEstimator()
	e.sent(1, 1200, second, true)
	e.sent(2, 1200, second, false)
	e.onTWCC(feedback(1, 1, []int64{-1, receiverOffset}), second+50*millisecond)
	e.onTWCC(feedback(2, 3, []int64{}), second+150*millisecond)
	if e.winLost != 0 {
		t.Fatalf("a retransmission the receiver dropped as a duplicate counted as lost")
	}
}

func TestEstimatorRidesOutRandomLoss(t *testing.T) {
	e := newTestEstimator()
	l := &link{e: e, now: second, lossRate: 0.05, rng: rand.New(rand.NewPCG(1, 2))}
	l.run(30, 1_200_000, 0, 0)
	if e.lastLossDecrease > 2*second {
		// The first second has no floor yet to compare with.
		t.Fatalf("5%% random loss taken for congestion at %.1f s", float64(e.lastLossDecrease)/float64(second))
	}
	if got := e.estimate(); got < 1_200_000 {
		t.Fatalf("estimate %d under 5%% random loss at 1.2 Mbit/s; want ≥ what is delivered", got)
	}
}

func TestProbeRaisesEstimateOnlyWhereThePathCarriesIt(t *testing.T) {
	for _, c := range []struct {
		name     string
		capacity float64
		ok       bool
	}{{"open", 0, true}, {"bottleneck", 1_000_000, false}} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEstimator()
			l := &link{e: e, now: second, capacity: c.capacity}
			l.run(3, 800_000, 0, 0)
			e.est = 1_000_000
			if !e.startProbe(1_250_000, 450_000, l.now) {
				t.Fatal("probe did not start")
			}
			if owed, ok := e.probing(l.now, 100*millisecond); !ok || owed <= 0 {
				t.Fatalf("probing: owed %d, %v", owed, ok)
			}
			l.run(0.3, 1_250_000, 0, 0) // the probe: media and padding
			l.run(0.6, 800_000, 0, 0)   // and its feedback
			if e.probe.start != 0 {
				t.Fatal("probe not judged")
			}
			switch got := e.estimate(); {
			case c.ok && got < 1_250_000:
				t.Fatalf("estimate %d after a probe the path carried; want ≥ 1250000", got)
			case !c.ok && got > 1_100_000:
				t.Fatalf("estimate %d after a probe into a 1 Mbit/s bottleneck; want ≤ 1100000", got)
			case !c.ok && e.probe.nextAt <= l.now:
				t.Fatal("a failed probe is retried at once")
			}
		})
	}
}

func TestEstimatorFallbacks(t *testing.T) {
	e := newTestEstimator()
	e.onREMB(300_000, second)
	if got := e.estimate(); got != 300_000 {
		t.Fatalf("REMB-only viewer: estimate %d, want 300000", got)
	}
	(&link{e: e, now: second}).run(1, 1_000_000, 0, 0)
	before := e.estimate()
	e.onREMB(150_000, 2*second)
	if e.estimate() != before {
		t.Fatal("REMB overrode fresh transport-wide feedback")
	}
	e2 := newTestEstimator()
	e2.onLoss(128, 1_000_000, second) // half lost, by receiver report
	if got := e2.estimate(); got > 850_000 {
		t.Fatalf("receiver-report loss: estimate %d, want ≤ 850000", got)
	}
}

// fixedEstimator is an Estimator that answers a set figure and counts
// what it is given.
type fixedEstimator struct {
	bps            uint64
	sent, feedback int
	closed         bool
}

func (f *fixedEstimator) Sent(uint16, int)                { f.sent++ }
func (f *fixedEstimator) Feedback(*rtcp.TransportLayerCC) { f.feedback++ }
func (f *fixedEstimator) Estimate() uint64                { return f.bps }
func (f *fixedEstimator) Close()                          { f.closed = true }

// An estimator from Config.NewEstimator takes the core's place: it is told
// every packet and feedback, its figure is the viewer's estimate, the core
// does not probe for it, and it is closed with the viewer.
func TestConfiguredEstimatorStandsIn(t *testing.T) {
	fe := &fixedEstimator{bps: 321_000}
	cfg := DefaultConfig()
	cfg.NewEstimator = func() Estimator { return fe }
	reg := NewRegistry(cfg)
	reg.Stream("r").StartPublication(HostID, &testSource{}, second)
	sub, err := reg.Stream("r").Subscribe("v")
	if err != nil {
		t.Fatal(err)
	}
	sub.bwe.sent(1, 1200, second, false)
	sub.OnTransportCC(feedback(0, 1, []int64{1000}), second)
	if got := sub.Estimate(); got != 321_000 || fe.sent != 1 || fe.feedback != 1 {
		t.Fatalf("estimate %d, sent %d, feedback %d", got, fe.sent, fe.feedback)
	}
	if sub.bwe.startProbe(1e6, 1e6, 10*second) {
		t.Fatal("the core probed for a configured estimator")
	}
	sub.Close(nil)
	if !fe.closed {
		t.Fatal("the estimator was not closed with the viewer")
	}
}
