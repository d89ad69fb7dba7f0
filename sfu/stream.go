package sfu

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/glintlive/glint/internal/codec"
)

// State is a stream's broadcast state.
type State uint8

// Stream states.
const (
	// StateOffline: nobody is publishing.
	StateOffline State = iota
	// StateLive: the host is publishing.
	StateLive
	// StateReconnecting: the host's connection dropped; viewers wait for it
	// to return until the reconnect grace period ends.
	StateReconnecting
)

func (s State) String() string {
	switch s {
	case StateLive:
		return "live"
	case StateReconnecting:
		return "reconnecting"
	}
	return "offline"
}

// HostID is the participant id of a stream's main publisher.
const HostID = "host"

// participant is a publishing slot in a stream: the host now, Live Room guests
// later. Its tracks persist across publisher connections.
type participant struct {
	id     string
	name   string // a guest's display name
	audio  *Track
	video  *Track
	pub    *Publication // current publication, nil when none
	lostAt int64        // when pub's connection dropped; 0 while connected
	joined int64        // when a guest joined, for the order of tiles
	spoke  int64        // when it last spoke, for viewers with few slots
}

// Stream is one stream: its participants' tracks and its viewers.
type Stream struct {
	name string
	reg  *Registry

	mu        sync.Mutex
	parts     map[string]*participant
	subs      map[*Subscriber]struct{}
	liveSince int64
	changed   chan struct{} // closed at the next lifecycle event
	speaker   string        // the participant speaking now, or ""
	// speakerVideo is the speaker's video track, read by allocation
	// without the stream's lock.
	speakerVideo atomic.Pointer[Track]
	seatGen      uint64 // counts reseats, so a stale one is ignored
}

func newStream(reg *Registry, name string) *Stream {
	r := &Stream{name: name, reg: reg, parts: map[string]*participant{}, subs: map[*Subscriber]struct{}{}, changed: make(chan struct{})}
	r.participantLocked(HostID)
	return r
}

// Name returns the stream name.
func (r *Stream) Name() string { return r.name }

func (r *Stream) participantLocked(id string) *participant {
	p := r.parts[id]
	if p == nil {
		p = &participant{id: id, audio: newTrack(r, id, KindAudio), video: newTrack(r, id, KindVideo)}
		r.parts[id] = p
	}
	return p
}

// State returns the stream's broadcast state.
func (r *Stream) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked()
}

func (r *Stream) stateLocked() State {
	host := r.parts[HostID]
	switch {
	case host.pub == nil:
		return StateOffline
	case host.lostAt != 0:
		return StateReconnecting
	}
	return StateLive
}

// StreamTime returns how long the stream has been live, in milliseconds:
// the clock chat messages and the VOD are aligned to. ok is false while
// nobody publishes.
func (r *Stream) StreamTime(now int64) (ms int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stateLocked() == StateOffline {
		return 0, false
	}
	return (now - r.liveSince) / millisecond, true
}

// AlignStreamTime sets the live stream's clock so that now is ms into
// it: a relayed stream keeps its origin's clock, which chat and the VOD
// are aligned to on every node. It does nothing while the stream is
// offline.
func (r *Stream) AlignStreamTime(ms, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stateLocked() != StateOffline {
		r.liveSince = now - ms*millisecond
	}
}

// StartPublication makes src the publisher of participant id (HostID for the main
// publisher). A publisher already there is taken over: it is detached and
// closed. Viewers keep their sessions either way.
func (r *Stream) StartPublication(id string, src Source, now int64) *Publication {
	r.mu.Lock()
	kind := EventPublication
	p := r.participantLocked(id)
	if r.stateLocked() == StateOffline {
		r.liveSince = now
		kind = EventLive
		// A new broadcast: what the host muted in the last one is not.
		p.audio.muted.Store(false)
		p.video.muted.Store(false)
	}
	pub, old := r.publishLocked(p, src, kind, now)
	r.mu.Unlock()
	old.takenOver()
	return pub
}

// publishLocked makes src p's publisher, announcing it as kind. It returns
// the publication it replaced (nil if none), for the caller to close once
// the stream's lock is released.
func (r *Stream) publishLocked(p *participant, src Source, kind EventKind, now int64) (pub, old *Publication) {
	pub = &Publication{stream: r, src: src, part: p}
	old = p.pub
	p.pub, p.lostAt = pub, 0
	r.emitLocked(Event{Kind: kind, Participant: p.id, At: now})
	return pub, old
}

