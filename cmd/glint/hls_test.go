package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// An encoder's own stream is packaged as it comes: H.265 over SRT and
// H.264 with B-frames over RTMP are the top LL-HLS rendition as the
// encoder sent them (ffprobe reads H.265, and H.264 with its B-frames),
// with the encoder's AAC; the layers made for WebRTC viewers are the
// renditions under it.
func TestEncoderStreamsArePackagedAsTheyCome(t *testing.T) {
	ffmpeg(t)
	const key = "hls-encoder-key-12345"
	base, out := startServe(t, "--stream-key", "demo="+key, "--srt-listen", "127.0.0.1:0")
	srt := regexp.MustCompile(`SRT: +(srt://\S+)\?streamid=`).FindStringSubmatch(out.String())
	rtmp := regexp.MustCompile(`RTMP: +(rtmp://\S+/live)`).FindStringSubmatch(out.String())
	if srt == nil || rtmp == nil {
		t.Fatalf("the banner names no SRT or RTMP URL:\n%s", out.String())
	}
	for _, c := range []struct {
		name, url, format, encoder, codecs, probe string
	}{
		{"H.265 over SRT", srt[1] + "?streamid=publish:demo:" + key + "&latency=120000", "mpegts", "libx265", `CODECS="hvc1`, "hevc"},
		{"H.264 with B-frames over RTMP", rtmp[1] + "/" + key, "flv", "libx264", `CODECS="avc1.64`, "h264"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		enc := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", "30", "-c:v", c.encoder, "-preset", "veryfast", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k", "-f", c.format, c.url)
		if err := enc.Start(); err != nil {
			t.Fatal(err)
		}
		var index string
		for deadline := time.Now().Add(30 * time.Second); ; {
			code, body := get(t, base+"/hls/demo/index.m3u8")
			if code == 200 && strings.Contains(body, c.codecs) && strings.Contains(body, "RESOLUTION=640x360") {
				index = body
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no playlist with the encoder's video: %d\n%s", c.name, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, want := range []string{"RESOLUTION=320x180", `CODECS="avc1.42`, `CODECS="mp4a.40.2"`} {
			if !strings.Contains(index, want) {
				t.Errorf("%s: the playlist lacks %q:\n%s", c.name, want, index)
			}
		}
		top := regexp.MustCompile(`RESOLUTION=640x360[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
		sound := regexp.MustCompile(`TYPE=AUDIO[^\n]*URI="([^"]+)"`).FindStringSubmatch(index)
		if sound == nil {
			t.Fatalf("%s: no audio rendition:\n%s", c.name, index)
		}
		var video, audio bool
		for _, uri := range []string{top[1], sound[1]} {
			b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,has_b_frames,width", "-of", "json", base+"/hls/demo/"+uri).Output()
			if err != nil {
				t.Fatalf("%s: ffprobe %s: %v", c.name, uri, err)
			}
			var probe struct {
				Streams []struct {
					Codec   string `json:"codec_name"`
					BFrames int    `json:"has_b_frames"`
					Width   int
				} `json:"streams"`
			}
			if err := json.Unmarshal(b, &probe); err != nil {
				t.Fatal(err)
			}
			for _, s := range probe.Streams {
				video = video || s.Codec == c.probe && s.Width == 640 && (c.probe != "h264" || s.BFrames > 0)
				audio = audio || s.Codec == "aac"
			}
		}
		if !video || !audio {
			t.Fatalf("%s: the top rendition's video (%v) or the encoder's AAC (%v) is missing", c.name, video, audio)
		}
		_, media := get(t, base+"/hls/demo/"+top[1])
		prefix := regexp.MustCompile(`#EXT-X-MAP:URI="([0-9a-f]+)_`).FindStringSubmatch(media)
		if prefix == nil {
			t.Fatalf("%s: the top rendition's playlist:\n%s", c.name, media)
		}
		cancel()
		_ = enc.Wait()
		for deadline := time.Now().Add(10 * time.Second); ; {
			if _, body := get(t, base+"/api/streams/demo"); !strings.Contains(body, `"state":"live"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the stream stayed live after its encoder left", c.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if c.format != "flv" {
			continue
		}
		// The same encoder comes back within the grace: its stream goes on
		// in the same playlists (the same muxers' files), with new segments.
		ctx, cancel = context.WithCancel(context.Background())
		enc = exec.CommandContext(ctx, "ffmpeg", enc.Args[1:]...)
		if err := enc.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = enc.Wait() }()
		seen := regexp.MustCompile(`seg(\d+)\.mp4`).FindAllStringSubmatch(media, -1)
		last, _ := strconv.Atoi(seen[len(seen)-1][1])
		for deadline := time.Now().Add(20 * time.Second); ; {
			_, now := get(t, base+"/hls/demo/"+top[1])
			segs := regexp.MustCompile(prefix[1]+`_video\d+_seg(\d+)\.mp4`).FindAllStringSubmatch(now, -1)
			if len(segs) > 0 {
				if n, _ := strconv.Atoi(segs[len(segs)-1][1]); n > last+2 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: after the encoder came back, the top rendition's playlist (was up to segment %d of %s):\n%s", c.name, last, prefix[1], now)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
