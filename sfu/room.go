package sfu

import (
	"cmp"
	"slices"
)

// A Live Room is a stream with more than one broadcaster: the host and up
// to MaxBroadcasters-1 guests. Every broadcaster is a participant with its
// own audio and video tracks; a viewer receives them in slots (one audio
// and one video down track each) that are filled and emptied as guests
// come and go, without renegotiation.

// MaxBroadcasters bounds a room: the host and three guests.
const MaxBroadcasters = 4

// Speaker detection, from the RFC 6464 levels publishers put on audio.
const (
	// speakingLoudness is the least average loudness (127 minus the
	// level in -dBov) over a tick that counts as speaking: -60 dBov.
	speakingLoudness = 127 - 60
	// speakerMargin is how much louder another broadcaster must be to take
	// over from one still speaking, so two voices do not flap.
	speakerMargin = 6
)

// Role is a broadcaster's part in a room.
type Role string

// Roles.
const (
	RoleHost  Role = "host"
	RoleGuest Role = "guest"
)

// Broadcaster is a snapshot of one participant of a room.
type Broadcaster struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	State      string `json:"state"` // live or reconnecting
	AudioMuted bool   `json:"audio_muted,omitempty"`
	VideoMuted bool   `json:"video_muted,omitempty"`
	Speaking   bool   `json:"speaking,omitempty"`
}

// Join makes src the publisher of guest id, called name, in the host's
// live room. A guest already there with that id (returning within its
// grace) is taken over. It fails with ErrNotLive when the host is not
// broadcasting and ErrRoomFull when MaxBroadcasters already are.
func (r *Stream) Join(id, name string, src Source, now int64) (*Publication, error) {
	if id == HostID || id == "" {
		return nil, ErrBadParticipant
	}
	r.mu.Lock()
	if r.stateLocked() == StateOffline {
		r.mu.Unlock()
		return nil, ErrNotLive
	}
	p := r.parts[id]
	if p == nil || p.pub == nil {
		if n := r.broadcastersLocked(); n >= MaxBroadcasters {
			r.mu.Unlock()
			return nil, ErrRoomFull
		}
	}
	p = r.participantLocked(id)
	kind := EventPublication
	if p.pub == nil {
		p.name, p.joined, kind = name, now, EventJoined
	}
	pub, old := r.publishLocked(p, src, kind, now)
	r.mu.Unlock()
	old.takenOver()
	r.reseat(now)
	return pub, nil
}

// broadcastersLocked counts participants with a publication, reconnecting
// ones included.
func (r *Stream) broadcastersLocked() int {
	n := 0
	for _, p := range r.parts {
		if p.pub != nil {
			n++
		}
	}
	return n
}

// Remove ends guest id's publication and closes its connection: the host
// removing a guest. Every viewer's slot for it empties.
func (r *Stream) Remove(id string, now int64) error {
	r.mu.Lock()
	p := r.parts[id]
	if id == HostID || p == nil || p.pub == nil {
		r.mu.Unlock()
		return ErrNoParticipant
	}
	pub := p.pub
	r.mu.Unlock()
	pub.kick(now)
	return nil
}

// End ends the room: the host's publication ends (with it every guest's
// and every viewer's session), and its connection closes. It does nothing
// while the stream is offline.
func (r *Stream) End(now int64) {
	r.mu.Lock()
	pub := r.parts[HostID].pub
	r.mu.Unlock()
	if pub != nil {
		pub.kick(now)
	}
}

// SetMuted mutes or unmutes participant id's audio or video for everyone:
// its packets are dropped on arrival, before any cache, so no viewer,
// relay or recording gets them (not even as a retransmission). Unmuted
// video restarts at a keyframe.
func (r *Stream) SetMuted(id string, k Kind, muted bool, now int64) error {
	r.mu.Lock()
	p := r.parts[id]
	if p == nil || p.pub == nil {
		r.mu.Unlock()
		return ErrNoParticipant
	}
	t := p.video
	if k == KindAudio {
		t = p.audio
	}
	if t.muted.Swap(muted) == muted {
		r.mu.Unlock()
		return nil
	}
	if muted && k == KindAudio && r.speaker == id {
		r.setSpeakerLocked("")
	}
	r.emitLocked(Event{Kind: EventMuted, Participant: id, At: now})
	r.mu.Unlock()
	r.reseat(now)
	if !muted && k == KindVideo {
		for _, l := range t.Layers() {
			l.RequestKeyframe(now)
		}
	}
	return nil
}

