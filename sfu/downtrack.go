package sfu

import (
	"encoding/binary"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTPWriter is where a down track's packets go: pion's TrackLocalWriter, a
// test recorder. WriteRTP must not keep header or payload after it returns.
type RTPWriter interface {
	WriteRTP(header *rtp.Header, payload []byte) (int, error)
}

// Allocation tuning.
const (
	upHeadroom      = 1.15        // a higher layer needs this much more than its bitrate
	upProbeWindow   = 5 * second  // congestion this soon after an up-switch blames it
	backoffMin      = 4 * second  // first wait before retrying a failed up-switch
	backoffMax      = 16 * second // longest wait
	backoffForget   = 20 * second // a layer held this long resets the backoff
	retransmitAge   = 1 * second  // older cached packets are not resent
	retransmitBurst = second / 4  // the budget's bucket holds this much of its rate
)

// DownTrack is one track as one viewer receives it: a forwarder that picks
// the layer and rewrites headers, writing to the viewer's RTPWriter.
type DownTrack struct {
	sub  *Subscriber
	kind Kind
	slot int
	// track is what the slot carries now (nil while empty); guarded by
	// sub.mu, it changes when the slot passes to another broadcaster.
	track *Track

	// Set by Bind, before Start.
	w      RTPWriter
	ssrc   uint32
	codecs []Codec
	exts   ExtIDs

	// Guarded by sub.mu.
	fw      forwarder
	codec   Codec // codec of the packets being sent
	pt      uint8
	hdr     rtp.Header
	twccBuf [2]byte

	upTo         *Layer
	upAt         int64
	leaveUntil   int64 // the current layer is not sent until then, or until the switch
	padAt        int64 // the last probe padding
	blocked      *Layer
	blockedUntil int64
	backoff      int64

	// Lock-free mirrors of fw.cur and fw.target, so the ingest goroutine of
	// a layer this viewer ignores never takes its lock.
	cur, target atomic.Pointer[Layer]

	packets, bytes, retransmits, nackMiss, writeErrs, noCodec atomic.Uint64
	rtxRefused                                                atomic.Uint64 // NACKed packets past the budget
	probes                                                    atomic.Uint64 // probe copies sent
	drops                                                     [numDropReasons]atomic.Uint64
}

func newDownTrack(s *Subscriber, k Kind, slot int) *DownTrack {
	return &DownTrack{sub: s, kind: k, slot: slot}
}

// Track returns the track this down track carries now, nil while its slot
// is empty.
func (d *DownTrack) Track() *Track {
	d.sub.mu.Lock()
	defer d.sub.mu.Unlock()
	return d.track
}

// Kind returns the media kind.
func (d *DownTrack) Kind() Kind { return d.kind }

// Slot returns the index of the viewer's slot the down track belongs to.
func (d *DownTrack) Slot() int { return d.slot }

// ID names the down track in SDP: "host-video" for the first slot, which
// the host always has, "slot1-audio" and so on for the others.
func (d *DownTrack) ID() string {
	if d.slot == 0 {
		return HostID + "-" + d.kind.String()
	}
	return "slot" + strconv.Itoa(d.slot) + "-" + d.kind.String()
}

// rebindLocked points the down track at track t (nil: the slot empties).
// The forwarder starts afresh on t at its next keyframe, or from its
// cached one, with the output one continuous RTP stream.
func (d *DownTrack) rebindLocked(t *Track) {
	if d.track == t {
		return
	}
	live := d.sub.started && d.w != nil
	if live && d.track != nil {
		d.track.RemoveSink(d)
	}
	d.track = t
	d.pauseLocked()
	if live && t != nil {
		t.AddSink(d)
	}
}

// canCarryLocked reports whether the viewer's m-line takes the codec of
// the track the slot carries (a guest may send one the host does not).
func (d *DownTrack) canCarryLocked() bool {
	c, ok := d.track.Codec()
	if !ok {
		return true
	}
	for _, o := range d.codecs {
		if c.Compatible(o) > 0 {
			return true
		}
	}
	return false
}

// pauseLocked stops forwarding until a layer is chosen again.
func (d *DownTrack) pauseLocked() {
	d.fw.cur, d.fw.target = nil, nil
	d.cur.Store(nil)
	d.target.Store(nil)
}

// Bind attaches the viewer's negotiated parameters: where to write, its
// SSRC, the codecs it accepted (with its payload types) and header extension
// ids. It returns the codec that will be sent, or ErrNoCodec when none of
// the viewer's codecs can carry the track.
func (d *DownTrack) Bind(w RTPWriter, ssrc uint32, codecs []Codec, exts ExtIDs) (Codec, error) {
	s := d.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Codec
	ok := false
	if d.track != nil {
		c, ok = d.track.Codec()
	}
	var best Codec
	score := 0
	for _, o := range codecs {
		if !ok {
			if o.Kind() == d.kind && score == 0 {
				best, score = o, 1
			}
			continue
		}
		if sc := c.Compatible(o); sc > score {
			best, score = o, sc
		}
	}
	if score == 0 {
		return Codec{}, ErrNoCodec
	}
	d.w, d.ssrc, d.codecs, d.exts = w, ssrc, codecs, exts
	d.codec, d.pt = best, best.PayloadType
	d.fw = newForwarder(best.ClockRate)
	d.hdr = rtp.Header{Version: 2, SSRC: ssrc, Extensions: make([]rtp.Extension, 0, 2)}
	return best, nil
}

// lane is the fan-out lane of the down track's subscriber.
func (d *DownTrack) lane() int { return d.sub.lane }

// SSRC returns the SSRC the viewer receives on.
func (d *DownTrack) SSRC() uint32 { return d.ssrc }

// Deliver forwards one packet of layer l, if this viewer is on or switching
// to that layer. It runs on the layer's ingest goroutine.
func (d *DownTrack) Deliver(l *Layer, p *Packet) {
	if l != d.cur.Load() && l != d.target.Load() {
		return
	}
	s := d.sub
	s.mu.Lock()
	if !s.closed {
		d.forwardLocked(l, p)
	}
	s.mu.Unlock()
}

func (d *DownTrack) forwardLocked(l *Layer, p *Packet) {
	if l == d.fw.cur && l != d.fw.target && p.Arrival < d.leaveUntil {
		// Leaving this layer for a lighter one because the path is
		// congested: more of it only deepens the queue the lighter
		// layer's keyframe must get through, and frames lost to that
		// queue could not be shown anyway.
		d.drops[dropCongested].Add(1)
		return
	}
	r := d.fw.forward(l, p)
	if r.reason != forwarded {
		d.drops[r.reason].Add(1)
		return
	}
	if r.switched {
		d.cur.Store(l)
		if l.codec != d.codec && !d.selectCodec(l.codec) {
			d.noCodec.Add(1)
		}
	}
	if d.send(p, r.seq, r.ts, r.pidOff, r.tl0Off, p.Arrival, false) && p.Marker && d.kind == KindVideo {
		d.probeLocked(p.Arrival)
	}
}

// Probe padding: padding-only packets of paddingSize bytes, sent in
// bursts at frame ends at most every paddingEvery.
const (
	paddingSize  = 255
	paddingEvery = 100 * millisecond
)

// probeLocked sends what a probe in flight is owed, after the frame just
// sent: padding-only packets on the media stream, each with its own
// sequence and transport-wide sequence numbers, so the viewer's feedback
// shows whether the path carries the probed rate. A receiver discards
// them after counting them; being new packets, not copies, they pass its
// SRTP replay check.
func (d *DownTrack) probeLocked(now int64) {
	s := d.sub
	owed, ok := s.bwe.probing(now, paddingEvery)
	if !ok || d.exts.TransportCC == 0 || now-d.padAt < paddingEvery {
		return
	}
	size := int64(d.hdr.MarshalSize() + paddingSize + srtpOverhead)
	n := int(min(owed/size, maxPadding))
	first, ts, ok := d.fw.pad(n)
	if !ok {
		return
	}
	d.padAt = now
	for i := range n {
		if !d.sendPadding(first+uint16(i), ts, now, false) {
			return
		}
		s.bwe.probeSent(int(size))
		d.probes.Add(1)
	}
}

// sendPadding writes one padding-only packet.
func (d *DownTrack) sendPadding(seq uint16, ts uint32, now int64, resend bool) bool {
	h := &d.hdr
	h.Marker, h.PayloadType, h.SequenceNumber, h.Timestamp = false, d.pt, seq, ts
	h.Padding, h.PaddingSize = true, paddingSize
	h.ClearExtensions()
	d.stampTWCC(h, paddingSize+srtpOverhead, now, resend)
	_, err := d.w.WriteRTP(h, nil)
	h.Padding, h.PaddingSize = false, 0
	return err == nil
}

// stampTWCC gives h the viewer's next transport-wide sequence number and
// records the send of the header and body bytes more; resend marks a
// retransmission.
func (d *DownTrack) stampTWCC(h *rtp.Header, body int, now int64, resend bool) {
	s := d.sub
	tseq := s.twccSeq
	s.twccSeq++
	binary.BigEndian.PutUint16(d.twccBuf[:], tseq)
	_ = h.SetExtension(d.exts.TransportCC, d.twccBuf[:])
	s.bwe.sent(tseq, h.MarshalSize()+body, now, resend)
}

// selectCodec switches the payload type when a reconnecting publisher
// changed codec; payload type changes within an m-line need no
// renegotiation.
func (d *DownTrack) selectCodec(c Codec) bool {
	best, score := Codec{}, 0
	for _, o := range d.codecs {
		if sc := c.Compatible(o); sc > score {
			best, score = o, sc
		}
	}
	if score == 0 {
		return false
	}
	d.codec, d.pt = c, best.PayloadType
	return true
}

// send writes one packet with this viewer's header; resend marks a
// retransmission.
func (d *DownTrack) send(p *Packet, seq uint16, ts uint32, pidOff uint16, tl0Off uint8, now int64, resend bool) bool {
	h := &d.hdr
	h.Marker = p.Marker
	h.PayloadType = d.pt
	h.SequenceNumber = seq
	h.Timestamp = ts
	h.PaddingSize = p.PaddingSize
	h.Padding = p.PaddingSize > 0
	payload := p.Payload()
	// The extension list keeps its capacity, so this allocates nothing.
	h.ClearExtensions()
	if v := p.AbsCaptureTime(); v != nil && d.exts.AbsCaptureTime != 0 {
		_ = h.SetExtension(d.exts.AbsCaptureTime, v)
	}
	if d.exts.TransportCC != 0 {
		d.stampTWCC(h, len(payload)+int(p.PaddingSize)+srtpOverhead, now, resend)
	}
	if (pidOff != 0 || tl0Off != 0) && p.picture.PIDOffset != 0 {
		payload = d.rewritePicture(payload, p.picture, pidOff, tl0Off)
	}
	if _, err := d.w.WriteRTP(h, payload); err != nil {
		d.writeErrs.Add(1)
		return false
	}
	d.packets.Add(1)
	d.bytes.Add(uint64(len(payload)))
	return true
}

// srtpOverhead approximates the SRTP authentication tag, UDP and IP headers
// counted in a packet's size on the wire.
const srtpOverhead = 10 + 8 + 20

// rewritePicture copies the payload and shifts its picture id and
// TL0PICIDX, so picture ids stay continuous across switches.
func (d *DownTrack) rewritePicture(b []byte, pi pictureInfo, pidOff uint16, tl0Off uint8) []byte {
	out := d.sub.scratch[:len(b)]
	copy(out, b)
	pid := pi.PID + pidOff
	if pi.PIDLong {
		binary.BigEndian.PutUint16(out[pi.PIDOffset:], 0x8000|pid&0x7fff)
	} else {
		out[pi.PIDOffset] = byte(pid & 0x7f)
	}
	if pi.TL0Offset != 0 {
		out[pi.TL0Offset] = pi.TL0 + tl0Off
	}
	return out
}

// OnNACK answers a viewer's generic NACK (RFC 4585 §6.2.1) from the layer
// caches, mapping each output sequence number back to its source packet.
func (d *DownTrack) OnNACK(pairs []rtcp.NackPair, now int64) {
	s := d.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || d.w == nil {
		return
	}
	cfg := &d.sub.stream.reg.cfg
	budget := cfg.RetransmitsPerNACK
	s.refillRetransmits(now)
	for _, pair := range pairs {
		pair.Range(func(seq uint16) bool {
			if budget == 0 {
				d.rtxRefused.Add(1)
				d.sub.stream.reg.rtxRefused.Add(1)
				return true // counted, not sent
			}
			budget--
			d.retransmitLocked(seq, now)
			return true
		})
	}
}

// refillRetransmits tops up the subscriber's retransmit budget: bytes per
// second from its estimate (RetransmitShare, at least RetransmitFloor),
// holding at most a quarter second of that.
func (s *Subscriber) refillRetransmits(now int64) {
	cfg := &s.stream.reg.cfg
	rate := max(cfg.RetransmitShare*float64(s.bwe.estimate()), float64(cfg.RetransmitFloor)) / 8 // bytes per second
	if s.rtxAt != 0 {
		s.rtxTokens += rate * float64(now-s.rtxAt) / float64(second)
	} else {
		s.rtxTokens = rate * float64(retransmitBurst) / float64(second)
	}
	s.rtxTokens = min(s.rtxTokens, rate*float64(retransmitBurst)/float64(second))
	s.rtxAt = now
}

func (d *DownTrack) retransmitLocked(out uint16, now int64) {
	p := &d.sub.copied
	e, src, padding, ok := d.fw.lookup(out)
	if ok && padding {
		// Lost padding leaves a gap a receiver would otherwise wait on.
		size := float64(d.hdr.MarshalSize() + paddingSize + srtpOverhead)
		if d.sub.rtxTokens >= size && d.sendPadding(out, e.padTS, now, true) {
			d.sub.rtxTokens -= size
			d.retransmits.Add(1)
			d.sub.stream.reg.retransmits.Add(1)
		}
		return
	}
	if !ok || !e.layer.copyPacket(src, p) || now-p.Arrival > retransmitAge {
		d.nackMiss.Add(1)
		return
	}
	size := float64(p.size) + srtpOverhead
	if d.sub.rtxTokens < size {
		d.rtxRefused.Add(1)
		d.sub.stream.reg.rtxRefused.Add(1)
		return
	}
	d.sub.rtxTokens -= size
	d.send(p, out, p.Timestamp+e.tsOff, e.pidOff, e.tl0Off, now, true)
	d.retransmits.Add(1)
	d.sub.stream.reg.retransmits.Add(1)
}

// OnPictureLoss handles a viewer's PLI or FIR: the request goes to the
// publisher of the layer the viewer is on, coalesced with everyone else's.
func (d *DownTrack) OnPictureLoss(now int64) {
	s := d.sub
	s.mu.Lock()
	l := d.fw.cur
	if l == nil {
		l = d.fw.target
	}
	s.mu.Unlock()
	if l != nil {
		l.RequestKeyframe(now)
	}
}

// setTarget points the forwarder at layer l. A viewer that has not started
// starts from the layer's cached keyframe when it is recent enough;
// otherwise, and for a switch, a keyframe is requested.
func (d *DownTrack) setTarget(l *Layer, now int64) {
	if d.fw.target == l {
		return
	}
	d.fw.target = l
	d.target.Store(l)
	if l == d.fw.cur {
		return
	}
	switch {
	case !d.fw.started || d.fw.cur == nil:
		if d.replayKeyframe(l, startAge(l), now) || d.replayLower(l, now) {
			return
		}
	case below(l, d.fw.cur):
		// Moving down, mostly on a congested path with the old layer
		// already held back: a keyframe another viewer's switch asked for
		// moments ago serves this one too, where a request would wait out
		// the keyframe interval that request started.
		age := min(d.sub.stream.reg.cfg.KeyframeCache.Nanoseconds(), switchReplay)
		if d.replayKeyframe(l, age, now) {
			return
		}
	}
	l.RequestKeyframe(now)
}

// below reports whether l is a lower layer of cur's track.
func below(l, cur *Layer) bool {
	if l.track != cur.track {
		return false
	}
	layers := l.track.Layers() // low to high
	return slices.Index(layers, l) < slices.Index(layers, cur)
}

// replayLower starts a new viewer of a GOPSource from the cached GOP of a
// layer under l when l's own is too long to replay (an encoder's GOP of
// seconds, passed through, over the transcoder's short ones): the viewer
// moves up to l at its next keyframe.
func (d *DownTrack) replayLower(l *Layer, now int64) bool {
	if !l.pub.fromGOP() {
		return false
	}
	layers := l.track.Layers() // low to high
	i := slices.Index(layers, l)
	for j := i - 1; j >= 0; j-- {
		d.fw.target = layers[j]
		ok := d.replayKeyframe(layers[j], maxGOPReplay, now)
		d.fw.target = l
		if ok {
			return true
		}
	}
	return false
}

// maxReplay bounds a start-up replay, in packets; maxGOPReplay the age of
// a GOPSource's keyframe a viewer starts from. switchReplay is the oldest
// keyframe a viewer moving down starts from: its frames are older than the
// old layer's last, so the new layer's timestamps continue the old ones
// rather than follow the capture clock, and the video runs up to this much
// behind its audio (in the sender reports, which let a player re-sync) —
// less than the 90 ms of audio lead viewers accept (ITU-R BT.1359).
const (
	maxReplay    = 256
	maxGOPReplay = 10 * second
	switchReplay = 80 * millisecond
)

// startAge is the oldest keyframe of l a starting viewer is sent.
func startAge(l *Layer) int64 {
	if l.pub.fromGOP() {
		return maxGOPReplay // the source cannot be asked: its last GOP, however old
	}
	return l.track.stream.reg.cfg.KeyframeCache.Nanoseconds()
}

// replayKeyframe sends the layer's last keyframe and everything after it
// from the cache, if the keyframe is no older than age and the cache
// still holds it. A packet missing from the cache (still being repaired
// upstream) is skipped: the viewer asks for it and gets it from the cache.
func (d *DownTrack) replayKeyframe(l *Layer, age, now int64) bool {
	at := l.keyAt.Load()
	if age == 0 || at == 0 || now-at > age {
		return false
	}
	start, head := uint16(l.keySeq.Load()), uint16(l.headSeq.Load())
	n := int(head-start) + 1
	if n > maxReplay || n > len(l.ring.slots)/2 {
		return false
	}
	p := &d.sub.copied
	for i := range n {
		if !l.copyPacket(start+uint16(i), p) {
			if i == 0 {
				return false
			}
			continue
		}
		r := d.fw.forward(l, p)
		if r.reason != forwarded {
			continue
		}
		if r.switched {
			d.cur.Store(l)
			if l.codec != d.codec {
				d.selectCodec(l.codec)
			}
		}
		d.send(p, r.seq, r.ts, r.pidOff, r.tl0Off, now, false)
	}
	if d.fw.cur == l {
		l.replays.Add(1)
	}
	return d.fw.cur == l
}

// allocate picks the video layer that fits budget bits per second and the
// viewer's preferences, with headroom for going up and a backoff for layers
// that just failed. It returns the rate the layer above it would need
// when only the budget holds it back (0 otherwise): what to probe for.
func (d *DownTrack) allocate(budget float64, prefs Preferences, congestedAt, now int64) (want float64) {
	if d.track == nil {
		return 0
	}
	layers := d.track.Layers()
	if len(layers) == 0 {
		return 0
	}
	d.noteCongestion(congestedAt, now)

	var cands [MaxLayers]*Layer
	n := 0
	anyActive := false
	for _, l := range layers {
		if l.active(now) {
			anyActive = true
		}
	}
	pinned := false
	if prefs.RID != "" {
		for _, l := range layers {
			if l.rid == prefs.RID && (l.active(now) || !anyActive) {
				pinned = true
				cands[0], n = l, 1
			}
		}
	}
	if !pinned {
		for _, l := range layers {
			if anyActive && !l.active(now) {
				continue
			}
			if d.fw.cur == nil && l.paused.Load() {
				continue // a viewer starting takes a layer that is sent now
			}
			if n > 0 && !fitsSize(l, prefs) {
				continue
			}
			cands[n] = l
			n++
		}
	}
	if n == 0 {
		return 0
	}
	best := cands[0]
	curIdx := -1
	for i := range n {
		if cands[i] == d.fw.cur {
			curIdx = i
		}
	}
	for i := 1; i < n && !pinned; i++ {
		l := cands[i]
		br := float64(l.stats.bitrate.Load())
		need := br
		if i > curIdx {
			need *= upHeadroom
		}
		if l == d.blocked && now < d.blockedUntil {
			break
		}
		if br != 0 && need > budget {
			want = br * upHeadroom
			break
		}
		best = l
	}
	if best == d.fw.target {
		return want
	}
	i := indexOf(cands[:n], best)
	switch {
	case curIdx >= 0 && i > curIdx:
		d.upTo, d.upAt = best, now
	case curIdx >= 0 && i < curIdx && congestedAt != 0 && now-congestedAt < second:
		d.leaveUntil = now + leaveWait
	}
	d.setTarget(best, now)
	return want
}

// leaveWait bounds how long a congested viewer waits, without its old
// layer, for the new one's keyframe; the old layer resumes after it.
const leaveWait = 2 * second

// noteCongestion blames congestion that follows soon after an up-switch on
// that switch, and holds the layer back for a growing while.
func (d *DownTrack) noteCongestion(congestedAt, now int64) {
	if d.upTo == nil {
		return
	}
	switch {
	case congestedAt > d.upAt && congestedAt-d.upAt < upProbeWindow:
		d.backoff = min(max(d.backoff*2, backoffMin), backoffMax)
		d.blocked, d.blockedUntil = d.upTo, now+d.backoff
		d.upTo = nil
	case now-d.upAt > backoffForget:
		d.backoff = 0
		d.upTo = nil
	}
}

func fitsSize(l *Layer, p Preferences) bool {
	w, h := int(l.stats.width.Load()), int(l.stats.height.Load())
	if p.MaxHeight > 0 && h > p.MaxHeight {
		return false
	}
	return p.MaxWidth <= 0 || w <= p.MaxWidth
}

func indexOf(ls []*Layer, l *Layer) int {
	for i, x := range ls {
		if x == l {
			return i
		}
	}
	return -1
}

// SenderReport returns the RTCP sender report for this down track at time
// now, built from the publisher's own report on the current layer mapped
// through the forwarder's timestamp offset, so audio and video stay in sync
// after switches. wallNTP is the wall clock, used when the publisher sent no
// report yet.
func (d *DownTrack) SenderReport(now int64, wallNTP uint64) (rtcp.SenderReport, bool) {
	s := d.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &d.fw
	if d.w == nil || !f.started || f.cur == nil {
		return rtcp.SenderReport{}, false
	}
	sr := rtcp.SenderReport{
		SSRC:        d.ssrc,
		PacketCount: uint32(d.packets.Load()),
		OctetCount:  uint32(d.bytes.Load()),
	}
	if psr := f.cur.senderReport(); psr != nil {
		elapsed := now - psr.at
		sr.NTPTime = ntpAdd(psr.ntp, elapsed)
		sr.RTPTime = psr.rtp + uint32(elapsed*int64(f.clockRate)/second) + f.current().tsOff
	} else {
		elapsed := max(now-f.lastOutAt, 0)
		sr.NTPTime = wallNTP
		sr.RTPTime = f.lastOutTS + uint32(elapsed*int64(f.clockRate)/second)
	}
	return sr, true
}

// DownTrackInfo is a snapshot of a down track.
type DownTrackInfo struct {
	Kind        string `json:"kind"`
	Codec       string `json:"codec"`
	Layer       string `json:"layer"`
	Target      string `json:"target"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	Bitrate     uint64 `json:"bitrate"`
	Packets     uint64 `json:"packets"`
	Retransmits uint64 `json:"retransmits"`
	// RetransmitsRefused counts NACKed packets past the viewer's budget.
	RetransmitsRefused uint64 `json:"retransmits_refused,omitempty"`
	Dropped            uint64 `json:"dropped"`
}

func (d *DownTrack) infoLocked() DownTrackInfo {
	in := DownTrackInfo{
		Kind:               d.kind.String(),
		Codec:              d.codec.MimeType,
		Packets:            d.packets.Load(),
		Retransmits:        d.retransmits.Load(),
		RetransmitsRefused: d.rtxRefused.Load(),
		Dropped:            d.writeErrs.Load() + d.noCodec.Load(),
		Layer:              "-",
		Target:             "-",
	}
	if l := d.fw.cur; l != nil {
		in.Layer = l.rid
		in.Width, in.Height = int(l.stats.width.Load()), int(l.stats.height.Load())
		in.Bitrate = l.stats.bitrate.Load()
	}
	if l := d.fw.target; l != nil {
		in.Target = l.rid
	}
	return in
}
