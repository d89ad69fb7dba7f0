package transcode

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/load"
)

// BenchmarkLadder measures the transcoder's speed as a multiple of real
// time on this machine's CPU: 4 s of a 1280x720 VP8 picture at 30 fps
// with Opus, written as live Matroska as fast as ffmpeg takes it, through
// the encoder Probe picks into each ladder (an H.264 stream per rung plus
// AAC, as the HLS bridge runs it). x-realtime is media seconds per wall
// second: above 1, the ladder keeps up live.
//
//	go test -run '^$' -bench Ladder -benchtime 3x ./transcode/
func BenchmarkLadder(b *testing.B) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		b.Fatal("apt-get install ffmpeg")
	}
	ctx := context.Background()
	enc, err := Probe(ctx, ff)
	if err != nil {
		b.Fatal(err)
	}
	const fps = 30
	frames, keys, err := load.EncodeVP8Clip(ctx, ff, 1280, 720, fps, 2_500_000)
	if err != nil {
		b.Fatal(err)
	}
	var in bytes.Buffer
	m, err := NewMKV(&in, MKVTrack{Codec: "V_VP8", Width: 1280, Height: 720}, MKVTrack{Codec: "A_OPUS", Channels: 2})
	if err != nil {
		b.Fatal(err)
	}
	audio := int64(0)
	for i, f := range frames {
		ms := int64(i) * 1000 / fps
		for ; audio <= ms; audio += 20 {
			_ = m.Write(1, audio, true, []byte{0xfc, 0xff, 0xfe})
		}
		_ = m.Write(0, ms, keys[i], f)
	}
	media := time.Duration(len(frames)) * time.Second / fps
	for _, c := range []struct {
		name   string
		ladder []int
	}{
		{"720p", []int{720}},
		{"720p+480p+360p", []int{720, 480, 360}},
		{"360p", []int{360}},
	} {
		b.Run(c.name, func(b *testing.B) {
			job := Job{Rungs: Rungs(720, c.ladder), Audio: true, GOP: time.Second}
			var wall time.Duration
			for b.Loop() {
				cmd := exec.Command(ff, enc.JobArgs(job)...)
				cmd.Stdin = bytes.NewReader(in.Bytes())
				var stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = io.Discard, &stderr
				start := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("%v: %s", err, stderr.String())
				}
				wall += time.Since(start)
			}
			b.ReportMetric(media.Seconds()*float64(b.N)/wall.Seconds(), "x-realtime")
		})
	}
}
