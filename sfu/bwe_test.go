package sfu

import (
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
			l.e.sent(l.seq, size, at)
			l.seq++
			l.queue += queueGrowthUS
			arrivals[i] = at/1000 + 5000 + l.queue + receiverOffset
			if lossEvery != 0 && (i+1)%lossEvery == 0 {
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
	e.sent(1, 1200, second)
	fb := feedback(7, 1, []int64{-1})
	e.onTWCC(fb, second)
	lost := e.winLost
	e.onTWCC(fb, second) // the same compound packet read from a second sender
	if e.winLost != lost {
		t.Fatalf("duplicate feedback counted twice")
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
