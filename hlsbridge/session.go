package hlsbridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/pion/rtp"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// session packages one live stream: a rendition per H.264 layer, each
// with the stream's Opus audio.
type session struct {
	log        *slog.Logger
	cfg        Config
	stream     *sfu.Stream
	video      []*sfu.Layer // the layers the session was made for
	audio      *sfu.Layer
	tmu        sync.Mutex
	tracks     []*sfu.Track // whose sink the session is: the host's first
	hostTracks int
	guests     map[string]string // a room's guests in the layout: id → name
	rmu        sync.Mutex        // one recompose at a time
	rends      []*rendition
	// accepted are the layers Deliver takes now: a returning publisher's
	// replace the first ones (adopt).
	accepted atomic.Pointer[layerSet]
	// ctl runs changes on the worker, in order with the packets.
	ctl chan func()
	// tc transcodes the top layer into the renditions; nil when the
	// layers are packaged as they are. atc then makes their AAC, when
	// there is an ffmpeg; aac carries it to the worker.
	tc  *transcoder
	atc *transcoder
	aac chan aacUnits
	// elem is the encoder's own stream the top rendition packages, for an
	// RTMP or SRT source (elementary.go); nil otherwise.
	elem *elementary
	// prepared is closed once rends is set: at once, or when a
	// transcoded session learns its source's picture size.
	prepared chan struct{}
	// recID is the recording's ID ("{stream}/{start}") when recording,
	// chapters its chapter log.
	recID    string
	chapters *chapterLog
	recErr   atomic.Pointer[string] // why the recording stopped, if it did
	// The worker's own: the audio layer, its assembler and clock.
	wAudio     *sfu.Layer
	opus       *codec.Assembler
	audioClock rtpClock

	// The stream clock: stream time 0 in the core's clock and on the wall.
	originNow  int64
	originWall time.Time

	free, work chan *item
	dropped    atomic.Uint64

	// Media playlist requests in flight, by rendition, file and blocking
	// parameters: identical requests share one render.
	fmu     sync.Mutex
	flights map[string]*flight
	renders atomic.Uint64 // playlist renders, for tests
	closed  atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
	rec     sync.WaitGroup // the recorder, which ends after the muxers
}

// layerSet is the layers a session takes packets of.
type layerSet struct {
	video []*sfu.Layer
	audio *sfu.Layer
	// A Live Room's guests' video (after the host's in video) and audio.
	guestAudio []*sfu.Layer
}

// item is one packet copied off the forwarding path.
type item struct {
	layer   *sfu.Layer
	seq     uint16
	ts      uint32
	marker  bool
	arrival int64
	n       int
	buf     [sfu.MaxPacketSize]byte
}

// rendition is one H.264 layer as one gohlslib muxer.
type rendition struct {
	name         string
	layer        *sfu.Layer
	mux          *gohlslib.Muxer
	video, audio *gohlslib.Track
	asm          *codec.Assembler
	clock        rtpClock
	h265         bool // the video is H.265 (an encoder's own)
	keyframes    int
	firstKey     int64 // pts of the first keyframe written
	ready        chan struct{}
	readyOnce    sync.Once
}

// transcoding says how a session gets its renditions when the
// publisher's layers cannot all be packaged as they are: the ffmpeg to run
// and the encoder probed at start.
type transcoding struct {
	ffmpeg string
	enc    transcode.Encoder
	err    error // why there is no transcoder, when there is none
	ladder []int
	all    bool // transcode H.264 too: a ladder was configured
	aac    bool // make AAC of the Opus of streams packaged as they come
	room   bool // composite a Live Room's broadcasters
}

