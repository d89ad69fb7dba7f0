package hlsbridge

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
)

// An encoder's own stream (sfu.Elementary: RTMP and SRT sources) is
// packaged as it comes in the top rendition, B-frames, H.265 and AAC
// included; the layers the ingest made under it for WebRTC viewers are
// the renditions below, all of them with the encoder's AAC. Nothing is
// encoded twice.

// elementary is the session's Elementary stream.
type elementary struct {
	src    sfu.Elementary
	format sfu.ElementaryFormat
	frames chan elemFrame
	unsub  func()
	rend   *rendition // the top rendition, of the encoder's video
	rate   int64      // the AAC's sample rate
	// aacCodecs names the AAC in a playlist's CODECS (mp4a.40.2 for LC).
	aacCodecs string
	keyed     bool // the worker's own: the top rendition had its keyframe
}

// elemFrame is one of an Elementary stream's frames on its way to the
// worker: video (NAL units) or an AAC access unit, at pts (90 kHz).
type elemFrame struct {
	video, key bool
	pts        int64
	au         [][]byte
	aac        []byte
}

// elementaryOf returns the Elementary stream of the layer's source, when
// it has one HLS packages as it comes.
func elementaryOf(l *sfu.Layer) (sfu.Elementary, sfu.ElementaryFormat, bool) {
	el, ok := l.Source().(sfu.Elementary)
	if !ok {
		return nil, sfu.ElementaryFormat{}, false
	}
	f, ok := el.ElementaryFormat()
	return el, f, ok
}

// elementaryTracks are the muxer tracks of f: its video, and its AAC
// (nil without audio) of which each rendition needs its own.
func elementaryTracks(f sfu.ElementaryFormat) (video *gohlslib.Track, audio func() *gohlslib.Track, asc mpeg4audio.AudioSpecificConfig, err error) {
	video = &gohlslib.Track{Codec: &codecs.H264{SPS: f.SPS, PPS: f.PPS}, ClockRate: 90000}
	if f.H265 {
		video.Codec = &codecs.H265{VPS: f.VPS, SPS: f.SPS, PPS: f.PPS}
	}
	if f.AAC == nil {
		return video, nil, asc, nil
	}
	if err := asc.Unmarshal(f.AAC); err != nil {
		return nil, nil, asc, fmt.Errorf("the encoder's AAC configuration: %w", err)
	}
	audio = func() *gohlslib.Track {
		return &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: asc}, ClockRate: asc.SampleRate, Name: "audio", IsDefault: true}
	}
	return video, audio, asc, nil
}

// ElementaryVideo queues an access unit of the encoder's video for the
// worker, or drops it when the queue is full (sfu.ElementarySink).
func (s *session) ElementaryVideo(pts, _ int64, au [][]byte, key bool) {
	s.queueElem(elemFrame{video: true, key: key, pts: pts, au: au})
}

// ElementaryAudio queues an AAC access unit (sfu.ElementarySink).
func (s *session) ElementaryAudio(pts int64, au []byte) {
	s.queueElem(elemFrame{pts: pts, aac: au})
}

func (s *session) queueElem(f elemFrame) {
	if s.closed.Load() {
		return
	}
	select {
	case s.elem.frames <- f:
	default:
		s.dropped.Add(1)
	}
}

// writeElem packages one of the Elementary stream's frames, on the
// worker: the video into the top rendition from its first keyframe, the
// AAC into every rendition.
func (s *session) writeElem(f elemFrame) {
	e := s.elem
	if f.video {
		if !e.keyed && !f.key {
			return
		}
		e.keyed = true
		e.rend.writeVideo(s, f.pts, f.au, f.key)
		return
	}
	pts := f.pts * e.rate / 90000
	for _, r := range s.rends {
		if r.audio != nil {
			_ = r.mux.WriteMPEG4Audio(r.audio, s.wall(f.pts, 90000), pts, [][]byte{f.aac})
		}
	}
}

