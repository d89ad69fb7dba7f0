package hlsbridge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/internal/load"
	"github.com/glintlive/glint/sfu"
)

// vp8Live publishes a VP8 picture of 320x240 (a real libvpx encoding, 15
// fps, a keyframe a second) and Opus audio into a registry in real time,
// packaged by a bridge that transcodes with the real ffmpeg into cfg's
// ladder, served over real HTTP until the test ends.
func vp8Live(t *testing.T, cfg Config) (url string, br *Bridge) {
	t.Helper()
	v := startVP8(t, cfg)
	return v.url, v.br
}

// vp8Stream is a VP8 publication packaged by a bridge.
type vp8Stream struct {
	url    string
	br     *Bridge
	st     *sfu.Stream
	frames [][]byte
	ctx    context.Context
	wg     *sync.WaitGroup
	stop   context.CancelFunc // the feed of the current publication
}

// publish starts a new publication of the stream and feeds it.
func (v *vp8Stream) publish(t testing.TB) {
	t.Helper()
	pub := v.st.StartPublication(sfu.HostID, &keySource{}, sfu.Now())
	video, err := pub.AddLayer("", sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	audio, err := pub.AddLayer("", sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, sfu.ExtIDs{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(v.ctx)
	v.stop = stop
	v.wg.Go(func() { feedVP8(ctx, video, audio, v.frames) })
}

func startVP8(t testing.TB, cfg Config) *vp8Stream {
	t.Helper()
	ff := tool(t, "ffmpeg")
	frames, _, err := load.EncodeVP8Clip(context.Background(), ff, 320, 240, 15, 300_000)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FFmpeg = ff
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	logTo := io.Discard
	if testing.Verbose() {
		logTo = os.Stderr
	}
	v := &vp8Stream{frames: frames, wg: &sync.WaitGroup{}, st: reg.Stream("vp8")}
	v.br = New(reg, cfg, slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	v.ctx = ctx
	v.wg.Go(func() { _ = v.br.Run(ctx) })
	v.publish(t)
	hs := httptest.NewServer(v.br)
	v.url = hs.URL
	t.Cleanup(func() {
		cancel()
		v.wg.Wait()
		hs.Close()
		reg.Close()
	})
	// The bridge takes the stream up once the encoder is probed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, ok := v.br.Status("vp8"); ok && st.URL != "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the bridge never took the stream up: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return v
}

// feedVP8 sends frames (15 fps) on video and Opus on audio in real time
// until ctx ends.
func feedVP8(ctx context.Context, video, audio *sfu.Layer, frames [][]byte) {
	const fps = 15
	pay := codecs.VP8Payloader{EnablePictureID: true}
	var vseq, aseq uint16
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: aseq, Timestamp: uint32(i * 960), SSRC: 9, Marker: true},
			Payload: []byte{0xfc, 0xff, 0xfe}}
		aseq++
		b, _ := p.Marshal()
		_ = audio.Ingest(b, sfu.Now())
		for time.Since(start) >= time.Duration(sent)*time.Second/fps {
			payloads := pay.Payload(1200, frames[sent%len(frames)])
			for pi, pl := range payloads {
				p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: vseq, Timestamp: uint32(sent * 90000 / fps),
					SSRC: 1, Marker: pi == len(payloads)-1}, Payload: pl}
				vseq++
				b, _ := p.Marshal()
				_ = video.Ingest(b, sfu.Now())
			}
			sent++
		}
	}
}

