package signaling

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu/peer"
)

// patch handles trickle and ICE restart on a session (RFC 9725 §4.3).
func (s *Server) patch(w http.ResponseWriter, r *http.Request, role peer.Role) {
	sess := s.find(w, r, role)
	if sess == nil {
		return
	}
	if !hasType(r, "application/trickle-ice-sdpfrag") {
		w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
		httpx.Problem(w, http.StatusUnsupportedMediaType, "PATCH takes application/trickle-ice-sdpfrag")
		return
	}
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	if ifMatch == "" {
		httpx.Problem(w, http.StatusPreconditionRequired, "If-Match is required: the session's ETag, or * for an ICE restart")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	frag, err := parseFragment(body)
	if err != nil {
		httpx.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if ifMatch != "*" && ifMatch != sess.etag {
		httpx.Problem(w, http.StatusPreconditionFailed, "the ETag does not match the session's current ICE state")
		return
	}
	ice := sess.media
	remote := ice.RemoteICE()
	if frag.Ufrag != "" && (frag.Ufrag != remote.Ufrag || frag.Pwd != remote.Pwd) {
		local, err := ice.Restart(r.Context(), frag.Ufrag, frag.Pwd, frag.Candidates)
		if err != nil {
			httpx.Problem(w, http.StatusBadRequest, err.Error())
			return
		}
		sess.etag = newETag()
		w.Header().Set("Content-Type", "application/trickle-ice-sdpfrag")
		w.Header().Set("ETag", sess.etag)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, formatFragment(local.Ufrag, local.Pwd, local.Mid, local.Candidates))
		return
	}
	mid := frag.Mid
	if mid == "" {
		mid = remote.Mid
	}
	if err := ice.AddCandidates(mid, frag.Candidates); err != nil {
		httpx.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// delete ends a session. Deleting a WHIP session ends the broadcast.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, role peer.Role) {
	sess := s.find(w, r, role)
	if sess == nil {
		return
	}
	if err := sess.media.End(); err != nil && !errors.Is(err, peer.ErrClosed) {
		s.log.Debug("closing session", "id", sess.id, "err", err)
	}
	w.WriteHeader(http.StatusOK)
}

// sessionInfo answers GET/HEAD on a session URL: it exists, no content.
func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request, role peer.Role) {
	sess := s.find(w, r, role)
	if sess == nil {
		return
	}
	sess.mu.Lock()
	w.Header().Set("ETag", sess.etag)
	sess.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// endpointInfo answers GET/HEAD on an endpoint (WHEP discovery).
func (s *Server) endpointInfo(w http.ResponseWriter, r *http.Request) {
	if !s.keys.Known(r.PathValue("stream")) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+r.PathValue("stream"))
		return
	}
	w.Header().Set("Accept-Post", "application/sdp")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
