package hlsbridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// A recording's folder holds, beside its playlists, meta.json (the
// stream and the wall-clock time of its stream time 0) and chapters.jsonl
// (one Chapter a line, appended as they happen: reconnects and the host's
// markers). When the stream ends the recording is stitched into vod.mp4
// with those chapters.

const (
	metaFile     = "meta.json"
	chaptersFile = "chapters.jsonl"
	mp4File      = "vod.mp4"
)

// recordingMeta is a recording's meta.json.
type recordingMeta struct {
	Stream string    `json:"stream"`
	Origin time.Time `json:"origin"` // the wall-clock time of stream time 0
}

// Chapter is a named moment of a recording, in stream time.
type Chapter struct {
	StreamMS int64  `json:"stream_ms"`
	Title    string `json:"title"`
}

// maxChapters bounds the chapters of one recording.
const maxChapters = 1000

// ErrTooManyChapters is a marker past maxChapters.
var ErrTooManyChapters = errors.New("this recording has as many chapters as it may")

// chapterLog appends a recording's chapters.
type chapterLog struct {
	mu   sync.Mutex
	path string
	n    int
}

func (c *chapterLog) add(ch Chapter) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n >= maxChapters {
		return ErrTooManyChapters
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(c.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(ch)
	_, err = f.Write(append(b, '\n'))
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err == nil {
		c.n++
	}
	return err
}

// readChapters reads a recording's chapters in time order; lines that do
// not read (a torn last one) are left out.
func readChapters(rec string) []Chapter {
	b, err := os.ReadFile(filepath.Join(rec, chaptersFile))
	if err != nil {
		return nil
	}
	var out []Chapter
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var c Chapter
		if json.Unmarshal(sc.Bytes(), &c) == nil {
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b Chapter) int { return int(a.StreamMS - b.StreamMS) })
	return out
}

// fmp4Offset is what gohlslib adds to every fMP4 decode time (its
// fmp4StartDTS), so none is negative; TestRecordingIsAVODWhenTheStreamEnds
// sees a marker land where it was set, which holds only while this is
// right.
const fmp4Offset = 10_000 // ms

// firstSegmentMS reads the stream time at which a recording's video
// starts: the first segment's decode time over the init segment's time
// scale, less the muxer's offset.
func firstSegmentMS(rec string) (int64, error) {
	dir := filepath.Join(rec, "video")
	pl, err := os.ReadFile(filepath.Join(dir, "video1_stream.m3u8"))
	if err != nil {
		return 0, err
	}
	segs := parseMedia(string(pl)).segments
	if len(segs) == 0 {
		return 0, errors.New("the recording has no segment")
	}
	ib, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		return 0, err
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(ib)); err != nil || len(init.Tracks) == 0 {
		return 0, fmt.Errorf("init.mp4: %w", err)
	}
	sb, err := os.ReadFile(filepath.Join(dir, segs[0].uri))
	if err != nil {
		return 0, err
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(sb); err != nil || len(parts) == 0 || len(parts[0].Tracks) == 0 {
		return 0, fmt.Errorf("%s: %w", segs[0].uri, err)
	}
	return int64(parts[0].Tracks[0].BaseTime)*1000/int64(init.Tracks[0].TimeScale) - fmp4Offset, nil
}

// ffmetadata writes chapters (a recording's, as ReadVOD gives them: the
// first at its start) for an MP4 of duration ms that starts at stream
// time start.
func ffmetadata(title string, chapters []Chapter, start, ms int64) string {
	var b strings.Builder
	b.WriteString(";FFMETADATA1\ntitle=" + escapeMeta(title) + "\n")
	for i, c := range chapters {
		end := start + ms
		if i+1 < len(chapters) {
			end = chapters[i+1].StreamMS
		}
		fmt.Fprintf(&b, "[CHAPTER]\nTIMEBASE=1/1000\nSTART=%d\nEND=%d\ntitle=%s\n", c.StreamMS-start, end-start, escapeMeta(c.Title))
	}
	return b.String()
}

