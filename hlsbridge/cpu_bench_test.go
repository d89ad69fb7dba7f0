package hlsbridge

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/load"
	"github.com/glintlive/glint/sfu"
)

// BenchmarkHLSCPU measures the node's CPU for HLS while a stream is live
// in real time: the bridge's own (the node's process, less a run that only
// feeds the stream) and its ffmpeg's, over a 5 s window, per second of
// stream. Cases: two H.264 simulcast layers packaged as they come (Opus
// kept), the same with the Opus made AAC (an audio-only ffmpeg), and a VP8
// source transcoded into two rungs.
//
//	go test -run '^$' -bench HLSCPU -benchtime 1x ./hlsbridge/
func BenchmarkHLSCPU(b *testing.B) {
	const window = 5 * time.Second
	ff := tool(b, "ffmpeg")
	measure := func(b *testing.B, pid func() int) (self, child float64) {
		time.Sleep(2 * time.Second) // past the start
		s0, c0 := cpuSelf(), cpuOf(pid())
		time.Sleep(window)
		s1, c1 := cpuSelf(), cpuOf(pid())
		return (s1 - s0).Seconds() * 1000 / window.Seconds(), (c1 - c0).Seconds() * 1000 / window.Seconds()
	}
	var feedOnly float64
	b.Run("feed-only", func(b *testing.B) {
		for b.Loop() {
			stop := feedWithoutBridge(b)
			feedOnly, _ = measure(b, func() int { return 0 })
			stop()
		}
		b.ReportMetric(feedOnly, "cpu-ms/s")
	})
	for _, c := range []struct {
		name       string
		renditions int
		start      func(b *testing.B) (*Bridge, string)
	}{
		{"h264-2-renditions-opus", 2, func(b *testing.B) (*Bridge, string) {
			ls := startLiveWith(b, Config{OpusAudio: true, FFmpeg: ff})
			return ls.br, "demo"
		}},
		{"h264-2-renditions-aac", 2, func(b *testing.B) (*Bridge, string) {
			ls := startLiveWith(b, Config{FFmpeg: ff})
			return ls.br, "demo"
		}},
		{"vp8-transcoded-2-rungs", 2, func(b *testing.B) (*Bridge, string) {
			v := startVP8(b, Config{Ladder: []int{240, 120}})
			return v.br, "vp8"
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var self, child float64
			for b.Loop() {
				br, stream := c.start(b)
				self, child = measure(b, func() int {
					if st, _ := br.Status(stream); st.Transcoder != nil {
						return st.Transcoder.PID
					}
					return 0
				})
			}
			b.ReportMetric(self-feedOnly, "bridge-cpu-ms/s")
			b.ReportMetric(child, "ffmpeg-cpu-ms/s")
			b.ReportMetric((self-feedOnly+child)/float64(c.renditions), "cpu-ms/s/rendition")
		})
	}
}

// feedWithoutBridge publishes the same two layers and Opus as startLive,
// with no bridge: the baseline the bridge's CPU is measured against.
func feedWithoutBridge(b *testing.B) (stop func()) {
	ff := tool(b, "ffmpeg")
	ls := &liveStream{src: &keySource{}, wg: &sync.WaitGroup{}}
	for _, size := range [][2]int{{320, 180}, {160, 90}} {
		aus, _, err := load.EncodeClip(context.Background(), ff, size[0], size[1], 15, 300_000)
		if err != nil {
			b.Fatal(err)
		}
		ls.clips = append(ls.clips, aus)
	}
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	ls.ctx = ctx
	ls.st = reg.Stream("demo")
	ls.publish(b, 100, 0)
	return func() { cancel(); ls.wg.Wait(); reg.Close() }
}

// cpuSelf is this process's CPU time so far.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf is a running process's CPU time so far, from /proc (Linux); 0 for
// none.
func cpuOf(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 12th and 13th, in clock ticks (100 a second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
