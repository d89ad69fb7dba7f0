package hlsbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// Config sets the packaging.
type Config struct {
	// PartDuration is the least duration of an LL-HLS part (default
	// 200 ms); SegmentDuration the least of a segment (default 1 s).
	// Segments end at keyframes, so the publisher's keyframe interval
	// should not exceed SegmentDuration.
	PartDuration, SegmentDuration time.Duration
	// Segments is how many segments a media playlist lists (default 7).
	Segments int
	// Queue is how many packets wait between the core and the muxers
	// (default 2048); beyond it packets are dropped and counted.
	Queue int
	// RecordDir, when set, is where each stream's top rendition is
	// recorded as it is made, one folder per stream and start time: a VOD
	// the moment the stream ends (served at /vod/).
	RecordDir string
	// Retention deletes recordings that started longer ago than this
	// (checked at start and hourly); 0 keeps them.
	Retention time.Duration
	// FFmpeg is the ffmpeg binary the transcoder runs; empty, streams
	// whose video is not H.264 are not packaged. Its H.264 encoder is
	// probed when Run starts (transcode.Probe).
	FFmpeg string
	// Ladder is the transcoder's rendition heights (default
	// transcode.DefaultLadder, as far as the source's height allows).
	// TranscodeAll sends H.264 publishers through the transcoder too, for
	// a ladder of its own rather than their simulcast layers.
	Ladder       []int
	TranscodeAll bool
	// OpusAudio keeps H.264 publishers' Opus as it is instead of making
	// AAC of it (which every HLS player plays; Opus in fMP4 plays in
	// browsers with Media Source Extensions and recent Safari).
	OpusAudio bool
	// Captions, when set, is a speech-to-text command (program and
	// arguments) run over each ended recording's audio, which adds its
	// WebVTT to the VOD (see Captions).
	Captions []string
}

// Validate checks the durations: parts of 100 ms to 1 s, segments of at
// least a part and at most 10 s.
func (c Config) Validate() error {
	switch {
	case c.PartDuration < 100*time.Millisecond || c.PartDuration > time.Second:
		return fmt.Errorf("hls-part %v: use 100ms to 1s", c.PartDuration)
	case c.SegmentDuration < c.PartDuration || c.SegmentDuration > 10*time.Second:
		return fmt.Errorf("hls-segment %v: use hls-part to 10s", c.SegmentDuration)
	case c.Retention < 0:
		return fmt.Errorf("vod-retention %v: use 0 (keep) or more", c.Retention)
	}
	return nil
}

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{PartDuration: 200 * time.Millisecond, SegmentDuration: time.Second, Segments: 7, Queue: 2048, Retention: 30 * 24 * time.Hour}
}

// Bridge packages every live stream of a registry as LL-HLS and serves it
// (ServeHTTP).
type Bridge struct {
	reg *sfu.Registry
	cfg Config
	log *slog.Logger

	w *sfu.Watcher

	mu       sync.Mutex
	sessions map[string]*session
	refused  map[string]string // live streams not packaged, and why

	// ctx is Run's, for the stitching of ended recordings, which
	// stitching waits for.
	ctx       context.Context
	stitching sync.WaitGroup
	stitchMu  sync.Mutex // one stitch at a time

	// probed is closed once the encoder is known: enc, or why not in
	// encErr.
	probed chan struct{}
	enc    transcode.Encoder
	encErr error
	// ffmpegFound: cfg.FFmpeg is a program on this machine.
	ffmpegFound bool
}

