package ingest

import (
	"bytes"
	"context"
	"net/url"
	"os/exec"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/glintlive/glint/internal/load"
	"github.com/glintlive/glint/sfu"
)

// enhancedClip is a clip an Enhanced RTMP encoder sends: its track and a
// function writing frame i at pts.
type enhancedClip struct {
	track  *gortmplib.Track
	frames int
	write  func(w *gortmplib.Writer, i int, pts time.Duration) error
}

// hevcClip encodes 2 s of a 320x180 test picture with libx265 (B-frames
// and all) and returns it as an Enhanced RTMP H.265 track.
func hevcClip(t *testing.T, ff string) enhancedClip {
	t.Helper()
	out, err := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15",
		"-t", "2", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none:keyint=15:bframes=2", "-pix_fmt", "yuv420p",
		"-f", "mpegts", "pipe:1").Output()
	if err != nil {
		t.Fatalf("libx265: %v", err)
	}
	r := &mpegts.Reader{R: bytes.NewReader(out)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	type au struct {
		pts, dts int64
		nalus    [][]byte
	}
	var aus []au
	for _, tr := range r.Tracks() {
		if _, ok := tr.Codec.(*tscodecs.H265); ok {
			r.OnDataH265(tr, func(pts, dts int64, nalus [][]byte) error {
				aus = append(aus, au{pts, dts, nalus})
				return nil
			})
		}
	}
	for r.Read() == nil {
	}
	if len(aus) < 20 {
		t.Fatalf("libx265 gave %d access units", len(aus))
	}
	c := &rtmpcodecs.H265{}
	for _, n := range aus[0].nalus {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			c.VPS = n
		case h265.NALUType_SPS_NUT:
			c.SPS = n
		case h265.NALUType_PPS_NUT:
			c.PPS = n
		}
	}
	tr := &gortmplib.Track{Codec: c}
	period := (aus[len(aus)-1].dts - aus[0].dts) * int64(len(aus)) / int64(len(aus)-1) // one loop of the clip, 90 kHz
	return enhancedClip{track: tr, frames: len(aus), write: func(w *gortmplib.Writer, i int, _ time.Duration) error {
		a := aus[i%len(aus)]
		loop := int64(i/len(aus)) * period
		at := func(ts int64) time.Duration { return time.Duration(ts-aus[0].dts+loop) * time.Second / 90000 }
		return w.WriteH265(tr, at(a.pts), at(a.dts), a.nalus)
	}}
}

// ivfClip is a 320x180 VP9 or AV1 clip as an Enhanced RTMP track.
func ivfClip(t *testing.T, ff, codec string) enhancedClip {
	t.Helper()
	frames, _, err := load.EncodeIVFClip(context.Background(), ff, codec, 320, 180, 15, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	if codec == "vp9" {
		tr := &gortmplib.Track{Codec: &rtmpcodecs.VP9{}}
		return enhancedClip{track: tr, frames: len(frames), write: func(w *gortmplib.Writer, i int, pts time.Duration) error {
			return w.WriteVP9(tr, pts, frames[i%len(frames)])
		}}
	}
	tr := &gortmplib.Track{Codec: &rtmpcodecs.AV1{}}
	return enhancedClip{track: tr, frames: len(frames), write: func(w *gortmplib.Writer, i int, pts time.Duration) error {
		var bs av1.Bitstream
		if err := bs.Unmarshal(frames[i%len(frames)]); err != nil {
			return err
		}
		var tu [][]byte // the writer puts the temporal delimiter
		for _, obu := range bs {
			var h av1.OBUHeader
			if h.Unmarshal(obu) == nil && h.Type != av1.OBUTypeTemporalDelimiter {
				tu = append(tu, obu)
			}
		}
		return w.WriteAV1(tr, pts, tu)
	}}
}

// publishEnhanced sends clip over RTMP in real time (15 frames a second,
// looping) until ctx ends or the server hangs up.
func publishEnhanced(ctx context.Context, rawURL string, clip enhancedClip) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		return err
	}
	defer c.Close()
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{clip.track}}
	if err := w.Initialize(); err != nil {
		return err
	}
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		pts := time.Duration(i) * time.Second / 15
		time.Sleep(time.Until(start.Add(pts)))
		if err := clip.write(w, i, pts); err != nil {
			return err
		}
	}
	return nil
}

// Enhanced RTMP: H.265 (with B-frames), AV1 and VP9 encoders publish;
// each stream goes live with the video the transcoder made of it, and the
// status names the source's codec and size.
func TestEnhancedRTMPPublishers(t *testing.T) {
	s, reg, ctx, stop := serveIngest(t, Config{RTMPListen: "127.0.0.1:0"}, streamKeys{"demo": "rtmp-enhanced-key-1"})
	ff := ffmpegPath(t)
	for _, c := range []struct {
		name, want string
		clip       func() enhancedClip
	}{
		{"H.265", "H.265 320x180", func() enhancedClip { return hevcClip(t, ff) }},
		{"AV1", "AV1 320x180", func() enhancedClip { return ivfClip(t, ff, "av1") }},
		{"VP9", "VP9 320x180", func() enhancedClip { return ivfClip(t, ff, "vp9") }},
	} {
		clip := c.clip()
		began := time.Now()
		pctx, cancel := context.WithCancel(ctx)
		published := make(chan error, 1)
		go func() {
			published <- publishEnhanced(pctx, "rtmp://"+s.Addr().String()+"/live/rtmp-enhanced-key-1", clip)
		}()
		for deadline := time.Now().Add(20 * time.Second); ; {
			st := reg.Lookup("demo")
			if stt, ok := s.Status("demo"); ok && stt.Video == c.want && st != nil && st.State() == sfu.StateLive {
				in := st.Info(sfu.Now())
				if in.Video != nil && in.Video.Layers[0].Keyframes > 1 && in.Video.Layers[0].Packets > 30 && in.Video.Layers[0].Height == 180 {
					t.Logf("%s after %v: %+v", c.name, time.Since(began), in.Video.Layers[0])
					break
				}
			}
			if time.Now().After(deadline) {
				stt, _ := s.Status("demo")
				var in sfu.Info
				if st := reg.Lookup("demo"); st != nil {
					in = st.Info(sfu.Now())
				}
				t.Fatalf("%s over RTMP: status %+v, stream %+v", c.name, stt, in)
			}
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-published; err != nil {
			t.Fatalf("%s: the publisher: %v", c.name, err)
		}
		waitSession(t, s, false, c.name+": the RTMP session outlived its encoder")
	}
	stop()
}

// FuzzVideoParams: what an encoder sends as its video's parameters (an
// H.264 or H.265 track's parameter sets, an AV1 or VP9 keyframe) never
// panics the readers, and a size they accept is a real one.
func FuzzVideoParams(f *testing.F) {
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10}, []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0})
	f.Add([]byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90}, []byte{0x44, 0x01, 0xc1, 0x72})
	f.Add([]byte{0x0a, 0x0b, 0x00, 0x00, 0x00, 0x24, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x30, 0x08}, []byte{0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0, 0x0b})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		_ = h264Passthrough(a, b)
		var sp spec
		_ = sp.setH264(a, b)
		_ = sp.setH265(b, a, b)
		if av1Video(&sp, [][]byte{a, b}) && (sp.video.Width <= 0 || sp.video.Height <= 0) {
			t.Fatalf("AV1 size %dx%d", sp.video.Width, sp.video.Height)
		}
		if vp9Video(&sp, a) && (sp.video.Width <= 0 || sp.video.Height <= 0) {
			t.Fatalf("VP9 size %dx%d", sp.video.Width, sp.video.Height)
		}
	})
}
