package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/codec"
)

// ViewerConfig describes a WHEP viewer.
type ViewerConfig struct {
	Endpoint, Token string
	HTTP            *http.Client
	// NoAudio leaves audio out of the offer.
	NoAudio bool
	// Slots is how many broadcasters of a Live Room the viewer receives at
	// once: an audio and a video m-line each (0 means 1). Stats describe
	// the first slot; SlotStats every one.
	Slots int
	Options
	// OnMessage, if set, opens the "glint" data channel and gets every
	// message the server sends on it.
	OnMessage func([]byte)
	// OnPacket, if set, sees every received packet on the track's reader
	// goroutine. p is reused for the next packet: copy what you keep.
	OnPacket func(kind webrtc.RTPCodecType, mime string, p *rtp.Packet, at time.Time)
	// OnCapture, if set, gets each packet that carries an abs-capture-time
	// (the server's sources put it on a frame's first packet): when the
	// frame was captured, or reached the server, and when it arrived here.
	OnCapture func(kind webrtc.RTPCodecType, p *rtp.Packet, captured, at time.Time)
}

// absCaptureTimeURI is the abs-capture-time header extension, which the
// viewer offers.
const absCaptureTimeURI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

// Viewer is a connected WHEP viewer that checks what it receives.
type Viewer struct {
	PC       *webrtc.PeerConnection
	Resource *Resource

	cfg   ViewerConfig
	wg    sync.WaitGroup
	stamp *stampConn
	mux   ice.UDPMux

	mu     sync.Mutex
	stats  ViewerStats
	seen   map[webrtc.RTPCodecType]*streamCheck
	states []webrtc.PeerConnectionState
	slots  map[string]*SlotStats // by mid
	first  map[string]bool       // mids of the first slot
}

// SlotStats is what arrived on one m-line of a multi-slot viewer.
type SlotStats struct {
	Packets int
	// SSRCs counts the SSRCs seen (one for a slot that changed hands
	// without renegotiation); SeqJumps sequence numbers skipped.
	SSRCs, SeqJumps int
	// Tags counts video frames by their publisher's tag; LastTag is the
	// latest frame's.
	Tags    map[uint8]int
	LastTag uint8
	LastAt  time.Time

	ssrc    uint32
	lastSeq uint16
}

// ViewerStats is what a viewer observed.
type ViewerStats struct {
	VideoPackets, AudioPackets int
	// FirstVideoKeyframe: the first video packet started a keyframe.
	FirstVideoKeyframe bool
	// SSRCChanges counts SSRC changes within a kind (a continuous stream has
	// none).
	SSRCChanges int
	// SeqJumps counts sequence numbers skipped forward and never filled.
	SeqJumps int
	// Layer is the simulcast layer (0 low … 2 high) of the last frame.
	Layer int
	// Layers records each layer change with its time.
	Layers []LayerChange
	// FramesByLayer counts complete frame starts per layer.
	FramesByLayer [3]int
	// FrameGaps counts frames of the layer being watched that never arrived
	// (a frame repaired late by a retransmission is not a gap).
	FrameGaps int
	// Started is when View was called; FirstFrameAt when the first
	// synthetic frame started, FirstPacketAt the first video packet of any
	// kind, FirstKeyframeAt the first keyframe.
	Started, FirstFrameAt, FirstPacketAt, FirstKeyframeAt time.Time
	// Expected is how many video and audio packets the sequence numbers
	// span; Missing how many of them are still missing (SeqJumps included).
	Expected, Missing int
	// LastPacketAt is when the latest packet arrived.
	LastPacketAt time.Time
	// LastLatency is the send-to-receive time of the latest frame start.
	LastLatency time.Duration
}

// LayerChange is a switch to another simulcast layer.
type LayerChange struct {
	At    time.Time
	Layer int
}

type streamCheck struct {
	ssrc      uint32
	started   bool
	first     uint16
	wraps     int
	highest   uint16
	missing   map[uint16]struct{}
	lastFrame map[int]uint32
	// frames of the current layer not seen yet, by frame number
	missingFrames map[uint32]struct{}
}

// frameWindow is how many frames a missing frame may lag before it counts
// as lost (one second at 30 fps).
const frameWindow = 30