// Subscribe adds a viewer of the stream's host. It fails with ErrNotLive when
// nobody is publishing; while the host reconnects, viewers may still join.
func (r *Stream) Subscribe(id string) (*Subscriber, error) { return r.SubscribeSlots(id, 1, "") }

// SubscribeSlots adds a viewer with n slots (1 to MaxBroadcasters), each an
// audio and a video down track: the host fills the first, guests the
// others as they come (the most recent speakers when there are more
// guests than slots), never skip (the page's own broadcaster, if it is
// one). It fails with ErrNotLive when nobody is publishing.
func (r *Stream) SubscribeSlots(id string, n int, skip string) (*Subscriber, error) {
	n = min(max(n, 1), MaxBroadcasters)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stateLocked() == StateOffline {
		return nil, ErrNotLive
	}
	s := newSubscriber(r, id)
	s.skip = skip
	s.slots = make([]slotState, n)
	for i := range n {
		a, v := newDownTrack(s, KindAudio, i), newDownTrack(s, KindVideo, i)
		s.slots[i] = slotState{audio: a, video: v}
		s.tracks = append(s.tracks, a, v)
	}
	s.seatLocked(r.seatGen, r.seatsLocked())
	r.subs[s] = struct{}{}
	return s, nil
}

func (r *Stream) removeSubscriber(s *Subscriber) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, s)
}

// Viewers returns the number of subscribers.
func (r *Stream) Viewers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// Subscribers returns the stream's subscribers.
func (r *Stream) Subscribers() []*Subscriber {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Keys(r.subs))
}

// Tracks returns the host's audio and video tracks.
func (r *Stream) Tracks() (audio, video *Track) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.parts[HostID]
	return h.audio, h.video
}

// tick runs the stream's periodic work: layer rates, the end of the reconnect
// grace period, and each viewer's allocation.
func (r *Stream) tick(now int64) {
	r.mu.Lock()
	var tracks []*Track
	var expired []*Publication
	for _, p := range r.parts {
		tracks = append(tracks, p.audio, p.video)
		grace := r.reg.cfg.ReconnectGrace
		if p.id != HostID && r.reg.cfg.GuestGrace > 0 {
			grace = r.reg.cfg.GuestGrace
		}
		if p.pub != nil && p.lostAt != 0 && now-p.lostAt >= grace.Nanoseconds() {
			expired = append(expired, p.pub)
		}
	}
	spoke := r.listenLocked(now)
	r.mu.Unlock()
	for _, t := range tracks {
		t.tick(now)
	}
	r.pauseUnwatched(now)
	for _, pub := range expired {
		pub.End(now)
	}
	if spoke {
		r.reseat(now)
	}
	for _, s := range r.Subscribers() {
		s.tick(now)
	}
}

// ended forgets a publication that ended and, when it was the host's,
// ends every viewer session.
func (r *Stream) ended(pub *Publication, now int64) {
	r.mu.Lock()
	p := pub.part
	if p.pub != pub {
		r.mu.Unlock()
		return
	}
	p.pub, p.lostAt = nil, 0
	if r.speaker == p.id {
		r.setSpeakerLocked("")
	}
	r.emitLocked(Event{Kind: EventEnded, Participant: p.id, At: now})
	var subs []*Subscriber
	var guests []*Publication
	if p.id == HostID {
		// The room lives while the host does.
		subs = slices.Collect(maps.Keys(r.subs))
		for _, g := range r.parts {
			if g.pub != nil {
				guests = append(guests, g.pub)
			}
		}
	} else {
		delete(r.parts, p.id)
	}
	r.mu.Unlock()
	// Viewers first: kicked guests must not be reseated into the host's
	// slot on their way out.
	for _, s := range subs {
		s.Close(ErrNotLive)
	}
	for _, g := range guests {
		g.kick(now)
	}
	if p.id != HostID {
		r.reseat(now)
	}
}

func (r *Stream) lost(pub *Publication, now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pub.part.pub == pub && pub.part.lostAt == 0 {
		pub.part.lostAt = now
		r.emitLocked(Event{Kind: EventReconnecting, Participant: pub.part.id, At: now})
	}
}

// reallocate re-runs every viewer's layer allocation, after layers change.
func (r *Stream) reallocate(now int64) {
	for _, s := range r.Subscribers() {
		s.reallocate(now)
	}
}