// New returns a bridge for reg's streams; Run starts it. Recordings a
// crash left open in cfg.RecordDir are closed first (RecoverVODs).
func New(reg *sfu.Registry, cfg Config, log *slog.Logger) *Bridge {
	def := DefaultConfig()
	if cfg.PartDuration <= 0 {
		cfg.PartDuration = def.PartDuration
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = def.SegmentDuration
	}
	if cfg.Segments < 7 {
		cfg.Segments = def.Segments
	}
	if cfg.Queue <= 0 {
		cfg.Queue = def.Queue
	}
	if cfg.RecordDir != "" {
		ids, err := RecoverVODs(cfg.RecordDir)
		for _, id := range ids {
			log.Warn("vod: closed a recording the last run left open (a crash?); it keeps every whole segment", "id", id)
		}
		if err != nil {
			log.Error("vod: recovering recordings", "err", err)
		}
	}
	// Watching starts here, not in Run: no event between the two is lost.
	if len(cfg.Ladder) == 0 {
		cfg.Ladder = transcode.DefaultLadder
	}
	return &Bridge{
		reg: reg, cfg: cfg, log: log, w: reg.Watch(), sessions: map[string]*session{}, refused: map[string]string{},
		probed: make(chan struct{}), ctx: context.Background(), ffmpegFound: found(cfg.FFmpeg),
	}
}

// found reports whether program names an executable (on PATH, or a path).
func found(program string) bool {
	if program == "" {
		return false
	}
	_, err := exec.LookPath(program)
	return err == nil
}

// Errors of Mark.
var (
	ErrNotLive     = errors.New("the stream is not live")
	ErrNotRecorded = errors.New("the stream is not being recorded")
)

// Mark adds a chapter titled title at the present moment of a live
// stream's recording, for the VOD's MP4.
func (b *Bridge) Mark(stream, title string) (Chapter, error) {
	b.mu.Lock()
	s := b.sessions[stream]
	b.mu.Unlock()
	if s == nil {
		return Chapter{}, ErrNotLive
	}
	return s.chapter(title)
}

// stitch makes an ended recording's MP4 in the background, one at a
// time, unless Run is stopping.
func (b *Bridge) stitch(id string) {
	if b.cfg.FFmpeg == "" || b.cfg.RecordDir == "" || b.ctx.Err() != nil {
		return
	}
	b.stitching.Go(func() {
		b.stitchMu.Lock()
		defer b.stitchMu.Unlock()
		start := time.Now()
		if len(b.cfg.Captions) > 0 {
			if err := Captions(b.ctx, b.cfg.FFmpeg, b.cfg.Captions, b.cfg.RecordDir, id); err != nil {
				b.log.Warn("vod: no captions", "id", id, "err", err)
			} else {
				b.log.Info("vod: captions ready", "id", id, "took", time.Since(start).Round(time.Millisecond))
			}
		}
		if err := Stitch(b.ctx, b.cfg.FFmpeg, b.cfg.RecordDir, id, "", nil); err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("vod: the MP4 could not be made; the HLS VOD stands", "id", id, "err", err)
			}
			return
		}
		b.log.Info("vod: MP4 ready", "id", id, "took", time.Since(start).Round(time.Millisecond))
	})
}

// errNoTranscoder is why streams are not transcoded when no ffmpeg is
// configured.
var errNoTranscoder = errors.New("no transcoder configured")

// probe picks the transcoder's encoder.
func (b *Bridge) probe(ctx context.Context) {
	defer close(b.probed)
	if b.cfg.FFmpeg == "" {
		b.encErr = errNoTranscoder
		return
	}
	b.enc, b.encErr = transcode.Probe(ctx, b.cfg.FFmpeg)
	if b.encErr != nil {
		b.log.Warn("hls: no transcoder: only H.264 publishers are packaged", "err", b.encErr, "tried", b.enc.Tried)
		return
	}
	b.log.Info("hls: transcoder encoder chosen", "encoder", b.enc.Name, "gpu", b.enc.GPU, "why", b.enc.Why)
}

// Encoder returns the transcoder's encoder, or why there is none; ok is
// false while it is still being probed.
func (b *Bridge) Encoder() (enc transcode.Encoder, ok bool, err error) {
	select {
	case <-b.probed:
		return b.enc, true, b.encErr
	default:
		return transcode.Encoder{}, false, nil
	}
}