// View connects a WHEP viewer.
func View(ctx context.Context, cfg ViewerConfig) (*Viewer, error) {
	started := time.Now()
	m := &webrtc.MediaEngine{}
	for _, name := range []string{"VP8", "H264"} {
		c, _ := videoCodec(name)
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, RTCPFeedback: []webrtc.RTCPFeedback{{Type: "transport-cc"}}},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: absCaptureTimeURI}, k); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	for _, f := range cfg.Interceptors {
		ir.Add(f)
	}
	retries := cfg.NACKRetries
	if retries == 0 {
		retries = 5
	}
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorMaxNacksPerPacket(retries))
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, err
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	se := cfg.settingEngine()
	stamp, mux, err := cfg.stampedEngine(&se)
	if err != nil {
		return nil, err
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		if mux != nil {
			_ = mux.Close()
		}
		return nil, err
	}
	v := &Viewer{PC: pc, cfg: cfg, seen: map[webrtc.RTPCodecType]*streamCheck{}, stamp: stamp, mux: mux,
		slots: map[string]*SlotStats{}, first: map[string]bool{}}
	v.stats.Started = started
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		v.mu.Lock()
		v.states = append(v.states, s)
		v.mu.Unlock()
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		mid := ""
		for _, tr := range pc.GetTransceivers() {
			if tr.Receiver() == r {
				mid = tr.Mid()
			}
		}
		var absID uint8
		for _, e := range r.GetParameters().HeaderExtensions {
			if e.URI == absCaptureTimeURI {
				absID = uint8(e.ID)
			}
		}
		v.wg.Add(1)
		go v.read(t, mid, absID)
	})
	kinds := []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}
	if !cfg.NoAudio {
		kinds = append(kinds, webrtc.RTPCodecTypeAudio)
	}
	var trs []*webrtc.RTPTransceiver
	for range max(cfg.Slots, 1) {
		for _, k := range kinds {
			tr, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
			if err != nil {
				_ = v.closePC()
				return nil, err
			}
			trs = append(trs, tr)
		}
	}
	if fn := cfg.OnMessage; fn != nil {
		dc, err := pc.CreateDataChannel("glint", nil)
		if err != nil {
			_ = v.closePC()
			return nil, err
		}
		dc.OnMessage(func(m webrtc.DataChannelMessage) { fn(m.Data) })
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		_ = v.closePC()
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		_ = v.closePC()
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		_ = v.closePC()
		return nil, ctx.Err()
	}
	for _, tr := range trs[:len(kinds)] {
		v.first[tr.Mid()] = true
	}
	res, err := Post(ctx, cfg.HTTP, cfg.Endpoint, cfg.Token, pc.LocalDescription().SDP)
	if err != nil {
		_ = v.closePC()
		return nil, err
	}
	v.Resource = res
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.Answer}); err != nil {
		_ = v.closePC()
		return nil, fmt.Errorf("applying answer: %w", err)
	}
	return v, nil
}

// read is a track's loop: one buffer and one packet, reused, so hundreds
// of viewers in one process do not load the garbage collector.
func (v *Viewer) read(t *webrtc.TrackRemote, mid string, absID uint8) {
	defer v.wg.Done()
	buf := make([]byte, 1500)
	var p rtp.Packet
	kind, mime := t.Kind(), t.Codec().MimeType
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		now := time.Now()
		v.noteSlot(mid, mime, &p, now)
		if v.first[mid] || mid == "" {
			v.note(kind, mime, &p, now)
		}
		if v.cfg.OnPacket != nil {
			v.cfg.OnPacket(kind, mime, &p, now)
		}
		if v.cfg.OnCapture != nil && absID != 0 {
			if e := p.GetExtension(absID); len(e) >= 8 {
				v.cfg.OnCapture(kind, &p, codec.TimeOfNTP(binary.BigEndian.Uint64(e)), now)
			}
		}
	}
}

func (v *Viewer) noteSlot(mid, mime string, p *rtp.Packet, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.slots[mid]
	if s == nil {
		s = &SlotStats{Tags: map[uint8]int{}}
		v.slots[mid] = s
	}
	switch {
	case s.Packets == 0 || s.ssrc != p.SSRC:
		s.SSRCs++
		s.ssrc = p.SSRC
	case int16(p.SequenceNumber-s.lastSeq) > 1:
		s.SeqJumps++
	}
	if s.Packets == 0 || int16(p.SequenceNumber-s.lastSeq) > 0 {
		s.lastSeq = p.SequenceNumber
	}
	s.Packets++
	s.LastAt = now
	if m, ok := ReadMarker(mime, p.Payload); ok {
		s.Tags[m.Tag]++
		s.LastTag = m.Tag
	}
}

// Packets returns how many media packets arrived, on every m-line.
func (v *Viewer) Packets() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, s := range v.slots {
		n += s.Packets
	}
	return n
}

// SlotStats returns what arrived on the m-line mid (a copy), and whether
// anything did.
func (v *Viewer) SlotStats(mid string) (SlotStats, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.slots[mid]
	if s == nil {
		return SlotStats{}, false
	}
	c := *s
	c.Tags = maps.Clone(s.Tags)
	return c, true
}

