package hlsbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Captions: a configured speech-to-text command turns an ended
// recording's audio into a WebVTT track of its HLS VOD. The command gets
// the audio as a 16 kHz mono WAV file — its path replaces {audio} in the
// arguments, or is added last — and prints WebVTT on stdout (whisper.cpp's
// whisper-cli with -ovtt, for one, writes exactly that).

const (
	captionsDir = "subs"
	// maxCaptions bounds what a command may print.
	maxCaptions = 10 << 20
)

// ErrNotWebVTT is a captions command's output that is not WebVTT.
var ErrNotWebVTT = errors.New("the captions command did not print WebVTT")

// Captions runs command over recording id of dir and adds its WebVTT to
// the recording's multivariant playlist as a subtitles rendition. It does
// nothing for an empty command.
func Captions(ctx context.Context, ffmpeg string, command []string, dir, id string) error {
	if len(command) == 0 {
		return nil
	}
	d, rec, err := ended(dir, id)
	if err != nil {
		return err
	}
	wav := filepath.Join(rec, "captions-audio.wav.tmp")
	defer func() { _ = os.Remove(wav) }()
	var stderr bytes.Buffer
	extract := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-i", filepath.Join(rec, "index.m3u8"), "-vn", "-ac", "1", "-ar", "16000", "-f", "wav", wav)
	extract.Stderr = &stderr
	if err := extract.Run(); err != nil {
		return fmt.Errorf("the recording's audio: %w: %s", err, lastLineOf(stderr.String()))
	}

	// The command may take a while (a model on a CPU), but not for ever.
	limit := time.Duration(d.Duration*float64(time.Second))*4 + time.Minute
	cctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	args := make([]string, 0, len(command))
	placed := false
	for _, a := range command[1:] {
		if strings.Contains(a, "{audio}") {
			a, placed = strings.ReplaceAll(a, "{audio}", wav), true
		}
		args = append(args, a)
	}
	if !placed {
		args = append(args, wav)
	}
	cmd := exec.CommandContext(cctx, command[0], args...)
	// A wrapper's children may hold its output open past its end: stop
	// waiting for them.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &limitWriter{w: &out, n: maxCaptions}, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("the captions command: %w: %s", err, lastLineOf(stderr.String()))
	}
	vtt := out.Bytes()
	if !bytes.HasPrefix(bytes.TrimPrefix(vtt, []byte("\xef\xbb\xbf")), []byte("WEBVTT")) {
		return ErrNotWebVTT
	}
	// Cue times count from the recording's start; the segments' decode
	// times are the stream clock plus the muxer's offset (90 kHz).
	start := (d.StreamStartMS + fmp4Offset) * 90
	if err := os.MkdirAll(filepath.Join(rec, captionsDir), 0o700); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(rec, captionsDir, "subs.vtt"), timestampMap(vtt, start)); err != nil {
		return err
	}
	pl := fmt.Sprintf("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:%.3f,\nsubs.vtt\n#EXT-X-ENDLIST\n",
		int(math.Ceil(d.Duration)), d.Duration)
	if err := writeFile(filepath.Join(rec, captionsDir, "subs.m3u8"), []byte(pl)); err != nil {
		return err
	}
	index := filepath.Join(rec, "index.m3u8")
	b, err := os.ReadFile(index)
	if err != nil {
		return err
	}
	return writeFile(index, []byte(withSubtitles(string(b))))
}

// timestampMap puts the X-TIMESTAMP-MAP header (RFC 8216 §3.5) after the
// WEBVTT line: cue time 0 is media time start.
func timestampMap(vtt []byte, start int64) []byte {
	s := strings.ReplaceAll(string(vtt), "\r\n", "\n")
	first, rest, _ := strings.Cut(s, "\n")
	var b strings.Builder
	b.WriteString(first + "\n")
	fmt.Fprintf(&b, "X-TIMESTAMP-MAP=MPEGTS:%d,LOCAL:00:00:00.000\n", start)
	for line := range strings.SplitSeq(rest, "\n") {
		if !strings.HasPrefix(line, "X-TIMESTAMP-MAP=") {
			b.WriteString(line + "\n")
		}
	}
	return []byte(strings.TrimSuffix(b.String(), "\n"))
}

// withSubtitles adds the subtitles rendition to a recording's
// multivariant playlist, once.
func withSubtitles(index string) string {
	if strings.Contains(index, `TYPE=SUBTITLES`) {
		return index
	}
	var b strings.Builder
	added := false
	for line := range strings.SplitSeq(strings.TrimSuffix(index, "\n"), "\n") {
		if strings.HasPrefix(line, "#EXT-X-STREAM-INF:") {
			if !added {
				added = true
				b.WriteString(`#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Captions",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,URI="` +
					captionsDir + `/subs.m3u8"` + "\n")
			}
			line += `,SUBTITLES="subs"`
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// limitWriter keeps the first n bytes written and fails past them.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("more than %d bytes of captions", maxCaptions)
	}
	l.n -= len(p)
	return l.w.Write(p)
}
