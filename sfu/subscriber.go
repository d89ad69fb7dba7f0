package sfu

import (
	"sync"

	"github.com/pion/rtcp"
)

// Preferences are what a viewer asks of its video: a largest picture, or one
// pinned simulcast layer. The zero value means automatic.
type Preferences struct {
	MaxWidth  int    `json:"maxWidth,omitempty"`
	MaxHeight int    `json:"maxHeight,omitempty"`
	RID       string `json:"encodingId,omitempty"`
}

// Subscriber is one viewer session: a down track per track it watches, one
// bandwidth estimate, one transport-wide sequence space. Its mutex guards all
// of that; packets for one viewer are written under it, so a viewer's writes
// are ordered and never contend with another viewer's.
type Subscriber struct {
	id     string
	stream *Stream
	lane   int // the fan-out lane its packets and jobs run on

	mu      sync.Mutex
	tracks  []*DownTrack
	twccSeq uint16
	bwe     estimator
	// Scratch space for any of the viewer's down tracks, under mu: a
	// payload with a rewritten picture id, a packet copied from a cache.
	scratch [MaxPacketSize]byte
	copied  Packet
	prefs   Preferences
	// The retransmit budget, in bytes, and when it was last topped up.
	rtxTokens float64
	rtxAt     int64
	started   bool
	closed    bool
	onClose   func(reason error)
}

func newSubscriber(r *Stream, id string) *Subscriber {
	return &Subscriber{id: id, stream: r, lane: r.reg.pickLane(), bwe: newEstimator(r.reg.cfg)}
}

// Post runs j on the subscriber's lane, in order with the packets the lane
// delivers to it; with no lanes, at once on the caller's goroutine.
func (s *Subscriber) Post(j Job) {
	if lanes := s.stream.reg.lanes; len(lanes) > 0 {
		lanes[s.lane].post(j)
		return
	}
	j.RunJob()
}

// Lane returns the fan-out lane the subscriber's packets and jobs run on
// (0 with no lanes): a transport that sends from one socket per lane
// picks its socket by it.
func (s *Subscriber) Lane() int { return s.lane }

// ID returns the session id the subscriber was created with.
func (s *Subscriber) ID() string { return s.id }

// Stream returns the stream watched.
func (s *Subscriber) Stream() *Stream { return s.stream }

// DownTracks returns the subscriber's audio and video down tracks.
func (s *Subscriber) DownTracks() []*DownTrack { return s.tracks }

