package peer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/rtcp"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer/lite"
)

// Viewer is a WHEP session: a stream's subscriber sending over Glint's own
// transport (package lite) rather than a pion PeerConnection.
type Viewer struct {
	base
	sub     *sfu.Subscriber
	log     *slog.Logger
	t       *lite.Transport
	tracks  []*answerTrack
	mid     string // the first m-line's, for sdpfrag answers
	created time.Time

	chOnce  sync.Once
	endOnce sync.Once
}

// View answers a WHEP offer for stream. It fails with sfu.ErrNotLive when
// nobody publishes, ErrNoCodec when the offer cannot receive the stream's
// codecs, and ErrClosed once the endpoint is closing.
func (n *Endpoint) View(_ context.Context, stream *sfu.Stream, id string, offer *Offer, prefs sfu.Preferences) (*Viewer, string, error) {
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
	sub, err := stream.SubscribeSlots(id, offer.Slots(), prefs.Skip)
	if err != nil {
		return nil, "", err
	}
	v := &Viewer{
		base:    newBase(n, id),
		sub:     sub,
		log:     n.log.With("stream", stream.Name(), "role", "viewer"),
		created: time.Now(),
	}
	for _, l := range offer.lines {
		if l.port != 0 {
			v.mid = l.mid
			break
		}
	}
	// Every callback is in place before the transport is reachable.
	v.t = n.port.lite.New(lite.Config{
		Remote:      offer.remote,
		Certificate: &n.cert,
		DataChannel: offer.DataChannel,
		Log:         v.log,
		OnConnected: func() { sub.Start(sfu.Now()) },
		OnClosed:    func(error) { _ = v.Close() },
		OnRTCP:      func() { sub.Post(v) },
		OnChannel:   v.acceptChannel,
		Sender:      sub.Lane(),
		Spawn:       n.spawn,
	})
	tracks, err := answerTracks(offer, sub.DownTracks(), v.t)
	if err != nil {
		sub.Close(err)
		v.t.Close()
		return nil, "", err
	}
	for _, at := range tracks {
		v.tracks = append(v.tracks, at)
	}
	ufrag, pwd := v.t.Credentials()
	answer := buildAnswer(offer, tracks, stream.Name(), ufrag, pwd, n.fingerprint, n.port.candidates)
	sub.SetPreferences(prefs, sfu.Now())
	sub.OnClose(func(error) {
		// The core ended the viewer (the stream ended). Once the endpoint
		// is closing, its Close ends every viewer itself.
		n.spawn(func() { _ = v.Close() })
	})
	// Close wins: a viewer that would register after the endpoint closed
	// (and so after Close took its list) is closed here instead.
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
		return false
	}
	v.deliverChannel(newChannel(&rawChannel{DataChannel: dc}))
	return true
}

// RunJob reads the viewer's RTCP; it runs on the viewer's fan-out lane
// (sfu.Job), never on the socket's reader.
func (v *Viewer) RunJob() { v.t.ReadRTCP(v.handleRTCP) }

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
		_ = v.t.WriteRTCP(pkts)
	}
}

// LocalICE returns the server's current ICE credentials and candidates.
func (v *Viewer) LocalICE() ICE {
	ufrag, pwd := v.t.Credentials()
	return ICE{Ufrag: ufrag, Pwd: pwd, Mid: v.mid, Candidates: v.node.port.candidates}
}

// AddCandidates takes trickled candidates; the transport checks the UDP
// ones itself.
func (v *Viewer) AddCandidates(_ string, cands []string) error {
	for _, c := range cands {
		if !strings.HasPrefix(c, "candidate:") {
			return fmt.Errorf("%w: candidate %q", ErrBadOffer, c)
		}
	}
	if err := v.t.AddCandidates(cands); err != nil {
		return fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	return nil
}

// Restart performs an ICE restart: the viewer's new credentials, new ones
// of the server's; keys and streams carry on.
func (v *Viewer) Restart(_ context.Context, ufrag, pwd string, cands []string) (ICE, error) {
	if ufrag == "" || pwd == "" {
		return ICE{}, fmt.Errorf("%w: no ICE credentials", ErrRestartFailed)
	}
	v.t.Restart(ufrag, pwd)
	_ = v.t.AddCandidates(cands)
	return v.LocalICE(), nil
}

// RemoteICE returns the viewer's current ICE credentials.
func (v *Viewer) RemoteICE() ICE {
	ufrag, pwd := v.t.RemoteCredentials()
	return ICE{Ufrag: ufrag, Pwd: pwd, Mid: v.mid}
}

// Mid returns the mid of the m-line dt is sent on, or "" when the offer
// had no m-line for its slot.
func (v *Viewer) Mid(dt *sfu.DownTrack) string {
	for _, at := range v.tracks {
		if at.dt == dt {
			return at.mid
		}
	}
	return ""
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
		v.t.Close()
		v.node.mu.Lock()
		delete(v.node.viewers, v)
		v.node.mu.Unlock()
		v.markDone()
	})
	return nil
}

// Run runs the viewers' transports (their own checks and consent), writes
// sender reports to every viewer once a second, and closes viewers that
// went silent or never connected, until ctx ends.
func (n *Endpoint) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.port.lite.Run(ctx)
	}()
	defer func() { <-done }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.mu.Lock()
			vs := make([]*Viewer, 0, len(n.viewers))
			for v := range n.viewers {
				vs = append(vs, v)
			}
			n.mu.Unlock()
			now, wall := sfu.Now(), codec.NTPTime(time.Now())
			clock := time.Now()
			for _, v := range vs {
				connected := v.t.Connected()
				switch {
				case !connected && clock.Sub(v.created) > n.connectWait:
					v.log.Info("viewer never connected")
					_ = v.Close()
				case connected && v.t.Idle(clock, n.cfg.ICEDisconnectedTimeout+n.cfg.ICEFailedTimeout):
					v.log.Info("viewer went silent")
					_ = v.Close()
				default:
					v.sendReports(now, wall)
				}
			}
		}
	}
}

// connectWait is how long a new viewer may take to agree keys (ICE and
// DTLS): browsers do it within a second of the answer. Checks alone do not
// keep a session that never completes DTLS.
const connectWait = 10 * time.Second
