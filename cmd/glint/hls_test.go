package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/load"
)

// A WHIP publisher sending H.264 simulcast is served as LL-HLS by the node
// with no transcoding: a rendition per layer in one multivariant playlist,
// each readable by ffprobe at its layer's size.
func TestServeLLHLSFromSimulcast(t *testing.T) {
	ffmpeg(t)
	const key = "hls-test-key-1234567"
	node := launch(t, "--stream-key", "demo="+key)
	publishH264Clip(t, node.URL, key)
	var index string
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, node.URL+"/hls/demo/index.m3u8")
		if code == 200 && strings.Count(body, "RESOLUTION=") == 3 {
			index = body
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three-rendition playlist after 20 s: %d\n%s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"RESOLUTION=320x180", "RESOLUTION=640x360", "RESOLUTION=1280x720", "mp4a.40.2", `TYPE=AUDIO`, `CODECS="mp4a.40.2"` + "\nr0/audio2_stream.m3u8"} {
		if !strings.Contains(index, want) {
			t.Errorf("the playlist lacks %q:\n%s", want, index)
		}
	}
	low := regexp.MustCompile(`RESOLUTION=320x180[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
	if low == nil {
		t.Fatalf("no 320x180 rendition:\n%s", index)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", node.URL+"/hls/demo/"+low[1]).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var probe struct {
		Streams []struct {
			Codec         string `json:"codec_name"`
			Width, Height int
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) == 0 ||
		probe.Streams[0].Codec != "h264" || probe.Streams[0].Width != 320 || probe.Streams[0].Height != 180 {
		t.Fatalf("ffprobe read %s (%v)", out, err)
	}
	code, api := get(t, node.URL+"/api/streams/demo")
	if code != 200 || !strings.Contains(api, `"hls":{"url":"/hls/demo/index.m3u8","renditions":3`) {
		t.Fatalf("the stream API does not report HLS: %d %s", code, api)
	}
	code, metrics := get(t, node.URL+"/metrics")
	if code != 200 || !strings.Contains(metrics, `glint_hls_renditions{error="",stream="demo"} 3`) {
		t.Fatalf("metrics lack the HLS renditions: %d", code)
	}
	// The recording is served as files while it is made; folders are not listed.
	var vod string
	deadline = time.Now().Add(10 * time.Second)
	for vod == "" {
		if m, _ := filepath.Glob(filepath.Join(node.DataDir, "vod", "demo", "*", "index.m3u8")); len(m) > 0 {
			vod = strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(m[0], filepath.Join(node.DataDir, "vod"))), "/")
		}
		if time.Now().After(deadline) {
			t.Fatal("no recording after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get(t, node.URL+"/vod/"+vod); code != 200 || !strings.Contains(body, "video/video1_stream.m3u8") {
		t.Fatalf("the recording's playlist: %d\n%s", code, body)
	}
	if code, body := get(t, node.URL+"/api/vods"); code != 200 || !strings.Contains(body, `"stream":"demo"`) {
		t.Fatalf("GET /api/vods: %d %s", code, body)
	}
	var list bytes.Buffer
	if err := run(context.Background(), []string{"vod", "list", "--data-dir", node.DataDir}, &list, io.Discard); err != nil || !strings.Contains(list.String(), "demo/") {
		t.Fatalf("glint vod list: %v\n%s", err, list.String())
	}
	if code, _ := get(t, node.URL+"/vod/demo/"); code != 404 {
		t.Fatalf("a VOD folder is listed: %d", code)
	}
	if code, _ := get(t, node.URL+"/hls/nostream/index.m3u8"); code != 404 {
		t.Fatalf("an unknown stream: %d", code)
	}
}

// publishH264Clip publishes the demo stream from a pion WHIP client with
// three H.264 simulcast layers of a real x264 clip (15 fps, a keyframe a
// second) and Opus, until the test ends.
func publishH264Clip(t testing.TB, base, key string) *client.Publisher {
	t.Helper()
	return publishH264ClipTo(t, base, "demo", key)
}

// publishH264ClipTo is publishH264Clip for any stream.
func publishH264ClipTo(t testing.TB, base, stream, key string) *client.Publisher {
	t.Helper()
	clip, err := load.SimulcastClip(context.Background(), "ffmpeg", [3]int{150_000, 400_000, 900_000}, 15)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Publish(context.Background(), client.PublisherConfig{Endpoint: base + "/whip/" + stream, Token: key,
		Codec: "H264", Simulcast: true, Audio: true, FPS: 15, Video: clip, Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Stop() })
	return pub
}
