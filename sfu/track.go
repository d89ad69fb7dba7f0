package sfu

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Sink receives every packet of a track, on the ingest goroutine of the
// packet's layer. Viewers' down tracks are sinks; so are a relay to another
// node and the HLS bridge. Deliver must not block, and p is valid only for
// the duration of the call.
type Sink interface {
	Deliver(l *Layer, p *Packet)
}

// Track is one media slot of a participant: its audio or its video. It
// outlives publisher connections: when a publisher reconnects, its new layers
// attach to the same Track and viewers continue on their down tracks.
type Track struct {
	stream      *Stream
	participant string
	kind        Kind

	mu        sync.Mutex // serialises changes to layers and sinks
	layers    atomic.Pointer[[]*Layer]
	sinks     atomic.Pointer[[][]Sink] // per lane
	announced atomic.Pointer[Codec]    // negotiated before the first packet
	muted     atomic.Bool              // the host muted it for everyone
	// Audio loudness since the last tick: the sum of 127 minus each
	// packet's RFC 6464 level, and how many packets carried one.
	loudSum, loudN atomic.Int64
}

func newTrack(r *Stream, participant string, kind Kind) *Track {
	t := &Track{stream: r, participant: participant, kind: kind}
	t.layers.Store(&[]*Layer{})
	t.sinks.Store(&[][]Sink{})
	return t
}

// Muted reports whether the host muted the track for everyone.
func (t *Track) Muted() bool { return t.muted.Load() }

// loudness returns the average loudness (127 minus the level in -dBov)
// since it was last called, 0 with no levels.
func (t *Track) loudness() int64 {
	n := t.loudN.Swap(0)
	sum := t.loudSum.Swap(0)
	if n <= 0 {
		return 0
	}
	return sum / n
}

// Kind returns the track's media kind.
func (t *Track) Kind() Kind { return t.kind }

// ID returns the track id used in SDP, e.g. "host-video".
func (t *Track) ID() string { return t.participant + "-" + t.kind.String() }

// Stream returns the stream the track belongs to.
func (t *Track) Stream() *Stream { return t.stream }

// Layers returns the current publication's layers, lowest quality first.
func (t *Track) Layers() []*Layer { return *t.layers.Load() }

// Codec returns the codec of the current publication, if any: the codec of
// its layers, or the one negotiated before its first packet arrived.
func (t *Track) Codec() (Codec, bool) {
	if ls := t.Layers(); len(ls) > 0 {
		return ls[0].codec, true
	}
	if c := t.announced.Load(); c != nil {
		return *c, true
	}
	return Codec{}, false
}

// AddSink subscribes s to every packet of the track. A sink that says
// which lane it belongs to (a viewer's down track) is delivered to there;
// others are spread over the lanes.
func (t *Track) AddSink(s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	reg := t.stream.reg
	var lane int
	if ld, ok := s.(laned); ok {
		lane = ld.lane()
	} else {
		lane = reg.pickLane()
	}
	old := *t.sinks.Load()
	for _, ls := range old {
		if slices.Contains(ls, s) {
			return
		}
	}
	next := make([][]Sink, max(len(old), reg.lanesCount()))
	copy(next, old)
	next[lane] = append(slices.Clip(next[lane]), s)
	t.sinks.Store(&next)
}

// RemoveSink unsubscribes s.
func (t *Track) RemoveSink(s Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.sinks.Load()
	for lane, ls := range old {
		if i := slices.Index(ls, s); i >= 0 {
			next := slices.Clone(old)
			next[lane] = slices.Delete(slices.Clone(ls), i, i+1)
			t.sinks.Store(&next)
			return
		}
	}
}

// attach adds a layer of publication pub, replacing layers of any earlier
// publication.
func (t *Track) attach(l *Layer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next []*Layer
	for _, o := range *t.layers.Load() {
		if o.pub == l.pub {
			next = append(next, o)
		}
	}
	next = append(next, l)
	sortLayers(next)
	t.layers.Store(&next)
}

// detach removes every layer of publication pub.
func (t *Track) detach(pub *Publication) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(*t.layers.Load()), func(l *Layer) bool { return l.pub == pub })
	t.layers.Store(&next)
}

// tick updates layer rates and re-sorts layers once sizes and bitrates are
// known.
func (t *Track) tick(now int64) {
	if t.kind == KindVideo {
		t.markWanted(now)
	}
	if t.muted.Load() {
		// Nothing arrives: the rates stay as they were for the unmute,
		// and no keyframe is asked for.
		return
	}
	ls := t.Layers()
	for _, l := range ls {
		if l.paused.Load() {
			continue // not sent: its rate stays what it was, for allocation
		}
		l.stats.tick(now)
		// A layer that sends but never sent a keyframe can neither be
		// switched to nor sized (maxHeight needs its height): ask once per
		// coalescing interval until it does.
		if t.kind == KindVideo && l.stats.keyframes.Load() == 0 && l.active(now) {
			l.RequestKeyframe(now)
		}
	}
	if len(ls) < 2 {
		return
	}
	sorted := slices.Clone(ls)
	sortLayers(sorted)
	if slices.Equal(sorted, ls) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.layers.Load()
	sorted = slices.Clone(cur)
	sortLayers(sorted)
	t.layers.Store(&sorted)
}

// sortLayers orders layers from lowest to highest quality: by picture height
// when both are known, else by bitrate, else by the conventional rid names.
func sortLayers(ls []*Layer) {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.rid
	}
	slices.SortStableFunc(ls, func(a, b *Layer) int {
		ha, hb := a.stats.height.Load(), b.stats.height.Load()
		if ha != 0 && hb != 0 && ha != hb {
			return int(ha) - int(hb)
		}
		ba, bb := a.stats.bitrate.Load(), b.stats.bitrate.Load()
		if ba != 0 && bb != 0 && (ba > bb*3/2 || bb > ba*3/2) {
			if ba < bb {
				return -1
			}
			return 1
		}
		return ridRank(a.rid, names) - ridRank(b.rid, names)
	})
}

// ridRank guesses a layer's rank from its rid when nothing was measured yet:
// l/m/h, q/h/f, low/mid/high, or digits.
func ridRank(rid string, all []string) int {
	switch rid {
	case "q", "l", "low", "quarter":
		return 0
	case "m", "mid", "medium", "half":
		return 1
	case "h":
		if slices.Contains(all, "f") {
			return 1
		}
		return 2
	case "f", "high", "full":
		return 2
	}
	if len(rid) == 1 && rid[0] >= '0' && rid[0] <= '9' {
		return int(rid[0] - '0')
	}
	return 1
}