type probed struct {
	Streams []struct {
		Codec  string `json:"codec_name"`
		Type   string `json:"codec_type"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, url string) probed {
	t.Helper()
	out, err := exec.Command(tool(t, "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name,codec_type,width,height", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var p probed
	if err := json.Unmarshal(out, &p); err != nil || len(p.Streams) == 0 {
		t.Fatalf("ffprobe said %s (%v)", out, err)
	}
	return p
}

// A VP8 publisher is transcoded by the real ffmpeg into a ladder of H.264
// renditions, each at its rung's height, with AAC audio, and the audio
// alone as a rendition of its own; the API says which encoder and why.
func TestVP8IsTranscodedIntoALadder(t *testing.T) {
	url, br := vp8Live(t, Config{Ladder: []int{240, 120}})
	code, index := getBody(t, url+"/hls/vp8/index.m3u8")
	if code != 200 {
		t.Fatalf("index %d: %s", code, index)
	}
	t.Logf("multivariant playlist:\n%s", index)
	for _, want := range []string{"RESOLUTION=320x240", "RESOLUTION=160x120", "avc1.", "mp4a.40.2", `CODECS="mp4a.40.2"`} {
		if !strings.Contains(index, want) {
			t.Errorf("the multivariant playlist lacks %q", want)
		}
	}
	for _, c := range []struct {
		res         string
		w, h        int
		codec, kind string
	}{
		{"RESOLUTION=320x240", 320, 240, "h264", "video"},
		{"RESOLUTION=160x120", 160, 120, "h264", "video"},
		{`CODECS="mp4a.40.2"`, 0, 0, "aac", "audio"},
	} {
		m := regexp.MustCompile(regexp.QuoteMeta(c.res) + `[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
		if m == nil {
			t.Fatalf("no %s variant", c.res)
		}
		s := ffprobe(t, url+"/hls/vp8/"+m[1]).Streams[0]
		if s.Codec != c.codec || s.Type != c.kind || s.Width != c.w || s.Height != c.h {
			t.Errorf("%s reads as %+v", c.res, s)
		}
	}
	st, _ := br.Status("vp8")
	tc := st.Transcoder
	if tc == nil || tc.Source != "VP8" || tc.Encoder != "libx264" || tc.Why == "" || !slices.Equal(tc.Heights, []int{120, 240}) || !tc.Running {
		t.Fatalf("status %+v transcoder %+v", st, tc)
	}
}

// An ffmpeg killed mid-stream is started again, and the playlists go on
// from where they were.
func TestKilledTranscoderIsRestarted(t *testing.T) {
	url, br := vp8Live(t, Config{Ladder: []int{120}})
	if code, body := getBody(t, url+"/hls/vp8/index.m3u8"); code != 200 {
		t.Fatalf("index %d: %s", code, body)
	}
	st, _ := br.Status("vp8")
	pid := st.Transcoder.PID
	if pid <= 0 {
		t.Fatalf("no transcoder pid: %+v", st.Transcoder)
	}
	seq := func() int {
		_, pl := getBody(t, url+"/hls/vp8/r0/video1_stream.m3u8")
		m := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl)
		if m == nil {
			t.Fatalf("no media sequence:\n%s", pl)
		}
		return atoi(m[1]) + strings.Count(pl, "#EXTINF:")
	}
	before := seq()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ = br.Status("vp8")
		if tc := st.Transcoder; tc.Restarts >= 1 && tc.Running && tc.PID != pid && seq() >= before+3 {
			t.Logf("restarted as %d after %q; segments %d → %d", tc.PID, tc.LastError, before, seq())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the kill: %+v, segments %d → %d", st.Transcoder, before, seq())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A publisher's keyframes are outside input: reading their picture size
// and parameter sets never panics, whatever the bytes.
func FuzzPictureSize(f *testing.F) {
	f.Add([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00})
	f.Add([]byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0, 0x0e, 0xf6})
	f.Add([]byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x30, 0x08})
	f.Add([]byte{0, 0, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 2, 0x68, 0xce})
	f.Fuzz(func(_ *testing.T, b []byte) {
		for _, k := range []codec.Kind{codec.VP8, codec.VP9, codec.AV1} {
			pictureSize(k, codec.AccessUnit{Data: b})
		}
		pictureSize(codec.H264, codec.AccessUnit{NALUs: [][]byte{b}})
		avcC(b)
	})
}

