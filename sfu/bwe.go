package sfu

import (
	"github.com/pion/rtcp"
)

// historySize is how many sent packets a viewer remembers for matching
// transport-wide congestion control feedback (about 1.7 s at 300 packets a
// second; feedback comes every 50-100 ms).
const historySize = 512

// sendRec is one packet sent to a viewer, keyed by its transport-wide
// sequence number, in 8 bytes: the send time in milliseconds of the core's
// clock (wrapping after 49 days; only differences matter), the size (0 for
// an empty record) and the sequence number.
type sendRec struct {
	atMs uint32
	size uint16
	seq  uint16
}

func (r sendRec) at() int64 { return int64(r.atMs) * millisecond }

// Estimator tuning. The shape follows the loss- and delay-based halves of
// Google congestion control (draft-ietf-rmcat-gcc-02 §5, §6), simplified: an
// SFU picks between a few fixed layer bitrates, so it needs a robust ceiling,
// not a smooth encoder target.
const (
	lossHigh           = 0.10 // loss above this is congestion
	lossLow            = 0.02 // loss below this allows increase
	queueHigh          = 60 * millisecond
	queueLow           = 20 * millisecond
	increasePerSecond  = 0.10
	decreaseFactor     = 0.85
	decreaseHold       = 300 * millisecond
	evalWindow         = 200 * millisecond
	baseDelayBuckets   = 10 // seconds of history for the base one-way delay
	feedbackStale      = 2 * second
	probeCeilingFactor = 2.5
	probeCeilingExtra  = 500_000
)

// estimator turns a viewer's feedback into a bandwidth estimate in bits per
// second. It is a pure state machine: feedback and times in, estimate out.
type estimator struct {
	min, max float64
	est      float64

	history [historySize]sendRec

	// Transport-wide feedback.
	lastTWCC    int64
	haveFbCount bool
	lastFbCount uint8
	refBase     int64 // unwrapped reference time of the previous feedback, in 64 ms units
	haveRef     bool

	// Evaluation window.
	winStart          int64
	winRecv, winLost  int
	winBytes          int64
	winFirst, winLast int64 // send times of the first and last acked packet

	acked float64 // acknowledged bitrate, smoothed

	// One-way delay: per-second minima for a sliding base, and the excess.
	baseMin [baseDelayBuckets]struct {
		sec int64
		min int64
	}
	queue       int64
	overuseRuns int

	lastEval     int64
	lastDecrease int64
	congestedAt  int64

	// Fallbacks.
	lastREMB int64
}

func newEstimator(cfg Config) estimator {
	return estimator{
		min: float64(cfg.MinBitrate),
		max: float64(cfg.MaxBitrate),
		est: float64(cfg.InitialBitrate),
	}
}

// estimate returns the current estimate in bits per second.
func (e *estimator) estimate() uint64 { return uint64(e.est) }

// sent records a packet sent with transport-wide sequence number seq.
func (e *estimator) sent(seq uint16, size int, now int64) {
	e.history[seq%historySize] = sendRec{atMs: uint32(now / millisecond), size: uint16(min(max(size, 1), 0xffff)), seq: seq}
}

// onTWCC processes a transport-wide congestion control feedback packet
// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
func (e *estimator) onTWCC(fb *rtcp.TransportLayerCC, now int64) {
	if e.haveFbCount && fb.FbPktCount == e.lastFbCount {
		return // the same feedback delivered twice (compound packet on two senders)
	}
	e.haveFbCount, e.lastFbCount = true, fb.FbPktCount
	e.lastTWCC = now

	// Unwrap the 24-bit reference time (64 ms units).
	ref := int64(fb.ReferenceTime & 0xffffff)
	if e.haveRef {
		prev := e.refBase & 0xffffff
		d := ref - prev
		if d < -(1 << 23) {
			d += 1 << 24
		} else if d > 1<<23 {
			d -= 1 << 24
		}
		ref = e.refBase + d
	}
	e.refBase, e.haveRef = ref, true
	arrival := ref * 64_000 // µs, receiver clock

	seq := fb.BaseSequenceNumber
	deltas := fb.RecvDeltas
	// The batch's least one-way delay: a standing queue raises every
	// packet's delay, a busy receiver that timestamps late only some.
	var minDelay int64
	haveDelay := false
	visit := func(symbol uint16) {
		rec := &e.history[seq%historySize]
		known := rec.size != 0 && rec.seq == seq
		switch symbol {
		case rtcp.TypeTCCPacketNotReceived:
			if known {
				e.winLost++
			}
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) == 0 {
				break
			}
			arrival += deltas[0].Delta
			deltas = deltas[1:]
			if !known {
				break
			}
			e.winRecv++
			e.winBytes += int64(rec.size)
			at := rec.at()
			if e.winFirst == 0 || at < e.winFirst {
				e.winFirst = at
			}
			if at > e.winLast {
				e.winLast = at
			}
			d := arrival*1000 - at // ns, arbitrary offset
			if !haveDelay || d < minDelay {
				minDelay, haveDelay = d, true
			}
			e.noteDelay(d, now)
		}
		rec.size = 0
		seq++
	}
	n := int(fb.PacketStatusCount)
	for _, c := range fb.PacketChunks {
		if n <= 0 {
			break
		}
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for i := 0; i < int(c.RunLength) && n > 0; i++ {
				visit(c.PacketStatusSymbol)
				n--
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				if n <= 0 {
					break
				}
				visit(s)
				n--
			}
		}
	}
	if haveDelay {
		q := minDelay - e.baseDelay()
		if q < 0 {
			q = 0
		}
		e.queue = q
		if q > queueHigh {
			e.overuseRuns++
		} else {
			e.overuseRuns = 0
		}
	}
	e.evaluate(now)
}

