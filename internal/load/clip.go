package load

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp8"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"

	"github.com/glintlive/glint/internal/client"
)

// layerSizes are the simulcast layers' picture sizes, low to high.
var layerSizes = [3][2]int{{320, 180}, {640, 360}, {1280, 720}} //nolint:gochecknoglobals // constant

// clip is a short real H.264 encoding per layer, made by ffmpeg at start
// and looped: servers that parse the bitstream (timestamps from slice
// headers, as MediaMTX does) accept it. It implements client.VideoSource.
type clip struct {
	layers [3]*layerClip
}

type layerClip struct {
	mu   sync.Mutex
	aus  [][][]byte // access units, NAL units without start codes
	keys []bool
	pos  int
}

// Next returns the next access unit of a layer; on a keyframe request it
// jumps to the next IDR access unit.
func (c *clip) Next(layer int, key bool) ([][]byte, bool) {
	lc := c.layers[layer]
	if lc == nil {
		lc = c.layers[2]
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if key {
		for i := 0; i < len(lc.aus) && !lc.keys[lc.pos]; i++ {
			lc.pos = (lc.pos + 1) % len(lc.aus)
		}
	}
	au, k := lc.aus[lc.pos], lc.keys[lc.pos]
	lc.pos = (lc.pos + 1) % len(lc.aus)
	return au, k
}

// fork returns the clip with cursors of its own: another publisher of
// the same frames, each decodable.
func (c *clip) fork() *clip {
	f := &clip{}
	for i, lc := range c.layers {
		if lc != nil {
			f.layers[i] = &layerClip{aus: lc.aus, keys: lc.keys}
		}
	}
	return f
}

// clipSeconds is the length of the looped clip.
const clipSeconds = 4

// makeClip encodes the layers a run publishes (EncodeClip).
func makeClip(ctx context.Context, ffmpeg string, layers []int, bitrates [3]int, fps int) (*clip, error) {
	c := &clip{}
	for _, i := range layers {
		aus, keys, err := EncodeClip(ctx, ffmpeg, layerSizes[i][0], layerSizes[i][1], fps, bitrates[i])
		if err != nil {
			return nil, err
		}
		c.layers[i] = &layerClip{aus: aus, keys: keys}
	}
	return c, nil
}

// SimulcastClip encodes all three layers at bitrates (low to high), for
// a client.PublisherConfig's Video: a publisher that sends real H.264.
func SimulcastClip(ctx context.Context, ffmpeg string, bitrates [3]int, fps int) (client.VideoSource, error) {
	return makeClip(ctx, ffmpeg, []int{0, 1, 2}, bitrates, fps)
}

// EncodeClip encodes clipSeconds of a test picture of w x h with ffmpeg's
// libx264 (baseline profile, one slice per frame, parameter sets before
// every IDR, a keyframe every second, no B-frames) and returns its access
// units (NAL units without start codes) and which are keyframes.
func EncodeClip(ctx context.Context, ffmpeg string, w, h, fps, bitrate int) ([][][]byte, []bool, error) {
	br := strconv.Itoa(bitrate)
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, h, fps), "-t", strconv.Itoa(clipSeconds),
		"-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast", "-tune", "zerolatency",
		"-x264-params", fmt.Sprintf("threads=1:sliced-threads=0:keyint=%d:min-keyint=%d:scenecut=0:repeat-headers=1:aud=0", fps, fps),
		"-b:v", br, "-maxrate", br, "-bufsize", strconv.Itoa(bitrate/2), "-f", "h264", "pipe:1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("ffmpeg %dx%d: %w: %s", w, h, err, errOut.String())
	}
	lc, err := splitAccessUnits(out.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("ffmpeg %dx%d output: %w", w, h, err)
	}
	return lc.aus, lc.keys, nil
}