// An H.264 publisher's Opus is made AAC when there is an ffmpeg (the
// audio-only transcoder), and kept as Opus when asked to.
func TestOpusBecomesAACUnlessKept(t *testing.T) {
	ff := tool(t, "ffmpeg")
	for _, c := range []struct {
		keep       bool
		want, not  string
		transcoder bool
	}{{false, "mp4a.40.2", "opus", true}, {true, "opus", "mp4a", false}} {
		ls := startLiveWith(t, Config{FFmpeg: ff, OpusAudio: c.keep})
		code, index := getBody(t, ls.url+"/hls/demo/index.m3u8")
		if code != 200 || !strings.Contains(index, c.want) || strings.Contains(index, c.not) {
			t.Fatalf("keep Opus %v: %d\n%s", c.keep, code, index)
		}
		st, _ := ls.br.Status("demo")
		if (st.Transcoder != nil) != c.transcoder || c.transcoder && st.Transcoder.Source != "Opus (audio only)" {
			t.Fatalf("keep Opus %v: transcoder %+v", c.keep, st.Transcoder)
		}
		if !c.keep {
			m := regexp.MustCompile(`CODECS="mp4a.40.2"\n([^\n]+)`).FindStringSubmatch(index)
			if m == nil {
				t.Fatalf("no audio-only rendition:\n%s", index)
			}
			if s := ffprobe(t, ls.url+"/hls/demo/"+m[1]).Streams[0]; s.Codec != "aac" {
				t.Fatalf("the audio reads as %+v", s)
			}
		}
	}
}

// With a ladder configured, an H.264 publisher goes through the
// transcoder too: its top layer becomes the ladder's renditions.
func TestH264WithALadderIsTranscoded(t *testing.T) {
	ls := startLiveWith(t, Config{FFmpeg: tool(t, "ffmpeg"), Ladder: []int{180, 120}, TranscodeAll: true})
	code, index := getBody(t, ls.url+"/hls/demo/index.m3u8")
	if code != 200 || !strings.Contains(index, "RESOLUTION=320x180") || !strings.Contains(index, "RESOLUTION=214x120") {
		t.Fatalf("%d\n%s", code, index)
	}
	st, _ := ls.br.Status("demo")
	if st.Transcoder == nil || st.Transcoder.Source != "H264" || !slices.Equal(st.Transcoder.Heights, []int{120, 180}) {
		t.Fatalf("transcoder %+v", st.Transcoder)
	}
	m := regexp.MustCompile(`RESOLUTION=214x120[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
	if s := ffprobe(t, ls.url+"/hls/demo/"+m[1]).Streams[0]; s.Codec != "h264" || s.Height != 120 {
		t.Fatalf("the 120p rendition reads as %+v", s)
	}
}

// A VP8 publisher that comes back (a new publication of the stream) goes
// on through the same ffmpeg into the same playlists: no restart, the
// segments keep coming.
func TestTranscodedStreamContinuesAcrossAReconnect(t *testing.T) {
	v := startVP8(t, Config{Ladder: []int{120}})
	if code, body := getBody(t, v.url+"/hls/vp8/index.m3u8"); code != 200 {
		t.Fatalf("index %d: %s", code, body)
	}
	st, _ := v.br.Status("vp8")
	pid := st.Transcoder.PID
	_, pl := getBody(t, v.url+"/hls/vp8/r0/video1_stream.m3u8")
	initName := mapURI(pl)
	v.stop()
	time.Sleep(300 * time.Millisecond)
	v.publish(t)
	for next := parseMedia(pl).making + 1; next <= parseMedia(pl).making+3; next++ {
		code, after := getBody(t, v.url+"/hls/vp8/r0/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part=0")
		if code != 200 || mapURI(after) != initName {
			t.Fatalf("segment %d after the reconnect: %d, init %s\n%s", next, code, initName, after)
		}
	}
	st, _ = v.br.Status("vp8")
	if st.Transcoder.PID != pid || st.Transcoder.Restarts != 0 {
		t.Fatalf("the transcoder restarted: %+v (was pid %d)", st.Transcoder, pid)
	}
}

// The picture size the renditions are made from is read from real VP8,
// VP9 and AV1 keyframes (libvpx, libvpx-vp9 and libaom encodings).
func TestPictureSizeOfRealKeyframes(t *testing.T) {
	ff := tool(t, "ffmpeg")
	for _, c := range []struct {
		name string
		kind codec.Kind
	}{{"vp8", codec.VP8}, {"vp9", codec.VP9}, {"av1", codec.AV1}} {
		frames, keys, err := load.EncodeIVFClip(context.Background(), ff, c.name, 176, 144, 15, 150_000)
		if err != nil {
			t.Fatal(err)
		}
		if w, h, ok := pictureSize(c.kind, codec.AccessUnit{Data: frames[0], Keyframe: keys[0]}); !ok || w != 176 || h != 144 {
			t.Errorf("%s: %dx%d %v, want 176x144", c.name, w, h, ok)
		}
	}
}
