package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	srt "github.com/datarhei/gosrt"

	"github.com/glintlive/glint/transcode"
)

// SRT: an encoder calls srt://HOST:PORT with a stream id naming the
// stream and its key — "publish:{stream}:{key}", or the access-control
// form "#!::r={stream},m=publish,s={key}" — and sends MPEG-TS with H.264
// or H.265 and AAC or Opus. SRT's own receive buffer (Config.SRTLatency)
// absorbs the network's jitter and repairs its losses.

// listenSRT opens the SRT listener.
func (s *Server) listenSRT() error {
	c := srt.DefaultConfig()
	if s.cfg.SRTLatency > 0 {
		c.ReceiverLatency, c.PeerLatency = s.cfg.SRTLatency, s.cfg.SRTLatency
	}
	ln, err := srt.Listen("srt", s.cfg.SRTListen, c)
	if err != nil {
		return fmt.Errorf("srt: %w", err)
	}
	s.srt = ln
	return nil
}

// SRTAddr is where the SRT listener is, "" without one.
func (s *Server) SRTAddr() string {
	if s.srt == nil {
		return ""
	}
	return s.srt.Addr().String()
}

// acceptSRT takes SRT callers until the listener closes.
func (s *Server) acceptSRT(ctx context.Context) {
	for {
		req, err := s.srt.Accept2()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, srt.ErrListenerClosed) {
				return
			}
			s.log.Debug("srt: a caller's handshake failed", "err", err)
			continue
		}
		name, err := s.admitSRT(req.StreamId())
		if err != nil {
			s.log.Info("srt: caller refused", "remote", req.RemoteAddr().String(), "err", err)
			req.Reject(srt.REJ_PEER)
			continue
		}
		conn, err := req.Accept()
		if err != nil {
			continue
		}
		if !s.track(conn) {
			_ = conn.Close()
			continue
		}
		s.wg.Go(func() {
			defer s.untrack(conn)
			if err := s.handleSRT(conn, name); err != nil && ctx.Err() == nil {
				s.log.Info("srt: connection ended", "stream", name, "remote", conn.RemoteAddr().String(), "err", err)
			}
		})
	}
}

// admitSRT checks a caller's stream id: a publisher of a stream with its
// key (compared in constant time; never logged).
func (s *Server) admitSRT(streamID string) (string, error) {
	mode, stream, key, err := parseStreamID(streamID)
	if err != nil {
		return "", err
	}
	if mode != "publish" {
		return "", errors.New("only publishing is offered over SRT: watch over WebRTC or LL-HLS")
	}
	name, err := s.keys.StreamOf(key)
	if err != nil || name != stream {
		// Neither field is echoed: an encoder with them swapped would log its key.
		return "", errors.New("wrong stream or key")
	}
	return name, nil
}

// maxStreamID bounds a stream id (SRT allows 512 bytes).
const maxStreamID = 512

// parseStreamID reads "publish:{stream}:{key}" (or "read:…") and the
// access-control form "#!::r={stream},m={mode},s={key}".
func parseStreamID(id string) (mode, stream, key string, err error) {
	if len(id) > maxStreamID {
		return "", "", "", errors.New("stream id too long")
	}
	if rest, ok := strings.CutPrefix(id, "#!::"); ok {
		mode = "request"
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "r":
				stream = v
			case "m":
				mode = v
			case "s":
				key = v
			}
		}
	} else {
		f := strings.SplitN(id, ":", 3)
		if len(f) != 3 {
			return "", "", "", errors.New(`stream id: want "publish:{stream}:{key}" or "#!::r={stream},m=publish,s={key}"`)
		}
		mode, stream, key = f[0], f[1], f[2]
	}
	if stream == "" || key == "" || len(stream) > 64 || strings.ContainsAny(stream, "/?#") {
		return "", "", "", errors.New("stream id: a stream and its key are needed")
	}
	return mode, stream, key, nil
}