func newSession(st *sfu.Stream, audio, video *sfu.Track, cfg Config, tx transcoding, log *slog.Logger) (*session, error) {
	now := sfu.Now()
	ms, ok := st.StreamTime(now)
	if !ok {
		return nil, fmt.Errorf("the stream is not live")
	}
	s := &session{
		log: log, cfg: cfg,
		originNow:  now - ms*int64(time.Millisecond),
		originWall: time.Now().Add(-time.Duration(ms) * time.Millisecond),
		free:       make(chan *item, cfg.Queue),
		work:       make(chan *item, cfg.Queue),
		done:       make(chan struct{}),
		prepared:   make(chan struct{}),
		flights:    map[string]*flight{},
		ctl:        make(chan func(), 4),
		opus:       codec.NewAssembler(codec.Opus),
	}
	var layers []*sfu.Layer
	if video != nil {
		layers = video.Layers()
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("no video layer yet")
	}
	s.audio = opusLayer(audio)
	top := layers[len(layers)-1]
	kind := codec.KindOf(top.Codec().MimeType)
	el, ef, isElem := elementaryOf(top)
	switch {
	case isElem && kind == codec.H264 && !tx.all && !tx.room:
		if err := s.packageElementary(el, ef, layers); err != nil {
			return nil, err
		}
	case kind != codec.H264 || tx.all || tx.room:
		if _, ok := mkvCodec(kind); !ok {
			return nil, fmt.Errorf("video is %s: no transcoder takes it", top.Codec().MimeType)
		}
		if tx.err != nil {
			return nil, fmt.Errorf("video is %s: packaging it needs the transcoder: %w", top.Codec().MimeType, tx.err)
		}
		s.video = []*sfu.Layer{top}
		s.tc = newTranscoder(s, tx.ffmpeg, tx.enc, tx.ladder, top, tx.room)
	default:
		for _, l := range layers {
			if codec.KindOf(l.Codec().MimeType) != codec.H264 {
				return nil, fmt.Errorf("video is %s: packaging it needs the transcoder", l.Codec().MimeType)
			}
			s.video = append(s.video, l)
		}
		for i, l := range s.video {
			r := &rendition{name: "r" + strconv.Itoa(i), layer: l, asm: codec.NewAssembler(codec.H264), ready: make(chan struct{})}
			r.video = &gohlslib.Track{Codec: &codecs.H264{}, ClockRate: 90000}
			tracks := []*gohlslib.Track{r.video}
			switch {
			case s.audio != nil && tx.aac:
				r.audio = aacTrack()
				tracks = append(tracks, r.audio)
			case s.audio != nil:
				r.audio = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: 2}, ClockRate: 48000, Name: "audio", IsDefault: true}
				tracks = append(tracks, r.audio)
			}
			if err := s.startMuxer(r, tracks); err != nil {
				s.closeMuxers()
				return nil, err
			}
			s.rends = append(s.rends, r)
		}
		close(s.prepared)
		if s.audio != nil && tx.aac {
			s.aac = make(chan aacUnits, 64)
			s.atc = newAudioTranscoder(s, tx.ffmpeg)
		}
	}
	s.wAudio = s.audio
	s.accepted.Store(&layerSet{video: s.video, audio: s.audio})
	for range cfg.Queue {
		s.free <- &item{}
	}
	s.wg.Add(1)
	go s.run()
	if s.elem != nil {
		s.tmu.Lock()
		s.elem.unsub = s.elem.src.SubscribeElementary(s)
		s.tmu.Unlock()
	}
	if cfg.RecordDir != "" {
		start := time.Now().UTC().Format("20060102T150405.000Z")
		dir := filepath.Join(cfg.RecordDir, st.Name(), start)
		s.recID, s.chapters = st.Name()+"/"+start, &chapterLog{path: filepath.Join(dir, chaptersFile)}
		s.rec.Go(func() {
			select {
			case <-s.prepared:
			case <-s.done:
				return
			}
			if err := s.record(dir, recordingMeta{Stream: st.Name(), Origin: s.originWall.UTC()}); err != nil {
				msg := err.Error()
				s.recErr.Store(&msg)
				log.Error("hls: recording stopped; live viewing goes on", "dir", dir, "err", err)
			}
		})
	}
	s.stream = st
	s.tracks = []*sfu.Track{video}
	video.AddSink(s)
	if s.audio != nil {
		s.tracks = append(s.tracks, audio)
		audio.AddSink(s)
	}
	s.hostTracks = len(s.tracks)
	for _, l := range s.video {
		l.RequestKeyframe(now) // segments start at keyframes: no waiting a whole interval
	}
	if tx.room {
		s.recompose()
	}
	return s, nil
}

// startMuxer starts a rendition's muxer with tracks.
func (s *session) startMuxer(r *rendition, tracks []*gohlslib.Track) error {
	name := r.name
	r.mux = &gohlslib.Muxer{
		Tracks: tracks, Variant: gohlslib.MuxerVariantLowLatency, SegmentCount: s.cfg.Segments,
		SegmentMinDuration: s.cfg.SegmentDuration, PartMinDuration: s.cfg.PartDuration,
		OnEncodeError: func(err error) { s.log.Debug("hls: packaging", "rendition", name, "err", err) },
	}
	return r.mux.Start()
}

