package hlsbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	"github.com/pion/rtp"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// transcoder runs a session's top video layer and its Opus audio through
// ffmpeg (transcode.Job) and packages what comes out: one rendition per
// rung of the ladder, each with AAC audio. Frames go to ffmpeg as live
// Matroska timestamped on the stream clock and come back as MPEG-TS with
// those timestamps, so audio and video stay in sync through the encoder,
// across its restarts and across a publisher's reconnects.
type transcoder struct {
	s      *session
	ffmpeg string
	enc    transcode.Encoder
	ladder []int
	kind   codec.Kind // the source's video codec
	// audioOnly: the transcoder makes the AAC of renditions whose video
	// is packaged as it comes; what it makes goes to the session's worker,
	// which writes every muxer.
	audioOnly bool

	// keyLayer is the source layer for the child's keyframe requests
	// (read off the worker).
	keyLayer atomic.Pointer[sfu.Layer]
	// The worker's own.
	layer   *sfu.Layer
	asm     *codec.Assembler
	clock   rtpClock
	needKey bool

	// frames carries frames from the worker to the child's feed; full, it
	// drops them (and video up to the next keyframe).
	frames  chan tcFrame
	dropped atomic.Uint64
	// base is the stream time (ms) of the first frame the running child
	// was given: its output's 33-bit timestamps unwrap around it.
	base atomic.Int64

	rungs    atomic.Pointer[[]int]
	running  atomic.Bool
	pid      atomic.Int64
	restarts atomic.Int64
	lastErr  atomic.Pointer[string]

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type tcFrame struct {
	video, key bool
	ms         int64
	data       []byte
	w, h       int // a video keyframe's picture size
}

// aacUnits is AAC the audio transcoder made, for the worker to package.
type aacUnits struct {
	pts int64 // 48 kHz, stream clock
	aus [][]byte
}

// tcQueue is how many frames wait for ffmpeg: a few seconds of video and
// audio, room for a child's start.
const tcQueue = 512

// newAudioTranscoder returns a transcoder of the Opus alone into AAC,
// started at once.
func newAudioTranscoder(s *session, ffmpeg string) *transcoder {
	tc := &transcoder{s: s, ffmpeg: ffmpeg, enc: transcode.Encoder{Name: "aac", Why: "Opus to AAC, which every HLS player plays"}, audioOnly: true, frames: make(chan tcFrame, tcQueue)}
	tc.rungs.Store(&[]int{})
	tc.start(transcode.Job{Audio: true})
	return tc
}

func newTranscoder(s *session, ffmpeg string, enc transcode.Encoder, ladder []int, layer *sfu.Layer) *transcoder {
	k := codec.KindOf(layer.Codec().MimeType)
	tc := &transcoder{
		s: s, ffmpeg: ffmpeg, enc: enc, ladder: ladder, kind: k,
		layer: layer, asm: codec.NewAssembler(k),
		frames: make(chan tcFrame, tcQueue),
	}
	tc.keyLayer.Store(layer)
	return tc
}

// mkvCodec is the Matroska codec ID of the video codecs the transcoder
// takes.
func mkvCodec(k codec.Kind) (string, bool) {
	switch k {
	case codec.VP8:
		return "V_VP8", true
	case codec.VP9:
		return "V_VP9", true
	case codec.AV1:
		return "V_AV1", true
	case codec.H264:
		return "V_MPEG4/ISO/AVC", true
	}
	return "", false
}

// adopt moves the transcoder onto a returning publisher's layer; the
// child goes on, given frames from the layer's next keyframe.
func (tc *transcoder) adopt(l *sfu.Layer) {
	tc.layer, tc.asm, tc.clock = l, codec.NewAssembler(tc.kind), rtpClock{}
	tc.keyLayer.Store(l)
	tc.needKey = true
}

// video takes a packet of the source layer, on the worker.
func (tc *transcoder) video(pkt *rtp.Packet, arrival int64) {
	for _, au := range tc.asm.Push(pkt) {
		pts := tc.clock.pts(au.Timestamp, arrival-tc.s.originNow, 90000)
		f := tcFrame{video: true, key: au.Keyframe, ms: pts / 90, data: au.Data}
		if tc.kind == codec.H264 {
			f.data = lengthPrefixed(au.NALUs)
		}
		if f.key {
			var ok bool
			if f.w, f.h, ok = pictureSize(tc.kind, au); !ok || f.w < 16 || f.h < 16 {
				tc.s.log.Debug("hls: a keyframe whose picture size does not read", "codec", tc.kind, "width", f.w, "height", f.h)
				continue
			}
			if !tc.prepared() {
				tc.prepare(f.h)
			}
		}
		if tc.prepared() {
			tc.push(f)
		}
	}
}

// audio takes an Opus packet at pts (48 kHz), on the worker.
func (tc *transcoder) audio(data []byte, pts int64) {
	if tc.prepared() {
		tc.push(tcFrame{ms: pts / 48, data: data})
	}
}

func (tc *transcoder) prepared() bool { return tc.rungs.Load() != nil }

func (tc *transcoder) push(f tcFrame) {
	if f.video && tc.needKey {
		if !f.key {
			return
		}
		tc.needKey = false
	}
	select {
	case tc.frames <- f:
	default:
		tc.dropped.Add(1)
		if f.video {
			tc.needKey = true
			tc.layer.RequestKeyframe(sfu.Now())
		}
	}
}

// prepare makes the renditions for a source of height h, lowest first,
// and starts ffmpeg.
func (tc *transcoder) prepare(h int) {
	s := tc.s
	rungs := transcode.Rungs(h, tc.ladder)
	if len(rungs) == 0 {
		return
	}
	for i, j := 0, len(rungs)-1; i < j; i, j = i+1, j-1 {
		rungs[i], rungs[j] = rungs[j], rungs[i]
	}
	heights := make([]int, len(rungs))
	for i, r := range rungs {
		heights[i] = r.Height
		rd := &rendition{name: fmt.Sprintf("r%d", i), ready: make(chan struct{})}
		rd.video = &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: 90000}
		tracks := []*gohlslib.Track{rd.video}
		if s.audio != nil {
			rd.audio = aacTrack()
			tracks = append(tracks, rd.audio)
		}
		if err := s.startMuxer(rd, tracks); err != nil {
			s.log.Error("hls: cannot start a muxer", "err", err)
			s.closeMuxers()
			s.rends = nil
			return
		}
		s.rends = append(s.rends, rd)
	}
	tc.rungs.Store(&heights)
	close(s.prepared)
	s.log.Info("hls: transcoding", "source", tc.kind, "height", h, "renditions", heights, "encoder", tc.enc.Name)
	tc.start(transcode.Job{Rungs: rungs, Audio: s.audio != nil, GOP: s.cfg.SegmentDuration})
}