// Run follows the registry's stream events until ctx ends: a stream that
// goes live, gains a layer or gets a new publication is (re)packaged; one
// that ends is closed.
func (b *Bridge) Run(ctx context.Context) error {
	defer b.w.Close()
	defer b.closeAll()
	var probing sync.WaitGroup
	defer probing.Wait()
	probing.Go(func() { b.probe(ctx) })
	// Stops before closeAll: no recompose of a closing session.
	rctx, stopRooms := context.WithCancel(ctx)
	var rooms sync.WaitGroup
	defer rooms.Wait()
	defer stopRooms()
	rooms.Go(func() { b.watchRooms(rctx) })
	b.ctx = ctx
	defer b.stitching.Wait()
	if b.cfg.RecordDir != "" {
		// Recordings that ended without their MP4 (a crash, a shutdown).
		vods, _ := ListVODs(b.cfg.RecordDir)
		for _, v := range vods {
			if !v.Live && v.MP4 == "" {
				b.stitch(v.ID)
			}
		}
	}

	if b.cfg.RecordDir != "" && b.cfg.Retention > 0 {
		var pruning sync.WaitGroup
		defer pruning.Wait()
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		pruning.Go(func() { b.prune(pctx) })
	}
	for {
		ev, err := b.w.Next(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, sfu.ErrWatcherClosed) {
				return nil
			}
			return err
		}
		if ev.Participant != sfu.HostID || ev.Kind == sfu.EventMuted {
			if ev.Kind != sfu.EventSpeaker {
				b.room(ev.Stream)
			}
			continue
		}
		switch ev.Kind {
		case sfu.EventLive, sfu.EventLayers, sfu.EventPublication:
			b.start(ev.Stream)
		case sfu.EventEnded:
			b.stop(ev.Stream)
		case sfu.EventReconnecting:
		}
	}
}

