package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ffmpegPath returns the ffmpeg the tests run, failing with how to
// install it when there is none.
func ffmpegPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("these tests run the real ffmpeg: apt-get install ffmpeg (or make test-deps): %v", err)
	}
	return p
}

// This machine has no GPU: every hardware encoder is passed over with a
// reason, and libx264 is chosen after a real trial encode.
func TestProbeChoosesAWorkingEncoder(t *testing.T) {
	ff := ffmpegPath(t)
	enc, err := Probe(context.Background(), ff)
	if err != nil {
		t.Fatalf("probe: %v (tried %+v)", err, enc.Tried)
	}
	if enc.Name == "" || enc.Why == "" || len(enc.Args) == 0 {
		t.Fatalf("chosen %+v", enc)
	}
	if enc.Name == "libx264" {
		if enc.GPU || !strings.Contains(strings.Join(enc.Args, " "), "zerolatency") {
			t.Fatalf("libx264 chosen without its low-latency tuning: %+v", enc)
		}
		if len(enc.Tried) != 3 {
			t.Fatalf("libx264 chosen, but the three GPU encoders were not all tried first: %+v", enc.Tried)
		}
	}
	for _, tr := range enc.Tried {
		if tr.Reason == "" {
			t.Errorf("%s passed over without a reason", tr.Encoder)
		}
	}
	t.Logf("chosen %s (%s); passed over: %+v", enc.Name, enc.Why, enc.Tried)
	// The choice encodes: the arguments Probe returns make H.264.
	out := t.TempDir() + "/out.mp4"
	args := enc.Command([]string{"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10", "-frames:v", "5"}, out)
	if b, err := exec.Command(ff, args...).CombinedOutput(); err != nil {
		t.Fatalf("encoding with the chosen encoder: %v\n%s", err, b)
	}
}

func TestProbeWithoutFFmpeg(t *testing.T) {
	_, err := Probe(context.Background(), "/nonexistent/ffmpeg")
	if !errors.Is(err, ErrNoFFmpeg) || !strings.Contains(err.Error(), "apt-get install ffmpeg") {
		t.Fatalf("got %v, want ErrNoFFmpeg with how to install it", err)
	}
}

// events collects a Process's events for a test.
type events struct {
	mu   sync.Mutex
	list []Event
	ch   chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 64)} }

func (e *events) on(ev Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
	e.ch <- ev
}

// next waits for the next event of kind k.
func (e *events) next(t *testing.T, k EventKind, within time.Duration) Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == k {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event within %v", k, within)
		}
	}
}

func (e *events) pids() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for _, ev := range e.list {
		if ev.Kind == Started {
			out = append(out, ev.PID)
		}
	}
	return out
}

// reaped fails t if a child is still alive or left a zombie.
func reaped(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone
		}
		// The pid may have been reused by an unrelated process; ours was ffmpeg.
		if strings.Contains(string(b), "(ffmpeg)") {
			t.Errorf("ffmpeg %d is still there: %s", pid, b)
		}
	}
}

// supervise runs p until the returned stop is called.
func supervise(t *testing.T, p *Process) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// realTime is an ffmpeg command that encodes a tiny picture in real time,
// for ever.
var realTime = []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=64x36:rate=10", "-f", "null", "-"}

// A child killed with SIGKILL (a crash) is started again after the
// backoff, the exit is reported, and stopping leaves no process behind.
func TestProcessRestartsACrashedChild(t *testing.T) {
	ev := newEvents()
	p := NewProcess(ProcessConfig{Path: ffmpegPath(t), Args: realTime, MinBackoff: 100 * time.Millisecond, OnEvent: ev.on})
	stop := supervise(t, p)
	first := ev.next(t, Started, 10*time.Second)
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exited := ev.next(t, Exited, 10*time.Second)
	if exited.Err == nil || !strings.Contains(exited.Err.Error(), "killed") || exited.Backoff != 100*time.Millisecond {
		t.Fatalf("exit reported as %+v", exited)
	}
	second := ev.next(t, Started, 10*time.Second)
	if second.PID == first.PID || second.Restarts != 1 {
		t.Fatalf("restart %+v after %+v", second, first)
	}
	// Still working: a stalled child would be reported; this one is not.
	time.Sleep(500 * time.Millisecond)
	stop()
	reaped(t, ev.pids())
}

// A child that makes no progress (its input never comes) is killed and
// started again, and the backoff doubles.
func TestProcessKillsAStalledChild(t *testing.T) {
	ev := newEvents()
	p := NewProcess(ProcessConfig{
		Path:  ffmpegPath(t),
		Args:  []string{"-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "16x16", "-i", "pipe:0", "-f", "null", "-"},
		Feed:  func(ctx context.Context, _ io.Writer) error { <-ctx.Done(); return nil }, // holds stdin open, sends nothing
		Stall: 700 * time.Millisecond, MinBackoff: 50 * time.Millisecond, OnEvent: ev.on,
	})
	stop := supervise(t, p)
	first := ev.next(t, Started, 10*time.Second)
	stalled := ev.next(t, Stalled, 10*time.Second)
	if stalled.PID != first.PID {
		t.Fatalf("stall reported for %d, the child was %d", stalled.PID, first.PID)
	}
	if e := ev.next(t, Exited, 5*time.Second); !errors.Is(e.Err, ErrStalled) || e.Backoff != 50*time.Millisecond {
		t.Fatalf("exit after the stall: %+v", e)
	}
	ev.next(t, Started, 5*time.Second)
	if e := ev.next(t, Exited, 10*time.Second); e.Backoff != 100*time.Millisecond {
		t.Fatalf("second backoff %v, want it doubled to 100ms", e.Backoff)
	}
	stop()
	reaped(t, ev.pids())
}

// A child that works is fed its input through Feed and is not killed;
// stopping asks it to finish (SIGTERM), so its output is complete.
func TestProcessFeedsAndStopsCleanly(t *testing.T) {
	ev := newEvents()
	out := t.TempDir() + "/out.nut"
	frame := make([]byte, 16*16*3/2)
	p := NewProcess(ProcessConfig{
		Path: ffmpegPath(t),
		Args: []string{"-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "16x16", "-r", "25", "-i", "pipe:0", "-c:v", "rawvideo", out},
		Feed: func(ctx context.Context, w io.Writer) error {
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
					if _, err := w.Write(frame); err != nil {
						return err
					}
				}
			}
		},
		Stall: 3 * time.Second, OnEvent: ev.on,
	})
	stop := supervise(t, p)
	ev.next(t, Started, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	stop()
	for _, e := range ev.list {
		if e.Kind != Started {
			t.Fatalf("a fed child was %v: %+v", e.Kind, e)
		}
	}
	reaped(t, ev.pids())
	b, err := exec.Command(ffmpegPath(t), "-hide_banner", "-i", out, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("the output of a cleanly stopped child does not read: %v\n%s", err, b)
	}
}

func TestProcessWithoutFFmpeg(t *testing.T) {
	err := NewProcess(ProcessConfig{Path: "/nonexistent/ffmpeg"}).Run(context.Background())
	if !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("got %v, want ErrNoFFmpeg", err)
	}
}
