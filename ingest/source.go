package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// Codecs of the layers an ingested stream's WebRTC viewers get.
var (
	h264Baseline = sfu.Codec{MimeType: "video/H264", ClockRate: 90000, PayloadType: 96, //nolint:gochecknoglobals // constant
		Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	opusCodec = sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2, PayloadType: 111, //nolint:gochecknoglobals // constant
		Fmtp: "minptime=10;useinbandfec=1"}
)

// extIDs are the header extensions of the packets made here: each
// frame's first carries its capture time, which viewers (and the load
// tool) read as when the frame reached the node.
var extIDs = sfu.ExtIDs{AbsCaptureTime: absCaptureTimeID} //nolint:gochecknoglobals // constant

const absCaptureTimeID = 1

// rids name the layers made of a source, top first.
var rids = []string{"h", "m", "l"} //nolint:gochecknoglobals // constant

// frame is one access unit of the source, on the stream clock.
type frame struct {
	video, key bool
	ms         int64
	data       []byte
}

// queue is how many frames may wait for ffmpeg: a few seconds.
const queue = 512

// source is one publisher's stream going through ffmpeg into an sfu
// publication (sfu.Source).
type source struct {
	s     *Server
	name  string
	conn  io.Closer
	spec  spec
	st    *sfu.Stream
	pub   *sfu.Publication
	since time.Time

	// The transcoders: of the video (the layers under a passthrough, or
	// every layer) and of the audio (AAC to Opus), apart so that the audio
	// never waits in ffmpeg's interleaving for the video's encoding. nil
	// when not needed.
	vchild, achild *child
	video          []*sfu.Layer // top first: the passthrough, then the job's rungs
	audio          *sfu.Layer
	// One RTP stream per layer, whatever child makes it: a restarted
	// ffmpeg goes on in the same SSRC and sequence numbers.
	vpack []*packetizer
	apack *packetizer

	// The reader goroutine's own.
	firstPTS time.Duration
	lastPTS  time.Duration
	fault    error // the source cannot go on: its connection is closed
	baseMS   int64
	// wallAtZero is the wall clock (Unix ns) at stream time 0 as the
	// source's clock maps it: a frame at stream time ms reached the node
	// at wallAtZero + ms. The child's reader reads it.
	wallAtZero atomic.Int64
	started    bool
	skipping   bool // video dropped: the rest waits for a keyframe
	pass       *passthrough
	params     [][]byte // the video's parameter sets as last sent (spec.params' order)
	warnedB    bool     // the B-frame warning was logged

	sinks atomic.Pointer[[]sfu.ElementarySink] // copy on write, under smu
	smu   sync.Mutex

	dropped  atomic.Uint64
	takenOff atomic.Bool // another publisher took the stream
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// spec is what a source sends, as its protocol's reader found it: the
// Matroska tracks of its video (first) and audio, its picture height,
// and names for logs and the API.
type spec struct {
	video      transcode.MKVTrack
	audio      *transcode.MKVTrack
	height     int
	videoName  string
	audioName  string
	protocol   string
	received   func() uint64 // bytes from the encoder so far
	remoteAddr string
	// pass is set when WebRTC viewers can take the video as it comes:
	// H.264 whose SPS rules out B-frames.
	pass *passthrough
	// params are the parameter sets of H.264 (SPS, PPS) or H.265 (VPS,
	// SPS, PPS) video, for the Elementary stream; nil for other codecs.
	params [][]byte
	h265   bool
}

// passthrough is an H.264 source's video sent on to WebRTC viewers as it
// comes, in the top layer, with the codec its SPS announces.
type passthrough struct {
	codec sfu.Codec
	pay   codecs.H264Payloader
	buf   []byte // an access unit in Annex B, reused
}

// h264Passthrough returns how an H.264 source's video passes through to
// WebRTC viewers, or nil when it must be transcoded: a browser's WebRTC
// decoder shows frames in the order they arrive, so only a stream without
// B-frames (Baseline, or an SPS whose bitstream restriction says no frame
// is reordered, as x264 writes with bframes=0) passes.
func h264Passthrough(sp, pp []byte) *passthrough {
	var sps h264.SPS
	if sps.Unmarshal(sp) != nil || len(sp) < 4 || len(pp) == 0 {
		return nil
	}
	noReorder := sps.ProfileIdc == 66
	if v := sps.VUI; v != nil && v.BitstreamRestriction != nil {
		noReorder = v.BitstreamRestriction.MaxNumReorderFrames == 0
	}
	if !noReorder {
		return nil
	}
	c := h264Baseline
	c.Fmtp = fmt.Sprintf("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=%02x%02x%02x", sp[1], sp[2], sp[3])
	return &passthrough{codec: c}
}

// setH264 makes the spec's video of an H.264 track's parameter sets, and
// says whether it passes through.
func (sp *spec) setH264(sps, pps []byte) error {
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return fmt.Errorf("the H.264 track's SPS does not read: %w", err)
	}
	if len(pps) == 0 || len(sps) < 4 {
		return errors.New("the H.264 track has no PPS")
	}
	cfg := codec.AVCDecoderConfig(sps, pps)
	switch s.ProfileIdc {
	case 100, 110, 122, 144: // high profiles: chroma format and bit depths follow
		cfg = append(cfg, 0xfc|byte(s.ChromaFormatIdc&3), 0xf8|byte(s.BitDepthLumaMinus8&7), 0xf8|byte(s.BitDepthChromaMinus8&7), 0)
	}
	sp.video = transcode.MKVTrack{Codec: "V_MPEG4/ISO/AVC", Width: s.Width(), Height: s.Height(), CodecPrivate: cfg}
	sp.videoName, sp.height = fmt.Sprintf("H.264 %dx%d", s.Width(), s.Height()), s.Height()
	sp.params, sp.h265 = [][]byte{slices.Clone(sps), slices.Clone(pps)}, false
	sp.pass = h264Passthrough(sps, pps)
	return nil
}

