package sfu

import (
	"slices"
	"sync"

	"github.com/pion/rtcp"
)

// Preferences are what a viewer asks of its video: a largest picture, or one
// pinned simulcast layer. The zero value means automatic.
type Preferences struct {
	MaxWidth  int    `json:"maxWidth,omitempty"`
	MaxHeight int    `json:"maxHeight,omitempty"`
	RID       string `json:"encodingId,omitempty"`
	// Skip is a broadcaster the viewer is not given in a slot: a page
	// that is itself on stage does not receive its own media. Fixed when
	// the viewer subscribes.
	Skip string `json:"-"`
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
	tracks  []*DownTrack // every slot's, audio then video
	slots   []slotState
	seatGen uint64
	skip    string // a broadcaster never seated (Preferences.Skip)
	onRoom  func()
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

// slotState is one of a viewer's slots: an audio and a video down track,
// and the participant they carry ("" while empty).
type slotState struct {
	audio, video *DownTrack
	part         string
}

// Slot is a snapshot of one slot: which broadcaster it shows.
type Slot struct {
	Index       int
	Participant string // "" while empty
	Audio       *DownTrack
	Video       *DownTrack
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

// DownTracks returns the subscriber's down tracks: each slot's audio,
// then its video.
func (s *Subscriber) DownTracks() []*DownTrack { return s.tracks }

// Slots returns which broadcaster each slot carries.
func (s *Subscriber) Slots() []Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Slot, len(s.slots))
	for i, sl := range s.slots {
		out[i] = Slot{Index: i, Participant: sl.part, Audio: sl.audio, Video: sl.video}
	}
	return out
}

// OnRoom sets a function called after the room changes as this viewer
// sees it: its slots (a guest came or left, or a viewer with few slots now
// shows a more recent speaker), the speaker, or what the host muted. It
// runs on whichever goroutine changed the room and must not block.
func (s *Subscriber) OnRoom(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRoom = fn
}

// seat refills the slots from seats, ranked participants, reruns the
// allocation (the speaker or a mute may have changed) and calls OnRoom's
// function, unless a newer reseat already ran.
func (s *Subscriber) seat(gen uint64, seats []seat, now int64) {
	s.mu.Lock()
	if s.closed || gen < s.seatGen {
		s.mu.Unlock()
		return
	}
	s.seatLocked(gen, seats)
	s.allocateLocked(now)
	fn := s.onRoom
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// seatLocked gives the slots to the first participants of seats, as many
// as there are slots: a participant keeps the slot it has, one no longer
// among them leaves its slot, and a newcomer takes the first empty one.
func (s *Subscriber) seatLocked(gen uint64, seats []seat) {
	s.seatGen = gen
	if s.skip != "" {
		seats = slices.DeleteFunc(slices.Clone(seats), func(st seat) bool { return st.id == s.skip })
	}
	want := seats[:min(len(seats), len(s.slots))]
	wanted := func(id string) bool {
		return slices.ContainsFunc(want, func(st seat) bool { return st.id == id })
	}
	for i := range s.slots {
		if sl := &s.slots[i]; sl.part != "" && !wanted(sl.part) {
			s.fillLocked(sl, seat{})
		}
	}
	for _, st := range want {
		if s.slotOfLocked(st.id) >= 0 {
			continue
		}
		if i := s.slotOfLocked(""); i >= 0 {
			s.fillLocked(&s.slots[i], st)
		}
	}
}

// slotOfLocked returns the index of the slot carrying participant id (""
// for the first empty one), or -1.
func (s *Subscriber) slotOfLocked(id string) int {
	for i := range s.slots {
		if s.slots[i].part == id {
			return i
		}
	}
	return -1
}

// fillLocked points a slot's down tracks at st's tracks (none for the
// zero seat).
func (s *Subscriber) fillLocked(sl *slotState, st seat) {
	sl.part = st.id
	sl.audio.rebindLocked(st.audio)
	sl.video.rebindLocked(st.video)
}

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
	// Sinks join under the lock, so a reseat in between cannot leave a
	// down track on a track it no longer carries.
	s.started = true
	for _, d := range s.tracks {
		if d.w != nil && d.track != nil {
			d.track.AddSink(d)
		}
	}
	s.allocateLocked(now)
	s.mu.Unlock()
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
	for _, d := range s.tracks {
		if d.track != nil {
			d.track.RemoveSink(d)
		}
	}
	s.mu.Unlock()
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
// first, then the active speaker's video (all but the lowest layers of the
// other tiles), then the other video tracks share what is left.
func (s *Subscriber) allocateLocked(now int64) {
	if !s.started || s.closed {
		return
	}
	est := float64(s.bwe.estimate())
	audio := 0.0
	var videos [MaxBroadcasters]*DownTrack
	nv := 0
	speaker := s.stream.speakerVideo.Load()
	for _, d := range s.tracks {
		switch {
		case d.w == nil:
		case d.track == nil || d.track.muted.Load() || !d.canCarryLocked():
			d.pauseLocked()
		case d.kind == KindAudio:
			if ls := d.track.Layers(); len(ls) > 0 {
				d.setTarget(ls[0], now)
				audio += float64(ls[0].stats.bitrate.Load())
			}
		default:
			videos[nv] = d
			if d.track == speaker {
				videos[0], videos[nv] = d, videos[0]
			}
			nv++
		}
	}
	if nv == 0 {
		return
	}
	budget := est - audio
	lead := nv > 1 && videos[0].track == speaker
	var want, sending float64 // video rates: what the layers above would need, and what goes out
	for i, d := range videos[:nv] {
		share := budget / float64(nv-i)
		if lead && i == 0 {
			share = budget - lowestRates(videos[1:nv])
		}
		w := d.allocate(share, s.prefs, s.bwe.congestedAt, now)
		rate := 0.0
		if l := d.fw.target; l != nil {
			rate = float64(l.stats.bitrate.Load())
		}
		budget -= rate
		sending += rate
		want += max(w, rate)
	}
	// Before going up, test the path at the rate the next layer needs: a
	// probe the path carries raises the estimate to it, one it does not
	// costs a short burst instead of a failed switch.
	if want > sending && want > est-audio {
		// One step at a time: at most probeStep above the estimate, so a
		// probe into a path that is still full adds little to its queue.
		target := min(want+audio, est*probeStep)
		s.bwe.startProbe(target, target-sending-audio, now)
	}
}

// lowestRates sums the bitrates of the lowest layers of ds' tracks.
func lowestRates(ds []*DownTrack) float64 {
	sum := 0.0
	for _, d := range ds {
		if ls := d.track.Layers(); len(ls) > 0 {
			sum += float64(ls[0].stats.bitrate.Load())
		}
	}
	return sum
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
		if d.kind != KindVideo || !f.started || !live {
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
