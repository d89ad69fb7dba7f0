package sfu

import (
	"sync/atomic"

	"github.com/glintlive/glint/internal/codec"
)

// Source is what publishes into a Publication: a WebRTC publisher, a relay
// from another node, a test. The core calls it to ask for keyframes and to
// end it when another publisher takes over. Neither call may block.
type Source interface {
	// RequestKeyframe asks the sender of l for a keyframe (PLI or FIR).
	// Requests are already coalesced by the core.
	RequestKeyframe(l *Layer)
	// Close ends the source, for example when a new publisher takes over.
	// It may call back into the core.
	Close() error
}

// GOPSource is a Source that cannot send a keyframe when asked (an RTMP
// or SRT encoder): a new viewer starts from its layer's last keyframe and
// the frames since, however old (up to 10 s), sent at once, rather than
// wait for the next keyframe.
type GOPSource interface {
	Source
	StartsFromGOP() bool
}

// fromGOP reports whether the publication's viewers start from its GOP.
func (p *Publication) fromGOP() bool {
	g, ok := p.src.(GOPSource)
	return ok && g.StartsFromGOP()
}

// senderReport is the publisher's last RTCP sender report on a layer: the
// NTP time that RTP timestamp rtp was sampled at, and when it arrived.
type senderReport struct {
	ntp uint64
	rtp uint32
	at  int64
}

// Layer is one encoding a publisher sends on a track: a simulcast layer
// (rid), or the only encoding of a plain publisher. It owns the packet cache
// and hands every packet to the lanes that serve the track's sinks (or, with
// no lanes, to the sinks themselves on the ingest goroutine).
type Layer struct {
	track *Track
	pub   *Publication
	rid   string
	codec Codec
	kind  codec.Kind
	exts  ExtIDs
	ring  ring

	// Ingest-goroutine state.
	lastKeyTS uint32
	haveKey   bool

	ssrc atomic.Uint32
	sr   atomic.Pointer[senderReport]

	lastKeyReq atomic.Int64 // last keyframe request sent upstream
	// lastWanted is when a viewer was last on or bound for the layer (or
	// another sink took it); since when it was added. paused is set while
	// the publisher was told to stop sending it.
	lastWanted, since, resumed atomic.Int64
	paused                     atomic.Bool
	keySeq                     atomic.Uint32 // sequence number of the last keyframe's first packet
	keyAt                      atomic.Int64  // its arrival; 0 before the first keyframe
	headSeq                    atomic.Uint32 // newest sequence number stored
	keyReqs                    atomic.Uint64
	replays                    atomic.Uint64 // viewers started from the cached keyframe
	gone                       atomic.Bool

	stats layerStats
}

// RID returns the layer's RTP stream id ("" for a single-encoding publisher).
func (l *Layer) RID() string { return l.rid }

// Codec returns the codec the publisher sends on this layer.
func (l *Layer) Codec() Codec { return l.codec }

// Track returns the track this layer belongs to.
func (l *Layer) Track() *Track { return l.track }

// SSRC returns the publisher's SSRC for this layer, once a packet arrived.
func (l *Layer) SSRC() uint32 { return l.ssrc.Load() }

// Ingest ingests one RTP packet from the publisher: it is stored once in
// the layer's cache and handed to every subscriber of the track. now is the
// arrival time in Now() units. A malformed packet is counted and dropped.
func (l *Layer) Ingest(b []byte, now int64) error {
	if l.gone.Load() {
		return ErrPublicationEnded
	}
	if l.track.muted.Load() {
		// Muted for everyone: not cached, so not even a retransmission
		// lets it out. The layer still counts as sending.
		l.stats.lastArrival.Store(now)
		return nil
	}
	p, err := l.ring.put(b, &l.exts, l.kind, now)
	if err != nil {
		l.stats.malformed.Add(1)
		l.track.stream.reg.malformed.Add(1)
		return err
	}
	if p == nil {
		l.stats.duplicates.Add(1)
		return nil
	}
	if l.ssrc.Load() != p.SSRC {
		l.ssrc.Store(p.SSRC)
	}
	if head := uint16(l.headSeq.Load()); int16(p.SequenceNumber-head) > 0 || l.stats.packets.Load() == 0 {
		l.headSeq.Store(uint32(p.SequenceNumber))
	}
	if p.Keyframe && l.track.kind == KindVideo {
		l.noteKeyframe(p)
	}
	if lvl, ok := p.AudioLevel(); ok {
		l.track.loudSum.Add(int64(127 - lvl))
		l.track.loudN.Add(1)
	}
	l.stats.onPacket(p)
	reg := l.track.stream.reg
	all := *l.track.sinks.Load()
	if len(reg.lanes) == 0 {
		// No lanes: every viewer is served here, one after another.
		if len(all) > 0 && len(all[0]) > 0 {
			for _, s := range all[0] {
				s.Deliver(l, p)
			}
			reg.fanout.Observe(Now() - p.Arrival)
		}
		return nil
	}
	for i, sinks := range all {
		if len(sinks) > 0 {
			reg.lanes[i].push(l, p)
		}
	}
	return nil
}

// noteKeyframe keeps one keyframe mark per frame and reads the picture size.
func (l *Layer) noteKeyframe(p *Packet) {
	if l.haveKey && p.Timestamp == l.lastKeyTS {
		p.Keyframe = false // an IDR after its SPS in the same frame
		return
	}
	l.haveKey, l.lastKeyTS = true, p.Timestamp
	l.keySeq.Store(uint32(p.SequenceNumber))
	l.keyAt.Store(p.Arrival)
	l.stats.keyframes.Add(1)
	l.stats.lastKeyframe.Store(p.Arrival)
	if w, h, ok := codec.PictureSize(l.kind, p.Payload()); ok {
		l.stats.width.Store(uint32(w))
		l.stats.height.Store(uint32(h))
	}
}

// IngestSenderReport records the publisher's RTCP sender report for this
// layer (RFC 3550 §6.4.1); forwarders use it to keep lip sync on switches.
func (l *Layer) IngestSenderReport(ntp uint64, rtpTS uint32, now int64) {
	l.sr.Store(&senderReport{ntp: ntp, rtp: rtpTS, at: now})
}

func (l *Layer) senderReport() *senderReport { return l.sr.Load() }

// RequestKeyframe asks the publisher for a keyframe on this layer, unless one
// was asked for within the coalescing interval. It reports whether a request
// went upstream.
func (l *Layer) RequestKeyframe(now int64) bool {
	if l.gone.Load() {
		return false
	}
	interval := l.track.stream.reg.cfg.KeyframeInterval.Nanoseconds()
	for {
		last := l.lastKeyReq.Load()
		if last != 0 && now-last < interval {
			return false
		}
		if l.lastKeyReq.CompareAndSwap(last, now) {
			break
		}
	}
	l.keyReqs.Add(1)
	l.pub.src.RequestKeyframe(l)
	return true
}

// active reports whether the layer received media recently. Publishers pause
// layers they cannot afford; allocation skips them.
func (l *Layer) active(now int64) bool {
	if l.gone.Load() {
		return false
	}
	if r := l.resumed.Load(); l.paused.Load() || r != 0 && now-r < resumeWait {
		return true // stopped because nobody watched: it comes back when wanted
	}
	last := l.stats.lastArrival.Load()
	return last != 0 && now-last < 1500*millisecond
}

// copyPacket copies a cached packet for retransmission.
func (l *Layer) copyPacket(seq uint16, dst *Packet) bool {
	return l.ring.copyOut(seq, dst)
}
