package signaling

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
)

// eventsSubscribe answers the POST that starts a WHEP server-sent-events
// subscription (draft-ietf-wish-whep §4.6.1): the event stream is at the
// same URL.
func (s *Server) eventsSubscribe(w http.ResponseWriter, r *http.Request) {
	if s.find(w, r, peer.RoleViewer) == nil {
		return
	}
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody))
	w.Header().Set("Location", r.URL.Path)
	w.WriteHeader(http.StatusCreated)
}

// eventInterval is how often a viewer's event stream reports.
const eventInterval = time.Second

// events streams active/inactive, layers, viewercount and room events
// for a viewer session until it ends: state and room changes as they
// happen, the rest once a second.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sess := s.find(w, r, peer.RoleViewer)
	if sess == nil {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		httpx.Problem(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	sess.mu.Lock()
	if sess.events >= maxEventStreams {
		sess.mu.Unlock()
		httpx.RetryLater(w, http.StatusTooManyRequests, retryOffline, fmt.Sprintf("at most %d event streams per session", maxEventStreams))
		return
	}
	sess.events++
	sess.mu.Unlock()
	defer func() {
		sess.mu.Lock()
		sess.events--
		sess.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	sub := sess.sub
	st := sub.Stream()
	t := time.NewTicker(eventInterval)
	defer t.Stop()
	last, lastRoom := "", ""
	tick := true // the once-a-second events are due
	for {
		// The stream's lifecycle events wake the loop at once (the
		// publisher dropped, returned); the ticker paces the rest.
		changed := st.Changed()
		state := st.State().String()
		if state != last {
			ev := "active"
			if state != "live" {
				ev = "inactive"
			}
			writeEvent(w, ev, map[string]string{"state": state})
			last = state
		}
		if tick {
			writeEvent(w, "viewercount", map[string]int{"viewercount": st.Viewers()})
			writeEvent(w, "layers", layersEvent(sub, st))
			tick = false
		}
		if room, _ := json.Marshal(roomOf(sess)); string(room) != lastRoom {
			writeRaw(w, "room", room)
			lastRoom = string(room)
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-sess.media.Done():
			writeEvent(w, "inactive", map[string]string{"state": "ended"})
			fl.Flush()
			return
		case <-s.quit:
			writeEvent(w, "inactive", map[string]string{"state": "ended"})
			fl.Flush()
			return
		case <-changed:
		case <-sess.wake:
		case <-t.C:
			tick = true
		}
	}
}

// layersEvent is Glint's "layers" payload: what the viewer receives now and
// what the publisher offers.
type layersPayload struct {
	Active   string          `json:"active"`
	Target   string          `json:"target"`
	Width    int             `json:"width,omitempty"`
	Height   int             `json:"height,omitempty"`
	Bitrate  uint64          `json:"bitrate"`
	Estimate uint64          `json:"estimate"`
	Layers   []sfu.LayerInfo `json:"layers"`
	// Clock maps the video's RTP timestamps to stream time: the player
	// turns the timestamp of the frame on screen into the moment of the
	// stream it shows, which chat is timed to.
	Clock *clockRef `json:"clock,omitempty"`
}

// clockRef says that RTP timestamp RTP (at Rate Hz) is stream time ST ms.
type clockRef struct {
	RTP  uint32 `json:"rtp"`
	ST   int64  `json:"st"`
	Rate uint32 `json:"rate"`
}

func layersEvent(sub *sfu.Subscriber, st *sfu.Stream) layersPayload {
	in := sub.Info()
	p := layersPayload{Estimate: in.Estimate}
	for _, t := range in.Tracks {
		if t.Kind == "video" { // the first slot's: the host's
			p.Active, p.Target, p.Width, p.Height, p.Bitrate = t.Layer, t.Target, t.Width, t.Height, t.Bitrate
			break
		}
	}
	if ri := st.Info(sfu.Now()); ri.Video != nil {
		p.Layers = ri.Video.Layers
	}
	if ts, st, rate, ok := sub.Clock(); ok {
		p.Clock = &clockRef{RTP: ts, ST: st, Rate: rate}
	}
	return p
}

func writeEvent(w io.Writer, name string, v any) {
	b, _ := json.Marshal(v)
	writeRaw(w, name, b)
}

func writeRaw(w io.Writer, name string, data []byte) {
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
}

// maxLayerDimension bounds a requested picture size.
const maxLayerDimension = 8192

// layer handles the WHEP layer-selection extension: a JSON object with
// encodingId to pin a simulcast layer, or maxWidth/maxHeight to cap it; an
// empty object returns to automatic selection.
func (s *Server) layer(w http.ResponseWriter, r *http.Request) {
	sess := s.find(w, r, peer.RoleViewer)
	if sess == nil {
		return
	}
	if !hasType(r, "application/json") {
		httpx.Problem(w, http.StatusUnsupportedMediaType, "layer selection takes application/json")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var p sfu.Preferences
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		httpx.Problem(w, http.StatusBadRequest, "layer selection: "+err.Error())
		return
	}
	if p.MaxWidth < 0 || p.MaxHeight < 0 || p.MaxWidth > maxLayerDimension || p.MaxHeight > maxLayerDimension || len(p.RID) > 16 {
		httpx.Problem(w, http.StatusBadRequest, "maxWidth/maxHeight must be 0..8192 and encodingId at most 16 characters")
		return
	}
	sess.sub.SetPreferences(p, sfu.Now())
	w.WriteHeader(http.StatusNoContent)
}