// splitAccessUnits groups an Annex B stream's NAL units into access units:
// each slice with the parameter sets before it (one slice per frame).
func splitAccessUnits(annexB []byte) (*layerClip, error) {
	nalus := splitAnnexB(annexB)
	lc := &layerClip{}
	var pending [][]byte
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		switch t := n[0] & 0x1f; t {
		case 1, 5:
			lc.aus = append(lc.aus, append(pending, n))
			lc.keys = append(lc.keys, t == 5)
			pending = nil
		case 7, 8:
			pending = append(pending, n)
		}
	}
	if len(lc.aus) == 0 || !lc.keys[0] {
		return nil, fmt.Errorf("no access units starting with an IDR (%d NAL units)", len(nalus))
	}
	return lc, nil
}

// splitAnnexB returns the NAL units of an Annex B byte stream (ITU-T H.264
// Annex B): the bytes between 00 00 01 start codes, trailing zeros (of a
// 4-byte start code) removed.
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			continue
		}
		if start >= 0 {
			out = append(out, bytes.TrimRight(b[start:i], "\x00"))
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(b) {
		out = append(out, b[start:])
	}
	return out
}

// EncodeVP8Clip encodes clipSeconds of a test picture of w x h with
// ffmpeg's libvpx (realtime, a keyframe every second) and returns its
// frames and which are keyframes: a VP8 publisher's video.
func EncodeVP8Clip(ctx context.Context, ffmpeg string, w, h, fps, bitrate int) ([][]byte, []bool, error) {
	return EncodeIVFClip(ctx, ffmpeg, "vp8", w, h, fps, bitrate)
}

// ivfEncoders are the encoders EncodeIVFClip uses, tuned for speed.
var ivfEncoders = map[string][]string{ //nolint:gochecknoglobals // constant
	"vp8": {"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"},
	"vp9": {"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "0"},
	"av1": {"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-row-mt", "0"},
}

// EncodeIVFClip encodes clipSeconds of a test picture of w x h as codec
// (vp8, vp9 or av1: an AV1 frame is a temporal unit of OBUs with their
// sizes) with a keyframe every second, and returns its frames and which
// are keyframes.
func EncodeIVFClip(ctx context.Context, ffmpeg, codec string, w, h, fps, bitrate int) ([][]byte, []bool, error) {
	enc, ok := ivfEncoders[codec]
	if !ok {
		return nil, nil, fmt.Errorf("no IVF encoder for %q", codec)
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", w, h, fps), "-t", strconv.Itoa(clipSeconds),
		"-pix_fmt", "yuv420p", "-threads", "1"}
	args = append(args, enc...)
	args = append(args, "-g", strconv.Itoa(fps), "-keyint_min", strconv.Itoa(fps), "-b:v", strconv.Itoa(bitrate), "-f", "ivf", "pipe:1")
	cmd := exec.CommandContext(ctx, ffmpeg, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("ffmpeg %s %dx%d: %w: %s", codec, w, h, err, errOut.String())
	}
	frames, err := splitIVF(out.Bytes())
	if err != nil {
		return nil, nil, err
	}
	keys := make([]bool, len(frames))
	for i, f := range frames {
		switch codec {
		case "vp8":
			keys[i] = vp8.IsRandomAccess(f)
		case "vp9":
			keys[i] = vp9.IsRandomAccess(f)
		case "av1":
			var bs av1.Bitstream
			keys[i] = bs.Unmarshal(f) == nil && av1.IsRandomAccess2(bs)
		}
	}
	if len(frames) == 0 || !keys[0] {
		return nil, nil, fmt.Errorf("ffmpeg %s %dx%d: no frames starting with a keyframe", codec, w, h)
	}
	return frames, keys, nil
}

// splitIVF returns the frames of an IVF file: a 32-byte header, then
// each frame after a 12-byte header holding its size (little-endian).
func splitIVF(b []byte) ([][]byte, error) {
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return nil, fmt.Errorf("not an IVF stream")
	}
	hl := int(b[6]) | int(b[7])<<8
	var out [][]byte
	for p := hl; p+12 <= len(b); {
		n := int(b[p]) | int(b[p+1])<<8 | int(b[p+2])<<16 | int(b[p+3])<<24
		p += 12
		if n > len(b)-p {
			return nil, fmt.Errorf("IVF frame of %d bytes past the end", n)
		}
		out = append(out, b[p:p+n])
		p += n
	}
	return out, nil
}
