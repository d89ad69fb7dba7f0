package peer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/rtcp"

	"github.com/glintlive/glint/sfu"
)

// Viewer is a WHEP session: a stream subscriber sending over Glint's own
// viewer transport (transport.go) rather than a pion PeerConnection.
type Viewer struct {
	base
	sub    *sfu.Subscriber
	log    *slog.Logger
	t      *transport
	tracks []*answerTrack
	mid    string // the first m-line's, for sdpfrag answers

	chOnce  sync.Once
	endOnce sync.Once
}

// View answers a WHEP offer for stream. It fails with sfu.ErrNotLive when
// nobody publishes, and ErrNoCodec when the offer cannot receive the
// stream's codecs.
func (n *Node) View(_ context.Context, stream *sfu.Stream, id string, offer *Offer, prefs sfu.Preferences) (*Viewer, string, error) {
	audio, video := stream.Tracks()
	for _, t := range []*sfu.Track{audio, video} {
		c, ok := t.Codec()
		m, offered := offer.mediaOf(t.Kind())
		if !ok || !offered {
			continue
		}
		found := false
		for _, oc := range m.Codecs {
			found = found || c.Compatible(oc) > 0
		}
		if !found {
			return nil, "", fmt.Errorf("%w: the stream sends %s", ErrNoCodec, c.MimeType)
		}
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, "", ErrClosed
	}
	sub, err := stream.Subscribe(id)
	if err != nil {
		return nil, "", err
	}
	t := newTransport(n, offer.remote)
	v := &Viewer{
		base: newBase(n, id),
		sub:  sub,
		log:  n.log.With("stream", stream.Name(), "session", id, "role", "viewer"),
		t:    t,
	}
	for _, l := range offer.lines {
		if l.port != 0 {
			v.mid = l.mid
			break
		}
	}
	tracks, err := answerTracks(offer, sub.DownTracks(), t)
	if err != nil {
		sub.Close(err)
		t.close()
		return nil, "", err
	}
	for _, at := range tracks {
		v.tracks = append(v.tracks, at)
	}
	t.wantSCTP = offer.DataChannel
	t.onConnected = func() { sub.Start(sfu.Now()) }
	t.onFailed = func() { _ = v.Close() }
	t.onRTCP = v.handleRTCP
	t.onChannel = v.acceptChannel
	ufrag, pwd := t.credentials()
	answer := buildAnswer(offer, tracks, stream.Name(), ufrag, pwd, n.fingerprint, n.candidates)
	sub.SetPreferences(prefs, sfu.Now())
	sub.OnClose(func(error) {
		// The core ended the viewer (the stream ended). Once the node is
		// closing, its Close ends every viewer itself.
		n.spawn(func() { _ = v.Close() })
	})
	// Close wins: a viewer that would register after the node closed (and
	// so after Close took its list) is closed here instead.
	n.mu.Lock()
	closed = n.closed
	if !closed {
		n.viewers[v] = struct{}{}
	}
	n.mu.Unlock()
	if closed {
		_ = v.Close()
		return nil, "", ErrClosed
	}
	return v, answer, nil
}

// acceptChannel takes the viewer's first "glint" data channel and closes
// any other.
func (v *Viewer) acceptChannel(dc *datachannel.DataChannel) bool {
	accepted := false
	if dc.Label == ChannelLabel {
		v.chOnce.Do(func() { accepted = true })
	}
	if !accepted {
		_ = dc.Close()
		return false
	}
	v.deliverChannel(newChannel(&rawChannel{DataChannel: dc}))
	return true
}

// handleRTCP dispatches the viewer's feedback: NACKs and keyframe requests
// to the down track they name, bandwidth feedback to the subscriber.
func (v *Viewer) handleRTCP(pkts []rtcp.Packet) {
	now := sfu.Now()
	track := func(ssrc uint32) *sfu.DownTrack {
		for _, at := range v.tracks {
			if at.ssrc == ssrc {
				return at.dt
			}
		}
		return nil
	}
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication:
			if dt := track(p.MediaSSRC); dt != nil {
				dt.OnPictureLoss(now)
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				if dt := track(e.SSRC); dt != nil {
					dt.OnPictureLoss(now)
				}
			}
		case *rtcp.TransportLayerNack:
			if dt := track(p.MediaSSRC); dt != nil {
				dt.OnNACK(p.Nacks, now)
			}
		case *rtcp.TransportLayerCC:
			v.sub.OnTransportCC(p, now)
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			v.sub.OnREMB(p.Bitrate, now)
		case *rtcp.ReceiverReport:
			for _, r := range p.Reports {
				if dt := track(r.SSRC); dt != nil && dt.Kind() == sfu.KindVideo {
					v.sub.OnReceiverReport(r.FractionLost, now)
				}
			}
		}
	}
}

// sendReports writes a sender report per track (RFC 3550 §6.4.1).
func (v *Viewer) sendReports(now int64, wall uint64) {
	var pkts []rtcp.Packet
	for _, at := range v.tracks {
		if sr, ok := at.dt.SenderReport(now, wall); ok {
			pkts = append(pkts, &sr)
		}
	}
	if len(pkts) > 0 {
		_ = v.t.writeRTCP(pkts)
	}
}

// LocalICE returns the server's current ICE credentials and candidates.
func (v *Viewer) LocalICE() ICE {
	ufrag, pwd := v.t.credentials()
	return ICE{Ufrag: ufrag, Pwd: pwd, Mid: v.mid, Candidates: v.node.candidates}
}

// AddCandidates accepts trickled candidates. Glint's viewer transport
// answers the viewer's checks from wherever they come and needs none.
func (v *Viewer) AddCandidates(_ string, cands []string) error {
	for _, c := range cands {
		if !strings.HasPrefix(c, "candidate:") || len(strings.Fields(c)) < 8 {
			return fmt.Errorf("%w: candidate %q", ErrBadOffer, c)
		}
	}
	return nil
}

// Restart performs an ICE restart: the viewer's new credentials, new ones
// of the server's; keys and streams carry on.
func (v *Viewer) Restart(_ context.Context, ufrag, pwd string, _ []string) (ICE, error) {
	if ufrag == "" || pwd == "" {
		return ICE{}, fmt.Errorf("%w: no ICE credentials", ErrRestartFailed)
	}
	v.t.restart(ufrag, pwd)
	return v.LocalICE(), nil
}

// RemoteICE returns the viewer's current ICE credentials.
func (v *Viewer) RemoteICE() ICE {
	v.t.mu.Lock()
	defer v.t.mu.Unlock()
	return ICE{Ufrag: v.t.remote.ufrag, Pwd: v.t.remote.pwd, Mid: v.mid}
}

// Subscriber returns the core's view of this session.
func (v *Viewer) Subscriber() *sfu.Subscriber { return v.sub }

// End ends the session (the signaling layer's name for it: a publisher's
// End ends the broadcast, a viewer's only its own session).
func (v *Viewer) End() error { return v.Close() }

// Close ends the session.
func (v *Viewer) Close() error {
	v.endOnce.Do(func() {
		v.sub.Close(ErrClosed)
		v.t.close()
		v.node.mu.Lock()
		delete(v.node.viewers, v)
		v.node.mu.Unlock()
		v.markDone()
	})
	return nil
}