func (v *Viewer) note(kind webrtc.RTPCodecType, mime string, p *rtp.Packet, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := &v.stats
	s.LastPacketAt = now
	c := v.seen[kind]
	if c == nil {
		c = &streamCheck{ssrc: p.SSRC, missing: map[uint16]struct{}{}, lastFrame: map[int]uint32{}, missingFrames: map[uint32]struct{}{}}
		v.seen[kind] = c
	}
	if c.ssrc != p.SSRC {
		s.SSRCChanges++
		c.ssrc = p.SSRC
	}
	if !c.started {
		c.started, c.highest, c.first = true, p.SequenceNumber, p.SequenceNumber
		if kind == webrtc.RTPCodecTypeVideo {
			s.FirstVideoKeyframe = IsKeyframe(mime, p.Payload)
			s.FirstPacketAt = now
		}
	} else if d := int16(p.SequenceNumber - c.highest); d > 0 {
		for q := c.highest + 1; q != p.SequenceNumber; q++ {
			c.missing[q] = struct{}{}
		}
		if p.SequenceNumber < c.highest {
			c.wraps++
		}
		c.highest = p.SequenceNumber
	} else {
		delete(c.missing, p.SequenceNumber)
	}
	if kind == webrtc.RTPCodecTypeVideo && s.FirstKeyframeAt.IsZero() && IsKeyframe(mime, p.Payload) {
		s.FirstKeyframeAt = now
	}
	// Forget holes old enough that no NACK will fill them.
	for q := range c.missing {
		if int16(c.highest-q) > 512 {
			delete(c.missing, q)
			s.SeqJumps++
		}
	}
	if kind == webrtc.RTPCodecTypeAudio {
		s.AudioPackets++
		return
	}
	s.VideoPackets++
	m, ok := ReadMarker(mime, p.Payload)
	if !ok || m.Layer > 2 {
		return
	}
	if s.FramesByLayer == [3]int{} {
		s.FirstFrameAt = now
	}
	if len(s.Layers) == 0 || s.Layer != m.Layer {
		s.Layer = m.Layer
		s.Layers = append(s.Layers, LayerChange{At: now, Layer: m.Layer})
		delete(c.lastFrame, m.Layer)
		clear(c.missingFrames) // frames of the old layer are no longer due
	}
	last, ok := c.lastFrame[m.Layer]
	switch {
	case !ok || m.Frame+frameWindow*4 < last: // first frame, or a new publisher counting from zero
		c.lastFrame[m.Layer] = m.Frame
		clear(c.missingFrames)
	case m.Frame > last:
		for f := last + 1; f < m.Frame && f-last <= frameWindow*4; f++ {
			c.missingFrames[f] = struct{}{}
		}
		c.lastFrame[m.Layer] = m.Frame
	default:
		delete(c.missingFrames, m.Frame)
	}
	for f := range c.missingFrames {
		if c.lastFrame[m.Layer]-f > frameWindow {
			delete(c.missingFrames, f)
			s.FrameGaps++
		}
	}
	s.FramesByLayer[m.Layer]++
	s.LastLatency = now.Sub(m.Sent)
}

// Stats returns what the viewer has seen so far.
func (v *Viewer) Stats() ViewerStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.stats
	s.Layers = append([]LayerChange(nil), s.Layers...)
	s.Missing = s.SeqJumps
	for _, c := range v.seen {
		if c.started {
			s.Expected += c.wraps<<16 + int(c.highest) - int(c.first) + 1
			s.Missing += len(c.missing)
		}
	}
	return s
}

// States returns the connection states the viewer went through.
func (v *Viewer) States() []webrtc.PeerConnectionState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]webrtc.PeerConnectionState(nil), v.states...)
}

// Close ends the session with a DELETE and closes the connection.
func (v *Viewer) Close(ctx context.Context) error {
	if v.Resource != nil {
		_ = v.Resource.Delete(ctx)
	}
	err := v.closePC()
	v.wg.Wait()
	return err
}

// closePC closes the PeerConnection and the viewer's own socket, if any.
func (v *Viewer) closePC() error {
	err := v.PC.Close()
	if v.mux != nil {
		_ = v.mux.Close()
	}
	return err
}

// Arrival returns when packet (ssrc, seq) reached the viewer's socket, for
// a viewer made with Stamp.
func (v *Viewer) Arrival(ssrc uint32, seq uint16) (time.Time, bool) {
	if v.stamp == nil {
		return time.Time{}, false
	}
	return v.stamp.arrival(ssrc, seq)
}
