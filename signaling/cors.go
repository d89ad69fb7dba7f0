package signaling

import (
	"net/http"

	"github.com/glintlive/glint/internal/httpx"
)

// preflight answers OPTIONS: CORS preflight and WHIP/WHEP discovery. It
// needs no token and never lists ICE servers (RFC 9725 §4.6).
func (s *Server) preflight(methods string, endpoint bool) http.HandlerFunc {
	return httpx.Preflight(methods, func(h http.Header) {
		if endpoint {
			h.Set("Accept-Post", "application/sdp")
		} else {
			h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
		}
	})
}
