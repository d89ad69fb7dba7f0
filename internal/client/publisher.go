package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// PublisherConfig describes a synthetic WHIP publisher.
type PublisherConfig struct {
	Endpoint, Token string
	HTTP            *http.Client
	// Simulcast sends three layers, rids l, m and h (320x180, 640x360,
	// 1280x720); otherwise one 1280x720 encoding.
	Simulcast bool
	Audio     bool
	// Codec is "VP8" (the default) or "H264".
	Codec    string
	FPS      int    // frames per second; 0 means 30
	Bitrates [3]int // bits per second of l, m, h; zero means 150k, 500k, 1.2M
	// KeyInterval sends periodic keyframes; 0 sends them only when asked.
	KeyInterval time.Duration
	// Video supplies H.264 access units (a real clip); nil uses synthetic
	// frames. VP8 is always synthetic.
	Video VideoSource
	// Tag (0–15) marks every frame, so a viewer of several publishers (a
	// Live Room) tells them apart: Marker.Tag.
	Tag uint8
	Options
}

// VideoSource supplies the H.264 access units a publisher sends, as NAL
// units without start codes. The publisher adds its marker and packetizes.
type VideoSource interface {
	// Next returns the next access unit of a simulcast layer (0 low … 2
	// high): an IDR one when key is set. keyframe reports whether it is one.
	Next(layer int, key bool) (nals [][]byte, keyframe bool)
}

// Publisher is a running synthetic publisher.
type Publisher struct {
	PC       *webrtc.PeerConnection
	Resource *Resource

	cfg    PublisherConfig
	layers []*pubLayer
	audio  *sendTrack
	stamp  *stampConn
	mux    ice.UDPMux

	framesMu sync.Mutex
	frames   [3][frameRing]frameStart // per layer, by frame number

	keyRequests atomic.Uint64
	level       atomic.Uint32 // RFC 6464 level of the audio sent, 0 loudest … 127 silent
	keyMu       sync.Mutex
	keyTimes    map[string][]time.Time
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// frameStart is the first packet of a frame the publisher sent.
type frameStart struct {
	frame uint32
	ssrc  uint32
	seq   uint16
	set   bool
}

// frameRing is how many frames back FrameSent remembers.
const frameRing = 256

type pubLayer struct {
	track   *sendTrack
	index   int
	w, h    int
	bitrate int
	seq     uint16
	ts      uint32
	pid     uint16
	frame   uint32
	wantKey atomic.Bool
	lastKey time.Time
}

// Publish connects a synthetic publisher and starts sending.
func Publish(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	if cfg.FPS == 0 {
		cfg.FPS = 30
	}
	if cfg.Bitrates == [3]int{} {
		cfg.Bitrates = [3]int{150_000, 500_000, 1_200_000}
	}
	video, err := videoCodec(cfg.Codec)
	if err != nil {
		return nil, err
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	for _, f := range cfg.Interceptors { // nearest the network: a test's lossy link
		ir.Add(f)
	}
	resp, err := nack.NewResponderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(resp)
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(sr)
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
	p := &Publisher{PC: pc, cfg: cfg, stamp: stamp, mux: mux}
	p.level.Store(127)
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	closeAll := func() {
		_ = pc.Close()
		if mux != nil {
			_ = mux.Close()
		}
	}
	if err := p.negotiate(ctx); err != nil {
		closeAll()
		return nil, err
	}
	// Like a real client, send media once the transport is up: what is
	// written before is dropped, first keyframes included.
	select {
	case <-connected:
	case <-ctx.Done():
		closeAll()
		p.wg.Wait()
		return nil, fmt.Errorf("connecting: %w", ctx.Err())
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.run(runCtx)
	return p, nil
}

// videoCodec returns the codec a synthetic publisher sends.
func videoCodec(name string) (webrtc.RTPCodecParameters, error) {
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}, {Type: "transport-cc"}}
	switch strings.ToUpper(name) {
	case "", "VP8":
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb},
			PayloadType:        96,
		}, nil
	case "H264":
		return webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
			PayloadType: 102,
		}, nil
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("codec %q: use VP8 or H264", name)
}

