package transcode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/glintlive/glint/internal/load"
)

func TestRungs(t *testing.T) {
	for _, c := range []struct {
		h      int
		ladder []int
		want   []int
	}{
		{1080, DefaultLadder, []int{1080, 720, 480, 360}},
		{720, DefaultLadder, []int{720, 480, 360}},
		{719, DefaultLadder, []int{480, 360}},
		{241, DefaultLadder, []int{240}}, // shorter than every rung: its own height, even
		{480, []int{120, 240, 240}, []int{240, 120}},
		{0, DefaultLadder, nil},
	} {
		var got []int
		for _, r := range Rungs(c.h, c.ladder) {
			got = append(got, r.Height)
			if r.Bitrate < 100_000 {
				t.Errorf("rung %d: bitrate %d", r.Height, r.Bitrate)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Rungs(%d, %v) = %v, want %v", c.h, c.ladder, got, c.want)
		}
	}
	if r := Rungs(720, []int{720}); r[0].Bitrate < 2_500_000 || r[0].Bitrate > 3_000_000 {
		t.Errorf("720p at %d bit/s, want about 2.8 Mbit/s", r[0].Bitrate)
	}
}

func TestParseLadder(t *testing.T) {
	if got, err := ParseLadder("1080p, 720,360"); err != nil || !slices.Equal(got, []int{1080, 720, 360}) {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"", "720,", "abc", "32", "4320", "1,2,3,4,5,6,7"} {
		if _, err := ParseLadder(bad); err == nil {
			t.Errorf("ParseLadder(%q) accepted", bad)
		}
	}
}

// probeFFmpeg finds the real ffmpeg and the encoder Probe picks on it.
func probeFFmpeg(t *testing.T) (string, Encoder) {
	t.Helper()
	ff := ffmpegPath(t)
	enc, err := Probe(context.Background(), ff)
	if err != nil {
		t.Fatal(err)
	}
	return ff, enc
}

// runJob runs job through the real ffmpeg on the live Matroska in and
// returns a reader of the MPEG-TS it wrote.
func runJob(t *testing.T, ff string, enc Encoder, job Job, in io.Reader) *mpegts.Reader {
	t.Helper()
	cmd := exec.Command(ff, enc.JobArgs(job)...)
	cmd.Stdin = in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", enc.JobArgs(job), err, stderr.String())
	}
	r := &mpegts.Reader{R: &out}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	return r
}

