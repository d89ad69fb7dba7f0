package hlsbridge

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/glintlive/glint/sfu"
)

// A Live Room on LL-HLS: once a guest joins, the stream is packaged from
// a session whose transcoder composites every broadcaster (a grid for
// two to four) with their audio mixed. The layout follows the room: each
// change starts a child with the new layout into the same renditions,
// and the recording gets a chapter for each guest who joins or leaves.

// isRoom reports whether the session composites a room.
func (s *session) isRoom() bool { return s.tc != nil && s.tc.room }

// recompose takes the room as it is now: a sink on each guest's tracks,
// their top video layer and Opus in the layout (muted ones left out by
// the transcoder), a chapter for each guest who came or went.
func (s *session) recompose() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	st := s.stream
	srcs := []*tcSource{nil} // the host's: the transcoder's own, set on the worker
	cur := s.accepted.Load()
	next := &layerSet{video: []*sfu.Layer{cur.video[0]}, audio: cur.audio}
	guests := map[string]string{}
	var tracks []*sfu.Track
	now := sfu.Now()
	for _, b := range st.Broadcasters() {
		if b.Role != sfu.RoleGuest || b.State != sfu.StateLive.String() {
			continue // a reconnecting guest sends nothing: the grid would wait
		}
		audio, video := st.Participant(b.ID)
		if video == nil {
			continue // left meanwhile
		}
		vl := topActive(video, now)
		if vl != nil {
			next.video = append(next.video, vl)
		}
		al := opusLayer(audio)
		if al != nil {
			next.guestAudio = append(next.guestAudio, al)
		}
		srcs = append(srcs, newSource(b.ID, vl, al))
		guests[b.ID] = b.Name
		tracks = append(tracks, audio, video)
	}
	// The host's source is the transcoder's own (it follows reconnects).
	s.accepted.Store(next)
	s.tmu.Lock()
	if s.closed.Load() {
		s.tmu.Unlock()
		return
	}
	for _, t := range tracks {
		if !slices.Contains(s.tracks, t) {
			t.AddSink(s)
			s.tracks = append(s.tracks, t)
		}
	}
	keep := s.tracks[:0]
	for i, t := range s.tracks {
		if i < s.hostTracks || slices.Contains(tracks, t) { // the host's stay
			keep = append(keep, t)
		} else {
			t.RemoveSink(s)
		}
	}
	s.tracks = keep
	old := s.guests
	s.guests = guests
	s.tmu.Unlock()
	for id, name := range guests {
		if _, ok := old[id]; !ok {
			s.roomChapter("Guest joined: " + name)
		}
	}
	for id, name := range old {
		if _, ok := guests[id]; !ok {
			s.roomChapter("Guest left: " + name)
		}
	}
	select {
	case s.ctl <- func() {
		srcs[0] = s.tc.host()
		s.tc.setSources(srcs)
	}:
	default:
		// The worker is busy (starting a child): the next look at the
		// room (roomEvery) brings the layout up to date.
	}
}

// topActive returns the track's highest layer that is sending (a
// publisher pauses layers it cannot afford), or its highest.
func topActive(t *sfu.Track, now int64) *sfu.Layer {
	ls := t.Layers()
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].Info(now).Active {
			return ls[i]
		}
	}
	if len(ls) > 0 {
		return ls[len(ls)-1]
	}
	return nil
}

// roomEvery is how often a room's layout is checked against the room
// (layers paused or resumed, a change an event did not bring).
const roomEvery = 2 * time.Second

// watchRooms recomposes every room session each roomEvery until ctx ends.
func (b *Bridge) watchRooms(ctx context.Context) {
	t := time.NewTicker(roomEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		var rooms []*session
		for _, s := range b.sessions {
			if s.isRoom() {
				rooms = append(rooms, s)
			}
		}
		b.mu.Unlock()
		for _, s := range rooms {
			s.recompose()
		}
	}
}

// roomChapter marks a guest's coming or going in the recording.
func (s *session) roomChapter(title string) {
	if _, err := s.chapter(title); err != nil && !errors.Is(err, ErrNotRecorded) {
		s.log.Warn("vod: a room chapter was not recorded", "err", err)
	}
}

// room follows a change in stream name's room: a guest joined, left, got
// layers or was muted. A room session recomposes; a session of the host
// alone gives way to a room session once there is a guest.
func (b *Bridge) room(name string) {
	st := b.reg.Lookup(name)
	b.mu.Lock()
	s := b.sessions[name]
	b.mu.Unlock()
	if st == nil || s == nil {
		return // the host's own events start the session
	}
	if s.isRoom() {
		s.recompose()
		return
	}
	if len(st.Broadcasters()) > 1 {
		b.start(name)
	}
}
