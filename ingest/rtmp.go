package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	srt "github.com/datarhei/gosrt"

	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// Keys says which stream a key opens (signaling.KeyFile does), in
// constant time.
type Keys interface {
	StreamOf(key string) (string, error)
}

// Config holds the ingest's settings.
type Config struct {
	// RTMPListen is the RTMP listener's address (":1935"); empty: none.
	RTMPListen string
	// RTMPSListen is an RTMPS (RTMP over TLS) listener's address, with
	// TLSCert and TLSKey its certificate and key files (PEM); empty: none.
	RTMPSListen     string
	TLSCert, TLSKey string
	// SRTListen is the SRT listener's UDP address; empty: none.
	// SRTLatency is SRT's receive buffer (default 120 ms): the jitter and
	// repair time it absorbs, added to the stream's latency.
	SRTListen  string
	SRTLatency time.Duration
	// FFmpeg is the transcoder's binary; Encoder returns the H.264
	// encoder probed for it (waiting for the probe).
	FFmpeg  string
	Encoder func() (transcode.Encoder, error)
	// Ladder is the heights of the WebRTC layers made of a source, as
	// its height allows: up to three (default 720, 360, 180).
	Ladder []int
	// GOP is the keyframe interval of the layers: how long a new WebRTC
	// viewer may wait for its first picture (default 1 s).
	GOP time.Duration
	// Timeout ends a connection that sends nothing for this long
	// (default 10 s).
	Timeout time.Duration
}

// DefaultLadder is the heights of an ingested stream's WebRTC layers.
var DefaultLadder = []int{720, 360, 180} //nolint:gochecknoglobals // constant

// Server accepts encoders: RTMP publishers (rtmp://host/live with the
// stream key as the stream name, as OBS and hardware encoders are set up;
// RTMPS the same over TLS) and SRT callers (srt.go).
type Server struct {
	cfg  Config
	reg  *sfu.Registry
	keys Keys
	log  *slog.Logger
	ln   net.Listener // RTMP, or nil
	tls  net.Listener // RTMPS, or nil
	srt  srt.Listener // SRT, or nil

	mu      sync.Mutex
	conns   map[io.Closer]struct{}
	sources map[string]*source // by stream: the publishing ones
	closed  bool
	wg      sync.WaitGroup
}

// Status is how a stream is being ingested, for the API and pages.
type Status struct {
	Protocol string `json:"protocol"` // rtmp
	Remote   string `json:"remote"`
	Video    string `json:"video"` // the source's codec and size, e.g. "H.264 1280x720"
	Audio    string `json:"audio,omitempty"`
	// Passthrough says WebRTC viewers get the source's video as it comes
	// in the top layer (H.264 without B-frames); otherwise it is transcoded.
	Passthrough bool `json:"passthrough"`
	// Bitrate is what the encoder sent, on average since it connected.
	Bitrate uint64  `json:"bitrate"`
	Seconds float64 `json:"connected_seconds"`
	// Dropped counts frames dropped because the transcoder fell behind.
	Dropped uint64 `json:"dropped"`
}

// Status returns how stream is ingested, and false when no encoder
// publishes it here.
func (s *Server) Status(stream string) (Status, bool) {
	s.mu.Lock()
	src := s.sources[stream]
	s.mu.Unlock()
	if src == nil {
		return Status{}, false
	}
	return src.status(), true
}

// URLs are the RTMP, RTMPS and SRT URLs encoders publish to on the host
// a client reached this node at (the HTTP request's host name, the
// listeners' ports); empty for a listener that is off. SRT's still needs
// its stream id.
func (s *Server) URLs(host string) (rtmp, rtmps, srtURL string) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	at := func(scheme string, a net.Addr) string {
		if a == nil {
			return ""
		}
		_, port, _ := net.SplitHostPort(a.String())
		return scheme + "://" + net.JoinHostPort(host, port) + "/" + rtmpApp
	}
	if s.srt != nil {
		_, port, _ := net.SplitHostPort(s.SRTAddr())
		srtURL = "srt://" + net.JoinHostPort(host, port)
	}
	return at("rtmp", s.Addr()), at("rtmps", s.TLSAddr()), srtURL
}

// New listens on every address cfg sets (RTMP, RTMPS, SRT).
func New(cfg Config, reg *sfu.Registry, keys Keys, log *slog.Logger) (*Server, error) {
	if cfg.GOP <= 0 {
		cfg.GOP = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if len(cfg.Ladder) == 0 {
		cfg.Ladder = DefaultLadder
	}
	s := &Server{cfg: cfg, reg: reg, keys: keys, log: log,
		conns: map[io.Closer]struct{}{}, sources: map[string]*source{}}
	if cfg.RTMPSListen != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("rtmps: the certificate and key: %w", err)
		}
		if s.tls, err = tls.Listen("tcp", cfg.RTMPSListen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}); err != nil {
			return nil, fmt.Errorf("rtmps: %w", err)
		}
	}
	if cfg.RTMPListen != "" {
		var err error
		if s.ln, err = net.Listen("tcp", cfg.RTMPListen); err != nil {
			if s.tls != nil {
				_ = s.tls.Close()
			}
			return nil, fmt.Errorf("rtmp: %w", err)
		}
	}
	if cfg.SRTListen != "" {
		if err := s.listenSRT(); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	if s.ln == nil && s.tls == nil && s.srt == nil {
		return nil, errors.New("ingest: no listener configured")
	}
	return s, nil
}