// packageElementary makes the session's renditions of an encoder's own
// stream f (the top) and the ingest's layers under it.
func (s *session) packageElementary(el sfu.Elementary, f sfu.ElementaryFormat, layers []*sfu.Layer) error {
	video, audio, asc, err := elementaryTracks(f)
	if err != nil {
		return err
	}
	s.audio = nil // the encoder's AAC, not the Opus made of it
	s.elem = &elementary{src: el, format: f, frames: make(chan elemFrame, s.cfg.Queue), rate: int64(asc.SampleRate),
		aacCodecs: fmt.Sprintf("mp4a.40.%d", asc.Type)}
	add := func(r *rendition, v *gohlslib.Track) error {
		r.video, r.ready = v, make(chan struct{})
		tracks := []*gohlslib.Track{v}
		if audio != nil {
			r.audio = audio()
			tracks = append(tracks, r.audio)
		}
		if err := s.startMuxer(r, tracks); err != nil {
			s.closeMuxers()
			return err
		}
		s.rends = append(s.rends, r)
		return nil
	}
	for _, l := range layers[:len(layers)-1] {
		if codec.KindOf(l.Codec().MimeType) != codec.H264 {
			continue
		}
		s.video = append(s.video, l)
		r := &rendition{name: "r" + strconv.Itoa(len(s.rends)), layer: l, asm: codec.NewAssembler(codec.H264), clock: rtpClock{exact: true}}
		if err := add(r, &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: 90000}); err != nil {
			return err
		}
	}
	s.elem.rend = &rendition{name: "r" + strconv.Itoa(len(s.rends)), h265: f.H265}
	if err := add(s.elem.rend, video); err != nil {
		return err
	}
	close(s.prepared)
	return nil
}

// adoptElementary moves the session onto a returning encoder: its own
// stream, of the same format, goes on in the top rendition and the
// ingest's layers under it in theirs.
func (s *session) adoptElementary(video *sfu.Track) bool {
	ls := video.Layers()
	if len(ls) == 0 {
		return true // the new publication's layers come with their own events
	}
	el, f, ok := elementaryOf(ls[len(ls)-1])
	if !ok || !sameFormat(f, s.elem.format) {
		return false
	}
	next := &layerSet{video: make([]*sfu.Layer, len(s.video))}
	for _, l := range ls[:len(ls)-1] {
		i := slices.IndexFunc(s.video, func(v *sfu.Layer) bool { return v.RID() == l.RID() })
		if i < 0 {
			return false
		}
		next.video[i] = l
	}
	s.tmu.Lock()
	same := el == s.elem.src
	if !same {
		s.elem.unsub()
		s.elem.src, s.elem.unsub = el, el.SubscribeElementary(s)
	}
	s.tmu.Unlock()
	cur := s.accepted.Load()
	if same && slices.Equal(cur.video, next.video) {
		return true
	}
	s.accepted.Store(next)
	s.ctl <- func() {
		for _, r := range s.rends {
			if i := slices.Index(s.video, r.layer); i >= 0 && next.video[i] != nil && next.video[i] != r.layer {
				r.layer, r.asm, r.clock = next.video[i], codec.NewAssembler(codec.H264), rtpClock{exact: true}
			}
		}
		if !same {
			s.elem.keyed = false
		}
	}
	if !same {
		s.log.Info("hls: the encoder's return continues the same playlists")
		s.reconnected()
	}
	return true
}

// sameFormat reports whether a returning encoder's stream fits the
// muxers made for the first: the same codec, parameter sets and audio.
func sameFormat(a, b sfu.ElementaryFormat) bool {
	return a.H265 == b.H265 && bytes.Equal(a.VPS, b.VPS) && bytes.Equal(a.SPS, b.SPS) && bytes.Equal(a.PPS, b.PPS) && bytes.Equal(a.AAC, b.AAC)
}