// escapeMeta escapes what FFMETADATA gives a meaning to.
func escapeMeta(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "=", `\=`, ";", `\;`, "#", `\#`, "\n", `\`+"\n")
	return r.Replace(s)
}

// VODDetail is one recording with what a replay needs: where its video
// starts in stream time (a player's position plus StreamStartMS is the
// stream time on screen, for the chat) and its chapters.
type VODDetail struct {
	VOD
	StreamStartMS int64     `json:"stream_start_ms"`
	Chapters      []Chapter `json:"chapters"`
}

// ReadVOD returns recording id of dir in detail.
func ReadVOD(dir, id string) (VODDetail, error) {
	stream, start, ok := strings.Cut(id, "/")
	if !ok || !validSegment(stream) || !validSegment(start) {
		return VODDetail{}, fmt.Errorf("%w: %q", ErrNoVOD, id)
	}
	v, ok := readVOD(dir, stream, start)
	if !ok {
		return VODDetail{}, fmt.Errorf("%w: %q", ErrNoVOD, id)
	}
	rec := filepath.Join(dir, stream, start)
	first, err := firstSegmentMS(rec)
	if err != nil {
		return VODDetail{}, err
	}
	d := VODDetail{VOD: v, StreamStartMS: first, Chapters: []Chapter{{StreamMS: first, Title: "Start"}}}
	for _, c := range readChapters(rec) {
		switch {
		case c.StreamMS <= first:
			// Marked before the video began (a room recording starts with
			// its guests): part of the start.
			d.Chapters[0].Title += " · " + c.Title
		case c.StreamMS < first+int64(v.Duration*1000):
			d.Chapters = append(d.Chapters, c)
		}
	}
	return d, nil
}

// ended reads recording id of dir for work done once it has ended (the
// MP4, captions): its detail and its folder.
func ended(dir, id string) (VODDetail, string, error) {
	d, err := ReadVOD(dir, id)
	if err != nil {
		return d, "", err
	}
	if d.Live {
		return d, "", fmt.Errorf("recording %s is still being made", id)
	}
	return d, filepath.Join(dir, filepath.FromSlash(id)), nil
}

// Stitch writes recording id of dir as one MP4 (out; empty is the
// recording's own vod.mp4, served beside it), with its chapters, through
// ffmpeg without re-encoding. progress, when set, hears the share done
// (0 to 1) as ffmpeg reports it.
func Stitch(ctx context.Context, ffmpeg, dir, id, out string, progress func(float64)) error {
	d, rec, err := ended(dir, id)
	if err != nil {
		return err
	}
	if out == "" {
		out = filepath.Join(rec, mp4File)
	}
	ms := int64(d.Duration * 1000)
	// Names of their own: the node and `glint vod export` may stitch the
	// same recording at once.
	mf, err := os.CreateTemp(rec, "chapters-*.ffmeta.tmp")
	if err != nil {
		return err
	}
	meta := mf.Name()
	defer func() { _ = os.Remove(meta) }()
	_, err = mf.WriteString(ffmetadata(d.Stream+" "+d.Start.Format("2006-01-02 15:04:05Z"), d.Chapters, d.StreamStartMS, ms))
	if err2 := mf.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return err
	}
	of, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+"-*.tmp")
	if err != nil {
		return err
	}
	tmp := of.Name()
	_ = of.Close()
	defer func() { _ = os.Remove(tmp) }() // a no-op once renamed
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-y",
		"-i", filepath.Join(rec, "index.m3u8"), "-i", meta, "-map", "0:v", "-map", "0:a?", "-map_metadata", "1", "-map_chapters", "1",
		"-c", "copy", "-movflags", "+faststart", "-f", "mp4", tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	readProgress(stdout, ms, progress)
	if err := cmd.Wait(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("ffmpeg: %w: %s", err, lastLineOf(stderr.String()))
	}
	if progress != nil {
		progress(1)
	}
	return os.Rename(tmp, out)
}

// readProgress follows ffmpeg's -progress reports until they end.
func readProgress(r io.Reader, totalMS int64, progress func(float64)) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "out_time_us=")
		if !ok || progress == nil || totalMS <= 0 {
			continue
		}
		if us, err := strconv.ParseInt(v, 10, 64); err == nil {
			progress(min(float64(us)/1000/float64(totalMS), 1))
		}
	}
}

func lastLineOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