// aacAudio is the spec's audio of an AAC configuration.
func aacAudio(c *mpeg4audio.AudioSpecificConfig) (*transcode.MKVTrack, error) {
	asc, err := c.Marshal()
	if err != nil {
		return nil, fmt.Errorf("the AAC track's configuration: %w", err)
	}
	ch := int(c.ChannelConfig) // 1-6 channels; 7 is 7.1
	if ch == 7 {
		ch = 8
	}
	return &transcode.MKVTrack{Codec: "A_AAC", CodecPrivate: asc, Channels: max(ch, 1), SampleRate: c.SampleRate}, nil
}

// newSource makes stream name's publication of what sp describes and
// starts its transcoder when it needs one; the protocol's reader then
// pushes its frames. conn is closed when another publisher takes the
// stream.
func newSource(s *Server, name string, conn io.Closer, sp spec) (*source, error) {
	src := &source{s: s, name: name, conn: conn, spec: sp, since: time.Now(), pass: sp.pass, params: slices.Clone(sp.params)}
	// The layers: with a passthrough, the source's own video on top and
	// up to two smaller ones the transcoder makes; else up to three it makes.
	top := h264Baseline
	var rungs []transcode.Rung
	for _, r := range transcode.Rungs(sp.height, s.cfg.Ladder) {
		if sp.pass == nil || r.Height < sp.height&^1 {
			rungs = append(rungs, r)
		}
	}
	made := len(rids)
	if sp.pass != nil {
		top, made = sp.pass.codec, len(rids)-1
	}
	rungs = rungs[:min(len(rungs), made)]
	if len(rungs) > 0 {
		src.vchild = &child{track: sp.video, video: true, frames: make(chan frame, queue)}
	}
	if sp.audio != nil {
		src.achild = &child{track: *sp.audio, frames: make(chan frame, queue)}
	}

	// The publication: a layer per rung, top first, and the audio. Every
	// layer announces the top's codec: a decoder of its profile decodes the
	// constrained baseline of the made ones.
	src.st = s.reg.Stream(name)
	now := sfu.Now()
	s.register(name, src)
	src.pub = src.st.StartPublication(sfu.HostID, src, now)
	fail := func(err error) (*source, error) {
		src.pub.End(now)
		s.unregister(name, src)
		return nil, err
	}
	for i := range len(rungs) + btoi(sp.pass != nil) {
		l, err := src.pub.AddLayer(rids[i], top, extIDs, now)
		if err != nil {
			return fail(err)
		}
		src.video = append(src.video, l)
		src.vpack = append(src.vpack, newPacketizer(l, 96))
	}
	var err error
	if sp.audio != nil {
		if src.audio, err = src.pub.AddLayer("", opusCodec, extIDs, now); err != nil {
			return fail(err)
		}
		src.apack = newPacketizer(src.audio, 111)
	}
	if src.vchild == nil && src.achild == nil {
		return src, nil // passed through, no audio: no transcoder
	}
	enc, err := s.cfg.Encoder()
	if err != nil {
		return fail(fmt.Errorf("the stream needs the transcoder: %w", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	src.cancel = cancel
	if src.vchild != nil {
		src.start(ctx, src.vchild, enc.JobArgs(transcode.Job{Rungs: rungs, GOP: s.cfg.GOP, WebRTC: true}))
	}
	if src.achild != nil {
		src.start(ctx, src.achild, enc.JobArgs(transcode.Job{Audio: true, WebRTC: true}))
	}
	return src, nil
}

// child is one of a source's transcoders: the Matroska track it reads
// and the frames queued for it.
type child struct {
	track   transcode.MKVTrack
	video   bool
	frames  chan frame
	needKey atomic.Bool // the running ffmpeg waits for a keyframe
}

// start runs ffmpeg with args on c's frames until ctx ends, restarting it
// when it exits.
func (src *source) start(ctx context.Context, c *child, args []string) {
	p := transcode.NewProcess(transcode.ProcessConfig{
		Path: src.s.cfg.FFmpeg, Args: args, Feed: c.feed, Read: src.read,
		OnEvent: func(e transcode.Event) {
			if e.Kind == transcode.Exited {
				src.s.log.Warn("ingest: the transcoder exited; restarting", "stream", src.name, "protocol", src.spec.protocol, "err", e.Err)
			}
		},
	})
	src.wg.Go(func() {
		if err := p.Run(ctx); err != nil {
			src.s.log.Error("ingest: the transcoder cannot run", "stream", src.name, "err", err)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// status reports the source for the API.
func (src *source) status() Status {
	secs := time.Since(src.since).Seconds()
	sp := src.spec
	st := Status{Protocol: sp.protocol, Remote: sp.remoteAddr, Video: sp.videoName, Audio: sp.audioName,
		Passthrough: sp.pass != nil, Seconds: secs, Dropped: src.dropped.Load()}
	if secs > 0 && sp.received != nil {
		st.Bitrate = uint64(float64(sp.received()) * 8 / secs)
	}
	return st
}

// videoClock is clock for a video frame that arrived just now. A reader
// may hand the first frames on late and at once (RTMP's holds them while
// it finds the tracks): a frame arriving earlier, on the clock, than the
// first ones did moves the capture times, and the stream clock with them
// when by more than a frame, so that no frame seems to come from the
// future. One reader goroutine calls it.
func (src *source) videoClock(pts time.Duration) int64 {
	ms := src.clock(pts)
	zero := time.Now().UnixNano() - ms*int64(time.Millisecond)
	if was := src.wallAtZero.Load(); zero < was {
		src.wallAtZero.Store(zero)
		if was-zero > int64(20*time.Millisecond) {
			src.st.AlignStreamTime(ms, sfu.Now())
		}
	}
	return ms
}

// captured is when the frame at stream time ms reached the node, as
// an NTP timestamp.
func (src *source) captured(ms int64) uint64 {
	return codec.NTPTime(time.Unix(0, src.wallAtZero.Load()+ms*int64(time.Millisecond)))
}

// clock maps a source timestamp onto the stream clock (ms): the first
// frame at the moment it arrived, the rest by their distance from it.
// One reader goroutine calls it.
func (src *source) clock(pts time.Duration) int64 {
	if !src.started {
		ms, _ := src.st.StreamTime(sfu.Now())
		src.started, src.firstPTS, src.baseMS = true, pts, ms
		src.wallAtZero.Store(time.Now().UnixNano() - ms*int64(time.Millisecond))
		src.lastPTS = pts
	}
	if d := pts - src.lastPTS; (d > maxJump || d < -maxJump) && src.fault == nil {
		src.fault = fmt.Errorf("the encoder's timestamps jumped by %v: reconnect it", d)
	}
	src.lastPTS = pts
	return src.baseMS + (pts - src.firstPTS).Milliseconds()
}

// maxJump is the largest step between an encoder's timestamps that is
// taken: past it the clock would be nonsense (a frame hours ahead), and
// the connection is closed so that the encoder starts again on a new one.
const maxJump = time.Minute

// videoAU takes one access unit of the source's video (NAL units, its
// presentation and decoding times): passed through to the top layer,
// queued for the child that makes the others. One reader goroutine calls
// it.
func (src *source) videoAU(pts, dts time.Duration, au [][]byte, key bool) {
	ms := src.videoClock(pts)
	if src.vchild != nil {
		src.push(frame{video: true, key: key, ms: ms, data: codec.LengthPrefixed(au)})
	}
	if src.keepParams(au) {
		return // parameter sets alone, as RTMP sends them
	}
	if key {
		au = src.withParams(au)
	}
	if src.pass != nil {
		if pts != dts && !src.warnedB {
			src.warnedB = true
			src.s.log.Warn("ingest: the encoder sends B-frames its SPS said it would not; WebRTC viewers may stutter: set B-frames to 0",
				"stream", src.name)
		}
		src.passVideo(ms, au)
	}
	if sinks := src.sinks.Load(); sinks != nil {
		p, d := src.clock90(pts), src.clock90(dts)
		for _, k := range *sinks {
			k.ElementaryVideo(p, d, au, key)
		}
	}
}

// aacAU takes one AAC access unit of the source at pts: to the child,
// which makes the Opus, and as it is to the Elementary stream's sinks.
// One reader goroutine calls it, after the video started the clock.
func (src *source) aacAU(pts time.Duration, au []byte) {
	src.push(frame{ms: src.clock(pts), data: au})
	if sinks := src.sinks.Load(); sinks != nil {
		p := src.clock90(pts)
		for _, k := range *sinks {
			k.ElementaryAudio(p, au)
		}
	}
}

// clock90 is clock in 90 kHz units, for the Elementary stream: B-frames'
// decoding times need finer steps than milliseconds.
func (src *source) clock90(pts time.Duration) int64 {
	return src.baseMS*90 + int64(pts-src.firstPTS)*90_000/int64(time.Second)
}

// ElementaryFormat says what the encoder sends when HLS can package it
// as it comes: H.264 or H.265, with AAC or no audio (sfu.Elementary).
func (src *source) ElementaryFormat() (sfu.ElementaryFormat, bool) {
	sp := src.spec
	if sp.params == nil || sp.audio != nil && sp.audio.Codec != "A_AAC" {
		return sfu.ElementaryFormat{}, false
	}
	f := sfu.ElementaryFormat{H265: sp.h265}
	if sp.h265 {
		f.VPS, f.SPS, f.PPS = sp.params[0], sp.params[1], sp.params[2]
	} else {
		f.SPS, f.PPS = sp.params[0], sp.params[1]
	}
	if sp.audio != nil {
		f.AAC = sp.audio.CodecPrivate
	}
	return f, true
}

// SubscribeElementary gives sink the encoder's frames (sfu.Elementary).
func (src *source) SubscribeElementary(sink sfu.ElementarySink) func() {
	src.smu.Lock()
	defer src.smu.Unlock()
	var next []sfu.ElementarySink
	if cur := src.sinks.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, sink)
	src.sinks.Store(&next)
	return func() {
		src.smu.Lock()
		defer src.smu.Unlock()
		if cur := src.sinks.Load(); cur != nil {
			next := slices.DeleteFunc(slices.Clone(*cur), func(k sfu.ElementarySink) bool { return k == sink })
			src.sinks.Store(&next)
		}
	}
}

// paramIndex is where a NAL unit of the source's codec goes in its
// parameter sets (H.264: SPS, PPS; H.265: VPS, SPS, PPS), -1 for a slice
// or SEI, -2 for an access unit delimiter.
func (src *source) paramIndex(n []byte) int {
	if src.spec.h265 {
		switch t := (n[0] >> 1) & 0x3f; {
		case t >= 32 && t <= 34:
			return int(t) - 32
		case t == 35:
			return -2
		}
		return -1
	}
	switch n[0] & 0x1f {
	case 7:
		return 0
	case 8:
		return 1
	case 9:
		return -2
	}
	return -1
}

// keepParams keeps the parameter sets an access unit carries (the
// encoder may change them) and reports whether it carries nothing else.
// One reader goroutine calls it.
func (src *source) keepParams(au [][]byte) bool {
	only := true
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch i := src.paramIndex(n); {
		case i >= 0:
			if !bytes.Equal(src.params[i], n) {
				src.params[i] = slices.Clone(n)
			}
		case i == -1:
			only = false
		}
	}
	return only
}

// withParams puts the kept parameter sets before a keyframe that lacks
// them (RTMP sends them apart), for a WebRTC viewer or an HLS segment that
// starts there.
func (src *source) withParams(au [][]byte) [][]byte {
	sps := btoi(src.spec.h265) // H.265's SPS follows its VPS
	for _, n := range au {
		if len(n) > 0 && src.paramIndex(n) == sps {
			return au
		}
	}
	return append(slices.Clone(src.params), au...)
}

// passVideo packetises an access unit into the top layer on the stream
// clock (90 kHz, as the child's layers).
func (src *source) passVideo(ms int64, au [][]byte) {
	p := src.pass
	p.buf = annexB(p.buf[:0], au)
	src.vpack[0].write(p.pay.Payload(maxPayload, p.buf), uint32(ms*90), src.captured(ms))
}

// push queues a frame for the child; full, it drops it, and the video
// after it up to the next keyframe (which would reference what is gone).
// One reader goroutine calls it.
func (src *source) push(f frame) {
	c := src.achild
	if f.video {
		c = src.vchild
	}
	if c == nil {
		return
	}
	if f.video && src.skipping {
		if !f.key {
			src.dropped.Add(1)
			return
		}
		src.skipping = false
	}
	select {
	case c.frames <- f:
	default:
		src.dropped.Add(1)
		if f.video {
			src.skipping = true
		}
	}
}

// feedOffset (ms) is added to the timestamps the child reads and taken
// off those it writes: an encoder's audio starts a little before its input
// (Opus's pre-skip), and ffmpeg would shift every stream to keep that
// above zero, putting the made layers off the stream clock.
const feedOffset = 1000

// feed writes the child's frames to one ffmpeg as Matroska, video from
// its first keyframe on.
func (c *child) feed(ctx context.Context, w io.Writer) error {
	m, err := transcode.NewMKV(w, c.track)
	if err != nil {
		return err
	}
	c.needKey.Store(c.video)
	for {
		var f frame
		select {
		case <-ctx.Done():
			return nil
		case f = <-c.frames:
		}
		if c.needKey.Load() {
			if !f.key {
				continue
			}
			c.needKey.Store(false)
		}
		if err := m.Write(0, f.ms+feedOffset, f.key, f.data); err != nil {
			return err
		}
	}
}

// read turns one child's MPEG-TS into RTP on the publication's layers:
// its H.264 streams in the order of the rungs, its Opus.
func (src *source) read(stdout io.Reader) error {
	r := &mpegts.Reader{R: stdout}
	if err := r.Initialize(); err != nil {
		return err
	}
	vi := btoi(src.pass != nil) // the child's first H.264 stream is the layer under the passthrough
	// The output's 33-bit PTS, past its wrap (the decoder counts from the
	// first), back on the stream clock in 90 kHz.
	var dec mpegts.TimeDecoder
	first := int64(-1)
	clock := func(pts int64) int64 {
		if first < 0 {
			first = pts
		}
		return first + dec.Decode(pts) - feedOffset*90
	}
	for _, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			if vi >= len(src.vpack) {
				continue
			}
			out := src.vpack[vi]
			vi++
			pay := &codecs.H264Payloader{}
			var buf []byte
			r.OnDataH264(tr, func(pts, _ int64, au [][]byte) error {
				p := clock(pts)
				buf = annexB(buf[:0], au)
				out.write(pay.Payload(maxPayload, buf), uint32(p), src.captured(p/90))
				return nil
			})
		case *tscodecs.Opus:
			if src.apack == nil {
				continue
			}
			out := src.apack
			r.OnDataOpus(tr, func(pts int64, pkts [][]byte) error {
				p := clock(pts)
				for i, pk := range pkts {
					out.write([][]byte{pk}, uint32(p*48000/90000)+uint32(i*960), src.captured(p/90+int64(i)*20))
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

// maxPayload keeps RTP packets under a path's MTU.
const maxPayload = 1200

// packetizer writes payloads as RTP packets into a layer, as a publisher
// would send them.
type packetizer struct {
	mu   sync.Mutex // an exiting child's reader and the next one's
	l    *sfu.Layer
	pt   uint8
	ssrc uint32
	seq  uint16
	buf  []byte
	pkt  rtp.Packet // reused, its extension slice with it
	sr   int64      // when the layer's last sender report was made (sfu.Now)
	// capture is the abs-capture-time value of the frame being written.
	capture [8]byte
}

// srInterval is how often a layer's sender report is renewed: viewers'
// reports map its timestamps to the time its frames reached the node, one
// clock for the audio and video, which keeps them in sync.
const srInterval = time.Second

func newPacketizer(l *sfu.Layer, pt uint8) *packetizer {
	return &packetizer{l: l, pt: pt, ssrc: rand.Uint32(), seq: uint16(rand.Uint32())}
}

// write sends the payloads of one frame at timestamp ts, the marker on
// the last, the first with the frame's capture time (NTP).
func (p *packetizer) write(payloads [][]byte, ts uint32, captured uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	binary.BigEndian.PutUint64(p.capture[:], captured)
	pkt := &p.pkt
	for i, pl := range payloads {
		h := &pkt.Header
		h.Version, h.PayloadType, h.SequenceNumber, h.Timestamp, h.SSRC, h.Marker = 2, p.pt, p.seq, ts, p.ssrc, i == len(payloads)-1
		h.Extension, h.Extensions = false, h.Extensions[:0]
		pkt.Payload = pl
		if i == 0 {
			_ = h.SetExtension(absCaptureTimeID, p.capture[:])
			if now := sfu.Now(); now-p.sr >= int64(srInterval) {
				p.sr = now
				p.l.IngestSenderReport(captured, ts, now)
			}
		}
		p.seq++
		n := pkt.MarshalSize()
		if cap(p.buf) < n {
			p.buf = make([]byte, n)
		}
		b := p.buf[:n]
		if _, err := pkt.MarshalTo(b); err != nil {
			continue
		}
		_ = p.l.Ingest(b, sfu.Now())
	}
}

// RequestKeyframe asks nothing of an RTMP encoder, which cannot be asked:
// the layers have a keyframe every Config.GOP (sfu.Source).
func (src *source) RequestKeyframe(*sfu.Layer) {}

// StartsFromGOP says the encoder cannot be asked for a keyframe: new
// viewers start from the cached GOP (sfu.GOPSource).
func (src *source) StartsFromGOP() bool { return true }

// Close ends the publisher's connection: another publisher took the
// stream (sfu.Source).
func (src *source) Close() error {
	src.takenOff.Store(true)
	src.s.log.Info("ingest: another publisher took the stream; closing this encoder's connection",
		"stream", src.name, "protocol", src.spec.protocol, "remote", src.spec.remoteAddr)
	return src.conn.Close()
}

// stop ends the transcoder once the connection has ended; the stream
// waits out the reconnect grace for the encoder to come back.
func (src *source) stop() {
	if !src.takenOff.Load() {
		src.pub.Lost(sfu.Now())
	}
	if src.cancel != nil {
		src.cancel()
	}
	src.wg.Wait()
}

// annexB appends NAL units joined by start codes to b, as pion's
// payloader reads them (it copies what it keeps: b may be reused).
func annexB(b []byte, nalus [][]byte) []byte {
	for _, u := range nalus {
		b = append(append(b, 0, 0, 0, 1), u...)
	}
	return b
}