// prune deletes recordings past the retention, now and hourly, until ctx
// ends.
func (b *Bridge) prune(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		gone, err := PruneVODs(b.cfg.RecordDir, time.Now().Add(-b.cfg.Retention))
		for _, id := range gone {
			b.log.Info("vod: deleted, past the retention", "id", id)
		}
		if err != nil {
			b.log.Warn("vod: pruning", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// start packages stream name from its current layers, replacing a session
// whose layers changed.
func (b *Bridge) start(name string) {
	st := b.reg.Lookup(name)
	if st == nil {
		return
	}
	audio, video := st.Tracks()
	b.mu.Lock()
	old := b.sessions[name]
	b.mu.Unlock()
	// A room (a guest on stage, or a session that composited one) is
	// composited; the host alone is packaged as usual.
	room := len(st.Broadcasters()) > 1 || old != nil && old.isRoom()
	tx := b.transcoding(video, room)
	if room && tx.err != nil {
		room = false // no compositor: the host alone, as usual
		tx = b.transcoding(video, false)
	}
	if old != nil && old.isRoom() == room && old.adopt(audio, video) {
		return
	}
	s, err := newSession(st, audio, video, b.cfg, tx, b.log.With("stream", name))
	if err != nil && room && old != nil && !old.isRoom() && old.adopt(audio, video) {
		return // no room session yet (the host's layers are not there): the host alone goes on
	}
	if err != nil {
		if old != nil {
			b.stop(name)
		}
		b.mu.Lock()
		told := b.refused[name] == err.Error()
		b.refused[name] = err.Error()
		b.mu.Unlock()
		if !told { // the same reason comes with every layer event
			b.log.Warn("hls: cannot package the stream", "stream", name, "err", err)
		}
		return
	}
	b.mu.Lock()
	b.sessions[name] = s
	delete(b.refused, name)
	b.mu.Unlock()
	if old != nil {
		old.close()
		b.ended(old)
	}
}

// ended stitches a closed session's recording.
func (b *Bridge) ended(s *session) {
	if s.recID != "" {
		b.stitch(s.recID)
	}
}

// transcoding returns what a session for video needs to transcode it,
// waiting for the probe only when it does.
func (b *Bridge) transcoding(video *sfu.Track, room bool) transcoding {
	// Opus becomes AAC wherever there is an ffmpeg, whatever its H.264
	// encoders: no waiting for their probe.
	tx := transcoding{ffmpeg: b.cfg.FFmpeg, ladder: b.cfg.Ladder, all: b.cfg.TranscodeAll, aac: b.ffmpegFound && !b.cfg.OpusAudio, room: room}
	if c, ok := video.Codec(); ok && codec.KindOf(c.MimeType) == codec.H264 && !tx.all && !room {
		return tx
	}
	<-b.probed
	tx.enc, tx.err = b.enc, b.encErr
	return tx
}

func (b *Bridge) stop(name string) {
	b.mu.Lock()
	s := b.sessions[name]
	delete(b.sessions, name)
	delete(b.refused, name)
	b.mu.Unlock()
	if s != nil {
		s.close()
		b.ended(s)
	}
}

func (b *Bridge) closeAll() {
	b.mu.Lock()
	ss := b.sessions
	b.sessions = map[string]*session{}
	b.mu.Unlock()
	for _, s := range ss {
		s.close()
	}
}

// Status is how a live stream is packaged, for the API and metrics.
type Status struct {
	// URL is the multivariant playlist's path; empty when the stream is
	// not packaged, and Error says why.
	URL        string `json:"url,omitempty"`
	Renditions int    `json:"renditions"`
	// Dropped counts packets dropped because the bridge's queue was full.
	Dropped uint64 `json:"dropped"`
	// Start is the stream's start on the wall clock: a player's
	// EXT-X-PROGRAM-DATE-TIME minus Start is the stream time it shows.
	Start *time.Time `json:"start,omitempty"`
	Error string     `json:"error,omitempty"`
	// Transcoder is set when the renditions come from the transcoder.
	Transcoder *TranscoderStatus `json:"transcoder,omitempty"`
	// Recording is the recording's ID while the stream is recorded;
	// RecordingError why it stopped (a full disk, say), live viewing
	// going on.
	Recording      string `json:"recording,omitempty"`
	RecordingError string `json:"recording_error,omitempty"`
}

// Status returns a stream's packaging status, and false when the bridge
// knows nothing of it (not live).
func (b *Bridge) Status(stream string) (Status, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.sessions[stream]; s != nil {
		start := s.originWall.UTC()
		st := Status{URL: "/hls/" + stream + "/index.m3u8", Renditions: len(s.renditions()), Dropped: s.dropped.Load(), Start: &start}
		switch {
		case s.tc != nil:
			st.Transcoder = s.tc.status()
		case s.atc != nil:
			st.Transcoder = s.atc.status()
		}
		st.Recording = s.recID
		if e := s.recErr.Load(); e != nil {
			st.RecordingError = *e
		}
		return st, true
	}
	if why, ok := b.refused[stream]; ok {
		return Status{Error: why}, true
	}
	return Status{}, false
}

// Statuses returns every stream the bridge knows of.
func (b *Bridge) Statuses() map[string]Status {
	b.mu.Lock()
	names := make([]string, 0, len(b.sessions)+len(b.refused))
	for n := range b.sessions {
		names = append(names, n)
	}
	for n := range b.refused {
		names = append(names, n)
	}
	b.mu.Unlock()
	out := make(map[string]Status, len(names))
	for _, n := range names {
		if st, ok := b.Status(n); ok {
			out[n] = st
		}
	}
	return out
}

// ServeHTTP serves /hls/{stream}/index.m3u8 (the multivariant playlist)
// and /hls/{stream}/{rendition}/{file} (media playlists, init files,
// segments and parts), with CORS open to any origin: the playlists carry
// no credentials. Unknown streams and files are 404.
func (b *Bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	rest, ok := strings.CutPrefix(r.URL.Path, "/hls/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	parts := strings.Split(rest, "/")
	lookup := func() *session {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.sessions[parts[0]]
	}
	s := lookup()
	switch {
	case s == nil:
		http.Error(w, "no HLS for this stream: it is not live", http.StatusNotFound)
	case len(parts) == 2 && parts[1] == "index.m3u8":
		ctx, cancel := context.WithTimeout(r.Context(), indexWait)
		defer cancel()
		for s != nil && !s.serveIndex(ctx, w) {
			s = lookup() // replaced while waiting: the new one answers
		}
		if s == nil {
			http.Error(w, "no HLS for this stream: it is not live", http.StatusNotFound)
			return
		}
	case len(parts) == 3:
		s.serveFile(w, r, parts[1], parts[2])
	default:
		http.NotFound(w, r)
	}
}
