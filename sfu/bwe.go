package sfu

import (
	"slices"

	"github.com/pion/rtcp"
)

// historySize is how many sent packets a viewer remembers for matching
// transport-wide congestion control feedback (about 1.7 s at 300 packets a
// second; feedback comes every 50-100 ms).
const historySize = 512

// sendRec is one packet sent to a viewer, keyed by its transport-wide
// sequence number, in 8 bytes: the send time in milliseconds of the core's
// clock (wrapping after 49 days; only differences matter), the size (0 for
// an empty record) with the flags below, and the sequence number.
type sendRec struct {
	atMs uint32
	size uint16
	seq  uint16
}

const (
	// resendBit marks a retransmission. A retransmission of a packet that
	// was late, not lost, is discarded by the receiver's SRTP replay check
	// before it is counted, and would look like loss: its loss is not
	// counted.
	resendBit = 0x8000
	// missingBit marks a packet feedback reported missing. A receiver
	// reports a packet that arrives after its feedback was sent (reordered
	// by jitter) in a later feedback: a packet is counted lost only when
	// the feedback after the one that missed it still does not have it.
	missingBit = 0x4000
	// countedBit marks a missing packet counted lost.
	countedBit = 0x2000
	sizeMask   = 0x1fff
)

func (r sendRec) at() int64     { return int64(r.atMs) * millisecond }
func (r sendRec) bytes() int64  { return int64(r.size & sizeMask) }
func (r sendRec) resend() bool  { return r.size&resendBit != 0 }
func (r sendRec) missing() bool { return r.size&missingBit != 0 }
func (r sendRec) counted() bool { return r.size&countedBit != 0 }

// Estimator tuning. The shape follows the loss- and delay-based halves of
// Google congestion control (draft-ietf-rmcat-gcc-02 §5, §6), simplified: an
// SFU picks between a few fixed layer bitrates, so it needs a robust ceiling,
// not a smooth encoder target.
const (
	lossHigh          = 0.10 // loss this far above the path's own is congestion
	lossLow           = 0.02 // loss no more than this above the path's own allows increase
	queueHigh         = 40 * millisecond
	queueLow          = 15 * millisecond
	increasePerSecond = 0.10
	decreaseFactor    = 0.85
	decreaseHold      = 300 * millisecond
	evalWindow        = 200 * millisecond
	lossWindows       = 5   // loss is judged over at least this many windows (1 s)
	lossMinPackets    = 200 // and this many packets, if 2 s hold them
	baseDelayBuckets  = 10  // seconds of history for the base one-way delay and the loss floor
	feedbackStale     = 2 * second
	// Without a probe the estimate grows no further than this far above
	// what is delivered (GCC's 1.5×): a higher rate is proven by probing.
	probeCeilingFactor = 1.5
	probeCeilingExtra  = 100_000

	// Probing (what GCC does before trusting a higher rate): extra
	// traffic for probeDuration, judged once its feedback is in.
	probeDuration   = 300 * millisecond
	probeStep       = 1.25              // a probe tests at most this much more than the estimate
	probeSettle     = 300 * millisecond // feedback arrives this long after
	probeBackoffMin = 1 * second
	probeBackoffMax = 2 * second
	probeQuiet      = 2 * second // since the last congestion
)

// estimator turns a viewer's feedback into a bandwidth estimate in bits per
// second. It is a pure state machine: feedback and times in, estimate out.
type estimator struct {
	min, max float64
	est      float64 // delay-based (and probed) estimate
	// lossCap is the loss-based ceiling (draft-ietf-rmcat-gcc-02 §6): it
	// drops on loss well above the path's own random loss and rises again
	// when loss returns to that floor.
	lossCap float64
	// lossBuckets are per-second loss counts; the floor is the median
	// loss of the last baseDelayBuckets seconds: loss a path always has
	// (a radio link) is not congestion.
	lossBuckets [baseDelayBuckets]struct {
		sec        int64
		recv, lost int
	}
	lastLossDecrease int64
	// recent are the received and lost counts of the last windows.
	recent   [2 * lossWindows][2]int32
	recentAt int

	probe    probeState
	probeEnd int64 // when the last probe ended

	history [historySize]sendRec
	// missing are the packets the latest feedback reported missing, to be
	// counted lost unless the next one has them.
	missing  [64]uint16
	nMissing int

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
	arrFirst, arrLast int64 // and the first and last arrival, µs on the receiver's clock

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

	// ext, when set, stands in for all of the above (Config.NewEstimator).
	ext Estimator
}