// renditions returns the session's renditions: none until they are made
// (a transcoded session's, once the source's picture size is known).
func (s *session) renditions() []*rendition {
	select {
	case <-s.prepared:
		return s.rends
	default:
		return nil
	}
}

// adopt takes a publication's layers into the session, each video layer
// in the rendition of the same rid, so players keep their playlists and
// segment names when a publisher returns or is taken over: the renditions'
// assemblers and clocks start again on the new layers, timestamps going on
// from the stream clock. A rendition whose layer has not arrived yet waits
// for it. It reports false when the layers do not fit the renditions (a
// new rid, another codec, audio where there was none): the caller makes a
// new session.
func (s *session) adopt(audio, video *sfu.Track) bool {
	if video == nil {
		return false
	}
	if s.tc != nil {
		return s.adoptTranscoded(audio, video)
	}
	if s.elem != nil {
		return s.adoptElementary(video)
	}
	next := &layerSet{video: make([]*sfu.Layer, len(s.rends))}
	for _, l := range video.Layers() {
		i := slices.IndexFunc(s.video, func(v *sfu.Layer) bool { return v.RID() == l.RID() })
		if i < 0 || codec.KindOf(l.Codec().MimeType) != codec.H264 {
			return false
		}
		next.video[i] = l
	}
	next.audio = opusLayer(audio)
	if next.audio != nil && s.audio == nil {
		return false // the muxers have no audio track
	}
	cur := s.accepted.Load()
	if slices.Equal(cur.video, next.video) && cur.audio == next.audio {
		return true
	}
	s.accepted.Store(next)
	now := sfu.Now()
	for i, l := range next.video {
		if l != nil && l != cur.video[i] {
			l.RequestKeyframe(now)
		}
	}
	s.ctl <- func() {
		for i, r := range s.rends {
			if next.video[i] != nil && next.video[i] != r.layer {
				r.layer, r.asm, r.clock = next.video[i], codec.NewAssembler(codec.H264), rtpClock{}
			}
		}
		if next.audio != s.wAudio {
			s.wAudio, s.opus, s.audioClock = next.audio, codec.NewAssembler(codec.Opus), rtpClock{}
		}
	}
	s.log.Info("hls: the stream's new publication continues the same playlists")
	s.reconnected()
	return true
}

// reconnected marks a returning publisher in the recording.
func (s *session) reconnected() {
	if _, err := s.chapter("Reconnected"); err != nil && !errors.Is(err, ErrNotRecorded) {
		s.log.Warn("vod: the reconnect's chapter was not recorded", "err", err)
	}
}

// chapter marks the stream's present moment in the recording; it
// returns the chapter.
func (s *session) chapter(title string) (Chapter, error) {
	c := Chapter{StreamMS: (sfu.Now() - s.originNow) / int64(time.Millisecond), Title: title}
	if s.chapters == nil {
		return c, ErrNotRecorded
	}
	return c, s.chapters.add(c)
}

// adoptTranscoded moves a transcoded session onto a returning
// publisher's top layer, when it is of the same codec.
func (s *session) adoptTranscoded(audio, video *sfu.Track) bool {
	ls := video.Layers()
	if len(ls) == 0 {
		return true // the new publication's layers come with their own events
	}
	top := ls[len(ls)-1]
	next := &layerSet{video: []*sfu.Layer{top}, audio: opusLayer(audio)}
	// Another top layer (a taller one arriving after the first) makes
	// another ladder: a new session.
	if codec.KindOf(top.Codec().MimeType) != s.tc.kind || top.RID() != s.video[0].RID() || next.audio != nil && s.audio == nil {
		return false
	}
	cur := s.accepted.Load()
	if cur.video[0] == top && cur.audio == next.audio {
		return true
	}
	s.accepted.Store(next)
	top.RequestKeyframe(sfu.Now())
	s.ctl <- func() {
		if top != s.tc.host().layer {
			s.tc.adopt(top)
		}
		if next.audio != s.wAudio {
			s.wAudio, s.opus, s.audioClock = next.audio, codec.NewAssembler(codec.Opus), rtpClock{}
		}
	}
	s.log.Info("hls: the stream's new publication continues the same playlists (transcoded)")
	s.reconnected()
	if s.isRoom() {
		s.recompose() // the guests stay in the layout
	}
	return true
}

// opusLayer returns the track's Opus layer, if it has one: the audio the
// muxers carry.
func opusLayer(audio *sfu.Track) *sfu.Layer {
	if audio == nil {
		return nil
	}
	for _, l := range audio.Layers() {
		if codec.KindOf(l.Codec().MimeType) == codec.Opus {
			return l
		}
	}
	return nil
}

