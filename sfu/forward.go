package sfu

import "math/rand/v2"

// dropReason says why a forwarder did not forward a packet. Drops are counted
// per reason, never logged one by one.
type dropReason uint8

const (
	forwarded      dropReason = iota
	dropOtherLayer            // not the layer this viewer is on or switching to
	dropWaitKey               // waiting for a keyframe on the target layer
	dropOld                   // from before the current switch point
	dropDuplicate             // already forwarded
	dropCongested             // the layer being left because the path is congested
	numDropReasons
)

// epoch is one stretch of output during which the forwarder maps one source
// layer onto the output with fixed offsets. A few are kept so NACKs for
// packets sent before a switch can still be answered.
type epoch struct {
	layer    *Layer
	startOut uint16 // first output sequence number of the epoch
	startSrc uint16 // its source sequence number
	seqOff   uint16
	tsOff    uint32
	pidOff   uint16
	tl0Off   uint8
	// padN padding-only packets with timestamp padTS went out just before
	// startOut. An epoch that starts after padding continues the one
	// before it, on the same layer, with the sequence numbers moved on.
	padN  uint8
	padTS uint32
}

const numEpochs = 8

// forwarder decides, for one viewer's track, which packets go out and with
// which sequence number, timestamp and picture id. It is a pure state
// machine: packets in, decisions out. Switches between layers (or between
// publisher connections after a reconnect) happen only at a keyframe of the
// target layer, and the output stays one continuous RTP stream.
type forwarder struct {
	clockRate uint32

	cur, target *Layer
	started     bool

	epochs [numEpochs]epoch
	ep     int // index of the current epoch

	lastSrcSeq uint16 // highest source sequence number forwarded in this epoch
	lastOutSeq uint16 // highest output sequence number sent
	lastOutTS  uint32
	lastOutAt  int64 // arrival time of the packet that set lastOutTS
	lastMarker bool  // the packet that set lastOutSeq ended a frame

	// Picture id continuity for VP8/VP9 (RFC 7741 §4.2, RFC 9628 §4.2).
	lastOutPID uint16
	lastOutTL0 uint8
	havePID    bool
}

// result is what the forwarder decided for one packet.
type result struct {
	reason   dropReason
	seq      uint16
	ts       uint32
	pidOff   uint16
	tl0Off   uint8
	switched bool // this packet starts a new epoch
}

func newForwarder(clockRate uint32) forwarder {
	return forwarder{
		clockRate:  clockRate,
		lastOutSeq: uint16(rand.Uint32()),
		lastOutTS:  rand.Uint32(),
	}
}

func (f *forwarder) current() *epoch { return &f.epochs[f.ep] }

// forward decides for one packet of layer l.
func (f *forwarder) forward(l *Layer, p *Packet) result {
	if l == f.cur && f.started {
		return f.forwardCurrent(p)
	}
	if l != f.target {
		return result{reason: dropOtherLayer}
	}
	if !p.Keyframe {
		return result{reason: dropWaitKey}
	}
	f.switchTo(l, p)
	r := f.forwardCurrent(p)
	r.switched = true
	return r
}

// forwardCurrent maps a packet of the current epoch.
func (f *forwarder) forwardCurrent(p *Packet) result {
	e := f.current()
	diff := int16(p.SequenceNumber - f.lastSrcSeq)
	switch {
	case diff == 0 && f.started:
		return result{reason: dropDuplicate}
	case diff < 0:
		// Late (reordered or recovered by NACK): forward only if it belongs
		// to this epoch, or to one that padding split it from.
		if e = f.epochOf(p.SequenceNumber); e == nil {
			return result{reason: dropOld}
		}
	default:
		f.lastSrcSeq = p.SequenceNumber
	}
	f.started = true
	r := result{
		seq:    p.SequenceNumber + e.seqOff,
		ts:     p.Timestamp + e.tsOff,
		pidOff: e.pidOff,
		tl0Off: e.tl0Off,
	}
	if int16(r.seq-f.lastOutSeq) > 0 {
		f.lastOutSeq = r.seq
		f.lastOutTS = r.ts
		f.lastOutAt = p.Arrival
		f.lastMarker = p.Marker
		if p.picture.PIDOffset != 0 {
			f.lastOutPID = (p.picture.PID + r.pidOff) & pidMask(p.picture.PIDLong)
			f.lastOutTL0 = p.picture.TL0 + r.tl0Off
			f.havePID = true
		}
	}
	return r
}

// epochOf returns the epoch a late packet of the current layer belongs
// to: the current one, or one before it that padding split off, still
// remembered. It returns nil for a packet from before the current layer.
func (f *forwarder) epochOf(src uint16) *epoch {
	for i := range numEpochs {
		e := &f.epochs[(f.ep-i+numEpochs)%numEpochs]
		if e.layer != f.cur {
			return nil
		}
		if int16(src-e.startSrc) >= 0 {
			return e
		}
		if e.padN == 0 {
			return nil
		}
	}
	return nil
}

// maxPadding is the most padding-only packets sent between two frames.
const maxPadding = 64

