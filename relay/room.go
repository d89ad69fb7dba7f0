package relay

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/glintlive/glint/sfu"
)

// A Live Room across the mesh: the room runs on the node its host
// publishes to; an edge relaying the host follows the room there and
// relays each guest in a session of its own, who joins the edge's copy of
// the room as at the origin. Mutes and the speaker are mirrored, so the
// edge's viewers are told what the origin's are.

// errGuestLeft is a guest relay started after the guest had left.
var errGuestLeft = errors.New("relay: the guest left the room")

// roomEvery is how often an edge looks at its origin's room.
const roomEvery = time.Second

// followRoom keeps the edge's copy of the stream's room like the
// origin's until the host pull ends, then ends its guests here.
func (p *pull) followRoom(ctx context.Context, stream, base string) {
	u := strings.TrimSuffix(base, "/") + "/relay/" + url.PathEscape(stream)
	guests := map[string]*pull{}
	defer func() {
		for _, g := range guests {
			g.close()
		}
	}()
	t := time.NewTicker(roomEvery)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		desc, err := p.e.request(rctx, http.MethodGet, u, nil)
		cancel()
		var ls Layers
		if err != nil || desc.code != http.StatusOK || json.Unmarshal(desc.body, &ls) != nil {
			continue // the host pull's own failure handling decides
		}
		now := sfu.Now()
		seen := map[string]bool{}
		for _, b := range ls.Guests {
			seen[b.ID] = true
			if g := guests[b.ID]; g != nil && g.ended() {
				delete(guests, b.ID) // its session ended: try again
			}
			if guests[b.ID] == nil && b.State == sfu.StateLive.String() {
				g := p.e.newPull(p.from)
				g.part, g.name = b.ID, b.Name
				guests[b.ID] = g
				go p.startGuest(ctx, g, stream, base)
			}
		}
		for id, g := range guests {
			if !seen[id] {
				g.close()
				delete(guests, id)
			}
		}
		for _, b := range append(ls.Guests, ls.Hosted) {
			if b.ID != "" {
				_ = p.stream.SetMuted(b.ID, sfu.KindAudio, b.AudioMuted, now)
				_ = p.stream.SetMuted(b.ID, sfu.KindVideo, b.VideoMuted, now)
			}
		}
		p.stream.SetSpeaker(ls.Speaker, now)
	}
}

// startGuest relays guest g in; a guest pull that cannot start ends (the
// next look at the room tries again).
func (p *pull) startGuest(ctx context.Context, g *pull, stream, base string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g.err = g.start(ctx, stream, base)
	close(g.ready)
	if g.err != nil {
		p.e.Log.Debug("relay: a guest could not be relayed", "stream", stream, "guest", g.part, "err", g.err)
		g.close()
	}
}

// ended reports whether a pull has ended.
func (p *pull) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
