package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Problem writes an RFC 9457 problem+json error.
func Problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"about:blank", http.StatusText(status), status, detail})
}

// RetryLater writes a problem with a Retry-After header.
func RetryLater(w http.ResponseWriter, status int, after time.Duration, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(after/time.Second)))
	Problem(w, status, detail)
}

// JSON writes v as a JSON answer that caches must not keep.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ReadBody reads at most limit bytes of a request body, answering 413
// (or 400) itself when it cannot.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		Problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
		return nil, false
	case err != nil:
		Problem(w, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return b, true
}

// exposed are the response headers a browser page may read.
const exposed = "Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After, Content-Type"

// CORS lets pages on the given origins ("*" for any) call next.
func CORS(origins []string, next http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		switch {
		case anyOrigin:
			h.Set("Access-Control-Allow-Origin", "*")
		case origin != "" && slices.Contains(origins, origin):
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", exposed)
		next.ServeHTTP(w, r)
	})
}

// Preflight answers a CORS preflight for the given methods.
func Preflight(methods string, extra func(http.Header)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Allow", methods)
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		h.Set("Access-Control-Max-Age", "600")
		if extra != nil {
			extra(h)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// Bearer returns a request's RFC 6750 bearer token.
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Origin returns the scheme and host a request was made to, as the client
// named them ("https://example.com"), for absolute URLs in answers. Glint
// trusts no forwarding header: behind a TLS-terminating proxy the scheme
// is the proxy's hop, http.
func Origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
