package transcode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNoFFmpeg means the ffmpeg binary cannot be run.
var ErrNoFFmpeg = errors.New("ffmpeg not found (Debian: apt-get install ffmpeg)")

// Encoder is the H.264 encoder chosen for the transcoder.
type Encoder struct {
	// Name is ffmpeg's name for it: h264_nvenc, h264_vaapi, h264_qsv or
	// libx264.
	Name string
	// GPU reports a hardware encoder.
	GPU bool
	// Input are arguments that go before the input (a device), Filter a
	// filter that must end the video chain (uploading frames to the
	// device), Args the encoder and its low-latency tuning.
	Input  []string
	Filter string
	Args   []string
	// Why says why it was chosen; Tried says why each one before it was
	// passed over, in the order tried.
	Why   string
	Tried []Trial
}

// Trial is one encoder tried and why it was not used.
type Trial struct {
	Encoder string `json:"encoder"`
	Reason  string `json:"reason"`
}

// vaapiDevice is the render node VAAPI encodes on.
const vaapiDevice = "/dev/dri/renderD128"

// candidates are the encoders in order of preference: GPUs first, each
// with the settings that keep its latency low, then x264.
func candidates() []Encoder {
	return []Encoder{
		{Name: "h264_nvenc", GPU: true, Args: []string{"-c:v", "h264_nvenc", "-preset", "p1", "-tune", "ull", "-zerolatency", "1", "-rc", "cbr"}},
		{Name: "h264_vaapi", GPU: true, Input: []string{"-vaapi_device", vaapiDevice}, Filter: "format=nv12,hwupload", Args: []string{"-c:v", "h264_vaapi"}},
		{Name: "h264_qsv", GPU: true, Args: []string{"-c:v", "h264_qsv", "-preset", "veryfast", "-look_ahead", "0"}},
		{Name: "libx264", Args: []string{"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"}},
	}
}

// trialTimeout bounds one trial encode; a GPU that hangs is passed over.
const trialTimeout = 10 * time.Second

// Probe picks the encoder: the first candidate that this ffmpeg has and
// that encodes ten small frames without error. It fails with ErrNoFFmpeg
// when ffmpeg cannot be run, and when even libx264 fails.
func Probe(ctx context.Context, ffmpeg string) (Encoder, error) {
	out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-encoders").Output()
	if err != nil {
		return Encoder{}, fmt.Errorf("%w: %s: %w", ErrNoFFmpeg, ffmpeg, err)
	}
	var tried []Trial
	for _, c := range candidates() {
		var reason string
		switch {
		case !hasEncoder(out, c.Name):
			reason = "not built into this ffmpeg"
		case c.Name == "h264_vaapi" && !exists(vaapiDevice):
			reason = "no " + vaapiDevice
		default:
			reason = trial(ctx, ffmpeg, c)
		}
		if reason == "" {
			c.Tried = tried
			c.Why = "a trial encode succeeded"
			if len(tried) > 0 {
				c.Why += "; " + tried[0].Encoder + " and the others before it did not"
			}
			return c, nil
		}
		tried = append(tried, Trial{Encoder: c.Name, Reason: reason})
	}
	return Encoder{Tried: tried}, fmt.Errorf("no H.264 encoder works: %s", tried[len(tried)-1].Reason)
}

// hasEncoder reports whether ffmpeg's -encoders list names enc.
func hasEncoder(list []byte, enc string) bool {
	for line := range strings.SplitSeq(string(list), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == enc {
			return true
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Command returns ffmpeg's arguments to encode input (the arguments that
// open it, ending with -i and its options) with e into output: the device,
// the input, the upload filter and the encoder in the order ffmpeg needs.
func (e Encoder) Command(input []string, output ...string) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	args = append(args, e.Input...)
	args = append(args, input...)
	if e.Filter != "" {
		args = append(args, "-vf", e.Filter)
	}
	args = append(args, e.Args...)
	return append(args, output...)
}

// trial encodes ten 320x180 frames with c, returning "" on success or the
// reason it failed (ffmpeg's last error line).
func trial(ctx context.Context, ffmpeg string, c Encoder) string {
	ctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()
	args := c.Command([]string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-frames:v", "10"}, "-f", "null", "-")
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "the trial encode took longer than " + trialTimeout.String()
		}
		return lastLine(stderr.String(), err.Error())
	}
	return ""
}

// lastLine returns the last non-empty line of s, or def.
func lastLine(s, def string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return def
}