// Deliver copies a packet of a packaged layer into the queue (sfu.Sink).
// It never waits: with no free slot the packet is dropped and counted.
func (s *session) Deliver(l *sfu.Layer, p *sfu.Packet) {
	if s.closed.Load() {
		return
	}
	if ls := s.accepted.Load(); l != ls.audio && !slices.Contains(ls.video, l) && !slices.Contains(ls.guestAudio, l) {
		return
	}
	var it *item
	select {
	case it = <-s.free:
	default:
		s.dropped.Add(1)
		return
	}
	it.layer, it.seq, it.ts, it.marker, it.arrival = l, p.SequenceNumber, p.Timestamp, p.Marker, p.Arrival
	it.n = copy(it.buf[:], p.Payload())
	s.work <- it // never blocks: there are as many items as room
}

// run turns queued packets into access units for the muxers.
func (s *session) run() {
	defer s.wg.Done()
	var pkt rtp.Packet
	var elem chan elemFrame // nil, never ready, without an Elementary stream
	if s.elem != nil {
		elem = s.elem.frames
	}
	for {
		select {
		case <-s.done:
			return
		case f := <-s.ctl:
			f()
		case f := <-elem:
			s.writeElem(f)
		case a := <-s.aac:
			for _, r := range s.rends {
				_ = r.mux.WriteMPEG4Audio(r.audio, s.wall(a.pts, 48000), a.pts, a.aus)
			}
		case it := <-s.work:
			pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload = it.seq, it.ts, it.marker, it.buf[:it.n]
			switch {
			case it.layer == s.wAudio && it.layer != nil:
				s.writeOpus(&pkt, it.arrival)
			case s.tc != nil:
				s.tc.videoPacket(it.layer, &pkt, it.arrival)
			default:
				for _, r := range s.rends {
					if r.layer == it.layer {
						r.write(s, &pkt, it.arrival)
					}
				}
			}
			s.free <- it
		}
	}
}

// writeOpus packages the Opus packets pkt completes, or hands them to
// the transcoder.
func (s *session) writeOpus(pkt *rtp.Packet, arrival int64) {
	for _, au := range s.opus.Push(pkt) {
		pts := s.audioClock.pts(au.Timestamp, arrival-s.originNow, 48000)
		switch {
		case s.tc != nil:
			s.tc.audio(au.Data, pts)
			continue
		case s.atc != nil:
			s.atc.audio(au.Data, pts)
			continue
		}
		for _, r := range s.rends {
			_ = r.mux.WriteOpus(r.audio, s.wall(pts, 48000), pts, [][]byte{au.Data})
		}
	}
}

// write packages the access units pkt completes.
func (r *rendition) write(s *session, pkt *rtp.Packet, arrival int64) {
	for _, au := range r.asm.Push(pkt) {
		r.writeVideo(s, r.clock.pts(au.Timestamp, arrival-s.originNow, 90000), au.NALUs, au.Keyframe)
	}
}

// writeVideo packages one access unit at pts (90 kHz, stream clock).
func (r *rendition) writeVideo(s *session, pts int64, nalus [][]byte, key bool) {
	write := r.mux.WriteH264
	if r.h265 {
		write = r.mux.WriteH265
	}
	if err := write(r.video, s.wall(pts, 90000), pts, nalus); err != nil {
		s.log.Debug("hls: an access unit was refused", "rendition", r.name, "err", err)
		return
	}
	if key {
		if r.keyframes == 0 {
			r.firstKey = pts
		}
		r.keyframes++
		// A segment is out once a keyframe follows a segment's worth.
		if r.keyframes >= 2 && time.Duration((pts-r.firstKey)*int64(time.Second)/90000) >= s.cfg.SegmentDuration {
			r.readyOnce.Do(func() { close(r.ready) })
		}
	}
}

// wall is the wall-clock time of a pts on the stream clock: what
// EXT-X-PROGRAM-DATE-TIME says, so a player's position maps to stream time.
func (s *session) wall(pts int64, rate int64) time.Time {
	return s.originWall.Add(time.Duration(pts * int64(time.Second) / rate))
}

// rtpClock maps one RTP stream's timestamps onto the stream clock: its
// first access unit at the stream time it arrived, the rest by their RTP
// distance from it, so renditions and audio line up. An exact clock is
// for layers whose timestamps are the stream clock already (an
// ingest's, beside its encoder's own stream): only their wraps are undone.
type rtpClock struct {
	exact   bool
	started bool
	last    uint32
	ext     int64 // unwrapped timestamp of last, relative to the first
	base    int64 // pts of the first
}