// countingReader counts the bytes read through it, and restarts idle
// (which closes the connection) whenever some come.
type countingReader struct {
	r       io.Reader
	n       atomic.Uint64
	idle    *time.Timer
	timeout time.Duration
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.n.Add(uint64(n))
		c.idle.Reset(c.timeout)
	}
	return n, err
}

// handleSRT reads one SRT publisher's MPEG-TS into a source, made once
// its first video keyframe brings the parameter sets. A publisher that
// sends nothing for the timeout (gosrt's read deadlines do nothing), or
// no MPEG-TS program within it, is hung up on.
func (s *Server) handleSRT(conn srt.Conn, name string) error {
	var stalled, noProgram atomic.Bool
	in := &countingReader{r: conn, timeout: s.cfg.Timeout,
		idle: time.AfterFunc(s.cfg.Timeout, func() { stalled.Store(true); _ = conn.Close() })}
	defer in.idle.Stop()
	r := &mpegts.Reader{R: in}
	program := time.AfterFunc(s.cfg.Timeout, func() { noProgram.Store(true); _ = conn.Close() })
	err := r.Initialize()
	program.Stop()
	if err != nil {
		if noProgram.Load() && !stalled.Load() {
			return fmt.Errorf("no MPEG-TS program in the first %v", s.cfg.Timeout)
		}
		return fmt.Errorf("reading MPEG-TS: %w", err)
	}
	defer func() {
		if stalled.Load() {
			s.log.Info("srt: the publisher sent nothing; hung up", "stream", name, "timeout", s.cfg.Timeout)
		}
	}()
	sp := spec{protocol: "srt", received: in.n.Load, remoteAddr: conn.RemoteAddr().String()}
	var src *source
	var done func()
	defer func() {
		if done != nil {
			done()
		}
	}()
	start := func() error {
		var err error
		if src, err = newSource(s, name, conn, sp); err != nil {
			return err
		}
		done = func() { s.ended(name, src) }
		s.log.Info("srt: publishing", "stream", name, "remote", sp.remoteAddr, "video", sp.videoName, "audio", sp.audioName)
		return nil
	}
	// One decoder for every track: the encoder's 33-bit PTS, which may
	// start anywhere, unwrapped onto one timeline.
	dec := &mpegts.TimeDecoder{}
	tsTime := func(pts int64) time.Duration { return time.Duration(dec.Decode(pts)) * time.Second / 90000 }
	var video, audio bool
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			if video {
				continue // the first video track is the stream's
			}
			video = true
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				if src == nil {
					if !sp.h264Params(au) {
						return nil // waiting for a keyframe with its parameter sets
					}
					if err := start(); err != nil {
						return err
					}
				}
				src.videoAU(tsTime(pts), tsTime(dts), au, h264.IsRandomAccess(au))
				return nil
			})
		case *tscodecs.H265:
			if video {
				continue
			}
			video = true
			r.OnDataH265(tr, func(pts, dts int64, au [][]byte) error {
				if src == nil {
					if !sp.h265Params(au) {
						return nil
					}
					if err := start(); err != nil {
						return err
					}
				}
				src.videoAU(tsTime(pts), tsTime(dts), au, h265.IsRandomAccess(au))
				return nil
			})
		case *tscodecs.MPEG4Audio:
			if audio {
				continue
			}
			audio = true
			a, err := aacAudio(&c.Config)
			if err != nil {
				return err
			}
			sp.audio, sp.audioName = a, "AAC"
			rate := int64(max(c.SampleRate, 1))
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				if src == nil {
					return nil
				}
				for i, au := range aus {
					d := tsTime(pts) + time.Duration(int64(i)*1024*int64(time.Second)/rate)
					src.aacAU(d, au)
				}
				return nil
			})
		case *tscodecs.Opus:
			if audio {
				continue
			}
			audio = true
			ch := 2 // the descriptor's code is the channel count for 1-8 (0x81: explicit)
			if d := c.Desc; d != nil && d.ChannelConfigCode >= 1 && d.ChannelConfigCode <= 8 {
				ch = int(d.ChannelConfigCode)
			} else if d != nil && d.ExplicitChannelCount > 0 {
				ch = d.ExplicitChannelCount
			}
			sp.audio, sp.audioName = &transcode.MKVTrack{Codec: "A_OPUS", Channels: ch}, "Opus"
			r.OnDataOpus(tr, func(pts int64, pkts [][]byte) error {
				if src == nil {
					return nil
				}
				for i, pk := range pkts {
					src.push(frame{ms: src.clock(tsTime(pts) + time.Duration(i)*20*time.Millisecond), data: pk})
				}
				return nil
			})
		}
	}
	if !video {
		return errors.New("no H.264 or H.265 video in the MPEG-TS")
	}
	r.OnDecodeError(func(err error) { s.log.Debug("srt: MPEG-TS", "stream", name, "err", err) })
	for {
		if err := r.Read(); err != nil {
			return err
		}
		if src != nil && src.fault != nil {
			return src.fault
		}
	}
}