// A VP8 picture and Opus audio written as live Matroska become, through
// the real ffmpeg and the encoder Probe picks, one H.264 stream per rung
// at the rung's size and AAC audio, on the input's clock: a frame at
// 5 s of stream time comes out at 5 s.
func TestJobTranscodesALadder(t *testing.T) {
	ff, enc := probeFFmpeg(t)
	ctx := context.Background()
	frames, keys, err := load.EncodeVP8Clip(ctx, ff, 320, 240, 15, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	const start = 5000 // ms of stream time
	job := Job{Rungs: Rungs(240, []int{240, 120}), Audio: true, GOP: time.Second}

	var in bytes.Buffer
	m, err := NewMKV(&in, MKVTrack{Codec: "V_VP8", Width: 320, Height: 240}, MKVTrack{Codec: "A_OPUS", Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	for ms := int64(0); ms < 2000; ms += 20 {
		if ms%200 == 0 { // frames at 15 fps would not fall on 20 ms: use 5 fps of the clip's frames
			i := int(ms / 200 * 3)
			if err := m.Write(0, start+ms, keys[i], frames[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Write(1, start+ms, true, []byte{0xfc, 0xff, 0xfe}); err != nil {
			t.Fatal(err)
		}
	}

	r := runJob(t, ff, enc, job, &in)
	var mu sync.Mutex
	type got struct {
		w, h     int
		keys     int
		firstPTS int64
	}
	res := map[int]*got{}
	var audioPTS []int64
	for i, tr := range r.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			g := &got{firstPTS: -1}
			res[i] = g
			r.OnDataH264(tr, func(pts, _ int64, au [][]byte) error {
				mu.Lock()
				defer mu.Unlock()
				if g.firstPTS < 0 {
					g.firstPTS = pts
				}
				for _, n := range au {
					if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
						var sps h264.SPS
						if err := sps.Unmarshal(n); err == nil {
							g.w, g.h = sps.Width(), sps.Height()
						}
					}
				}
				if h264.IsRandomAccess(au) {
					g.keys++
				}
				return nil
			})
		case *tscodecs.MPEG4Audio:
			r.OnDataMPEG4Audio(tr, func(pts int64, _ [][]byte) error {
				audioPTS = append(audioPTS, pts)
				return nil
			})
		}
	}
	for {
		if err := r.Read(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Logf("read: %v", err)
			}
			break
		}
	}
	if len(res) != 2 || len(r.Tracks()) != 3 {
		t.Fatalf("%d tracks, %d of them H.264; want one per rung and AAC", len(r.Tracks()), len(res))
	}
	for i, want := range []int{240, 120} {
		g := res[i]
		if g == nil || g.h != want || g.w != want*4/3 {
			t.Fatalf("rung %d: %+v, want %dx%d", i, g, want*4/3, want)
		}
		// The input's clock comes through: its first frame at 5 s.
		if d := g.firstPTS - start*90; d < -90 || d > 90 {
			t.Errorf("rung %d starts at pts %d, want %d (±1 ms)", i, g.firstPTS, start*90)
		}
		if g.keys < 2 {
			t.Errorf("rung %d: %d keyframes in 2 s, want one a second", i, g.keys)
		}
	}
	t.Logf("first pts: video %d %d, audio %d (input %d)", res[0].firstPTS, res[1].firstPTS, audioPTS[0], start*90)
	if len(audioPTS) < 50 {
		t.Fatalf("%d AAC access units for 2 s of audio", len(audioPTS))
	}
	// In sync with the video: AAC's priming (1,024 samples, 21 ms) ahead
	// of the first sample, no more.
	if d := audioPTS[0] - start*90; d < -30*90 || d > 90 {
		t.Errorf("audio starts at pts %d, want %d (-30 ms to +1 ms)", audioPTS[0], start*90)
	}
}

// The Matroska header and blocks are what ffprobe reads back.
func TestMKVReadsBack(t *testing.T) {
	ff := ffmpegPath(t)
	var b bytes.Buffer
	m, err := NewMKV(&b, MKVTrack{Codec: "A_OPUS", Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := m.Write(0, 40000+int64(i)*20, true, []byte{0xfc, 0xff, 0xfe}); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-f", "matroska", "-i", "pipe:0", "-f", "null", "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg reading the stream: %v\n%s", err, out)
	}
	if _, err := NewMKV(io.Discard, MKVTrack{Codec: "V_VP8"}); err == nil {
		t.Error("a video track without a size was accepted")
	}
	if err := m.Write(3, 0, true, nil); err == nil {
		t.Error("a frame of a missing track was accepted")
	}
}

// VP9 and AV1 (real libvpx-vp9 and libaom encodings) go through the same
// Matroska into H.264 as VP8 does.
func TestJobTakesVP9AndAV1(t *testing.T) {
	ff, enc := probeFFmpeg(t)
	ctx := context.Background()
	for _, c := range []struct{ codec, mkv string }{{"vp9", "V_VP9"}, {"av1", "V_AV1"}} {
		frames, keys, err := load.EncodeIVFClip(ctx, ff, c.codec, 160, 120, 15, 150_000)
		if err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		m, err := NewMKV(&in, MKVTrack{Codec: c.mkv, Width: 160, Height: 120})
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames[:30] {
			if err := m.Write(0, 1000+int64(i)*1000/15, keys[i], f); err != nil {
				t.Fatal(err)
			}
		}
		r := runJob(t, ff, enc, Job{Rungs: Rungs(120, []int{120}), GOP: time.Second}, &in)
		n := 0
		for _, tr := range r.Tracks() {
			if _, ok := tr.Codec.(*tscodecs.H264); ok {
				r.OnDataH264(tr, func(_, _ int64, _ [][]byte) error { n++; return nil })
			}
		}
		for r.Read() == nil {
		}
		if n < 25 {
			t.Fatalf("%s: %d H.264 frames out of 30 in", c.codec, n)
		}
	}
}

// A Live Room: two and four video tracks are laid out on one canvas,
// their audio mixed, on the input's clock.
func TestJobCompositesARoom(t *testing.T) {
	ff, enc := probeFFmpeg(t)
	ctx := context.Background()
	frames, keys, err := load.EncodeVP8Clip(ctx, ff, 160, 90, 15, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	const start = 3000
	for _, n := range []int{1, 2, 4} {
		var tracks []MKVTrack
		for range n {
			tracks = append(tracks, MKVTrack{Codec: "V_VP8", Width: 160, Height: 90})
		}
		for range n {
			tracks = append(tracks, MKVTrack{Codec: "A_OPUS", Channels: 2})
		}
		var in bytes.Buffer
		m, err := NewMKV(&in, tracks...)
		if err != nil {
			t.Fatal(err)
		}
		// Two seconds: 15 fps per tile, each a few ms after the last, and
		// 20 ms Opus packets per voice.
		for ms := int64(0); ms < 2000; ms += 20 {
			if ms%66 < 20 { // about 15 fps on the 20 ms grid
				i := int(ms * 15 / 1000)
				for v := range n {
					if err := m.Write(v, start+ms+int64(v), keys[i], frames[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			for a := range n {
				if err := m.Write(n+a, start+ms, true, []byte{0xfc, 0xff, 0xfe}); err != nil {
					t.Fatal(err)
				}
			}
		}
		job := Job{Rungs: Rungs(180, []int{180}), Audio: true, GOP: time.Second, Tiles: n, Voices: n}
		r := runJob(t, ff, enc, job, &in)
		var w, h, video, audio int
		first := int64(-1)
		for _, tr := range r.Tracks() {
			switch tr.Codec.(type) {
			case *tscodecs.H264:
				r.OnDataH264(tr, func(pts, _ int64, au [][]byte) error {
					if first < 0 {
						first = pts
					}
					video++
					for _, nal := range au {
						var sps h264.SPS
						if h264.NALUType(nal[0]&0x1f) == h264.NALUTypeSPS && sps.Unmarshal(nal) == nil {
							w, h = sps.Width(), sps.Height()
						}
					}
					return nil
				})
			case *tscodecs.MPEG4Audio:
				r.OnDataMPEG4Audio(tr, func(_ int64, aus [][]byte) error { audio += len(aus); return nil })
			}
		}
		for r.Read() == nil {
		}
		if w != 320 || h != 180 { // 320 = 180·16/9 rounded down to a multiple of 4
			t.Fatalf("%d tiles: canvas %dx%d, want 320x180", n, w, h)
		}
		if video < 50 || audio < 80 {
			t.Fatalf("%d tiles: %d video frames and %d AAC frames for 2 s, want ~%d and ~94", n, video, audio, 2*CompositeFPS)
		}
		if d := first - start*90; d < -90 || d > 100*90 {
			t.Errorf("%d tiles: the room starts at pts %d, want about %d", n, first, start*90)
		}
		t.Logf("%d tiles: %d frames, %d AAC frames, first pts %+d ms from the input's", n, video, audio, (first-start*90)/90)
	}
}

// An RTMP or SRT source's frames — H.264 with B-frames and AAC, as
// encoders send them — become what WebRTC viewers decode: constrained
// baseline H.264 without B-frames, and Opus, on the input's clock.
func TestJobMakesWebRTCOfH264WithBFramesAndAAC(t *testing.T) {
	ff, enc := probeFFmpeg(t)
	ctx := context.Background()
	src, err := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "2",
		"-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "15", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", "pipe:1").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The source, read as an ingest would: access units with PTS and DTS.
	r := &mpegts.Reader{R: bytes.NewReader(src)}
	if err := r.Initialize(); err != nil {
		t.Fatal(err)
	}
	type frame struct {
		video, key bool
		pts, dts   int64
		data       []byte
	}
	var frames []frame
	var asc []byte
	var sps, pps []byte
	bframes := 0
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			r.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				if pts != dts {
					bframes++
				}
				var b []byte
				for _, n := range au {
					switch h264.NALUType(n[0] & 0x1f) {
					case h264.NALUTypeSPS:
						sps = n
					case h264.NALUTypePPS:
						pps = n
					}
					b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
					b = append(b, n...)
				}
				frames = append(frames, frame{video: true, key: h264.IsRandomAccess(au), pts: pts, dts: dts, data: b})
				return nil
			})
		case *tscodecs.MPEG4Audio:
			if asc, err = c.Marshal(); err != nil {
				t.Fatal(err)
			}
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for i, au := range aus {
					p := pts + int64(i)*1024*90000/44100
					frames = append(frames, frame{pts: p, dts: p, data: au})
				}
				return nil
			})
		}
	}
	for r.Read() == nil {
	}
	if bframes == 0 || sps == nil || asc == nil {
		t.Fatalf("the source: %d frames with B-frame reordering, sps %v, asc %v", bframes, sps != nil, asc != nil)
	}
	avcC := append([]byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1, byte(len(sps) >> 8), byte(len(sps))}, sps...)
	avcC = append(append(avcC, 1, byte(len(pps)>>8), byte(len(pps))), pps...)
	var in bytes.Buffer
	m, err := NewMKV(&in, MKVTrack{Codec: "V_MPEG4/ISO/AVC", Width: 320, Height: 180, CodecPrivate: avcC},
		MKVTrack{Codec: "A_AAC", Channels: 1, SampleRate: 44100, CodecPrivate: asc})
	if err != nil {
		t.Fatal(err)
	}
	const start = 7000 // ms of stream time
	base := frames[0].dts
	for _, f := range frames { // decode order; blocks carry presentation times
		track := 1
		if f.video {
			track = 0
		}
		if err := m.Write(track, start+(f.pts-base)/90, f.key, f.data); err != nil {
			t.Fatal(err)
		}
	}
	job := Job{Rungs: Rungs(180, []int{180}), Audio: true, GOP: time.Second, WebRTC: true}
	rr := runJob(t, ff, enc, job, &in)
	var video, reordered, opus int
	profile := -1
	first := int64(-1)
	for _, tr := range rr.Tracks() {
		switch tr.Codec.(type) {
		case *tscodecs.H264:
			rr.OnDataH264(tr, func(pts, dts int64, au [][]byte) error {
				video++
				if pts != dts {
					reordered++
				}
				if first < 0 {
					first = pts
				}
				for _, n := range au {
					if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
						profile = int(n[1])
					}
				}
				return nil
			})
		case *tscodecs.Opus:
			rr.OnDataOpus(tr, func(_ int64, pkts [][]byte) error { opus += len(pkts); return nil })
		}
	}
	for rr.Read() == nil {
	}
	switch {
	case video < 25 || reordered > 0:
		t.Fatalf("%d H.264 frames out, %d of them reordered (B-frames)", video, reordered)
	case profile != 66:
		t.Fatalf("profile_idc %d, want 66 (baseline)", profile)
	case opus < 80:
		t.Fatalf("%d Opus packets for 2 s", opus)
	}
	if d := first - start*90; d < -90 || d > 200*90 {
		t.Errorf("the video starts at pts %d, want about %d", first, start*90)
	}
	t.Logf("%d B-frame reorderings in; out %d frames, none reordered, baseline; %d Opus packets; first pts %+d ms", bframes, video, opus, (first-start*90)/90)
}