func (c *rtpClock) pts(ts uint32, sinceOrigin int64, rate int64) int64 {
	if !c.started {
		c.started, c.last = true, ts
		c.base = max(sinceOrigin, 0) * rate / int64(time.Second)
		if c.exact { // ts plus the multiple of 2^32 nearest the arrival
			c.base = int64(ts) + (c.base-int64(ts)+1<<31)>>32<<32
		}
		return c.base
	}
	c.ext += int64(int32(ts - c.last))
	c.last = ts
	return c.base + c.ext
}

func (s *session) close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.tmu.Lock()
	for _, t := range s.tracks {
		t.RemoveSink(s)
	}
	if s.elem != nil && s.elem.unsub != nil {
		s.elem.unsub()
	}
	s.tmu.Unlock()
	close(s.done)
	s.wg.Wait()
	for _, tc := range []*transcoder{s.tc, s.atc} {
		if tc != nil {
			tc.stop()
		}
	}
	s.closeMuxers()
	s.rec.Wait()
}

// closeMuxers closes the renditions' muxers: after the worker (which
// makes a transcoded session's) has stopped, or before it started.
func (s *session) closeMuxers() {
	for _, r := range s.rends {
		r.mux.Close()
	}
}

// indexWait bounds how long a multivariant playlist request waits for the
// renditions' first segments.
const indexWait = 10 * time.Second