// aacTrack is the transcoder's audio as a muxer track.
func aacTrack() *gohlslib.Track {
	return &gohlslib.Track{
		Codec: &codecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2,
		}},
		ClockRate: 48000, Name: "audio", IsDefault: true,
	}
}

// start runs ffmpeg for job under supervision until stop.
func (tc *transcoder) start(job transcode.Job) {
	s := tc.s
	p := transcode.NewProcess(transcode.ProcessConfig{
		Path: tc.ffmpeg, Args: tc.enc.JobArgs(job),
		Feed: tc.feed, Read: tc.read, OnEvent: tc.event,
		Stall: 10 * time.Second, MinBackoff: 250 * time.Millisecond, MaxBackoff: 10 * time.Second,
	})
	ctx, cancel := context.WithCancel(context.Background())
	tc.cancel = cancel
	tc.wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			msg := err.Error()
			tc.lastErr.Store(&msg)
			s.log.Error("hls: the transcoder cannot run", "err", err)
		}
	})
}

// stop stops ffmpeg and waits for it; the muxers are the caller's to
// close after.
func (tc *transcoder) stop() {
	if tc.cancel != nil {
		tc.cancel()
	}
	tc.wg.Wait()
}

// event hears the child's starts, exits and stalls.
func (tc *transcoder) event(e transcode.Event) {
	log := tc.s.log
	switch e.Kind {
	case transcode.Started:
		tc.running.Store(true)
		tc.pid.Store(int64(e.PID))
		if e.Restarts > 0 {
			tc.restarts.Add(1)
			log.Warn("hls: transcoder restarted", "pid", e.PID, "restarts", e.Restarts)
		}
	case transcode.Stalled:
		log.Warn("hls: transcoder stalled; killing it", "pid", e.PID)
	case transcode.Exited:
		tc.running.Store(false)
		msg := "ffmpeg exited"
		if e.Err != nil {
			msg = e.Err.Error()
		}
		tc.lastErr.Store(&msg)
		log.Warn("hls: transcoder exited; restarting", "err", e.Err, "backoff", e.Backoff)
	}
}

