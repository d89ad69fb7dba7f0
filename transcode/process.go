package transcode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Process runs one ffmpeg command as a supervised child (Run): a child
// that exits is started again after a backoff that doubles up to a
// ceiling, and one that makes no progress for a while is killed and
// started again. Each child runs in its own process group, is killed with
// the node (Linux), and is always waited for: none is left a zombie.
type Process struct {
	cfg ProcessConfig
}

// ProcessConfig says what to run and how to supervise it.
type ProcessConfig struct {
	// Path is the ffmpeg binary; Args its arguments. Run adds
	// "-nostats -progress pipe:3" before them: progress reports on a
	// pipe of their own are how a stall is seen.
	Path string
	Args []string
	// Feed, when set, writes each child's input to its stdin. It is
	// called on a goroutine of its own when the child starts and must
	// return when ctx ends (the child exited or Run is stopping); stdin is
	// closed after it returns.
	Feed func(ctx context.Context, stdin io.Writer) error
	// Read, when set, reads each child's stdout, on a goroutine of its own
	// from the child's start until the output ends (the child exited).
	Read func(stdout io.Reader) error
	// Stall is how long a child may go without reporting progress before
	// it is killed (default 10 s; ffmpeg reports twice a second while it
	// works).
	Stall time.Duration
	// MinBackoff and MaxBackoff bound the wait before a restart (default
	// 500 ms and 30 s). A child that ran longer than MaxBackoff resets it.
	MinBackoff, MaxBackoff time.Duration
	// StopWait is how long a child may take to finish its output after
	// SIGTERM when Run stops, before it is killed (default 5 s).
	StopWait time.Duration
	// OnEvent, when set, hears every start, exit and stall, on Run's
	// goroutine.
	OnEvent func(Event)
}

// EventKind says what happened to a child.
type EventKind int

// What can happen to a child.
const (
	Started EventKind = iota // a child started
	Stalled                  // a child reported no progress for Stall; it is killed
	Exited                   // a child ended (Err says how) and will be restarted after Backoff
)

func (k EventKind) String() string {
	switch k {
	case Started:
		return "started"
	case Stalled:
		return "stalled"
	default:
		return "exited"
	}
}

// Event is one thing that happened to a child.
type Event struct {
	Kind     EventKind
	PID      int
	Restarts int           // children started before this one
	Err      error         // Exited: how it ended, with ffmpeg's last error line
	Backoff  time.Duration // Exited: the wait before the next start
}

// ErrStalled is the exit of a child killed for making no progress.
var ErrStalled = errors.New("ffmpeg made no progress")

// NewProcess returns a Process for cfg, with defaults filled in.
func NewProcess(cfg ProcessConfig) *Process {
	if cfg.Stall <= 0 {
		cfg.Stall = 10 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.StopWait <= 0 {
		cfg.StopWait = 5 * time.Second
	}
	return &Process{cfg: cfg}
}

// Run starts the child and keeps one running until ctx ends, then stops
// it (SIGTERM, then SIGKILL after StopWait) and returns once it is reaped.
// It returns an error only when the binary cannot be started at all.
func (p *Process) Run(ctx context.Context) error {
	backoff := p.cfg.MinBackoff
	for restarts := 0; ; restarts++ {
		started := time.Now()
		err := p.runOnce(ctx, restarts)
		var execErr *exec.Error
		if errors.As(err, &execErr) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: %w", ErrNoFFmpeg, err) // no binary to run: restarting will not help
		}
		select {
		case <-ctx.Done():
			return nil // stopped: how the last child ended is no failure of Run's
		default:
		}
		if time.Since(started) > p.cfg.MaxBackoff {
			backoff = p.cfg.MinBackoff
		}
		p.emit(Event{Kind: Exited, Restarts: restarts, Err: err, Backoff: backoff})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, p.cfg.MaxBackoff)
	}
}

func (p *Process) emit(e Event) {
	if p.cfg.OnEvent != nil {
		p.cfg.OnEvent(e)
	}
}

// runOnce runs one child until it exits, stalls, or ctx ends.
func (p *Process) runOnce(ctx context.Context, restarts int) error {
	progR, progW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer func() { _ = progR.Close() }()
	args := append([]string{"-nostats", "-progress", "pipe:3"}, p.cfg.Args...)
	cmd := exec.Command(p.cfg.Path, args...)
	cmd.ExtraFiles = []*os.File{progW}
	cmd.SysProcAttr = childAttr()
	tail := &tailWriter{}
	cmd.Stderr = tail
	var stdin io.WriteCloser
	if p.cfg.Feed != nil {
		if stdin, err = cmd.StdinPipe(); err != nil {
			_ = progW.Close()
			return err
		}
	}
	var outR, outW *os.File
	if p.cfg.Read != nil {
		if outR, outW, err = os.Pipe(); err != nil {
			_ = progW.Close()
			return err
		}
		defer func() { _ = outR.Close() }()
		cmd.Stdout = outW
	}
	err = cmd.Start()
	_ = progW.Close() // the child holds its own copies
	if outW != nil {
		_ = outW.Close()
	}
	if err != nil {
		return err
	}
	pid := cmd.Process.Pid
	p.emit(Event{Kind: Started, PID: pid, Restarts: restarts})

	progress := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(progR)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "progress=") {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	feedCtx, stopFeed := context.WithCancel(ctx)
	var feeding sync.WaitGroup
	if p.cfg.Feed != nil {
		feeding.Go(func() {
			_ = p.cfg.Feed(feedCtx, stdin)
			_ = stdin.Close()
		})
	}
	var reading sync.WaitGroup
	if p.cfg.Read != nil {
		reading.Go(func() {
			_ = p.cfg.Read(outR)
			_, _ = io.Copy(io.Discard, outR) // a reader that gave up must not block the child
		})
	}
	waited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(waited) }()
	defer func() {
		stopFeed()
		feeding.Wait()
		reading.Wait()
	}()

	stall := time.NewTimer(p.cfg.Stall)
	defer stall.Stop()
	for {
		select {
		case <-waited:
			return exitError(waitErr, tail)
		case <-progress:
			stall.Reset(p.cfg.Stall)
		case <-stall.C:
			p.emit(Event{Kind: Stalled, PID: pid, Restarts: restarts})
			killGroup(cmd.Process)
			<-waited
			return fmt.Errorf("%w for %v", ErrStalled, p.cfg.Stall)
		case <-ctx.Done():
			terminate(cmd.Process)
			select {
			case <-waited:
			case <-time.After(p.cfg.StopWait):
				killGroup(cmd.Process)
				<-waited
			}
			return ctx.Err()
		}
	}
}

// exitError describes how a child ended, with ffmpeg's last words.
func exitError(err error, tail *tailWriter) error {
	last := tail.last()
	switch {
	case err == nil && last == "":
		return errors.New("ffmpeg exited")
	case err == nil:
		return fmt.Errorf("ffmpeg exited: %s", last)
	case last == "":
		return err
	default:
		return fmt.Errorf("%w: %s", err, last)
	}
}

// tailWriter keeps the last few KB a child wrote to stderr.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4096

func (t *tailWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(b), nil
}

func (t *tailWriter) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return lastLine(string(t.buf), "")
}