// h264Params makes the spec's video of an H.264 keyframe that carries its
// SPS and PPS; false until one does.
func (sp *spec) h264Params(au [][]byte) bool {
	var sps, pps []byte
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	return sps != nil && pps != nil && h264.IsRandomAccess(au) && sp.setH264(sps, pps) == nil
}

// h265Params makes the spec's video of an H.265 keyframe that carries its
// VPS, SPS and PPS; false until one does.
func (sp *spec) h265Params(au [][]byte) bool {
	var vps, sps, pps []byte
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		switch h265.NALUType((n[0] >> 1) & 0b111111) {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
	}
	return vps != nil && sps != nil && pps != nil && h265.IsRandomAccess(au) && sp.setH265(vps, sps, pps) == nil
}

// setH265 makes the spec's video of an H.265 track's parameter sets.
func (sp *spec) setH265(vps, sps, pps []byte) error {
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return fmt.Errorf("the H.265 track's SPS does not read: %w", err)
	}
	if len(vps) == 0 || len(pps) == 0 {
		return errors.New("the H.265 track lacks its VPS or PPS")
	}
	sp.video = transcode.MKVTrack{Codec: "V_MPEGH/ISO/HEVC", Width: s.Width(), Height: s.Height(),
		CodecPrivate: hvcC(vps, sps, pps, byte(s.ChromaFormatIdc&3), byte(s.BitDepthLumaMinus8&7), byte(s.BitDepthChromaMinus8&7))}
	sp.videoName, sp.height = fmt.Sprintf("H.265 %dx%d", s.Width(), s.Height()), s.Height()
	sp.params, sp.h265 = [][]byte{slices.Clone(vps), slices.Clone(sps), slices.Clone(pps)}, true
	return nil
}

// hvcC is the H.265 decoder configuration (ISO/IEC 14496-15 §8.3.3) of
// one VPS, SPS and PPS: the profile, tier and level copied from the SPS,
// its chroma format and bit depths, NAL units with 4-byte lengths.
func hvcC(vps, sps, pps []byte, chroma, lumaDepth8, chromaDepth8 byte) []byte {
	ptl := make([]byte, 12)
	if raw := h264.EmulationPreventionRemove(sps); len(raw) >= 15 {
		copy(ptl, raw[3:15]) // after the NAL header and the sub-layer byte
	}
	b := append([]byte{1}, ptl...) // profile space, tier, profile; compatibility; constraints; level
	b = append(b,
		0xf0, 0x00, // min_spatial_segmentation_idc
		0xfc,                               // parallelismType
		0xfc|chroma,                        // chroma_format_idc
		0xf8|lumaDepth8, 0xf8|chromaDepth8, // bit depths less 8
		0, 0, // avgFrameRate
		0x0f, // constant frame rate 0, 1 temporal layer, nested, 4-byte lengths
		3,    // arrays
	)
	for _, n := range [][]byte{vps, sps, pps} {
		b = append(b, 0x80|(n[0]>>1)&0x3f) // complete, NAL unit type
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(n)))
		b = append(b, n...)
	}
	return b
}