// OnClose sets a function called once when the subscriber ends, with the
// reason (ErrNotLive when the stream ended). Set it before Start.
func (s *Subscriber) OnClose(fn func(reason error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onClose = fn
}

// Start begins forwarding to every bound down track. Call it once the
// transport can carry media, so the first packet a viewer gets is the
// keyframe it starts from.
//
// The down tracks join their tracks before their first layers are chosen:
// a packet arriving in between is filtered out but already cached, so a
// viewer started from the cached keyframe misses nothing.
func (s *Subscriber) Start(now int64) {
	s.mu.Lock()
	if s.started || s.closed {
		s.mu.Unlock()
		return
	}
	var bound []*DownTrack
	for _, d := range s.tracks {
		if d.w != nil {
			bound = append(bound, d)
		}
	}
	s.mu.Unlock()
	for _, d := range bound {
		d.track.AddSink(d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.started = true
	s.allocateLocked(now)
}

// Close ends the subscriber and calls the OnClose function. It is safe to
// call more than once and from any goroutine.
func (s *Subscriber) Close(reason error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	fn := s.onClose
	if s.bwe.ext != nil {
		s.bwe.ext.Close()
	}
	s.mu.Unlock()
	for _, d := range s.tracks {
		d.track.RemoveSink(d)
	}
	s.stream.removeSubscriber(s)
	if fn != nil {
		fn(reason)
	}
}

// Closed reports whether the subscriber has ended.
func (s *Subscriber) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// SetPreferences changes what the viewer asks of its video.
func (s *Subscriber) SetPreferences(p Preferences, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prefs = p
	s.allocateLocked(now)
}

// OnTransportCC feeds transport-wide congestion control feedback.
func (s *Subscriber) OnTransportCC(fb *rtcp.TransportLayerCC, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bwe.onTWCC(fb, now)
	s.allocateLocked(now)
}

// OnREMB feeds a receiver estimated maximum bitrate.
func (s *Subscriber) OnREMB(bps float32, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bwe.onREMB(float64(bps), now)
	s.allocateLocked(now)
}

// OnReceiverReport feeds a receiver report block about down track d.
func (s *Subscriber) OnReceiverReport(fractionLost uint8, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rate float64
	for _, d := range s.tracks {
		if l := d.fw.cur; l != nil {
			rate += float64(l.stats.bitrate.Load())
		}
	}
	s.bwe.onLoss(fractionLost, rate, now)
	s.allocateLocked(now)
}

// Estimate returns the viewer's bandwidth estimate in bits per second.
func (s *Subscriber) Estimate() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bwe.estimate()
}

func (s *Subscriber) reallocate(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocateLocked(now)
}

// tick re-runs allocation and repeats keyframe requests a waiting down
// track still needs (the core coalesces them per layer).
func (s *Subscriber) tick(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocateLocked(now)
	for _, d := range s.tracks {
		if t := d.fw.target; t != nil && (t != d.fw.cur || !d.fw.started) {
			t.RequestKeyframe(now)
		}
	}
}

// allocateLocked splits the estimate between the viewer's tracks: audio
// first, the rest shared by the video tracks.
func (s *Subscriber) allocateLocked(now int64) {
	if !s.started || s.closed {
		return
	}
	budget := float64(s.bwe.estimate())
	videos := 0
	for _, d := range s.tracks {
		if d.w == nil {
			continue
		}
		if d.track.kind == KindAudio {
			ls := d.track.Layers()
			if len(ls) > 0 {
				d.setTarget(ls[0], now)
				budget -= float64(ls[0].stats.bitrate.Load())
			}
			continue
		}
		videos++
	}
	if videos == 0 {
		return
	}
	share := budget / float64(videos)
	var want, sending float64 // video rates: what the layers above would need, and what goes out
	for _, d := range s.tracks {
		if d.w == nil || d.track.kind != KindVideo {
			continue
		}
		w := d.allocate(share, s.prefs, s.bwe.congestedAt, now)
		rate := 0.0
		if l := d.fw.target; l != nil {
			rate = float64(l.stats.bitrate.Load())
		}
		sending += rate
		want += max(w, rate)
	}
	// Before going up, test the path at the rate the next layer needs: a
	// probe the path carries raises the estimate to it, one it does not
	// costs a short burst instead of a failed switch.
	if audio := float64(s.bwe.estimate()) - budget; want > sending && want > budget {
		// One step at a time: at most probeStep above the estimate, so a
		// probe into a path that is still full adds little to its queue.
		target := min(want+audio, float64(s.bwe.estimate())*probeStep)
		s.bwe.startProbe(target, target-sending-audio, now)
	}
}

// SubscriberInfo is a snapshot of a viewer session.
type SubscriberInfo struct {
	ID       string          `json:"id"`
	Estimate uint64          `json:"estimate"`
	Tracks   []DownTrackInfo `json:"tracks"`
}

// Clock maps this viewer's video RTP timestamps to stream time: the last
// video packet sent carried timestamp rtp and arrived st milliseconds into
// the stream. A player turns the timestamp of the frame it shows into the
// stream time the viewer is watching. ok is false before the first packet.
func (s *Subscriber) Clock() (rtp uint32, st int64, clockRate uint32, ok bool) {
	s.stream.mu.Lock()
	since, live := s.stream.liveSince, s.stream.stateLocked() != StateOffline
	s.stream.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.tracks {
		f := &d.fw
		if d.track.kind != KindVideo || !f.started || !live {
			continue
		}
		return f.lastOutTS, (f.lastOutAt - since) / millisecond, f.clockRate, true
	}
	return 0, 0, 0, false
}

// Info returns a snapshot of the subscriber.
func (s *Subscriber) Info() SubscriberInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := SubscriberInfo{ID: s.id, Estimate: s.bwe.estimate()}
	for _, d := range s.tracks {
		in.Tracks = append(in.Tracks, d.infoLocked())
	}
	return in
}