// Estimator is a bandwidth estimator that can stand in for the core's own
// per viewer (Config.NewEstimator), for experiments: BenchmarkLayerChanges
// runs pion/interceptor's GCC through it. It sees every packet sent to the
// viewer with its transport-wide sequence number and every transport-wide
// feedback; the core does no probing for it, and allocates layers from its
// estimate alone.
type Estimator interface {
	Sent(seq uint16, size int)
	Feedback(fb *rtcp.TransportLayerCC)
	Estimate() uint64
	// Close is called when the viewer's session ends.
	Close()
}

func newEstimator(cfg Config) estimator {
	e := estimator{
		min:     float64(cfg.MinBitrate),
		max:     float64(cfg.MaxBitrate),
		est:     float64(cfg.InitialBitrate),
		lossCap: float64(cfg.MaxBitrate),
	}
	if cfg.NewEstimator != nil {
		e.ext = cfg.NewEstimator()
	}
	return e
}

// estimate returns the current estimate in bits per second: the lesser of
// the delay-based estimate and the loss-based ceiling.
func (e *estimator) estimate() uint64 {
	if e.ext != nil {
		return e.ext.Estimate()
	}
	return uint64(min(e.est, max(e.lossCap, e.min)))
}

// probeState is a probe in flight: extra bits per second sent from start
// to end, and what the viewer acknowledged of what was sent meanwhile.
type probeState struct {
	start, end  int64
	target      float64 // the rate the probe tests
	extra       float64 // bits per second sent on top of the media
	sent        int64   // probe bytes sent so far
	acked       int64   // bytes sent in the window and acknowledged
	first, last int64   // send times of the first and last acknowledged
	// arrFirst and arrLast are their arrivals, µs on the receiver's clock.
	arrFirst, arrLast int64
	failed            bool // congestion during the probe
	backoff           int64
	nextAt            int64 // no probe before this
}

// startProbe begins a probe of target bits per second, when the path has
// been quiet and no probe is due to wait; extra is what must be added to
// what is sent now to reach it.
func (e *estimator) startProbe(target, extra float64, now int64) bool {
	p := &e.probe
	switch {
	case e.ext != nil, p.start != 0, now < p.nextAt, now-e.congestedAt < probeQuiet && e.congestedAt != 0, extra <= 0:
		return false
	}
	*p = probeState{start: now, end: now + probeDuration, target: target, extra: extra, backoff: p.backoff, nextAt: p.nextAt}
	return true
}

// probing reports whether probe traffic is due at now, and how many more
// bytes of it to send: what is owed up to ahead from now, so traffic sent
// in bursts every ahead still adds up to the probe's rate by its end.
func (e *estimator) probing(now, ahead int64) (owed int64, ok bool) {
	p := &e.probe
	if p.start == 0 || now >= p.end {
		return 0, false
	}
	until := min(now+ahead, p.end)
	return int64(p.extra/8*float64(until-p.start)/float64(second)) - p.sent, true
}

// probeSent counts probe bytes sent.
func (e *estimator) probeSent(n int) { e.probe.sent += int64(n) }

// judgeProbe ends a probe once its feedback is in: a probe the path
// carried without congestion, delivering most of it, raises the estimate
// to the rate it tested; one that failed makes the next wait longer.
func (e *estimator) judgeProbe(now int64) {
	p := &e.probe
	if p.start == 0 || now < p.end+probeSettle {
		return
	}
	rate := 0.0
	if span := max(p.last-p.first, (p.arrLast-p.arrFirst)*1000); span > 50*millisecond {
		rate = float64(p.acked*8) * float64(second) / float64(span)
	}
	ok := !p.failed && rate >= 0.85*p.target
	backoff := p.backoff
	if ok {
		// The path carried the probe without a queue or loss: what it fell
		// short of the target is the burstiness of padding, not the path.
		e.est = max(e.est, p.target)
		e.lossCap = max(e.lossCap, e.est)
		backoff = 0
	} else {
		backoff = min(max(backoff*2, probeBackoffMin), probeBackoffMax)
	}
	// Loss reported from now on for the probe's packets is the probe's.
	e.probeEnd = p.end
	e.recent = [2 * lossWindows][2]int32{}
	*p = probeState{backoff: backoff, nextAt: now + backoff}
}

