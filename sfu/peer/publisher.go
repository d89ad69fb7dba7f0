package peer

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// Publisher is a WHIP session: a PeerConnection whose incoming tracks feed
// a stream's publication.
type Publisher struct {
	session
	stream *sfu.Stream
	log    *slog.Logger

	pub   *sfu.Publication
	ready chan struct{} // closed once pub is set
	ended atomic.Bool   // the publisher said goodbye (DELETE)
	wg    sync.WaitGroup

	// The layers message waiting to go out, and whether one is being sent.
	pmu     sync.Mutex
	pending []byte
	sending bool
}

// Guest names a Live Room guest a WHIP session publishes as.
type Guest struct {
	ID   string // the participant id, stable across its reconnects
	Name string
}

// Publish answers a WHIP offer. On success the publisher becomes the
// stream's host (guest nil), taking over from any previous one, or joins
// the host's room as guest: sfu.ErrNotLive without a host, sfu.ErrRoomFull
// when the room has no place.
func (n *Endpoint) Publish(ctx context.Context, stream *sfu.Stream, id string, offer *Offer, guest *Guest) (*Publisher, string, error) {
	pc, err := n.newPC(n.pubAPI)
	if err != nil {
		return nil, "", err
	}
	p := &Publisher{
		session: newSession(n, id, pc, offer.SDP),
		stream:  stream,
		log:     n.log.With("stream", stream.Name(), "role", "publisher"),
		ready:   make(chan struct{}),
	}
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(p.onState)
	p.ch.opened = p.sendPending
	p.watchChannels()
	answer, err := n.answer(ctx, pc, offer.SDP)
	switch {
	case err != nil:
	case guest == nil:
		p.pub = stream.StartPublication(sfu.HostID, p, sfu.Now())
	default:
		p.pub, err = stream.Join(guest.ID, guest.Name, p, sfu.Now())
	}
	if err != nil {
		p.ended.Store(true)
		close(p.ready)
		_ = pc.Close()
		return nil, "", err
	}
	for _, c := range answerCodecs(answer) {
		p.pub.Announce(c)
	}
	close(p.ready)
	p.log.Info("publisher joined")
	return p, answer, nil
}

func (p *Publisher) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	select {
	case <-p.ready:
	case <-p.done:
		return
	}
	if p.pub == nil {
		return
	}
	codec := codecOf(track.Codec())
	rid := track.RID()
	l, err := p.pub.AddLayer(rid, codec, extIDs(recv.GetParameters().HeaderExtensions), sfu.Now())
	if err != nil {
		p.log.Warn("track refused", "rid", rid, "err", err)
		return
	}
	p.log.Info("track", "kind", track.Kind().String(), "codec", codec.MimeType, "rid", rid, "ssrc", uint32(track.SSRC()))
	p.wg.Add(2)
	go p.readRTP(track, l)
	go p.readRTCP(recv, rid, l)
}

// readRTP is the layer's ingest loop: one buffer, no allocation per packet.
func (p *Publisher) readRTP(track *webrtc.TrackRemote, l *sfu.Layer) {
	defer p.wg.Done()
	buf := make([]byte, sfu.MaxPacketSize)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if err := l.Ingest(buf[:n], sfu.Now()); errors.Is(err, sfu.ErrPublicationEnded) {
			return
		}
	}
}

// readRTCP takes the publisher's sender reports, which keep lip sync. A
// read error ends it (the track is gone); a packet that does not parse is
// counted and skipped.
func (p *Publisher) readRTCP(recv *webrtc.RTPReceiver, rid string, l *sfu.Layer) {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		var n int
		var err error
		if rid == "" {
			n, _, err = recv.Read(buf)
		} else {
			n, _, err = recv.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			p.node.malformedRTCP.Add(1)
			continue
		}
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == l.SSRC() {
				l.IngestSenderReport(sr.NTPTime, sr.RTPTime, sfu.Now())
			}
		}
	}
}

func (p *Publisher) onState(s webrtc.PeerConnectionState) {
	switch s {
	case webrtc.PeerConnectionStateConnected:
		p.log.Info("publisher connected")
	case webrtc.PeerConnectionStateFailed:
		go p.pc.Close() //nolint:errcheck // closing a failed connection
	case webrtc.PeerConnectionStateClosed:
		<-p.ready
		if p.pub != nil && !p.ended.Load() {
			p.log.Info("publisher lost; viewers wait for it to return")
			p.pub.Lost(sfu.Now())
		}
		p.markDone()
	}
}

// PauseLayers tells the publisher, on its glint data channel, which
// simulcast encodings nobody watches (sfu.LayerPauser): the go-live page
// stops encoding them, saving the phone's battery and uplink, and starts
// again when they are wanted. A publisher without the channel open cannot
// be told (false) and keeps sending them.
func (p *Publisher) PauseLayers(rids []string) bool {
	if p.channel() == nil {
		return false // nobody to tell: it sends them all
	}
	if rids == nil {
		rids = []string{}
	}
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Body any    `json:"body"`
	}{"layers", map[string][]string{"paused": rids}})
	p.log.Debug("publisher told which layers nobody watches", "paused", rids)
	p.pmu.Lock()
	p.pending = b
	p.pmu.Unlock()
	p.sendPending()
	return true
}

// sendPending sends the latest layers message, if the channel is open:
// one sender at a time, the latest message last, so the core's tick
// never waits on the peer. What waits for the channel goes once it opens.
func (p *Publisher) sendPending() {
	ch := p.channel()
	p.pmu.Lock()
	if ch == nil || p.sending || p.pending == nil {
		p.pmu.Unlock()
		return
	}
	p.sending = true
	p.pmu.Unlock()
	go func() {
		for {
			p.pmu.Lock()
			msg := p.pending
			p.pending = nil
			if msg == nil {
				p.sending = false
				p.pmu.Unlock()
				return
			}
			p.pmu.Unlock()
			_ = ch.Send(msg)
		}
	}()
}

// RequestKeyframe sends a PLI for layer l (sfu.Source).
func (p *Publisher) RequestKeyframe(l *sfu.Layer) {
	ssrc := l.SSRC()
	if ssrc == 0 {
		return
	}
	_ = p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// Close closes the connection without ending the stream; used when another
// publisher takes over (sfu.Source).
func (p *Publisher) Close() error {
	p.ended.Store(true)
	if !p.node.spawn(func() { _ = p.pc.Close() }) {
		_ = p.pc.Close()
	}
	return nil
}

// End ends the broadcast: viewers' sessions end and the stream goes
// offline. It returns after the connection has closed.
func (p *Publisher) End() error {
	p.ended.Store(true)
	<-p.ready
	if p.pub != nil {
		p.pub.End(sfu.Now())
	}
	err := p.pc.Close()
	p.wg.Wait()
	return err
}

// Wait blocks until the session's goroutines have finished.
func (p *Publisher) Wait() {
	<-p.done
	p.wg.Wait()
}
