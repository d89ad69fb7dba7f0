package signaling

import (
	"net/http"

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
}

// SetHLS makes the API report each live stream's LL-HLS status: f returns
// it, or false for none. Call it before serving.
func (s *Server) SetHLS(f func(stream string) (any, bool)) { s.hls = f }

func (s *Server) streamInfo(name string) streamInfo {
	in := sfu.Info{Name: name, State: sfu.StateOffline.String()}
	if st := s.dir.Lookup(name); st != nil {
		in = st.Info(sfu.Now())
	}
	out := streamInfo{Info: in, WHIP: "/whip/" + name, WHEP: "/whep/" + name}
	if s.hls != nil {
		if st, ok := s.hls(name); ok {
			out.HLS = st
		}
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