func (p *Publisher) negotiate(ctx context.Context) error {
	codec, _ := videoCodec(p.cfg.Codec)
	vp8 := codec.RTPCodecCapability
	rids := []string{""}
	if p.cfg.Simulcast {
		rids = []string{"h", "m", "l"}
	}
	var video *webrtc.RTPTransceiver
	for i, rid := range rids {
		idx := 2 - i
		if !p.cfg.Simulcast {
			idx = 2
		}
		t := &sendTrack{id: "video", streamID: "glint", rid: rid, kind: webrtc.RTPCodecTypeVideo, codec: vp8}
		l := &pubLayer{track: t, index: idx, w: 320 << idx, h: 180 << idx, bitrate: p.cfg.Bitrates[idx],
			seq: uint16(rand.Uint32()), ts: rand.Uint32(), pid: uint16(rand.Uint32() & 0x7fff)}
		l.wantKey.Store(true)
		p.layers = append(p.layers, l)
		if i == 0 {
			tr, err := p.PC.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return err
			}
			video = tr
			continue
		}
		if err := video.Sender().AddEncoding(t); err != nil {
			return err
		}
	}
	var audio *webrtc.RTPTransceiver
	if p.cfg.Audio {
		p.audio = &sendTrack{id: "audio", streamID: "glint", kind: webrtc.RTPCodecTypeAudio,
			codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}}
		tr, err := p.PC.AddTransceiverFromTrack(p.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return err
		}
		audio = tr
	}
	offer, err := p.PC.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, l := range p.layers {
		l.track.mid = video.Mid()
	}
	if audio != nil {
		p.audio.mid = audio.Mid()
	}
	res, err := Post(ctx, p.cfg.HTTP, p.cfg.Endpoint, p.cfg.Token, p.PC.LocalDescription().SDP)
	if err != nil {
		return err
	}
	p.Resource = res
	if err := p.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.Answer}); err != nil {
		return fmt.Errorf("applying answer: %w", err)
	}
	for _, l := range p.layers {
		p.wg.Add(1)
		go p.readRTCP(video.Sender(), l.track.rid)
	}
	if audio != nil {
		p.wg.Add(1)
		go p.readRTCP(audio.Sender(), "")
	}
	return nil
}

// readRTCP turns PLI and FIR into keyframes on the layer asked for.
func (p *Publisher) readRTCP(s *webrtc.RTPSender, rid string) {
	defer p.wg.Done()
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = s.ReadRTCP()
		} else {
			pkts, _, err = s.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			var ssrc uint32
			switch r := pkt.(type) {
			case *rtcp.PictureLossIndication:
				ssrc = r.MediaSSRC
			case *rtcp.FullIntraRequest:
				if len(r.FIR) > 0 {
					ssrc = r.FIR[0].SSRC
				}
			default:
				continue
			}
			for _, l := range p.layers {
				l.track.mu.Lock()
				match := l.track.ssrc == ssrc
				l.track.mu.Unlock()
				if match {
					p.keyRequests.Add(1)
					p.keyMu.Lock()
					if p.keyTimes == nil {
						p.keyTimes = map[string][]time.Time{}
					}
					p.keyTimes[l.track.rid] = append(p.keyTimes[l.track.rid], time.Now())
					p.keyMu.Unlock()
					l.wantKey.Store(true)
				}
			}
		}
	}
}

func (p *Publisher) run(ctx context.Context) {
	defer p.wg.Done()
	frame := time.NewTicker(time.Second / time.Duration(p.cfg.FPS))
	defer frame.Stop()
	audio := time.NewTicker(20 * time.Millisecond)
	defer audio.Stop()
	var aseq uint16
	var ats uint32
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-frame.C:
			for _, l := range p.layers {
				p.sendFrame(l, now)
			}
		case <-audio.C:
			if p.audio != nil {
				p.audio.level = uint8(p.level.Load())
				_ = p.audio.write(aseq, ats, false, opusFrame())
				aseq++
				ats += 960
			}
		}
	}
}