// noteDelay folds a one-way delay sample into the per-second minima.
func (e *estimator) noteDelay(d, now int64) {
	sec := now / second
	b := &e.baseMin[sec%baseDelayBuckets]
	if b.sec != sec {
		b.sec, b.min = sec, d
	} else if d < b.min {
		b.min = d
	}
}

func (e *estimator) baseDelay() int64 {
	var base int64
	have := false
	newest := int64(0)
	for _, b := range e.baseMin {
		newest = max(newest, b.sec)
	}
	for _, b := range e.baseMin {
		if b.sec == 0 && b.min == 0 || newest-b.sec >= baseDelayBuckets {
			continue
		}
		if !have || b.min < base {
			base, have = b.min, true
		}
	}
	return base
}

// evaluate closes the window once it holds enough and moves the estimate.
func (e *estimator) evaluate(now int64) {
	if e.winStart == 0 {
		e.winStart = now
	}
	total := e.winRecv + e.winLost
	if now-e.winStart < evalWindow || total < 10 {
		return
	}
	if span := e.winLast - e.winFirst; span > 50*millisecond {
		rate := float64(e.winBytes*8) * float64(second) / float64(span)
		e.acked = smooth(e.acked, rate)
	}
	loss := float64(e.winLost) / float64(total)
	e.update(loss, e.overuseRuns >= 2, e.queue < queueLow, now)
	e.winStart, e.winRecv, e.winLost, e.winBytes, e.winFirst, e.winLast = now, 0, 0, 0, 0, 0
}

// update applies one AIMD step.
func (e *estimator) update(loss float64, overuse, calm bool, now int64) {
	dt := now - e.lastEval
	if e.lastEval == 0 || dt > second {
		dt = second
	}
	e.lastEval = now
	switch {
	case overuse || loss > lossHigh:
		if now-e.lastDecrease < decreaseHold {
			return
		}
		e.lastDecrease, e.congestedAt = now, now
		next := decreaseFactor * e.acked
		if e.acked == 0 {
			next = decreaseFactor * e.est
		}
		e.est = min(e.est, next)
	case loss < lossLow && calm:
		next := e.est * (1 + increasePerSecond*float64(dt)/float64(second))
		if e.acked > 0 {
			// Grow no further than a step above what is being delivered, but
			// never cut the estimate to that ceiling: while a new viewer waits
			// for its first keyframe only audio is acknowledged.
			next = min(next, max(e.acked*probeCeilingFactor+probeCeilingExtra, e.est))
		}
		e.est = next
	}
	e.est = min(max(e.est, e.min), e.max)
}

// onREMB uses a receiver's estimate when it sends no transport-wide feedback.
func (e *estimator) onREMB(bps float64, now int64) {
	e.lastREMB = now
	if now-e.lastTWCC < feedbackStale && e.lastTWCC != 0 {
		return
	}
	if bps < e.est*decreaseFactor {
		e.congestedAt = now
	}
	e.est = min(max(bps, e.min), e.max)
}

// onLoss uses receiver-report loss (RFC 3550 §6.4.1 fraction lost) when the
// viewer sends neither transport-wide feedback nor REMB. sendRate is what
// was sent to it, in bits per second.
func (e *estimator) onLoss(fraction uint8, sendRate float64, now int64) {
	if (e.lastTWCC != 0 && now-e.lastTWCC < feedbackStale) || (e.lastREMB != 0 && now-e.lastREMB < feedbackStale) {
		return
	}
	e.acked = sendRate
	e.update(float64(fraction)/256, false, true, now)
}