// feed writes the frames to one child as Matroska, from the next video
// keyframe on (asking the publisher for one), or from the first Opus
// packet when it transcodes audio alone.
func (tc *transcoder) feed(ctx context.Context, w io.Writer) error {
	if !tc.audioOnly {
		tc.keyLayer.Load().RequestKeyframe(sfu.Now())
	}
	var m *transcode.MKV
	audioTrack := -1
	for {
		var f tcFrame
		select {
		case <-ctx.Done():
			return nil
		case f = <-tc.frames:
		}
		if m == nil {
			tracks := tc.header(f)
			if tracks == nil {
				continue
			}
			var err error
			if m, err = transcode.NewMKV(w, tracks...); err != nil {
				return err
			}
			if tracks[len(tracks)-1].Codec == "A_OPUS" {
				audioTrack = len(tracks) - 1
			}
			tc.base.Store(f.ms)
		}
		track := 0
		if !f.video {
			if audioTrack < 0 {
				continue
			}
			track = audioTrack
		}
		if err := m.Write(track, f.ms, f.key, f.data); err != nil {
			return err
		}
	}
}

// header returns the tracks a child's Matroska starts with, or nil when
// f cannot start it (video starts at a keyframe, whose size it gives).
func (tc *transcoder) header(f tcFrame) []transcode.MKVTrack {
	var tracks []transcode.MKVTrack
	if !tc.audioOnly {
		if !f.video || !f.key {
			return nil
		}
		vcodec, _ := mkvCodec(tc.kind)
		t := transcode.MKVTrack{Codec: vcodec, Width: f.w, Height: f.h}
		if tc.kind == codec.H264 {
			t.CodecPrivate = avcC(f.data)
		}
		tracks = append(tracks, t)
	}
	if tc.s.audio != nil {
		tracks = append(tracks, transcode.MKVTrack{Codec: "A_OPUS", Channels: 2})
	}
	return tracks
}

// read packages one child's output: its H.264 streams into the
// renditions in order, its AAC into every rendition.
func (tc *transcoder) read(stdout io.Reader) error {
	s := tc.s
	r := &mpegts.Reader{R: stdout}
	if err := r.Initialize(); err != nil {
		return err
	}
	r.OnDecodeError(func(err error) { s.log.Debug("hls: transcoder output", "err", err) })
	vi := 0
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			if vi >= len(s.rends) {
				continue
			}
			rd := s.rends[vi]
			vi++
			r.OnDataH264(tr, func(pts, _ int64, au [][]byte) error {
				rd.writeH264(s, tc.unwrap(pts), au, h264.IsRandomAccess(au))
				return nil
			})
		case *tscodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				p := tc.unwrap(pts) * 48000 / 90000
				if tc.audioOnly {
					select {
					case s.aac <- aacUnits{pts: p, aus: aus}:
					case <-s.done:
					}
					return nil
				}
				for _, rd := range s.rends {
					if rd.audio != nil {
						_ = rd.mux.WriteMPEG4Audio(rd.audio, s.wall(p, 48000), p, aus)
					}
				}
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			return err
		}
	}
}

// unwrap turns an MPEG-TS timestamp (90 kHz, 33 bits) back into the
// stream clock: the value of those low bits nearest the child's start.
func (tc *transcoder) unwrap(ts int64) int64 {
	const wrap = int64(1) << 33
	ref := tc.base.Load() * 90
	ts &= wrap - 1
	k := (ref - ts + wrap/2) / wrap
	if ref-ts+wrap/2 < 0 {
		k--
	}
	return ts + k*wrap
}

