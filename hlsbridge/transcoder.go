package hlsbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
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
// across its restarts and across a publisher's reconnects. A Live Room's
// transcoder takes every broadcaster (sources) and ffmpeg composites them;
// as they come and go it starts a child with the new layout, into the
// same renditions.
type transcoder struct {
	s      *session
	ffmpeg string
	enc    transcode.Encoder
	ladder []int
	kind   codec.Kind // the host's video codec
	// audioOnly: the transcoder makes the AAC of renditions whose video
	// is packaged as it comes; what it makes goes to the session's worker,
	// which writes every muxer.
	audioOnly bool
	// room: the renditions are the room composited (Job.Tiles), on a
	// canvas that keeps its size as broadcasters come and go.
	room bool

	// The worker's own: the broadcasters, host first, and the job the
	// renditions were made for (once prepared).
	srcs    []*tcSource
	job     transcode.Job
	gen     uint64
	laidOut string // the layoutKey of the running child

	// layout is what the running child's feed writes (set by the worker
	// before it starts a child).
	layout atomic.Pointer[tcLayout]
	// frames carries frames from the worker to the child's feed; full, it
	// drops them (and that source's video up to its next keyframe).
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

// tcSource is one broadcaster the transcoder takes, on the worker.
type tcSource struct {
	id      string
	layer   *sfu.Layer // its top video layer; nil for none (or muted)
	kind    codec.Kind
	asm     *codec.Assembler
	clock   rtpClock
	needKey bool
	// A guest's Opus (the host's comes through the session's own).
	audio  *sfu.Layer
	opus   *codec.Assembler
	aclock rtpClock
	// Its Matroska tracks in the current layout; -1 for none.
	vtrack, atrack int
}

func newSource(id string, video, audio *sfu.Layer) *tcSource {
	src := &tcSource{id: id, layer: video, audio: audio, vtrack: -1, atrack: -1}
	if video != nil {
		src.kind = codec.KindOf(video.Codec().MimeType)
		src.asm = codec.NewAssembler(src.kind)
	}
	if audio != nil {
		src.opus = codec.NewAssembler(codec.Opus)
	}
	return src
}

// tcLayout is the tracks of one child's Matroska: the video tracks (their
// layers, for keyframe requests, and codecs), then audio tracks.
type tcLayout struct {
	gen    uint64
	video  []*sfu.Layer
	kinds  []codec.Kind
	audios int
}

type tcFrame struct {
	gen        uint64 // the layout it was made for
	track      int    // its Matroska track
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
	tc.srcs = []*tcSource{newSource(sfu.HostID, nil, nil)}
	tc.rungs.Store(&[]int{})
	tc.job = transcode.Job{Audio: true}
	tc.relayout()
	return tc
}

func newTranscoder(s *session, ffmpeg string, enc transcode.Encoder, ladder []int, layer *sfu.Layer, room bool) *transcoder {
	tc := &transcoder{
		s: s, ffmpeg: ffmpeg, enc: enc, ladder: ladder, kind: codec.KindOf(layer.Codec().MimeType), room: room,
		srcs:   []*tcSource{newSource(sfu.HostID, layer, nil)},
		frames: make(chan tcFrame, tcQueue),
	}
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

// host is the host's source.
func (tc *transcoder) host() *tcSource { return tc.srcs[0] }

// adopt moves the transcoder onto a returning host's layer; the child
// goes on, given frames from the layer's next keyframe.
func (tc *transcoder) adopt(l *sfu.Layer) {
	h := tc.host()
	h.layer, h.asm, h.clock, h.needKey = l, codec.NewAssembler(tc.kind), rtpClock{}, true
	if lay := tc.layout.Load(); lay != nil && h.vtrack >= 0 {
		// Keyframe requests go to the new layer.
		next := *lay
		next.video = slices.Clone(lay.video)
		next.video[h.vtrack] = l
		tc.layout.Store(&next)
	}
}

// setSources takes a room's broadcasters, host first, on the worker: a
// source already there keeps its state, and a changed set starts a child
// with the new layout.
func (tc *transcoder) setSources(next []*tcSource) {
	for i, n := range next {
		for _, o := range tc.srcs {
			if o.id == n.id && o.layer == n.layer && o.audio == n.audio {
				next[i] = o
			}
		}
	}
	tc.srcs = next
	if tc.prepared() && tc.layoutKey() != tc.laidOut {
		tc.relayout()
	}
}

// layoutKey says what a layout of the sources would hold: which layers
// show and which are heard.
func (tc *transcoder) layoutKey() string {
	var b strings.Builder
	for i, src := range tc.srcs {
		a := src.audio
		if i == 0 {
			a = tc.s.audio
		}
		fmt.Fprintf(&b, "%s:%p:%p;", src.id, tc.shown(src.layer), tc.shown(a))
	}
	return b.String()
}

// shown returns l when it goes into a layout: not nil, and not muted in
// a room (a stream packaged alone ignores mutes, which a room's host
// would carry into its next broadcast).
func (tc *transcoder) shown(l *sfu.Layer) *sfu.Layer {
	if l == nil || tc.room && l.Track().Muted() {
		return nil
	}
	return l
}

// videoPacket takes a packet of a source's video layer, on the worker.
func (tc *transcoder) videoPacket(l *sfu.Layer, pkt *rtp.Packet, arrival int64) bool {
	for _, src := range tc.srcs {
		if src.layer == l {
			tc.video(src, pkt, arrival)
			return true
		}
		if src.audio == l && l != nil {
			for _, au := range src.opus.Push(pkt) {
				pts := src.aclock.pts(au.Timestamp, arrival-tc.s.originNow, 48000)
				tc.push(src, tcFrame{ms: pts / 48, data: au.Data})
			}
			return true
		}
	}
	return false
}

// video takes a packet of src's video, on the worker.
func (tc *transcoder) video(src *tcSource, pkt *rtp.Packet, arrival int64) {
	for _, au := range src.asm.Push(pkt) {
		pts := src.clock.pts(au.Timestamp, arrival-tc.s.originNow, 90000)
		f := tcFrame{video: true, key: au.Keyframe, ms: pts / 90, data: au.Data}
		if src.kind == codec.H264 {
			f.data = codec.LengthPrefixed(au.NALUs)
		}
		if f.key {
			var ok bool
			if f.w, f.h, ok = pictureSize(src.kind, au); !ok || f.w < 16 || f.h < 16 {
				tc.s.log.Debug("hls: a keyframe whose picture size does not read", "codec", src.kind, "width", f.w, "height", f.h)
				continue
			}
			if !tc.prepared() && src == tc.host() {
				tc.prepare(f.h)
			}
		}
		tc.push(src, f)
	}
}

// audio takes the host's Opus packet at pts (48 kHz), on the worker.
func (tc *transcoder) audio(data []byte, pts int64) {
	tc.push(tc.host(), tcFrame{ms: pts / 48, data: data})
}

func (tc *transcoder) prepared() bool { return tc.rungs.Load() != nil }

// push queues a frame of src for the running child, on its track in the
// current layout (none: dropped).
func (tc *transcoder) push(src *tcSource, f tcFrame) {
	f.track = src.atrack
	if f.video {
		f.track = src.vtrack
	}
	if !tc.prepared() || f.track < 0 {
		return
	}
	if f.video && src.needKey {
		if !f.key {
			return
		}
		src.needKey = false
	}
	f.gen = tc.gen
	select {
	case tc.frames <- f:
	default:
		tc.dropped.Add(1)
		if f.video {
			src.needKey = true
			src.layer.RequestKeyframe(sfu.Now())
		}
	}
}

// prepare makes the renditions for a host of height h, lowest first,
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
		if s.audio != nil || tc.room { // a room's guests may be heard when its host is not
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
	s.log.Info("hls: transcoding", "source", tc.kind, "height", h, "renditions", heights, "encoder", tc.enc.Name, "room", tc.room)
	tc.job = transcode.Job{Rungs: rungs, Audio: s.audio != nil || tc.room, GOP: s.cfg.SegmentDuration}
	tc.relayout()
}

// relayout numbers the sources' Matroska tracks (video first, then audio)
// and starts a child for them, stopping the one running: on the worker.
// A muted track is left out, so the mix and the grid never wait on it.
func (tc *transcoder) relayout() {
	tc.gen++
	tc.laidOut = tc.layoutKey()
	lay := &tcLayout{gen: tc.gen}
	n := 0
	for _, src := range tc.srcs {
		src.vtrack = -1
		if tc.shown(src.layer) != nil {
			src.vtrack = n
			n++
			lay.video = append(lay.video, src.layer)
			lay.kinds = append(lay.kinds, src.kind)
			src.needKey = true
		}
	}
	for i, src := range tc.srcs {
		src.atrack = -1
		a := src.audio
		if i == 0 {
			a = tc.s.audio
		}
		if tc.shown(a) != nil {
			src.atrack = n
			n++
			lay.audios++
		}
	}
	job := tc.job
	job.Audio = job.Audio && lay.audios > 0
	if tc.room {
		job.Tiles, job.Voices = len(lay.video), lay.audios
	}
	tc.stop()
	tc.layout.Store(lay)
	if !tc.audioOnly && len(lay.video) == 0 {
		tc.running.Store(false) // nobody shows: the renditions wait
		return
	}
	tc.start(job)
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
		tc.cancel = nil
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

// feed writes the frames of the current layout to one child as
// Matroska, starting once every video track has given a keyframe (asking
// for them), or at the first Opus packet when it transcodes audio alone.
func (tc *transcoder) feed(ctx context.Context, w io.Writer) error {
	lay := tc.layout.Load()
	ask := func() {
		cur := tc.layout.Load() // a returning host's layer, adopted since
		if cur.gen != lay.gen {
			return
		}
		for _, l := range cur.video {
			l.RequestKeyframe(sfu.Now())
		}
	}
	ask()
	var m *transcode.MKV
	var pending []tcFrame
	keys := make([]*tcFrame, len(lay.video))
	for {
		var f tcFrame
		select {
		case <-ctx.Done():
			return nil
		case f = <-tc.frames:
		}
		if f.gen != lay.gen {
			continue // made for another layout
		}
		if m == nil {
			if f.video && keys[f.track] == nil {
				if !f.key {
					continue
				}
				keys[f.track] = &f
			}
			pending = append(pending, f)
			if slices.Contains(keys, nil) {
				if len(pending) > tcQueue { // a track that never keys: start over
					pending, keys = pending[:0], make([]*tcFrame, len(lay.video))
					ask()
				}
				continue
			}
			var err error
			if m, err = transcode.NewMKV(w, tc.header(lay, keys)...); err != nil {
				return err
			}
			tc.base.Store(pending[0].ms)
			for _, p := range pending {
				if err := m.Write(p.track, p.ms, p.key, p.data); err != nil {
					return err
				}
			}
			pending = nil
			continue
		}
		if err := m.Write(f.track, f.ms, f.key, f.data); err != nil {
			return err
		}
	}
}

// header returns the tracks a child's Matroska starts with: each video
// track sized by its first keyframe, then the audio.
func (tc *transcoder) header(lay *tcLayout, keys []*tcFrame) []transcode.MKVTrack {
	var tracks []transcode.MKVTrack
	for i, k := range keys {
		vcodec, _ := mkvCodec(lay.kinds[i])
		t := transcode.MKVTrack{Codec: vcodec, Width: k.w, Height: k.h}
		if lay.kinds[i] == codec.H264 {
			t.CodecPrivate = avcC(k.data)
		}
		tracks = append(tracks, t)
	}
	for range lay.audios {
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
				rd.writeVideo(s, tc.unwrap(pts), au, h264.IsRandomAccess(au))
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
	if lay := tc.layout.Load(); lay != nil && tc.room {
		st.Tiles = len(lay.video)
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
	// Tiles is how many broadcasters a Live Room's composite shows now.
	Tiles int `json:"tiles,omitempty"`
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
	return codec.AVCDecoderConfig(sps, pps)
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
