package signaling

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
)

// authorize checks a WHIP request's stream key and answers 401/403/404,
// or 429 while the address is backing off after wrong keys.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, stream string) bool {
	addr, now := httpx.ClientIP(r), time.Now()
	if blocked, wait := s.guesses.Blocked(addr, now); blocked {
		httpx.RetryLater(w, http.StatusTooManyRequests, wait.Round(time.Second)+time.Second, "too many wrong stream keys from this address")
		return false
	}
	err := s.keys.Check(stream, httpx.Bearer(r))
	if errors.Is(err, ErrBadKey) {
		s.guesses.Fail(addr, now)
	} else if err == nil {
		s.guesses.Succeed(addr)
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrUnknownStream):
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
	case errors.Is(err, ErrNoKey):
		w.Header().Set("WWW-Authenticate", `Bearer realm="glint"`)
		httpx.Problem(w, http.StatusUnauthorized, "Authorization: Bearer <stream key> is required")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="glint", error="invalid_token"`)
		httpx.Problem(w, http.StatusForbidden, "wrong stream key")
	}
	return false
}

// hasType reports whether the request body is of the given media type.
func hasType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

// readBody reads at most maxBody bytes, answering 413 beyond.
func readBody(w http.ResponseWriter, r *http.Request) (string, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpx.Problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody))
		return "", false
	case err != nil:
		httpx.Problem(w, http.StatusBadRequest, "reading body: "+err.Error())
		return "", false
	}
	return string(b), true
}

// offer handles POST on a WHIP or WHEP endpoint (RFC 9725 §4.2).
func (s *Server) offer(w http.ResponseWriter, r *http.Request, role peer.Role) {
	stream := r.PathValue("stream")
	if !hasType(r, "application/sdp") {
		w.Header().Set("Accept-Post", "application/sdp")
		httpx.Problem(w, http.StatusUnsupportedMediaType, "the offer must be application/sdp")
		return
	}
	addr := httpx.ClientIP(r)
	if ok, wait := s.offers.Allow(addr, time.Now()); !ok {
		httpx.RetryLater(w, http.StatusTooManyRequests, max(wait.Round(time.Second), time.Second), "too many offers from this address")
		return
	}
	if !s.keys.Known(stream) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
		return
	}
	// A Live Room guest publishes with its invite as bearer token.
	bearer := httpx.Bearer(r)
	isGuest := role == peer.RolePublisher && strings.HasPrefix(bearer, invitePrefix)
	if role == peer.RolePublisher && !isGuest && !s.authorize(w, r, stream) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	st := s.dir.Stream(stream)
	var guest *peer.Guest
	release := func() {} // gives a claimed invite back if the guest does not get in
	if isGuest {
		if guest, release, ok = s.guestOffer(w, r, st, bearer); !ok {
			return
		}
	}
	if role == peer.RoleViewer && st.State() == sfu.StateOffline {
		// The mesh may send the viewer elsewhere, or relay the stream here.
		if s.placed(w, r, stream, false) {
			return
		}
		if st.State() == sfu.StateOffline {
			httpx.RetryLater(w, http.StatusConflict, retryOffline, stream+" is not live")
			return
		}
	}
	sess := &session{id: randomHex(16), stream: st.Name(), role: role, addr: addr, etag: newETag(), guest: guest}
	if guest != nil {
		sess.token = tokenHash(bearer)
	}
	if role == peer.RoleViewer {
		sess.wake = make(chan struct{}, 1)
	}
	if no := s.reserve(sess); no != nil {
		release()
		if no.full && role == peer.RoleViewer && s.placed(w, r, stream, true) {
			return
		}
		if no.full && s.hls != nil {
			if _, playlist := s.hls(sess.stream); playlist != "" {
				// Overflow: this stream plays over LL-HLS too.
				w.Header().Add("Link", "<"+playlist+`>; rel="alternate"; type="application/vnd.apple.mpegurl"`)
			}
		}
		httpx.RetryLater(w, no.status, no.after, no.detail)
		return
	}
	skip := r.URL.Query().Get("skip") // a broadcaster's own page: not its own media
	if len(skip) > 64 {
		release()
		s.release(sess)
		httpx.Problem(w, http.StatusBadRequest, "skip: a broadcaster id of at most 64 characters")
		return
	}
	answer, err := s.connect(r.Context(), st, sess, body, skip)
	if err == nil && guest != nil && s.invites.revoked(strings.TrimPrefix(guest.ID, "g")) {
		// Removed (its invite revoked) while the offer was answered.
		_ = sess.media.End()
		err = fmt.Errorf("%w: %w", errGuestRemoved, ErrInviteRevoked)
	}
	if err != nil {
		release()
		s.release(sess)
		s.offerError(w, stream, err)
		return
	}
	s.add(sess)
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", sessionPath(role, stream, sess.id))
	h.Set("ETag", sess.etag)
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	for _, l := range s.iceServerLinks() {
		h.Add("Link", l)
	}
	if role == peer.RoleViewer {
		base := sessionPath(role, stream, sess.id)
		h.Add("Link", fmt.Sprintf(`<%s/events>; rel="urn:ietf:params:whep:ext:core:server-sent-events"; events="active,inactive,layers,viewercount,room"`, base))
		h.Add("Link", fmt.Sprintf(`<%s/layer>; rel="urn:ietf:params:whep:ext:core:layer"`, base))
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// connect answers the offer and fills in sess's media.
func (s *Server) connect(ctx context.Context, st *sfu.Stream, sess *session, body, skip string) (string, error) {
	o, err := peer.ParseOffer(body, sess.role)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OfferTimeout)
	defer cancel()
	var answer string
	if sess.role == peer.RolePublisher {
		var p *peer.Publisher
		p, answer, err = s.node.Publish(ctx, st, sess.id, o, sess.guest)
		if err == nil {
			sess.media = p
		}
	} else {
		var v *peer.Viewer
		v, answer, err = s.node.View(ctx, st, sess.id, o, sfu.Preferences{Skip: skip})
		if err == nil {
			sess.media, sess.sub, sess.mid = v, v.Subscriber(), v.Mid
			sess.sub.OnRoom(func() { s.roomChanged(sess) })
		}
	}
	if err != nil {
		return "", err
	}
	if o.DataChannel {
		fn, stream, addr := s.onChannel, st.Name(), sess.addr
		sess.media.OnChannel(func(c *peer.Channel) {
			if sess.role == peer.RoleViewer {
				// The room goes on the same channel as chat.
				sess.mu.Lock()
				sess.ch = c
				sess.mu.Unlock()
				s.roomChanged(sess)
			}
			if fn != nil {
				fn(stream, addr, c)
			}
		})
	}
	// The session id authorises PATCH and DELETE of a viewer's session: it
	// is logged only at debug.
	s.log.Info("session", "stream", st.Name(), "role", roleName(sess.role))
	s.log.Debug("session id", "stream", st.Name(), "id", sess.id)
	return answer, nil
}

// offerError maps a failed offer to its status.
func (s *Server) offerError(w http.ResponseWriter, stream string, err error) {
	switch {
	case errors.Is(err, peer.ErrNoCodec), errors.Is(err, sfu.ErrNoCodec):
		httpx.Problem(w, http.StatusNotAcceptable, err.Error())
	case errors.Is(err, peer.ErrBadOffer):
		httpx.Problem(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, sfu.ErrNotLive):
		httpx.RetryLater(w, http.StatusConflict, retryOffline, stream+" is not live")
	case errors.Is(err, errGuestRemoved):
		httpx.Problem(w, http.StatusForbidden, err.Error())
	case errors.Is(err, sfu.ErrRoomFull):
		httpx.Problem(w, http.StatusConflict, fmt.Sprintf("the room is full: %d broadcasters at most", sfu.MaxBroadcasters))
	case errors.Is(err, peer.ErrClosed):
		httpx.RetryLater(w, http.StatusServiceUnavailable, retryBusy, "the node is shutting down")
	default:
		s.log.Warn("offer failed", "stream", stream, "err", err)
		httpx.Problem(w, http.StatusInternalServerError, "could not answer the offer")
	}
}

// errGuestRemoved is a guest whose invite was revoked while its offer
// was answered.
var errGuestRemoved = errors.New("the host removed this guest")

func sessionPath(role peer.Role, stream, id string) string {
	if role == peer.RolePublisher {
		return "/whip/" + stream + "/" + id
	}
	return "/whep/" + stream + "/" + id
}

func roleName(role peer.Role) string {
	if role == peer.RolePublisher {
		return "publisher"
	}
	return "viewer"
}

func newETag() string { return `"` + randomHex(8) + `"` }

// iceServerLinks renders the configured ICE servers as RFC 9725 §4.6 links.
func (s *Server) iceServerLinks() []string {
	var out []string
	for _, is := range s.cfg.ICEServers {
		l := fmt.Sprintf(`<%s>; rel="ice-server"`, is.URL)
		if is.Username != "" {
			l += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, is.Username, is.Credential)
		}
		out = append(out, l)
	}
	return out
}