// Close closes the listeners of a server that will not be served (the
// node failed to start).
func (s *Server) Close() { s.closeListeners() }

// closeListeners closes every listener: shutdown, or a failed New.
func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.ln, s.tls} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if s.srt != nil {
		s.srt.Close()
	}
}

// Addr is where the RTMP listener is, nil without one.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// TLSAddr is where the RTMPS listener is, nil without one.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

// Serve accepts publishers on every listener until ctx ends, then
// closes their connections (their streams wait out the reconnect grace)
// and returns.
func (s *Server) Serve(ctx context.Context) error {
	lns := []net.Listener{}
	for _, ln := range []net.Listener{s.ln, s.tls} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.closeListeners()
	}()
	defer s.wg.Wait()
	n := len(lns)
	errc := make(chan error, n+1)
	for _, ln := range lns {
		go func() { errc <- s.accept(ctx, ln) }()
	}
	if s.srt != nil {
		n++
		go func() { s.acceptSRT(ctx); errc <- nil }()
	}
	var err error
	for range n {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// track registers conn while it is served, so shutdown closes it; false
// when the server is closing.
func (s *Server) track(conn io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn io.Closer) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	_ = conn.Close()
}

// register makes src stream name's source (newSource does, before its
// publication starts, so the API never names another protocol for it).
func (s *Server) register(name string, src *source) {
	s.mu.Lock()
	s.sources[name] = src
	s.mu.Unlock()
}

// unregister removes src, unless another source took its place.
func (s *Server) unregister(name string, src *source) {
	s.mu.Lock()
	if s.sources[name] == src {
		delete(s.sources, name)
	}
	s.mu.Unlock()
}

// ended removes src once its connection ended, and stops it.
func (s *Server) ended(name string, src *source) {
	s.unregister(name, src)
	src.stop()
}