// Info is a snapshot of a stream for the API.
type Info struct {
	Name      string     `json:"name"`
	State     string     `json:"state"`
	Viewers   int        `json:"viewers"`
	LiveFor   float64    `json:"live_seconds,omitempty"`
	Audio     *TrackInfo `json:"audio,omitempty"`
	Video     *TrackInfo `json:"video,omitempty"`
	Keyframes uint64     `json:"keyframe_requests"`
	// Broadcasters lists a room's host and guests while it is live.
	Broadcasters []Broadcaster `json:"broadcasters,omitempty"`
}

// TrackInfo is a snapshot of one track.
type TrackInfo struct {
	Codec  string      `json:"codec"`
	Layers []LayerInfo `json:"layers"`
}

// Info returns a snapshot of the stream.
func (r *Stream) Info(now int64) Info {
	r.mu.Lock()
	st := r.stateLocked()
	in := Info{Name: r.name, State: st.String(), Viewers: len(r.subs)}
	if st != StateOffline {
		in.LiveFor = float64(now-r.liveSince) / float64(second)
	}
	h := r.parts[HostID]
	r.mu.Unlock()
	in.Broadcasters = r.Broadcasters()
	for _, t := range []*Track{h.audio, h.video} {
		ls := t.Layers()
		if len(ls) == 0 {
			continue
		}
		ti := &TrackInfo{Codec: ls[0].codec.MimeType}
		for _, l := range ls {
			ti.Layers = append(ti.Layers, l.Info(now))
			in.Keyframes += l.keyReqs.Load()
		}
		if t.kind == KindAudio {
			in.Audio = ti
		} else {
			in.Video = ti
		}
	}
	return in
}

// Publication is one publisher connection's contribution to a stream. Its
// layers feed the participant's tracks until it ends or is taken over.
type Publication struct {
	stream *Stream
	part   *participant
	src    Source

	mu     sync.Mutex
	layers []*Layer
	ended  bool
}

// AddLayer adds an encoding the publisher sends: rid is its simulcast id, or
// "" for a single-encoding publisher. The returned Layer takes the packets.
func (p *Publication) AddLayer(rid string, c Codec, exts ExtIDs, now int64) (*Layer, error) {
	kind := c.Kind()
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return nil, ErrPublicationEnded
	}
	n := 0
	for _, l := range p.layers {
		if l.track.kind == kind {
			n++
		}
	}
	if n >= MaxLayers {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: %d", ErrTooManyLayers, n+1)
	}
	t := p.part.video
	size := p.stream.reg.cfg.VideoCache
	if kind == KindAudio {
		t, size = p.part.audio, p.stream.reg.cfg.AudioCache
	}
	l := &Layer{track: t, pub: p, rid: rid, codec: c, kind: codec.KindOf(c.MimeType), exts: exts, ring: newRing(size)}
	l.since.Store(now)
	p.layers = append(p.layers, l)
	layers := len(p.layers)
	p.mu.Unlock()
	t.attach(l)
	p.stream.mu.Lock()
	if p.part.pub == p {
		p.stream.emitLocked(Event{Kind: EventLayers, Participant: p.part.id, At: now, Layers: layers})
	}
	p.stream.mu.Unlock()
	p.stream.reallocate(now)
	return l, nil
}

// Announce records the codec negotiated for a kind before media arrives, so
// viewers joining in between are bound to the codec they will receive.
func (p *Publication) Announce(c Codec) {
	t := p.part.video
	if c.Kind() == KindAudio {
		t = p.part.audio
	}
	t.announced.Store(&c)
}

// MaxLayers is the most simulcast layers a track accepts.
const MaxLayers = 3

// Lost marks the publisher's connection as dropped: the stream goes to
// StateReconnecting and viewers wait for the reconnect grace period.
func (p *Publication) Lost(now int64) {
	p.stream.lost(p, now)
}

// End ends the publication for good (the publisher said goodbye, or the
// grace period passed): its layers detach and, if it was the host, viewer
// sessions end.
func (p *Publication) End(now int64) {
	p.detach()
	p.stream.ended(p, now)
}

// detach stops the publication's layers without touching viewers.
func (p *Publication) detach() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	layers := p.layers
	p.mu.Unlock()
	for _, l := range layers {
		l.gone.Store(true)
	}
	p.part.audio.detach(p)
	p.part.video.detach(p)
}

// kick ends the publication and closes its source: the host removing a
// guest, or the room ending.
func (p *Publication) kick(now int64) {
	p.End(now)
	_ = p.src.Close()
}

// takenOver stops a publication another took the place of, and closes its
// source. It does nothing on nil.
func (p *Publication) takenOver() {
	if p != nil {
		p.detach()
		_ = p.src.Close()
	}
}

// Ended reports whether the publication has ended or was taken over.
func (p *Publication) Ended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}
