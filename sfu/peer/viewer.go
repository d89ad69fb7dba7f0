package peer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// Viewer is a WHEP session: a PeerConnection fed by a room subscriber.
type Viewer struct {
	session
	sub    *sfu.Subscriber
	log    *slog.Logger
	tracks []*localTrack
	wg     sync.WaitGroup
}

// View answers a WHEP offer for room. It fails with sfu.ErrNotLive when
// nobody publishes, and ErrNoCodec when the offer cannot receive the
// stream's codecs.
func (n *Node) View(ctx context.Context, room *sfu.Room, id string, offer *Offer, prefs sfu.Preferences) (*Viewer, string, error) {
	audio, video := room.Tracks()
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
	sub, err := room.Subscribe(id)
	if err != nil {
		return nil, "", err
	}
	pc, err := n.newPC(n.viewAPI)
	if err != nil {
		sub.Close(err)
		return nil, "", err
	}
	v := &Viewer{
		session: newSession(n, id, pc, offer.SDP),
		sub:     sub,
		log:     n.log.With("stream", room.Name(), "session", id, "role", "viewer"),
	}
	for _, dt := range sub.DownTracks() {
		if _, offered := offer.mediaOf(dt.Kind()); !offered {
			continue
		}
		lt := &localTrack{dt: dt, streamID: room.Name()}
		sender, err := pc.AddTrack(lt)
		if err != nil {
			sub.Close(err)
			_ = pc.Close()
			return nil, "", err
		}
		v.tracks = append(v.tracks, lt)
		v.wg.Add(1)
		go v.readRTCP(sender, dt)
	}
	sub.SetPreferences(prefs, sfu.Now())
	pc.OnConnectionStateChange(v.onState)
	v.watchChannels()
	sub.OnClose(func(error) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			_ = pc.Close()
		}()
	})
	answer, err := n.answer(ctx, pc, offer.SDP)
	if err != nil {
		sub.Close(err)
		_ = pc.Close()
		v.wg.Wait()
		return nil, "", err
	}
	n.mu.Lock()
	n.viewers[v] = struct{}{}
	n.mu.Unlock()
	return v, answer, nil
}

func (v *Viewer) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		v.sub.Start(sfu.Now())
	case webrtc.PeerConnectionStateFailed:
		go v.pc.Close() //nolint:errcheck // closing a failed connection
	case webrtc.PeerConnectionStateClosed:
		v.sub.Close(ErrClosed)
		v.node.mu.Lock()
		delete(v.node.viewers, v)
		v.node.mu.Unlock()
		v.markDone()
	}
}

// readRTCP dispatches the viewer's feedback for one sender: NACKs and
// keyframe requests to the down track, bandwidth feedback to the subscriber.
func (v *Viewer) readRTCP(sender *webrtc.RTPSender, dt *sfu.DownTrack) {
	defer v.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			v.node.malformedRTCP.Add(1)
			continue
		}
		v.handleRTCP(pkts, dt, sfu.Now())
	}
}

func (v *Viewer) handleRTCP(pkts []rtcp.Packet, dt *sfu.DownTrack, now int64) {
	ssrc := dt.SSRC()
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication:
			if p.MediaSSRC == ssrc {
				dt.OnPictureLoss(now)
			}
		case *rtcp.FullIntraRequest:
			for _, e := range p.FIR {
				if e.SSRC == ssrc {
					dt.OnPictureLoss(now)
				}
			}
		case *rtcp.TransportLayerNack:
			if p.MediaSSRC == ssrc {
				dt.OnNACK(p.Nacks, now)
			}
		case *rtcp.TransportLayerCC:
			v.sub.OnTransportCC(p, now)
		case *rtcp.ReceiverEstimatedMaximumBitrate:
			v.sub.OnREMB(p.Bitrate, now)
		case *rtcp.ReceiverReport:
			for _, r := range p.Reports {
				if r.SSRC == ssrc && dt.Kind() == sfu.KindVideo {
					v.sub.OnReceiverReport(r.FractionLost, now)
				}
			}
		}
	}
}

// sendReports writes a sender report per track (RFC 3550 §6.4.1).
func (v *Viewer) sendReports(now int64, wall uint64) {
	var pkts []rtcp.Packet
	for _, t := range v.tracks {
		if sr, ok := t.dt.SenderReport(now, wall); ok {
			pkts = append(pkts, &sr)
		}
	}
	if len(pkts) > 0 {
		_ = v.pc.WriteRTCP(pkts)
	}
}

// Subscriber returns the core's view of this session.
func (v *Viewer) Subscriber() *sfu.Subscriber { return v.sub }

// Close ends the session.
func (v *Viewer) Close() error {
	v.sub.Close(ErrClosed)
	err := v.pc.Close()
	v.wg.Wait()
	return err
}
