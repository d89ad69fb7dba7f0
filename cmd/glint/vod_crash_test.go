package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A node killed with SIGKILL mid-stream loses no finished segment of its
// recording: after a restart the VOD is listed as ended (cut off), holds
// every segment that was on disk at the kill, and plays (ffprobe).
func TestVODSurvivesKill9(t *testing.T) {
	fullSuiteOnly(t, "a glint process killed and restarted")
	ffmpeg(t)
	const key = "crash-test-stream-key"
	dir := t.TempDir()
	n := startNode(t, "--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--rtmp-listen", "127.0.0.1:0", "--data-dir", dir,
		"--log-level", "warn", "--stream-key", "demo="+key)
	publishH264Clip(t, n.base, key)
	var before []string
	deadline := time.Now().Add(30 * time.Second)
	for len(before) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no recording with three segments after 30 s: %s", n.log)
		}
		time.Sleep(200 * time.Millisecond)
		m, _ := filepath.Glob(filepath.Join(dir, "vod", "demo", "*", "video", "video1_stream.m3u8"))
		if len(m) == 0 {
			continue
		}
		b, _ := os.ReadFile(m[0])
		before = segments(string(b))
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
	n.start()

	code, body := get(t, n.base+"/api/vods")
	var list struct {
		VODs []struct {
			ID       string  `json:"id"`
			Live     bool    `json:"live"`
			CutOff   bool    `json:"cut_off"`
			Duration float64 `json:"duration_seconds"`
			HLS      string  `json:"hls"`
		} `json:"vods"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.VODs) != 1 {
		t.Fatalf("%d %s (%v)", code, body, err)
	}
	v := list.VODs[0]
	if v.Live || !v.CutOff || v.Duration < float64(len(before))-0.5 {
		t.Fatalf("after the crash: %+v, %d segments before it", v, len(before))
	}
	rec := filepath.Join(dir, "vod", filepath.FromSlash(v.ID))
	b, _ := os.ReadFile(filepath.Join(rec, "video", "video1_stream.m3u8"))
	after := segments(string(b))
	if !strings.HasSuffix(string(b), "#EXT-X-ENDLIST\n") || len(after) < len(before) || after[len(before)-1] != before[len(before)-1] {
		t.Fatalf("segments before the kill %v, after %v:\n%s", before, after, b)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", filepath.Join(rec, "index.m3u8")).Output()
	d, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || d < float64(len(before))-0.5 {
		t.Fatalf("ffprobe of the recovered VOD: %q %v", out, err)
	}
	t.Logf("%d segments on disk at the kill; the VOD holds %d, %.2f s", len(before), len(after), d)
}

// segments lists a playlist's segment files.
func segments(pl string) []string {
	var out []string
	for line := range strings.SplitSeq(pl, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}
