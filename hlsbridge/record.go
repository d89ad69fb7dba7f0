package hlsbridge

import (
	"bufio"
	"context"
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

// segName matches a segment's name in a muxer's playlist; its number.
var segName = regexp.MustCompile(`_seg(\d+)\.mp4$`)

// mapTag matches a playlist's init segment; its name.
var mapTag = regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`)

// record runs one recorder per media playlist of the top rendition until
// the session ends, then closes the playlists.
func (s *session) record(dir string) error {
	top := s.rends[len(s.rends)-1]
	select {
	case <-top.ready:
	case <-s.done:
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
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

// recordPlaylist follows one media playlist of r and writes it to dir.
func (s *session) recordPlaylist(r *rendition, file, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pl, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = pl.Close() }()
	saved, next, header := -1, -1, false
	for {
		url := "/" + file
		if next >= 0 {
			// Block until the segment after the one being made starts:
			// then the one being made is whole.
			url += "?_HLS_msn=" + strconv.Itoa(next+2) + "&_HLS_part=0"
		}
		rec := httptest.NewRecorder()
		r.mux.Handle(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, url, nil))
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			break // the muxer closed: the stream ended
		}
		var dur string
		for line := range strings.SplitSeq(rec.Body.String(), "\n") {
			switch {
			case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:") && !header:
				if err := s.fetchTo(r, mapURI(rec.Body.String()), filepath.Join(dir, "init.mp4")); err != nil {
					return err
				}
				if _, err := fmt.Fprintf(pl, "#EXTM3U\n#EXT-X-VERSION:9\n%s\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n", line); err != nil {
					return err
				}
				header = true
			case strings.HasPrefix(line, "#EXTINF:"):
				dur = line
			case dur != "" && !strings.HasPrefix(line, "#"):
				m := segName.FindStringSubmatch(line)
				n := -1
				if m != nil {
					n, _ = strconv.Atoi(m[1])
				}
				if n > saved {
					name := "seg" + m[1] + ".mp4"
					if err := s.fetchTo(r, line, filepath.Join(dir, name)); err != nil {
						return err
					}
					if _, err := fmt.Fprintf(pl, "%s\n%s\n", dur, name); err != nil {
						return err
					}
					_ = pl.Sync()
					saved = n
				}
				next = max(next, n)
				dur = ""
			}
		}
	}
	if header {
		if _, err := pl.WriteString("#EXT-X-ENDLIST\n"); err != nil {
			return err
		}
	}
	return pl.Sync()
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
	rec := httptest.NewRecorder()
	r.mux.Handle(rec, httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/"+name, nil))
	if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
		return fmt.Errorf("recording %s: %d from the muxer", name, rec.Code)
	}
	return writeFile(path, rec.Body.Bytes())
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
