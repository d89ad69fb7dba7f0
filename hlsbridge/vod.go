package hlsbridge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// VOD is one recording in a recording directory.
type VOD struct {
	// ID is "{stream}/{start}", the recording's folder under the
	// directory and its path under /vod/.
	ID       string    `json:"id"`
	Stream   string    `json:"stream"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_seconds"`
	// Live: the stream is still being recorded (its playlist has not
	// ended); a recording cut off by a crash stays so.
	Live bool `json:"live"`
	// CutOff: the node stopped without ending the recording (a crash),
	// and its next start closed it with every segment that was whole.
	CutOff bool   `json:"cut_off,omitempty"`
	HLS    string `json:"hls"`
	// MP4 is the whole recording as one file with chapters, once it is
	// stitched (after the stream ends).
	MP4 string `json:"mp4,omitempty"`
	// Captions is the WebVTT the captions command made, when it did.
	Captions string `json:"captions,omitempty"`
}

// ErrNoVOD is returned for a recording that does not exist.
var ErrNoVOD = errors.New("no such recording")

// ListVODs returns the recordings in dir, newest first.
func ListVODs(dir string) ([]VOD, error) {
	var out []VOD
	streams, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []VOD{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, st := range streams {
		if !st.IsDir() {
			continue
		}
		starts, err := os.ReadDir(filepath.Join(dir, st.Name()))
		if err != nil {
			return nil, err
		}
		for _, s := range starts {
			if v, ok := readVOD(dir, st.Name(), s.Name()); ok {
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b VOD) int { return b.Start.Compare(a.Start) })
	if out == nil {
		out = []VOD{}
	}
	return out, nil
}

// readVOD reads one recording's folder: its start from the name, its
// duration and whether it ended from the video playlist.
func readVOD(dir, stream, start string) (VOD, bool) {
	t, err := time.Parse("20060102T150405.000Z", start)
	if err != nil {
		return VOD{}, false
	}
	pl, err := os.ReadFile(filepath.Join(dir, stream, start, "video", "video1_stream.m3u8"))
	if err != nil {
		return VOD{}, false
	}
	v := VOD{ID: stream + "/" + start, Stream: stream, Start: t, Live: !strings.Contains(string(pl), "#EXT-X-ENDLIST"),
		HLS: "/vod/" + stream + "/" + start + "/index.m3u8"}
	_, err = os.Stat(filepath.Join(dir, stream, start, cutOffMark))
	v.CutOff = err == nil
	if _, err := os.Stat(filepath.Join(dir, stream, start, mp4File)); err == nil {
		v.MP4 = "/vod/" + stream + "/" + start + "/" + mp4File
	}
	if _, err := os.Stat(filepath.Join(dir, stream, start, captionsDir, "subs.vtt")); err == nil {
		v.Captions = "/vod/" + stream + "/" + start + "/" + captionsDir + "/subs.vtt"
	}
	for line := range strings.SplitSeq(string(pl), "\n") {
		if d, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			f, _ := strconv.ParseFloat(strings.TrimSuffix(d, ","), 64)
			v.Duration += f
		}
	}
	return v, true
}

// DeleteVOD removes recording id ("{stream}/{start}") from dir.
func DeleteVOD(dir, id string) error {
	stream, start, ok := strings.Cut(id, "/")
	if !ok || !validSegment(stream) || !validSegment(start) {
		return fmt.Errorf("%w: %q", ErrNoVOD, id)
	}
	if _, ok := readVOD(dir, stream, start); !ok {
		return fmt.Errorf("%w: %q", ErrNoVOD, id)
	}
	return os.RemoveAll(filepath.Join(dir, stream, start))
}

// validSegment accepts one path element: no separators, no dot-only names.
func validSegment(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && filepath.Base(s) == s
}

// quiet is how long a recording's playlist must be untouched before a
// recording without an end counts as cut off, not live.
const quiet = time.Hour

// PruneVODs deletes the recordings in dir that started before cutoff and
// are no longer being made (ended, or untouched for an hour: cut off by a
// crash). It returns the IDs deleted.
func PruneVODs(dir string, cutoff time.Time) ([]string, error) {
	vods, err := ListVODs(dir)
	if err != nil {
		return nil, err
	}
	var gone []string
	var errs []error
	for _, v := range vods {
		if !v.Start.Before(cutoff) {
			continue
		}
		if v.Live {
			fi, err := os.Stat(filepath.Join(dir, v.Stream, v.Start.Format("20060102T150405.000Z"), "video", "video1_stream.m3u8"))
			if err != nil || time.Since(fi.ModTime()) < quiet {
				continue
			}
		}
		if err := DeleteVOD(dir, v.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, v.ID)
	}
	return gone, errors.Join(errs...)
}

// cutOffMark is the file RecoverVODs leaves in a recording it closed.
const cutOffMark = "cut-off"

// RecoverVODs closes the recordings in dir that a crash left open: each
// playlist keeps the segments whose files are on disk and gets its end,
// and half-written files are removed. It must run before anything
// records into dir (a node's start). It returns the IDs recovered.
func RecoverVODs(dir string) ([]string, error) {
	vods, err := ListVODs(dir)
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, v := range vods {
		if !v.Live {
			continue
		}
		if err := recoverVOD(filepath.Join(dir, v.Stream, v.Start.Format("20060102T150405.000Z"))); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.ID, err))
			continue
		}
		done = append(done, v.ID)
	}
	return done, errors.Join(errs...)
}

func recoverVOD(rec string) error {
	for _, sub := range []string{"video", "audio"} {
		d := filepath.Join(rec, sub)
		tmps, _ := filepath.Glob(filepath.Join(d, "*.tmp"))
		for _, f := range tmps {
			_ = os.Remove(f)
		}
		pls, _ := filepath.Glob(filepath.Join(d, "*.m3u8"))
		for _, p := range pls {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), "#EXT-X-ENDLIST") {
				continue
			}
			if err := writeFile(p, []byte(closePlaylist(string(b), d))); err != nil {
				return err
			}
		}
	}
	return writeFile(filepath.Join(rec, cutOffMark), nil)
}

// closePlaylist returns a recording's playlist with only the segments
// whose files are in dir (a torn last line is dropped) and its end.
func closePlaylist(pl, dir string) string {
	var b strings.Builder
	complete := strings.HasSuffix(pl, "\n")
	lines := strings.Split(strings.TrimSuffix(pl, "\n"), "\n")
	if !complete {
		lines = lines[:len(lines)-1]
	}
	extinf := ""
	for _, line := range lines {
		switch {
		case strings.HasPrefix(line, "#EXTINF:"):
			extinf = line
		case extinf != "" && !strings.HasPrefix(line, "#"):
			if validSegment(line) {
				if _, err := os.Stat(filepath.Join(dir, line)); err == nil {
					b.WriteString(extinf + "\n" + line + "\n")
				}
			}
			extinf = ""
		default:
			b.WriteString(line + "\n")
		}
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.String()
}