func (p *Publisher) sendFrame(l *pubLayer, now time.Time) {
	key := l.wantKey.Swap(false)
	if p.cfg.KeyInterval > 0 && now.Sub(l.lastKey) >= p.cfg.KeyInterval {
		key = true
	}
	if key {
		l.lastKey = now
	}
	size := l.bitrate / 8 / p.cfg.FPS
	if key {
		size *= 3
	}
	var pkts [][]byte
	mark := l.index | int(p.cfg.Tag&0x0f)<<4 // the marker's layer byte
	switch {
	case isH264(l.track.codec.MimeType) && p.cfg.Video != nil:
		nals, _ := p.cfg.Video.Next(l.index, key)
		pkts = h264AccessUnit(nals, mark, l.frame, now)
	case isH264(l.track.codec.MimeType):
		pkts = h264AccessUnit(syntheticH264(key, l.index, size), mark, l.frame, now)
	default:
		pkts = vp8Frame(key, l.pid, l.w, l.h, size, mark, l.frame, now)
	}
	if p.stamp != nil && l.index < len(p.frames) {
		l.track.mu.Lock()
		ssrc := l.track.ssrc
		l.track.mu.Unlock()
		p.framesMu.Lock()
		p.frames[l.index][l.frame%frameRing] = frameStart{frame: l.frame, ssrc: ssrc, seq: l.seq, set: true}
		p.framesMu.Unlock()
	}
	for i, pl := range pkts {
		_ = l.track.write(l.seq, l.ts, i == len(pkts)-1, pl)
		l.seq++
	}
	l.ts += uint32(90000 / p.cfg.FPS)
	l.pid = (l.pid + 1) & 0x7fff
	l.frame++
}

// SetAudioLevel sets the RFC 6464 level (0 loudest … 127 silent) the
// publisher's audio packets carry from now on: a synthetic voice.
func (p *Publisher) SetAudioLevel(level uint8) { p.level.Store(uint32(min(level, 127))) }

// KeyframeRequests returns how many PLI/FIR the server sent.
func (p *Publisher) KeyframeRequests() uint64 { return p.keyRequests.Load() }

// KeyframeRequestTimes returns when each layer (by rid) was asked for a
// keyframe.
func (p *Publisher) KeyframeRequestTimes() map[string][]time.Time {
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	out := map[string][]time.Time{}
	for rid, ts := range p.keyTimes {
		out[rid] = append([]time.Time(nil), ts...)
	}
	return out
}

// FrameSent returns when the first packet of frame (layer, frame) was
// handed to the publisher's socket, for a publisher made with Stamp.
func (p *Publisher) FrameSent(layer int, frame uint32) (time.Time, bool) {
	if p.stamp == nil || layer < 0 || layer >= len(p.frames) {
		return time.Time{}, false
	}
	p.framesMu.Lock()
	f := p.frames[layer][frame%frameRing]
	p.framesMu.Unlock()
	if !f.set || f.frame != frame {
		return time.Time{}, false
	}
	return p.stamp.arrival(f.ssrc, f.seq)
}

// Stop stops sending and closes the connection without a DELETE, as a
// publisher that vanished would.
func (p *Publisher) Stop() error {
	p.cancel()
	err := p.PC.Close()
	p.wg.Wait()
	if p.mux != nil {
		_ = p.mux.Close()
	}
	return err
}

// Close ends the session with a DELETE and closes the connection.
func (p *Publisher) Close(ctx context.Context) error {
	var errs []error
	if p.Resource != nil {
		errs = append(errs, p.Resource.Delete(ctx))
	}
	errs = append(errs, p.Stop())
	return errors.Join(errs...)
}