// sent records a packet sent with transport-wide sequence number seq;
// resend marks a retransmission.
func (e *estimator) sent(seq uint16, size int, now int64, resend bool) {
	if e.ext != nil {
		e.ext.Sent(seq, size)
		return
	}
	sz := uint16(min(max(size, 1), sizeMask))
	if resend {
		sz |= resendBit
	}
	e.history[seq%historySize] = sendRec{atMs: uint32(now / millisecond), size: sz, seq: seq}
}

// onTWCC processes a transport-wide congestion control feedback packet
// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
func (e *estimator) onTWCC(fb *rtcp.TransportLayerCC, now int64) {
	if e.ext != nil {
		e.ext.Feedback(fb)
		return
	}
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

	// What the previous feedback missed and this one does not bring is
	// lost; a later report that it arrived still takes it back.
	confirm, nConfirm := e.missing, e.nMissing
	e.nMissing = 0
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
			switch {
			case !known || rec.missing() || rec.resend():
			case e.nMissing < len(e.missing):
				rec.size |= missingBit
				e.missing[e.nMissing] = seq
				e.nMissing++
			default: // too many to wait for: lost now
				rec.size |= missingBit | countedBit
				e.winLost++
			}
			seq++
			return // kept: it may yet be reported received
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) == 0 {
				break
			}
			arrival += deltas[0].Delta
			deltas = deltas[1:]
			if !known {
				break
			}
			if rec.counted() {
				e.winLost-- // counted lost before: it was late
			}
			e.winRecv++
			e.winBytes += rec.bytes()
			at := rec.at()
			if e.arrFirst == 0 || arrival < e.arrFirst {
				e.arrFirst = arrival
			}
			e.arrLast = max(e.arrLast, arrival)
			if p := &e.probe; p.start != 0 && at >= p.start && at < p.end {
				p.acked += rec.bytes()
				if p.first == 0 || at < p.first {
					p.first = at
				}
				p.last = max(p.last, at)
				if p.arrFirst == 0 || arrival < p.arrFirst {
					p.arrFirst = arrival
				}
				p.arrLast = max(p.arrLast, arrival)
			}
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
	for _, s := range confirm[:nConfirm] {
		if rec := &e.history[s%historySize]; rec.seq == s && rec.size != 0 && rec.missing() && !rec.counted() {
			rec.size |= countedBit
			e.winLost++
		}
	}
	if haveDelay {
		q := minDelay - e.baseDelay()
		if q < 0 {
			q = 0
		}
		// Overuse is a queue that is long and not draining: after a
		// decrease the queue takes a while to empty, and that is no reason
		// to decrease again.
		draining := q < e.queue-5*millisecond
		e.queue = q
		if q > queueHigh && !draining {
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
	// An overuse is acted on at once; everything else waits for the window.
	if total < 10 || now-e.winStart < evalWindow && e.overuseRuns < 2 {
		return
	}
	// What was delivered: bytes over the longer of the spans they were
	// sent in and received in (a bottleneck stretches the second).
	// n packets span n-1 gaps: one packet's worth of bytes is left out.
	if span := max(e.winLast-e.winFirst, (e.arrLast-e.arrFirst)*1000); span > 50*millisecond && e.winRecv > 1 {
		rate := float64(e.winBytes*8) * float64(e.winRecv-1) / float64(e.winRecv) * float64(second) / float64(span)
		e.acked = smooth(e.acked, rate)
	}
	e.noteLoss(e.winRecv, e.winLost, now)
	// Loss is judged over the last few windows: one window holds too few
	// packets to tell 10 % from a path's random 5 %.
	e.recent[e.recentAt%len(e.recent)] = [2]int32{int32(e.winRecv), int32(e.winLost)}
	e.recentAt++
	var recv, lost int
	for i := range len(e.recent) {
		if i >= lossWindows && recv+lost >= lossMinPackets {
			break
		}
		w := e.recent[(e.recentAt-1-i+len(e.recent))%len(e.recent)]
		recv, lost = recv+int(w[0]), lost+int(w[1])
	}
	lost = max(lost, 0)
	loss := -1.0 // too few packets to say
	if recv+lost >= lossMinPackets {
		loss = float64(lost) / float64(recv+lost)
	}
	e.update(loss, e.overuseRuns >= 2, e.queue < queueLow, now)
	e.judgeProbe(now)
	e.winStart, e.winRecv, e.winLost, e.winBytes, e.winFirst, e.winLast = now, 0, 0, 0, 0, 0
	e.arrFirst, e.arrLast = 0, 0
}

// noteLoss counts a window's packets into its second's bucket.
func (e *estimator) noteLoss(recv, lost int, now int64) {
	sec := now / second
	b := &e.lossBuckets[sec%baseDelayBuckets]
	if b.sec != sec {
		b.sec, b.recv, b.lost = sec, 0, 0
	}
	b.recv += recv
	b.lost += lost
}

// lossFloor is the median loss of the last seconds (the current one left
// out) with enough packets to say: what the path loses at random, whatever
// is sent. Congestion is answered within a second, so its loss does not
// make the median.
func (e *estimator) lossFloor(now int64) float64 {
	var v [baseDelayBuckets]float64
	n := 0
	sec := now / second
	for _, b := range e.lossBuckets {
		if b.sec == sec || sec-b.sec >= baseDelayBuckets || b.recv+b.lost < 30 {
			continue
		}
		v[n] = float64(max(b.lost, 0)) / float64(b.recv+max(b.lost, 0))
		n++
	}
	if n == 0 {
		return 0
	}
	slices.Sort(v[:n])
	return v[n/2]
}

// update applies one step of each half: loss-based (against the path's
// own loss floor; loss < 0 is unknown) and delay-based (AIMD on the
// queue).
func (e *estimator) update(loss float64, overuse, calm bool, now int64) {
	dt := now - e.lastEval
	if e.lastEval == 0 || dt > second {
		dt = second
	}
	e.lastEval = now
	grow := 1 + increasePerSecond*float64(dt)/float64(second)
	excess := loss - e.lossFloor(now)
	// While a probe is out, congestion is the probe's own doing: it fails
	// the probe and leaves the estimate alone.
	if e.probe.start != 0 {
		if overuse || (loss > lossHigh && excess > lossHigh/2) {
			e.probe.failed = true
		}
		return
	}
	switch {
	case loss < 0:
	case loss > lossHigh && excess > lossHigh/2:
		if now-e.lastLossDecrease >= decreaseHold && now-e.probeEnd >= lossWindows*evalWindow {
			e.lastLossDecrease, e.congestedAt = now, now
			base := float64(e.estimate())
			if e.acked > 0 {
				base = min(base, e.acked) // what is delivered, not what was hoped
			}
			e.lossCap = min(e.lossCap, base) * (1 - 0.5*loss)
			e.recent = [2 * lossWindows][2]int32{} // this loss is answered
		}
	case excess < lossLow:
		e.lossCap = min(e.lossCap*grow, e.max)
	}
	switch {
	case overuse:
		if now-e.lastDecrease < decreaseHold {
			break
		}
		e.lastDecrease, e.congestedAt = now, now
		next := decreaseFactor * e.acked
		if e.acked == 0 {
			next = decreaseFactor * e.est
		}
		e.est = min(e.est, next)
	case calm:
		next := e.est * grow
		if e.acked > 0 {
			// Grow no further than a step above what is being delivered, but
			// never cut the estimate to that ceiling: while a new viewer waits
			// for its first keyframe only audio is acknowledged.
			next = min(next, max(e.acked*probeCeilingFactor+probeCeilingExtra, e.est))
		}
		e.est = next
	}
	e.est = min(max(e.est, e.min), e.max)
	e.lossCap = min(max(e.lossCap, e.min), e.max)
}

// onREMB uses a receiver's estimate when it sends no transport-wide feedback.
func (e *estimator) onREMB(bps float64, now int64) {
	if e.ext != nil {
		return
	}
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
	if e.ext != nil {
		return
	}
	if (e.lastTWCC != 0 && now-e.lastTWCC < feedbackStale) || (e.lastREMB != 0 && now-e.lastREMB < feedbackStale) {
		return
	}
	e.acked = sendRate
	e.noteLoss(256-int(fraction), int(fraction), now)
	e.update(float64(fraction)/256, false, true, now)
}
