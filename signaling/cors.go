package signaling

import (
	"net/http"
	"slices"
)

// exposed are the response headers a browser page may read.
const exposed = "Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After, Content-Type"

// cors adds CORS headers so a page on another origin can use the endpoints.
func (s *Server) cors(next http.Handler) http.Handler {
	anyOrigin := slices.Contains(s.cfg.CORSOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		switch {
		case anyOrigin:
			h.Set("Access-Control-Allow-Origin", "*")
		case origin != "" && slices.Contains(s.cfg.CORSOrigins, origin):
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", exposed)
		next.ServeHTTP(w, r)
	})
}

// preflight answers OPTIONS: CORS preflight and WHIP/WHEP discovery. It
// needs no token and never lists ICE servers (RFC 9725 §4.6).
func (s *Server) preflight(methods string, endpoint bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Allow", methods)
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Max-Age", "600")
		if endpoint {
			h.Set("Accept-Post", "application/sdp")
		} else {
			h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
