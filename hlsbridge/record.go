package hlsbridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Recording: the session's top rendition, video and audio, is written to
// the recording directory as it is made — the init segments, each finished
// segment, and playlists of type EVENT that end (EXT-X-ENDLIST) when the
// stream does, so the recording is a VOD at once. Files are written whole
// and renamed into place, playlist lines appended after their segment is
// on disk: a crash loses at most the segment being made.

// mapTag matches a playlist's init segment; its name.
var mapTag = regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)

// record runs one recorder per media playlist of the top rendition until
// the session ends, then closes the playlists.
func (s *session) record(dir string, meta recordingMeta) error {
	if len(s.rends) == 0 {
		return nil
	}
	top := s.rends[len(s.rends)-1]
	select {
	case <-top.ready:
	case <-s.done:
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(meta)
	if err := writeFile(filepath.Join(dir, metaFile), b); err != nil {
		return err
	}
	var master strings.Builder
	master.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	rec := httptest.NewRecorder()
	top.mux.Handle(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/index.m3u8", nil))
	var files []string
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			master.WriteString(strings.Replace(line, `URI="`, `URI="audio/`, 1) + "\n")
			files = append(files, "audio2_stream.m3u8")
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			master.WriteString(line + "\nvideo/video1_stream.m3u8\n")
			files = append(files, "video1_stream.m3u8")
		}
	}
	if err := writeFile(filepath.Join(dir, "index.m3u8"), []byte(master.String())); err != nil {
		return err
	}
	errs := make(chan error, len(files))
	for _, f := range files {
		sub := "video"
		if strings.HasPrefix(f, "audio") {
			sub = "audio"
		}
		go func() { errs <- s.recordPlaylist(top, f, filepath.Join(dir, sub)) }()
	}
	var all []error
	for range files {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// recordPlaylist follows one media playlist of r and writes it to dir:
// each segment once it is whole and, when the stream ends, the parts of
// the segment that was being made, joined into a last, shorter one.
func (s *session) recordPlaylist(r *rendition, file, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pl, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = pl.Close() }()
	saved, header := -1, false
	// The segment being made: its number and the parts of it fetched.
	var making struct {
		msn   int
		parts [][]byte
		dur   float64
	}
	making.msn = -1
	for {
		url := "/" + file
		if making.msn >= 0 {
			// Block until the part after the last one seen exists.
			url += "?_HLS_msn=" + strconv.Itoa(making.msn) + "&_HLS_part=" + strconv.Itoa(len(making.parts))
		}
		rec := httptest.NewRecorder()
		r.mux.Handle(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, url, nil))
		if rec.Code == http.StatusBadRequest && !s.stopping() {
			// Fallen behind the muxer's window (a slow disk): start again
			// from what it has; the gap is lost.
			s.log.Warn("hls: the recorder fell behind; some of the recording is lost", "playlist", file)
			making.msn = -1
			continue
		}
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			break // the muxer closed: the stream ended
		}
		body := rec.Body.String()
		m := parseMedia(body)
		if !header {
			if err := s.fetchTo(r, mapURI(body), filepath.Join(dir, "init.mp4")); err != nil {
				return err
			}
			if _, err := fmt.Fprintf(pl, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n", m.target); err != nil {
				return err
			}
			header = true
		}
		for _, sg := range m.segments {
			if sg.msn <= saved || sg.gap {
				continue
			}
			name := "seg" + strconv.Itoa(sg.msn) + ".mp4"
			if err := s.fetchTo(r, sg.uri, filepath.Join(dir, name)); err != nil {
				if s.stopping() {
					break // the muxer closed under the fetch: the stream ended
				}
				return err
			}
			if err := appendSegment(pl, sg.extinf, name); err != nil {
				return err
			}
			saved = sg.msn
		}
		if making.msn != m.making {
			making.msn, making.parts, making.dur = m.making, nil, 0
		}
		for _, p := range m.parts[min(len(making.parts), len(m.parts)):] {
			b, err := s.fetch(r, p.uri)
			if err != nil {
				if s.stopping() {
					break
				}
				return err
			}
			making.parts = append(making.parts, b)
			making.dur += p.dur
		}
	}
	if !header {
		return nil
	}
	if making.msn > saved && len(making.parts) > 0 {
		name := "seg" + strconv.Itoa(making.msn) + ".mp4"
		if err := writeFile(filepath.Join(dir, name), bytes.Join(making.parts, nil)); err != nil {
			return err
		}
		if err := appendSegment(pl, fmt.Sprintf("#EXTINF:%.5f,", making.dur), name); err != nil {
			return err
		}
	}
	if _, err := pl.WriteString("#EXT-X-ENDLIST\n"); err != nil {
		return err
	}
	return pl.Sync()
}

// stopping reports whether the session is closing (its muxers about to,
// or already, closed).
func (s *session) stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// appendSegment adds a segment written whole to a recording's playlist,
// synced: the playlist never names a file that is not on disk.
func appendSegment(pl *os.File, extinf, name string) error {
	if _, err := fmt.Fprintf(pl, "%s\n%s\n", extinf, name); err != nil {
		return err
	}
	return pl.Sync()
}

// media is what the recorder reads of a low-latency media playlist.
type media struct {
	target   int // EXT-X-TARGETDURATION
	segments []mediaSegment
	// making is the number of the segment being made, parts its parts so
	// far.
	making int
	parts  []mediaPart
}

type mediaSegment struct {
	msn         int
	extinf, uri string
	gap         bool // a placeholder before the stream's first segment
}

type mediaPart struct {
	dur float64
	uri string
}

// partAttrs matches an EXT-X-PART tag's duration and URI.
var partAttrs = regexp.MustCompile(`DURATION=([0-9.]+),URI="([^"]+)"`)

func parseMedia(pl string) media {
	var m media
	seq, extinf, gap := 0, "", false
	var parts []mediaPart
	for line := range strings.SplitSeq(pl, "\n") {
		switch {
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			m.target, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"))
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(line, "#EXT-X-PART:"):
			if a := partAttrs.FindStringSubmatch(line); a != nil {
				d, _ := strconv.ParseFloat(a[1], 64)
				parts = append(parts, mediaPart{dur: d, uri: a[2]})
			}
		case line == "#EXT-X-GAP":
			gap = true
		case strings.HasPrefix(line, "#EXTINF:"):
			extinf = line
		case extinf != "" && line != "" && !strings.HasPrefix(line, "#"):
			m.segments = append(m.segments, mediaSegment{msn: seq + len(m.segments), extinf: extinf, uri: line, gap: gap})
			extinf, parts, gap = "", nil, false
		}
	}
	m.making, m.parts = seq+len(m.segments), parts
	return m
}

// mapURI returns the init segment's name in a playlist.
func mapURI(pl string) string {
	if m := mapTag.FindStringSubmatch(pl); m != nil {
		return m[1]
	}
	return ""
}

// fetchTo saves one of r's files to path, whole, through a temporary name.
func (s *session) fetchTo(r *rendition, name, path string) error {
	b, err := s.fetch(r, name)
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

// fetch returns one of r's files.
func (s *session) fetch(r *rendition, name string) ([]byte, error) {
	rec := httptest.NewRecorder()
	r.mux.Handle(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/"+name, nil))
	if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
		return nil, fmt.Errorf("recording %s: %d from the muxer", name, rec.Code)
	}
	return rec.Body.Bytes(), nil
}

// writeFile writes b to path through a temporary file, synced, then
// renamed: a crash leaves the old file or the new one, never half.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