// status reports the transcoder for the API.
func (tc *transcoder) status() *TranscoderStatus {
	src := tc.kind.String()
	if tc.audioOnly {
		src = "Opus (audio only)"
	}
	st := &TranscoderStatus{
		Source: src, Encoder: tc.enc.Name, GPU: tc.enc.GPU, Why: tc.enc.Why,
		Running: tc.running.Load(), PID: int(tc.pid.Load()), Restarts: tc.restarts.Load(), Dropped: tc.dropped.Load(),
	}
	if r := tc.rungs.Load(); r != nil {
		st.Heights = *r
	}
	if e := tc.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// TranscoderStatus is how a transcoded stream's ffmpeg is doing.
type TranscoderStatus struct {
	Source  string `json:"source"`  // the publisher's video codec
	Encoder string `json:"encoder"` // ffmpeg's H.264 encoder
	GPU     bool   `json:"gpu"`
	Why     string `json:"why"`               // why that encoder
	Heights []int  `json:"heights,omitempty"` // the renditions, lowest first, once the source's size is known
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"` // the running child's, or the last one's
	// Restarts counts the children started after the first (crashes and
	// stalls); LastError is how the last one ended.
	Restarts  int64  `json:"restarts"`
	LastError string `json:"lastError,omitempty"`
	// Dropped counts frames dropped because ffmpeg fell behind.
	Dropped uint64 `json:"dropped"`
}

// pictureSize reads a keyframe's picture size.
func pictureSize(k codec.Kind, au codec.AccessUnit) (w, h int, ok bool) {
	switch k {
	case codec.VP8:
		b := au.Data
		if len(b) < 10 || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
			return 0, 0, false
		}
		return int(binary.LittleEndian.Uint16(b[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[8:]) & 0x3fff), true
	case codec.VP9:
		var hd vp9.Header
		if hd.Unmarshal(au.Data) != nil || hd.FrameSize == nil {
			return 0, 0, false
		}
		return hd.Width(), hd.Height(), true
	case codec.AV1:
		var bs av1.Bitstream
		if bs.Unmarshal(au.Data) != nil {
			return 0, 0, false
		}
		for _, obu := range bs {
			var sh av1.SequenceHeader
			if len(obu) > 0 && (obu[0]>>3)&0xf == byte(av1.OBUTypeSequenceHeader) && sh.Unmarshal(obu) == nil {
				return sh.Width(), sh.Height(), true
			}
		}
	case codec.H264:
		for _, n := range au.NALUs {
			var sps h264.SPS
			if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS && sps.Unmarshal(n) == nil {
				return sps.Width(), sps.Height(), true
			}
		}
	}
	return 0, 0, false
}

// lengthPrefixed writes NAL units as Matroska's H.264 blocks hold them:
// each after its 4-byte length.
func lengthPrefixed(nalus [][]byte) []byte {
	n := 0
	for _, u := range nalus {
		n += 4 + len(u)
	}
	b := make([]byte, 0, n)
	for _, u := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(u)))
		b = append(b, u...)
	}
	return b
}

// errNoParams is a keyframe without its parameter sets.
var errNoParams = errors.New("no SPS and PPS")

// avcC builds the H.264 decoder configuration (ISO/IEC 14496-15) from a
// length-prefixed keyframe's SPS and PPS; nil when it lacks them (the
// publisher's keyframes carry them: every WebRTC encoder sends them).
func avcC(frame []byte) []byte {
	sps, pps, err := paramSets(frame)
	if err != nil {
		return nil
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

func paramSets(frame []byte) (sps, pps []byte, err error) {
	for len(frame) >= 4 {
		n := int(binary.BigEndian.Uint32(frame))
		if n == 0 || n > len(frame)-4 {
			break
		}
		u := frame[4 : 4+n]
		switch h264.NALUType(u[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = u
		case h264.NALUTypePPS:
			pps = u
		}
		frame = frame[4+n:]
	}
	if len(sps) < 4 || len(pps) == 0 {
		return nil, nil, errNoParams
	}
	return sps, pps, nil
}
