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

// SetHLS tells the server about LL-HLS: f returns a live stream's status
// for the API (nil for none) and its playlist's path when it is packaged.
// A viewer refused for capacity is then pointed at the playlist. Call it
// before serving.
func (s *Server) SetHLS(f func(stream string) (status any, playlist string)) { s.hls = f }

func (s *Server) streamInfo(name string) streamInfo {
	in := sfu.Info{Name: name, State: sfu.StateOffline.String()}
	if st := s.dir.Lookup(name); st != nil {
		in = st.Info(sfu.Now())
	}
	out := streamInfo{Info: in, WHIP: "/whip/" + name, WHEP: "/whep/" + name}
	if s.hls != nil {
		out.HLS, _ = s.hls(name)
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
