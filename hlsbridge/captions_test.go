package hlsbridge

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glintlive/glint/sfu"
)

// The captions hook runs the configured command over an ended recording's
// audio (a WAV file) and adds its WebVTT to the VOD as a subtitles
// rendition; a command that fails or prints something else adds nothing
// and says why. No speech-to-text model runs here: the command is a
// stand-in script that checks it was given a WAV and prints a cue.
func TestCaptionsHook(t *testing.T) {
	ff := tool(t, "ffmpeg")
	script := filepath.Join(t.TempDir(), "stt")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$(head -c 4 \"$2\")\" = RIFF ] || exit 3\n"+
		"printf 'WEBVTT\\n\\n00:00:00.500 --> 00:00:01.500\\nhello from the hook\\n'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ls := startLiveWith(t, Config{RecordDir: dir, FFmpeg: ff, Captions: []string{script, "--model", "{audio}"}})
	if code, _ := getBody(t, ls.url+"/hls/demo/index.m3u8"); code != 200 {
		t.Fatalf("index %d", code)
	}
	time.Sleep(time.Until(ls.started.Add(3 * time.Second)))
	ls.stopFeed()
	ls.pub.End(sfu.Now())
	var v VOD
	deadline := time.Now().Add(20 * time.Second)
	for v.MP4 == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no captions and MP4: %+v", v)
		}
		time.Sleep(50 * time.Millisecond)
		if vods, _ := ListVODs(dir); len(vods) > 0 {
			v = vods[0]
		}
	}
	if v.Captions != "/vod/"+v.ID+"/subs/subs.vtt" {
		t.Fatalf("captions at %q", v.Captions)
	}
	rec := filepath.Join(dir, filepath.FromSlash(v.ID))
	vtt, _ := os.ReadFile(filepath.Join(rec, "subs", "subs.vtt"))
	index, _ := os.ReadFile(filepath.Join(rec, "index.m3u8"))
	t.Logf("subs.vtt:\n%s\nindex.m3u8:\n%s", vtt, index)
	if !strings.HasPrefix(string(vtt), "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:") || !strings.Contains(string(vtt), "hello from the hook") {
		t.Fatal("the WebVTT track is not as made")
	}
	if strings.Count(string(index), "TYPE=SUBTITLES") != 1 || !strings.Contains(string(index), `SUBTITLES="subs"`) {
		t.Fatal("the VOD's playlist does not offer the captions")
	}
	for _, c := range []struct{ file, want string }{{"index.m3u8", "h264"}, {"subs/subs.m3u8", "webvtt"}} {
		out, err := exec.Command(tool(t, "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", filepath.Join(rec, c.file)).Output()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Fatalf("ffprobe of %s: %v\n%s", c.file, err, out)
		}
	}

	// A command that fails, or prints something else, changes nothing.
	if err := Captions(context.Background(), ff, []string{"/bin/false"}, dir, v.ID); err == nil {
		t.Error("a failing command was taken")
	}
	if err := Captions(context.Background(), ff, []string{"/bin/echo", "not captions"}, dir, v.ID); !errors.Is(err, ErrNotWebVTT) {
		t.Errorf("a command printing text: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(rec, "subs", "subs.vtt")); !bytes.Equal(after, vtt) {
		t.Error("a failed run replaced the captions")
	}
	if err := Captions(context.Background(), ff, nil, dir, v.ID); err != nil {
		t.Errorf("no command: %v", err)
	}
}
