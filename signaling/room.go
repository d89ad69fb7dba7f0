package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
)

// Live Rooms over HTTP: the host's invites and controls, and what each
// viewer is told about the room (on its WHEP event stream and its "glint"
// data channel).

// registerRoom adds the Live Room routes.
func (s *Server) registerRoom(handle func(string, http.HandlerFunc)) {
	handle("POST /api/streams/{stream}/invites", s.createInvite)
	handle("GET /api/streams/{stream}/invites", s.listInvites)
	handle("OPTIONS /api/streams/{stream}/invites", s.preflight("OPTIONS, GET, POST", false))
	handle("DELETE /api/streams/{stream}/invites/{id}", s.revokeInvite)
	handle("OPTIONS /api/streams/{stream}/invites/{id}", s.preflight("OPTIONS, DELETE", false))
	handle("GET /api/streams/{stream}/broadcasters", s.listBroadcasters)
	handle("PATCH /api/streams/{stream}/broadcasters/{id}", s.muteBroadcaster)
	handle("DELETE /api/streams/{stream}/broadcasters/{id}", s.removeBroadcaster)
	handle("OPTIONS /api/streams/{stream}/broadcasters/{id}", s.preflight("OPTIONS, PATCH, DELETE", false))
	handle("POST /api/streams/{stream}/end", s.endRoom)
	handle("OPTIONS /api/streams/{stream}/end", s.preflight("OPTIONS, POST", false))
}

// inviteCreated is the answer to a new invite.
type inviteCreated struct {
	invite
	// Token is the guest's bearer token for WHIP; WHIP the URL to publish
	// to; Page the guest page with the token in its fragment (which no
	// server log sees).
	Token string `json:"token"`
	WHIP  string `json:"whip"`
	Page  string `json:"page"`
}

// createInvite answers POST /api/streams/{stream}/invites: the host (the
// stream key as bearer) makes a single-use guest invite. The body, if
// any, is JSON {"name": "…"}.
func (s *Server) createInvite(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !s.authorize(w, r, stream) {
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if body != "" {
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			httpx.Problem(w, http.StatusBadRequest, "invite: "+err.Error())
			return
		}
	}
	if !validName(req.Name) {
		httpx.Problem(w, http.StatusBadRequest, fmt.Sprintf("name: at most %d printable characters", maxNameLength))
		return
	}
	iv, token, err := s.invites.create(stream, req.Name, time.Now())
	if err != nil {
		httpx.RetryLater(w, http.StatusTooManyRequests, time.Minute, fmt.Sprintf("at most %d invites per stream; revoke some or let them expire", maxInvites))
		return
	}
	origin := httpx.Origin(r)
	w.Header().Set("Location", "/api/streams/"+stream+"/invites/"+iv.ID)
	httpx.JSON(w, http.StatusCreated, inviteCreated{
		invite: *iv, Token: token,
		WHIP: origin + "/whip/" + stream,
		Page: origin + "/guest/" + stream + "#invite=" + token,
	})
}

// listInvites answers GET /api/streams/{stream}/invites (the host).
func (s *Server) listInvites(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !s.authorize(w, r, stream) {
		return
	}
	out := struct {
		Invites []invite `json:"invites"`
	}{Invites: s.invites.list(stream, time.Now())}
	if out.Invites == nil {
		out.Invites = []invite{}
	}
	httpx.JSON(w, http.StatusOK, out)
}

// revokeInvite answers DELETE /api/streams/{stream}/invites/{id}: the
// invite can no longer be used (a guest already in stays until removed).
func (s *Server) revokeInvite(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !s.authorize(w, r, stream) {
		return
	}
	if !s.invites.revoke(stream, r.PathValue("id")) {
		httpx.Problem(w, http.StatusNotFound, "no such invite")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listBroadcasters answers GET /api/streams/{stream}/broadcasters: who is
// on stage, for anyone.
func (s *Server) listBroadcasters(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("stream")
	if !s.keys.Known(name) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+name)
		return
	}
	out := struct {
		Broadcasters []sfu.Broadcaster `json:"broadcasters"`
		Speaker      string            `json:"speaker,omitempty"`
	}{Broadcasters: []sfu.Broadcaster{}}
	if st := s.dir.Lookup(name); st != nil {
		if bs := st.Broadcasters(); bs != nil {
			out.Broadcasters = bs
		}
		out.Speaker = st.Speaker()
	}
	httpx.JSON(w, http.StatusOK, out)
}