// serveIndex writes the multivariant playlist: each rendition's stream
// line from its muxer, pointing into the rendition's folder, the audio
// of the first rendition, and that audio alone as a rendition of its own.
// It waits until every rendition has a segment,
// and reports false without answering when the session is replaced (its
// layers changed) meanwhile, for the caller to ask the new one.
func (s *session) serveIndex(ctx context.Context, w http.ResponseWriter) bool {
	unready := func() bool {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the stream has no segment yet", http.StatusServiceUnavailable)
		return true
	}
	select {
	case <-s.prepared:
	case <-s.done:
		return false
	case <-ctx.Done():
		return unready()
	}
	for _, rd := range s.rends {
		select {
		case <-rd.ready:
		case <-s.done:
			return false
		case <-ctx.Done():
			return unready()
		}
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	audioURI := ""
	for i, rd := range s.rends {
		rec := httptest.NewRecorder()
		rd.mux.Handle(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/index.m3u8", nil))
		sc := bufio.NewScanner(rec.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "#EXT-X-MEDIA:") && i == 0:
				line = prefixURI(line, rd.name)
				if _, rest, ok := strings.Cut(line, `URI="`); ok {
					audioURI, _, _ = strings.Cut(rest, `"`)
				}
				b.WriteString(line + "\n")
			case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
				b.WriteString(line + "\n")
				if sc.Scan() {
					b.WriteString(rd.name + "/" + sc.Text() + "\n")
				}
			}
		}
	}
	if audioURI != "" {
		// The audio alone, for a player with too little bandwidth for any
		// picture (players that can show video pass it over).
		codecs, bw := "opus", 64_000
		switch {
		case s.elem != nil:
			codecs, bw = s.elem.aacCodecs, transcode.AudioBitrate
		case s.tc != nil || s.atc != nil:
			codecs, bw = "mp4a.40.2", transcode.AudioBitrate
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=\"%s\"\n%s\n", bw*11/10, codecs, audioURI)
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write([]byte(b.String()))
	return true
}

// prefixURI puts a rendition's folder in front of a tag's URI attribute.
func prefixURI(line, dir string) string {
	return strings.Replace(line, `URI="`, `URI="`+dir+"/", 1)
}

// serveFile serves one of a rendition's files through its muxer: media
// playlists (blocking reload included), init files, segments and parts.
func (s *session) serveFile(w http.ResponseWriter, r *http.Request, rend, file string) {
	i := slices.IndexFunc(s.renditions(), func(x *rendition) bool { return x.name == rend })
	if i < 0 || !validName(file) {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(file, "_stream.m3u8") {
		s.servePlaylist(w, r, i, file)
		return
	}
	lw := &lazyWriter{w: w, immutable: strings.HasSuffix(file, ".mp4")}
	s.rends[i].mux.Handle(lw, r)
	lw.finish(r)
}

// flight is one media playlist render that identical requests wait for.
type flight struct {
	done   chan struct{}
	code   int
	header http.Header
	body   []byte
}

// servePlaylist serves a media playlist (blocking reload included) with a
// rendition report for each other rendition's playlist of the same media
// (RFC 8216bis §4.4.5.4), so a player switching renditions asks for the
// right part at once. Identical requests — every player waiting for the
// same next part — share one render.
func (s *session) servePlaylist(w http.ResponseWriter, r *http.Request, i int, file string) {
	q := r.URL.Query()
	key := s.rends[i].name + "/" + file + "?" + q.Get("_HLS_msn") + "," + q.Get("_HLS_part") + "," + q.Get("_HLS_skip")
	s.fmu.Lock()
	f, joined := s.flights[key]
	if !joined {
		f = &flight{done: make(chan struct{})}
		s.flights[key] = f
	}
	s.fmu.Unlock()
	if !joined {
		s.render(f, r.Clone(context.Background()), i, file)
		s.fmu.Lock()
		delete(s.flights, key)
		s.fmu.Unlock()
		close(f.done)
	}
	select {
	case <-f.done:
	case <-r.Context().Done():
		return
	}
	if f.code != http.StatusOK || len(f.body) == 0 {
		lw := &lazyWriter{w: w}
		if f.code != http.StatusOK {
			lw.WriteHeader(f.code)
			_, _ = lw.Write(f.body)
		}
		lw.finish(r)
		return
	}
	for k, v := range f.header {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(f.body)
}

// render fills f: the muxer's playlist for req and the reports. req is
// detached from any one request's context: the waiters come and go, the
// render ends when the part exists or the muxer closes.
func (s *session) render(f *flight, req *http.Request, i int, file string) {
	s.renders.Add(1)
	rec := httptest.NewRecorder()
	s.rends[i].mux.Handle(rec, req)
	f.code, f.header, f.body = rec.Code, rec.Header().Clone(), rec.Body.Bytes()
	f.header.Del("Content-Length")
	if f.code != http.StatusOK || len(f.body) == 0 {
		return
	}
	for j, other := range s.rends {
		if j == i {
			continue
		}
		o := httptest.NewRecorder()
		other.mux.Handle(o, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/"+file, nil))
		if msn, part, ok := lastPart(o.Body.String()); ok {
			f.body = fmt.Appendf(f.body, "#EXT-X-RENDITION-REPORT:URI=\"../%s/%s\",LAST-MSN=%d,LAST-PART=%d\n", other.name, file, msn, part)
		}
	}
}

// lastPart reads a low-latency media playlist's newest part: the media
// sequence number of its segment and its index there.
func lastPart(pl string) (msn, part int, ok bool) {
	seq, segs, parts := -1, 0, 0
	for line := range strings.SplitSeq(pl, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			parts++
		case strings.HasPrefix(line, "#EXTINF:"):
			segs++
			if parts > 0 {
				msn, part = seq+segs-1, parts-1
			}
			parts = 0
		}
	}
	switch {
	case seq < 0:
		return 0, 0, false
	case parts > 0: // parts of the segment being made
		return seq + segs, parts - 1, true
	case segs > 0 && msn >= seq:
		return msn, part, true
	}
	return 0, 0, false
}

// validName accepts the names gohlslib serves: letters, digits, '_' and
// one '.', ending in .m3u8 or .mp4.
func validName(f string) bool {
	if len(f) > 96 || strings.Count(f, ".") != 1 {
		return false
	}
	if !strings.HasSuffix(f, ".m3u8") && !strings.HasSuffix(f, ".mp4") {
		return false
	}
	for _, c := range f {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// lazyWriter holds the status back until the first byte: gohlslib answers
// a name it does not have with an empty 200, which becomes a 404 here.
// Segments and parts are named uniquely per muxer, so a CDN may keep them.
type lazyWriter struct {
	w         http.ResponseWriter
	status    int
	wrote     bool
	immutable bool
}

func (l *lazyWriter) Header() http.Header { return l.w.Header() }

func (l *lazyWriter) WriteHeader(code int) { l.status = code }

func (l *lazyWriter) Write(b []byte) (int, error) {
	if !l.wrote {
		l.wrote = true
		if l.status == 0 {
			l.status = http.StatusOK
		}
		if l.immutable && l.status == http.StatusOK {
			l.w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		}
		l.w.WriteHeader(l.status)
	}
	return l.w.Write(b)
}

func (l *lazyWriter) finish(r *http.Request) {
	switch {
	case l.wrote:
	case l.status != 0 && l.status != http.StatusOK:
		l.w.WriteHeader(l.status)
	default:
		http.NotFound(l.w, r)
	}
}