// accept takes one listener's connections until it closes.
func (s *Server) accept(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // the listener was closed to stop: not a failure
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// A passing failure (out of file descriptors, say): go on
			// accepting, as net/http does.
			s.log.Warn("ingest: accepting a connection", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !s.track(c) {
			_ = c.Close()
			continue
		}
		s.wg.Go(func() {
			defer s.untrack(c)
			if err := s.handle(ctx, c); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Info("rtmp: connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		})
	}
}

// rtmpApp is the application name publishers use: rtmp://host/live.
const rtmpApp = "live"

// handle serves one connection: the handshake, the key, then the
// stream's frames until it ends.
func (s *Server) handle(ctx context.Context, c net.Conn) error {
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	sc := &gortmplib.ServerConn{RW: c}
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if err := sc.AcceptConn(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if !sc.Publish {
		_ = sc.RejectAction()
		return errors.New("playing is not offered over RTMP: watch over WebRTC or LL-HLS")
	}
	app, key, _ := strings.Cut(strings.TrimPrefix(sc.URL.Path, "/"), "/")
	if app != rtmpApp || key == "" || strings.Contains(key, "/") {
		_ = sc.RejectAction()
		// The name is not echoed: an encoder given rtmp://host/KEY would log its key.
		return fmt.Errorf("unknown application: publish to rtmp://HOST/%s with the stream key", rtmpApp)
	}
	name, err := s.keys.StreamOf(key)
	if err != nil {
		_ = sc.RejectAction()
		return errors.New("wrong stream key") // the key itself is never logged
	}
	r := &gortmplib.Reader{Conn: sc}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("%s: reading the stream's tracks: %w", name, err)
	}
	in := &rtmpIn{s: s, name: name, conn: c}
	if err := in.listen(r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	in.sp.protocol, in.sp.received, in.sp.remoteAddr = "rtmp", sc.BytesReceived, c.RemoteAddr().String()
	defer in.end()
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		if err := r.Read(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		if in.err == nil && in.src != nil {
			in.err = in.src.fault
		}
		if in.err != nil {
			return fmt.Errorf("%s: %w", name, in.err)
		}
	}
}

// rtmpIn is one RTMP publisher's stream: what it sends, and from its
// first video keyframe on, the source that takes it. The reader's
// callbacks, on the connection's goroutine, are its only users.
type rtmpIn struct {
	s    *Server
	name string
	conn io.Closer
	sp   spec
	src  *source
	err  error // the source could not start: the connection ends
}

// ready reports whether the source takes frames, starting it at the
// first video keyframe (whose parameters complete the spec: params,
// for codecs whose RTMP track carries none).
func (in *rtmpIn) ready(key bool, params func() bool) bool {
	if in.src != nil || in.err != nil {
		return in.src != nil
	}
	if !key || (params != nil && !params()) {
		return false
	}
	src, err := newSource(in.s, in.name, in.conn, in.sp)
	if err != nil {
		in.err = err
		return false
	}
	in.src = src
	in.s.log.Info("rtmp: publishing", "stream", in.name, "remote", in.sp.remoteAddr, "video", in.sp.videoName, "audio", in.sp.audioName)
	return true
}

// end stops the source once the connection ended.
func (in *rtmpIn) end() {
	if in.src != nil {
		in.s.ended(in.name, in.src)
	}
}

// listen reads what an RTMP publisher sends (H.264, or over Enhanced
// RTMP H.265, AV1 or VP9; AAC or Opus) and sets the reader's callbacks.
func (in *rtmpIn) listen(r *gortmplib.Reader) error {
	sp := &in.sp
	video := false
	for _, t := range r.Tracks() {
		if t.Codec.IsVideo() {
			if video {
				continue // the first video track is the stream's
			}
			video = true
		}
		switch c := t.Codec.(type) {
		case *rtmpcodecs.H264:
			if err := sp.setH264(c.SPS, c.PPS); err != nil {
				return err
			}
			r.OnDataH264(t, func(pts, dts time.Duration, au [][]byte) {
				if key := h264.IsRandomAccess(au); in.ready(key, nil) {
					in.src.videoAU(pts, dts, au, key)
				}
			})
		case *rtmpcodecs.H265:
			if err := sp.setH265(c.VPS, c.SPS, c.PPS); err != nil {
				return err
			}
			r.OnDataH265(t, func(pts, dts time.Duration, au [][]byte) {
				if key := h265.IsRandomAccess(au); in.ready(key, nil) {
					in.src.videoAU(pts, dts, au, key)
				}
			})
		case *rtmpcodecs.AV1:
			r.OnDataAV1(t, func(pts time.Duration, tu [][]byte) {
				key := av1.IsRandomAccess2(tu)
				if !in.ready(key, func() bool { return av1Video(sp, tu) }) {
					return
				}
				if b, err := av1.Bitstream(tu).Marshal(); err == nil {
					in.src.push(frame{video: true, key: key, ms: in.src.videoClock(pts), data: b})
				}
			})
		case *rtmpcodecs.VP9:
			r.OnDataVP9(t, func(pts time.Duration, f []byte) {
				key := vp9.IsRandomAccess(f)
				if in.ready(key, func() bool { return vp9Video(sp, f) }) {
					in.src.push(frame{video: true, key: key, ms: in.src.videoClock(pts), data: f})
				}
			})
		case *rtmpcodecs.MPEG4Audio:
			a, err := aacAudio(c.Config)
			if err != nil {
				return err
			}
			sp.audio, sp.audioName = a, "AAC"
			r.OnDataMPEG4Audio(t, func(pts time.Duration, au []byte) {
				if in.src != nil {
					in.src.aacAU(pts, au)
				}
			})
		case *rtmpcodecs.Opus:
			ch := 2
			if c.IDHeader != nil {
				ch = max(int(c.IDHeader.ChannelCount), 1)
			}
			sp.audio, sp.audioName = &transcode.MKVTrack{Codec: "A_OPUS", Channels: ch}, "Opus"
			r.OnDataOpus(t, func(pts time.Duration, pkt []byte) {
				if in.src != nil {
					in.src.push(frame{ms: in.src.clock(pts), data: pkt})
				}
			})
		default:
			if t.Codec.IsVideo() {
				return fmt.Errorf("video is %s: RTMP ingest takes H.264, and over Enhanced RTMP H.265, AV1 or VP9", codecName(t.Codec))
			}
			in.s.log.Warn("rtmp: audio left out: RTMP ingest takes AAC or Opus", "stream", in.name, "audio", codecName(t.Codec))
		}
	}
	if !video {
		return errors.New("no video track: RTMP ingest takes H.264 (or H.265, AV1, VP9) video")
	}
	return nil
}

// av1Video completes the spec from an AV1 keyframe's sequence header.
func av1Video(sp *spec, tu [][]byte) bool {
	for _, obu := range tu {
		var h av1.OBUHeader
		if h.Unmarshal(obu) != nil || h.Type != av1.OBUTypeSequenceHeader {
			continue
		}
		var sh av1.SequenceHeader
		if sh.Unmarshal(obu) != nil {
			return false
		}
		sp.video, sp.height = transcode.MKVTrack{Codec: "V_AV1", Width: sh.Width(), Height: sh.Height()}, sh.Height()
		sp.videoName = fmt.Sprintf("AV1 %dx%d", sh.Width(), sh.Height())
		return true
	}
	return false
}

// vp9Video completes the spec from a VP9 keyframe's header.
func vp9Video(sp *spec, f []byte) bool {
	var h vp9.Header
	if h.Unmarshal(f) != nil || h.Width() == 0 {
		return false
	}
	sp.video, sp.height = transcode.MKVTrack{Codec: "V_VP9", Width: h.Width(), Height: h.Height()}, h.Height()
	sp.videoName = fmt.Sprintf("VP9 %dx%d", h.Width(), h.Height())
	return true
}

// codecName names an RTMP codec for logs and errors.
func codecName(c rtmpcodecs.Codec) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", c), "*codecs.")
}