// room returns the live stream a host's control request names, or
// answers 401/403/404/409.
func (s *Server) room(w http.ResponseWriter, r *http.Request) *sfu.Stream {
	name := r.PathValue("stream")
	if !s.authorize(w, r, name) {
		return nil
	}
	st := s.dir.Lookup(name)
	switch {
	case st == nil || st.State() == sfu.StateOffline:
		httpx.RetryLater(w, http.StatusConflict, retryOffline, name+" is not live")
		return nil
	case s.relayedHere(name):
		httpx.Problem(w, http.StatusConflict, errRelayedRoom(name))
		return nil
	}
	return st
}

// SetRelayed tells the server which streams this node relays from another
// node (the mesh): their Live Room is run on the origin, where the host
// is, so guests and the host's controls are refused here.
func (s *Server) SetRelayed(f func(stream string) bool) { s.relayed = f }

func (s *Server) relayedHere(stream string) bool { return s.relayed != nil && s.relayed(stream) }

func errRelayedRoom(stream string) string {
	return "this node relays " + stream + " from the node its host publishes to: a Live Room is run there (guests publish and the host controls it on that node)"
}

// muteBroadcaster answers PATCH /api/streams/{stream}/broadcasters/{id}
// with JSON {"audio_muted": bool, "video_muted": bool} (either may be
// left out): the host mutes a broadcaster for everyone.
func (s *Server) muteBroadcaster(w http.ResponseWriter, r *http.Request) {
	st := s.room(w, r)
	if st == nil {
		return
	}
	if !hasType(r, "application/json") {
		httpx.Problem(w, http.StatusUnsupportedMediaType, "muting takes application/json")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Audio *bool `json:"audio_muted"`
		Video *bool `json:"video_muted"`
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil || req.Audio == nil && req.Video == nil {
		httpx.Problem(w, http.StatusBadRequest, `want {"audio_muted": bool, "video_muted": bool}`)
		return
	}
	id, now := r.PathValue("id"), sfu.Now()
	for _, m := range []struct {
		kind  sfu.Kind
		muted *bool
	}{{sfu.KindAudio, req.Audio}, {sfu.KindVideo, req.Video}} {
		if m.muted == nil {
			continue
		}
		if err := st.SetMuted(id, m.kind, *m.muted, now); err != nil {
			httpx.Problem(w, http.StatusNotFound, "no broadcaster "+id)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeBroadcaster answers DELETE /api/streams/{stream}/broadcasters/{id}:
// the host removes a guest, whose connection closes.
func (s *Server) removeBroadcaster(w http.ResponseWriter, r *http.Request) {
	st := s.room(w, r)
	if st == nil {
		return
	}
	id := r.PathValue("id")
	if id == sfu.HostID {
		httpx.Problem(w, http.StatusBadRequest, "the host ends the room with POST /api/streams/"+st.Name()+"/end")
		return
	}
	s.invites.revokeGuest(st.Name(), id) // it does not let them back in
	if err := st.Remove(id, sfu.Now()); err != nil {
		httpx.Problem(w, http.StatusNotFound, "no guest "+id)
		return
	}
	s.log.Info("guest removed by the host", "stream", st.Name(), "guest", id)
	w.WriteHeader(http.StatusNoContent)
}

// endRoom answers POST /api/streams/{stream}/end: the broadcast ends for
// the host, every guest and every viewer.
func (s *Server) endRoom(w http.ResponseWriter, r *http.Request) {
	st := s.room(w, r)
	if st == nil {
		return
	}
	st.End(sfu.Now())
	s.log.Info("room ended by the host", "stream", st.Name())
	w.WriteHeader(http.StatusNoContent)
}

// guestOffer checks a WHIP offer's invite token: it returns the guest to
// publish as and a release for the invite if the offer fails, or answers
// 403 (a bad, expired, used or revoked invite) or 409 (not live, full).
func (s *Server) guestOffer(w http.ResponseWriter, r *http.Request, st *sfu.Stream, token string) (*peer.Guest, func(), bool) {
	inRoom := func(id string) bool {
		for _, b := range st.Broadcasters() {
			if b.ID == id {
				return true
			}
		}
		return false
	}
	if s.relayedHere(st.Name()) {
		httpx.Problem(w, http.StatusConflict, errRelayedRoom(st.Name()))
		return nil, nil, false
	}
	iv, release, err := s.invites.claim(st.Name(), token, inRoom, time.Now())
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="glint", error="invalid_token"`)
		httpx.Problem(w, http.StatusForbidden, err.Error())
		return nil, nil, false
	}
	name := iv.Name
	if q := r.URL.Query().Get("name"); name == "" && q != "" {
		if !validName(q) {
			release()
			httpx.Problem(w, http.StatusBadRequest, fmt.Sprintf("name: at most %d printable characters", maxNameLength))
			return nil, nil, false
		}
		name = q
	}
	if name == "" {
		name = "Guest"
	}
	g := &peer.Guest{ID: iv.participant(), Name: name}
	switch bs := st.Broadcasters(); {
	case len(bs) == 0:
		release()
		httpx.RetryLater(w, http.StatusConflict, retryOffline, st.Name()+" is not live: a guest joins a live host")
		return nil, nil, false
	case len(bs) >= sfu.MaxBroadcasters && !inRoom(g.ID):
		release()
		httpx.Problem(w, http.StatusConflict, fmt.Sprintf("the room is full: %d broadcasters at most", sfu.MaxBroadcasters))
		return nil, nil, false
	}
	return g, release, true
}

// roomPayload is what a viewer is told about the room: who is in each of
// its slots, who speaks, and everyone on stage.
type roomPayload struct {
	Slots        []slotPayload     `json:"slots"`
	Speaker      string            `json:"speaker,omitempty"`
	Broadcasters []sfu.Broadcaster `json:"broadcasters"`
}

// slotPayload is one slot: the m-lines it arrives on (by mid) and the
// broadcaster in it, none while empty.
type slotPayload struct {
	Slot        int              `json:"slot"`
	AudioMid    string           `json:"audio_mid,omitempty"`
	VideoMid    string           `json:"video_mid,omitempty"`
	Broadcaster *sfu.Broadcaster `json:"broadcaster,omitempty"`
}

func roomOf(sess *session) roomPayload {
	st := sess.sub.Stream()
	p := roomPayload{Broadcasters: st.Broadcasters(), Speaker: st.Speaker()}
	if p.Broadcasters == nil {
		p.Broadcasters = []sfu.Broadcaster{}
	}
	for _, sl := range sess.sub.Slots() {
		sp := slotPayload{Slot: sl.Index}
		if sess.mid != nil {
			sp.AudioMid, sp.VideoMid = sess.mid(sl.Audio), sess.mid(sl.Video)
		}
		for i := range p.Broadcasters {
			if p.Broadcasters[i].ID == sl.Participant && sl.Participant != "" {
				sp.Broadcaster = &p.Broadcasters[i]
			}
		}
		p.Slots = append(p.Slots, sp)
	}
	return p
}

// roomChanged wakes the viewer's event streams and sends the room on its
// data channel, from one goroutine at a time however often it changes.
func (s *Server) roomChanged(sess *session) {
	select {
	case sess.wake <- struct{}{}:
	default:
	}
	sess.roomDirty.Store(true)
	if !sess.announcing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for sess.roomDirty.Swap(false) {
				s.announce(sess)
			}
			sess.announcing.Store(false)
			if !sess.roomDirty.Load() || !sess.announcing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// announce sends the room on the viewer's data channel, if it changed
// since the last send.
func (s *Server) announce(sess *session) {
	sess.mu.Lock()
	ch := sess.ch
	sess.mu.Unlock()
	if ch == nil {
		return
	}
	body, err := json.Marshal(roomOf(sess))
	if err != nil || string(body) == sess.lastRoom {
		return
	}
	msg, _ := json.Marshal(struct {
		Type string          `json:"type"`
		Body json.RawMessage `json:"body"`
	}{"room", body})
	if err := ch.Send(msg); err != nil {
		if !errors.Is(err, peer.ErrChannelStalled) {
			s.log.Debug("room announcement", "err", err)
		}
		return // sent again at the next change
	}
	sess.lastRoom = string(body)
}