// pad reserves n output sequence numbers for padding-only packets right
// after the frame just forwarded (padding goes only between frames, so a
// receiver's frame assembly is untouched). It returns the first number and
// the timestamp they carry, that of the frame before them.
func (f *forwarder) pad(n int) (first uint16, ts uint32, ok bool) {
	if !f.started || !f.lastMarker || n <= 0 || n > maxPadding {
		return 0, 0, false
	}
	e := *f.current()
	first = f.lastOutSeq + 1
	e.startOut = first + uint16(n)
	e.startSrc = f.lastSrcSeq + 1
	e.seqOff += uint16(n)
	e.padN, e.padTS = uint8(n), f.lastOutTS
	f.ep = (f.ep + 1) % numEpochs
	f.epochs[f.ep] = e
	f.lastOutSeq += uint16(n)
	f.lastMarker = false
	return first, f.lastOutTS, true
}

// switchTo starts a new epoch on layer l at keyframe p, choosing offsets so
// the output continues where it left off.
func (f *forwarder) switchTo(l *Layer, p *Packet) {
	outSeq := f.lastOutSeq + 1
	outTS := f.lastOutTS
	if f.started {
		outTS = f.continueTimestamp(l, p)
	}
	var pidOff uint16
	var tl0Off uint8
	if f.havePID && p.picture.PIDOffset != 0 {
		pidOff = f.lastOutPID + 1 - p.picture.PID
		tl0Off = f.lastOutTL0 + 1 - p.picture.TL0
	}
	f.ep = (f.ep + 1) % numEpochs
	f.epochs[f.ep] = epoch{
		layer:    l,
		startOut: outSeq,
		startSrc: p.SequenceNumber,
		seqOff:   outSeq - p.SequenceNumber,
		tsOff:    outTS - p.Timestamp,
		pidOff:   pidOff,
		tl0Off:   tl0Off,
	}
	f.cur = l
	f.lastSrcSeq = p.SequenceNumber - 1
	f.lastMarker = false
}

// continueTimestamp returns the output timestamp for the first packet of a
// new epoch. When both layers have sender reports from the same publisher,
// the new layer's timestamp is mapped through wall-clock time onto the old
// layer's timeline, which keeps lip sync exact; otherwise the elapsed
// arrival time is added to the last output timestamp.
func (f *forwarder) continueTimestamp(l *Layer, p *Packet) uint32 {
	elapsed := p.Arrival - f.lastOutAt
	if elapsed < 0 {
		elapsed = 0
	}
	fallback := f.lastOutTS + uint32(elapsed*int64(f.clockRate)/second)
	if fallback == f.lastOutTS {
		fallback++
	}
	old := f.cur
	if old == nil || old.pub != l.pub {
		return fallback
	}
	srOld, srNew := old.senderReport(), l.senderReport()
	if srOld == nil || srNew == nil {
		return fallback
	}
	// Both layers share the publisher's wall clock. Map p's timestamp onto
	// the old layer's RTP timeline: the same instant is srOld.rtp plus the
	// NTP distance between the two reports in ticks, plus p's distance from
	// srNew. Only the NTP difference is converted, with rounding.
	ntpDelta := int64(srNew.ntp - srOld.ntp)
	if ntpDelta > 3600<<32 || ntpDelta < -3600<<32 {
		return fallback
	}
	ticks := (ntpDelta*int64(f.clockRate) + 1<<31) >> 32
	oldRTP := srOld.rtp + uint32(ticks) + (p.Timestamp - srNew.rtp)
	out := oldRTP + f.epochs[f.ep].tsOff
	// Never step backwards, and never jump far from the elapsed-time guess
	// (a bogus report must not freeze a viewer).
	delta := int32(out - f.lastOutTS)
	if delta <= 0 || int64(delta) > int64(f.clockRate) {
		return fallback
	}
	return out
}

// lookup maps an output sequence number back to the packet it was made from,
// for answering a NACK. For a padding-only packet it returns the epoch the
// padding precedes and padding set.
func (f *forwarder) lookup(out uint16) (e *epoch, src uint16, padding, ok bool) {
	if !f.started || int16(out-f.lastOutSeq) > 0 {
		return nil, 0, false, false
	}
	for i := range numEpochs {
		e := &f.epochs[(f.ep-i+numEpochs)%numEpochs]
		switch {
		case e.layer == nil:
			return nil, 0, false, false
		case int16(out-e.startOut) >= 0:
			return e, out - e.seqOff, false, true
		case int16(out-(e.startOut-uint16(e.padN))) >= 0:
			return e, 0, true, true
		}
	}
	return nil, 0, false, false
}

func pidMask(long bool) uint16 {
	if long {
		return 0x7fff
	}
	return 0x7f
}

// ntpAdd adds d nanoseconds to a 64-bit NTP timestamp.
func ntpAdd(ntp uint64, d int64) uint64 {
	secs, frac := d/second, d%second
	return ntp + uint64(secs<<32) + uint64(frac*(1<<32)/second)
}
