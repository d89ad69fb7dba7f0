package signaling

import (
	"context"
	"net/http"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
)

// streamInfo is one stream in the API.
type streamInfo struct {
	sfu.Info
	WHIP string `json:"whip"`
	WHEP string `json:"whep"`
	// HLS is the stream's LL-HLS status while it is live (SetHLS).
	HLS any `json:"hls,omitempty"`
	// Ingest says how the stream comes in while it is live (SetIngest).
	Ingest any `json:"ingest,omitempty"`
}

// SetIngest tells the server how a live stream comes in (RTMP, WHIP, a
// relay), for the API: f returns nil for a stream not live. Call it
// before serving.
func (s *Server) SetIngest(f func(stream string) any) { s.ingest = f }

// SetHLS tells the server about LL-HLS: f returns a live stream's status
// for the API (nil for none) and its playlist's path when it is packaged.
// A viewer refused for capacity is then pointed at the playlist. Call it
// before serving.
func (s *Server) SetHLS(f func(stream string) (status any, playlist string)) { s.hls = f }

// Placement says where a WHEP viewer of stream should go when this node
// cannot take it: the stream is not live here, or (full) the node has no
// room. It returns another node's WHEP URL, or "" when there is none —
// or when it has made the stream live here (a relay), which the caller
// checks; an error means the mesh cannot say now (its directory is
// unreachable), and the viewer is asked to retry.
type Placement func(ctx context.Context, stream string, full bool) (string, error)

// SetPlacement sets the mesh's placement of viewers (a 307 to another
// node); without one, a node answers only for itself.
func (s *Server) SetPlacement(p Placement) { s.place = p }

// placed redirects a viewer to where the mesh places it, reporting
// whether it answered the request.
func (s *Server) placed(w http.ResponseWriter, r *http.Request, stream string, full bool) bool {
	if s.place == nil {
		return false
	}
	// Not the request's own context: a relay started for this viewer is
	// shared with the next ones, and may take a WAN round trip or three.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	to, err := s.place(ctx, stream, full)
	switch {
	case err != nil:
		s.log.Warn("placement: the mesh cannot say where this viewer goes", "stream", stream, "err", err)
		httpx.RetryLater(w, http.StatusServiceUnavailable, retryBusy, "the mesh directory cannot be reached; try again shortly")
		return true
	case to == "":
		return false
	}
	// 307 keeps the method and the offer: the client posts it there.
	http.Redirect(w, r, to, http.StatusTemporaryRedirect)
	return true
}

func (s *Server) streamInfo(name string) streamInfo {
	in := sfu.Info{Name: name, State: sfu.StateOffline.String()}
	if st := s.dir.Lookup(name); st != nil {
		in = st.Info(sfu.Now())
	}
	out := streamInfo{Info: in, WHIP: "/whip/" + name, WHEP: "/whep/" + name}
	if s.hls != nil {
		out.HLS, _ = s.hls(name)
	}
	if s.ingest != nil && in.State != sfu.StateOffline.String() {
		out.Ingest = s.ingest(name)
	}
	return out
}

// listStreams answers GET /api/streams: every configured stream and its state.
func (s *Server) listStreams(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Streams []streamInfo `json:"streams"`
	}{Streams: []streamInfo{}}
	for _, name := range s.keys.Names() {
		out.Streams = append(out.Streams, s.streamInfo(name))
	}
	httpx.JSON(w, http.StatusOK, out)
}

// getStream answers GET /api/streams/{stream}.
func (s *Server) getStream(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("stream")
	if !s.keys.Known(name) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+name)
		return
	}
	httpx.JSON(w, http.StatusOK, s.streamInfo(name))
}
