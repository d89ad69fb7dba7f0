package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/load"
)

// ffmpeg finds Debian's ffmpeg; tests that need it fail, never skip, when
// it is missing.
func ffmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatal("ffmpeg is not installed: run `make test` (it installs it), or `sudo apt-get install ffmpeg`")
	}
}

func TestLoadAgainstGlint(t *testing.T) {
	for _, media := range []string{"synthetic", "clip"} {
		t.Run(media, func(t *testing.T) {
			if media == "clip" {
				ffmpeg(t)
			}
			base, _ := startServe(t, "--stream-key", "demo=load-test-key-123")
			var out, errs bytes.Buffer
			err := loadCmd(context.Background(), []string{
				"--whip", base + "/whip/demo", "--token", "load-test-key-123", "--viewers", "3", "--ramp", "300ms", "--settle", "500ms",
				"--window", "2s", "--media", media, "--simulcast", "--server-pid", fmt.Sprint(os.Getpid()), "--metrics", base + "/metrics", "--json",
			}, &out, &errs)
			if err != nil {
				t.Fatalf("%v\n%s", err, errs.String())
			}
			var r load.Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			switch {
			case r.Joined != 3 || r.Failed != 0:
				t.Errorf("joined %d, failed %d (%s)", r.Joined, r.Failed, r.FirstError)
			case r.Config.Media != media:
				t.Errorf("media %q, want %q", r.Config.Media, media)
			case r.PacketsPerSecond < 100:
				t.Errorf("%.0f packets/s delivered", r.PacketsPerSecond)
			case r.Loss > 0.01:
				t.Errorf("loss %.3f on loopback", r.Loss)
			case r.Latency.N < 30 || r.LastViewer.N < 10 || r.Latency.P50 <= 0:
				t.Errorf("latency %+v, last viewer %+v: frames not matched", r.Latency, r.LastViewer)
			case r.FirstKeyframe.N != 3:
				t.Errorf("time to first keyframe for %d viewers", r.FirstKeyframe.N)
			case r.Server == nil || r.Server.MicrosPerPacket <= 0 || r.Server.RSSBytes <= 0:
				t.Errorf("server figures %+v", r.Server)
			case r.ServerFanout == nil || r.ServerFanout.N == 0:
				t.Errorf("no fan-out figures from /metrics")
			}
			if !strings.Contains(errs.String(), "measuring") {
				t.Errorf("no progress shown: %q", errs.String())
			}
		})
	}
}

// With --guests, a room's fan-out is measured: each viewer receives the
// host and every guest.
func TestLoadWithGuests(t *testing.T) {
	base, _ := startServe(t, "--stream-key", "demo=load-test-key-123", "--hls-off")
	run := func(guests int) load.Report {
		t.Helper()
		var out, errs bytes.Buffer
		err := loadCmd(context.Background(), []string{
			"--whip", base + "/whip/demo", "--token", "load-test-key-123", "--viewers", "2", "--ramp", "200ms", "--settle", "500ms",
			"--window", "2s", "--media", "synthetic", "--bitrate", "300000", "--guests", fmt.Sprint(guests), "--json",
		}, &out, &errs)
		if err != nil {
			t.Fatalf("%v\n%s", err, errs.String())
		}
		var r load.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		return r
	}
	alone := run(0)
	room := run(3)
	if room.Joined != 2 || room.Config.Guests != 3 || room.Latency.N < 10 {
		t.Fatalf("room run: %+v", room)
	}
	// Four broadcasters at the host's rate: about four times the packets.
	if ratio := room.PacketsPerSecond / alone.PacketsPerSecond; ratio < 3 || ratio > 5 {
		t.Fatalf("%.0f packets/s with 3 guests, %.0f alone: ratio %.1f, want about 4", room.PacketsPerSecond, alone.PacketsPerSecond, ratio)
	}
}

// glint load --rtmp: an ffmpeg RTMP encoder publishes, without B-frames
// (passed through) and with them (transcoded); the viewers' latency is
// measured from each frame's arrival at the node, by its capture time.
func TestLoadRTMP(t *testing.T) {
	ffmpeg(t)
	base, out := startServe(t, "--stream-key", "demo=load-rtmp-key-1234", "--hls-off")
	m := regexp.MustCompile(`RTMP: +(rtmp://\S+/live)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner names no RTMP URL:\n%s", out.String())
	}
	for _, bf := range []string{"0", "2"} {
		var out, errs bytes.Buffer
		err := loadCmd(context.Background(), []string{
			"--rtmp", m[1] + "/load-rtmp-key-1234", "--rtmp-bframes", bf, "--rtmp-gop", "1s", "--whep", base + "/whep/demo",
			"--viewers", "2", "--ramp", "200ms", "--settle", "500ms", "--window", "2s", "--fps", "15", "--bitrate", "300000", "--json",
		}, &out, &errs)
		if err != nil {
			t.Fatalf("B-frames %s: %v\n%s", bf, err, errs.String())
		}
		var r load.Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, out.String())
		}
		if r.Joined != 2 || r.Latency.N < 20 || r.Latency.P50 <= 0 || r.LastViewer.N < 10 {
			t.Fatalf("B-frames %s: joined %d, latency %+v, last viewer %+v", bf, r.Joined, r.Latency, r.LastViewer)
		}
		t.Logf("B-frames %s: latency from the node's receipt p50 %.1f ms, p99 %.1f ms", bf, r.Latency.P50, r.Latency.P99)
		time.Sleep(2 * time.Second) // the node sees the encoder leave
	}
}