// Broadcasters returns the room's participants: the host (named as the
// stream) first, then guests in the order they joined. It is empty while the stream is
// offline.
func (r *Stream) Broadcasters() []Broadcaster {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Broadcaster
	for _, p := range r.byJoinLocked() {
		b := Broadcaster{
			ID: p.id, Name: p.name, Role: RoleGuest, State: StateLive.String(),
			AudioMuted: p.audio.muted.Load(), VideoMuted: p.video.muted.Load(),
			Speaking: r.speaker == p.id,
		}
		if p.id == HostID {
			b.Role, b.Name = RoleHost, r.name
		}
		if p.lostAt != 0 {
			b.State = StateReconnecting.String()
		}
		out = append(out, b)
	}
	return out
}

// Participant returns the tracks of broadcaster id (the host's for
// HostID), or nils when it is not broadcasting.
func (r *Stream) Participant(id string) (audio, video *Track) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.parts[id]
	if p == nil || p.pub == nil {
		return nil, nil
	}
	return p.audio, p.video
}

// SetSpeaker makes id the active speaker ("" for nobody) of a stream
// whose audio levels are read elsewhere: a relay mirrors its origin's.
func (r *Stream) SetSpeaker(id string, now int64) {
	r.mu.Lock()
	p := r.parts[id]
	if r.speaker == id || id != "" && (p == nil || p.pub == nil) {
		r.mu.Unlock()
		return
	}
	r.setSpeakerLocked(id)
	if p != nil {
		p.spoke = now
	}
	r.emitLocked(Event{Kind: EventSpeaker, Participant: id, At: now})
	r.mu.Unlock()
	r.reseat(now)
}

// Speaker returns the participant speaking now, or "".
func (r *Stream) Speaker() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.speaker
}

// byJoinLocked returns the publishing participants, host first, then in
// the order they joined.
func (r *Stream) byJoinLocked() []*participant {
	var ps []*participant
	for _, p := range r.parts {
		if p.pub != nil {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b *participant) int {
		switch {
		case a.id == HostID:
			return -1
		case b.id == HostID:
			return 1
		case a.joined != b.joined:
			return cmp.Compare(a.joined, b.joined)
		}
		return cmp.Compare(a.id, b.id)
	})
	return ps
}

// seat is one participant as slots are filled from: its tracks.
type seat struct {
	id           string
	audio, video *Track
}

// seatsLocked ranks the participants for viewers with fewer slots than
// broadcasters: the host, then guests by who spoke last, then by who
// joined first.
func (r *Stream) seatsLocked() []seat {
	ps := r.byJoinLocked()
	slices.SortStableFunc(ps, func(a, b *participant) int {
		switch {
		case a.id == HostID:
			return -1
		case b.id == HostID:
			return 1
		}
		return cmp.Compare(b.spoke, a.spoke)
	})
	out := make([]seat, len(ps))
	for i, p := range ps {
		out[i] = seat{id: p.id, audio: p.audio, video: p.video}
	}
	return out
}

// reseat refills every viewer's slots from the current participants and
// tells each viewer the room changed (a guest came or left, a new speaker,
// a mute), even where its slots stayed.
func (r *Stream) reseat(now int64) {
	r.mu.Lock()
	r.seatGen++
	gen, seats := r.seatGen, r.seatsLocked()
	subs := make([]*Subscriber, 0, len(r.subs))
	for s := range r.subs {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	for _, s := range subs {
		s.seat(gen, seats, now)
	}
}

// listenLocked takes the loudness each track measured since the last
// tick and picks the speaker. It reports whether the speaker changed.
func (r *Stream) listenLocked(now int64) bool {
	best, bestLoud, cur := "", int64(-1), int64(-1)
	for _, p := range r.parts {
		loud := p.audio.loudness() // drained every tick, muted or not
		if p.pub == nil || p.audio.muted.Load() {
			continue
		}
		if loud >= speakingLoudness {
			p.spoke = now
		}
		if p.id == r.speaker {
			cur = loud
		}
		if loud >= speakingLoudness && loud > bestLoud {
			best, bestLoud = p.id, loud
		}
	}
	// Silence keeps the last speaker: a pause in a sentence is not a change
	// of speaker. Someone louder takes over only by a margin.
	if best == "" || best == r.speaker || cur >= speakingLoudness && bestLoud < cur+speakerMargin {
		return false
	}
	r.setSpeakerLocked(best)
	r.emitLocked(Event{Kind: EventSpeaker, Participant: best, At: now})
	return true
}

// setSpeakerLocked makes id ("" for nobody) the active speaker.
func (r *Stream) setSpeakerLocked(id string) {
	r.speaker = id
	if p := r.parts[id]; p != nil {
		r.speakerVideo.Store(p.video)
	} else {
		r.speakerVideo.Store(nil)
	}
}
