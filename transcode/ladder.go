package transcode

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultLadder is the renditions' heights the transcoder makes, top
// first, of those the source is tall enough for.
var DefaultLadder = []int{1080, 720, 480, 360} //nolint:gochecknoglobals // constant

// Rung is one rendition of a ladder: its picture height (the width keeps
// the source's aspect) and video bitrate.
type Rung struct {
	Height  int
	Bitrate int // bit/s
}

// Rungs returns the rungs of ladder (heights, in any order) that a source
// of height h allows, top first: those no taller than the source, or one
// at the source's own height when it is shorter than them all. Bitrates
// follow the pixel count, about 0.1 bit per pixel at 30 frames a second
// (2.8 Mbit/s at 720p).
func Rungs(h int, ladder []int) []Rung {
	h &^= 1 // encoders want even sizes
	var out []Rung
	for _, r := range ladder {
		r &^= 1
		if r > 0 && r <= h && !containsHeight(out, r) {
			out = append(out, Rung{Height: r})
		}
	}
	if len(out) == 0 && h > 0 {
		out = append(out, Rung{Height: h})
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Height > out[i].Height {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	for i := range out {
		w := out[i].Height * 16 / 9
		out[i].Bitrate = max(w*out[i].Height*30/10, 100_000)
	}
	return out
}

func containsHeight(rs []Rung, h int) bool {
	for _, r := range rs {
		if r.Height == h {
			return true
		}
	}
	return false
}

// ParseLadder reads a ladder flag: heights separated by commas
// ("1080,720,480,360"), each 64 to 2160.
func ParseLadder(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		h, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(f), "p"))
		if err != nil || h < 64 || h > 2160 {
			return nil, fmt.Errorf("ladder %q: heights of 64 to 2160, separated by commas", s)
		}
		out = append(out, h)
	}
	if len(out) > 6 {
		return nil, fmt.Errorf("ladder %q: at most 6 heights", s)
	}
	return out, nil
}

// AudioBitrate is the AAC bitrate of the transcoder's audio.
const AudioBitrate = 128_000

// Job is one transcode: a live Matroska stream in on stdin (MKV), an
// MPEG-TS stream out on stdout with an H.264 stream per rung (in order)
// and then, with Audio, stereo AAC-LC at 48 kHz (Opus for WebRTC).
type Job struct {
	Rungs []Rung
	Audio bool
	// GOP is the keyframe interval of every rung: the same instants in
	// each, so segments line up across renditions.
	GOP time.Duration
	// Tiles, when 1 or more, composites that many video tracks (a Live
	// Room) on a 16:9 canvas as tall as the tallest rung, before the ladder is
	// made of it: one filling it, two side by side, three or four in a
	// 2x2 grid. The canvas keeps its size as the room changes.
	Tiles int
	// Voices, when 2 or more, mixes that many audio tracks into one.
	Voices int
	// WebRTC makes what a browser's WebRTC stack decodes, for an RTMP or
	// SRT source's WebRTC viewers: H.264 constrained baseline (no
	// B-frames, parameter sets before every keyframe) and 48 kHz stereo
	// Opus instead of AAC.
	WebRTC bool
}

// OpusBitrate is the Opus bitrate of a WebRTC job's audio.
const OpusBitrate = 96_000

// CompositeFPS is the frame rate of a composited room.
const CompositeFPS = 30

// composite writes the filters that lay n video tracks out on a w x h
// canvas, into the label [room].
func composite(g *strings.Builder, n, w, h int) {
	cols, rows := min(n, 2), 1
	if n > 2 {
		rows = 2
	}
	tw, th := (w/cols)&^1, (h/rows)&^1
	var layout []string
	for i := range n {
		fmt.Fprintf(g, "[0:v:%d]scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2,setsar=1[t%d];", i, tw, th, tw, th, i)
		layout = append(layout, fmt.Sprintf("%d_%d", i%cols*tw, i/cols*th))
	}
	if n == 1 {
		fmt.Fprintf(g, "[t0]fps=%d[room];", CompositeFPS) // xstack takes two or more
		return
	}
	for i := range n {
		fmt.Fprintf(g, "[t%d]", i)
	}
	fmt.Fprintf(g, "xstack=inputs=%d:layout=%s:fill=black,fps=%d[room];", n, strings.Join(layout, "|"), CompositeFPS)
}

// JobArgs returns ffmpeg's arguments for job with encoder e. Timestamps go
// through unchanged (the input's milliseconds become the output's 90 kHz
// PTS), frames are neither dropped nor duplicated, and every packet is
// written as soon as it is encoded.
func (e Encoder) JobArgs(job Job) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error"}
	args = append(args, e.Input...)
	args = append(args, "-probesize", "32768", "-analyzeduration", "200000",
		"-f", "matroska", "-i", "pipe:0", "-copyts", "-fps_mode", "passthrough", "-enc_time_base:v", "-1")
	var graph strings.Builder
	src := "[0:v]"
	if job.Tiles > 0 && len(job.Rungs) > 0 {
		h := 0
		for _, r := range job.Rungs {
			h = max(h, r.Height)
		}
		// Multiples of 4: halves of the canvas are even, so every layout
		// fills exactly the same canvas.
		composite(&graph, job.Tiles, (h*16/9)&^3, h&^3)
		src = "[room]"
	}
	if n := len(job.Rungs); n > 0 {
		if n == 1 {
			graph.WriteString(src + "null[s0]")
		} else {
			graph.WriteString(src + "split=" + strconv.Itoa(n))
			for i := range n {
				fmt.Fprintf(&graph, "[s%d]", i)
			}
		}
		for i, r := range job.Rungs {
			fmt.Fprintf(&graph, ";[s%d]scale=-2:%d", i, r.Height)
			if e.Filter != "" {
				graph.WriteString("," + e.Filter)
			}
			fmt.Fprintf(&graph, "[o%d]", i)
		}
	}
	if job.Audio && job.Voices > 1 {
		if graph.Len() > 0 {
			graph.WriteString(";")
		}
		for i := range job.Voices {
			fmt.Fprintf(&graph, "[0:a:%d]", i)
		}
		fmt.Fprintf(&graph, "amix=inputs=%d:duration=longest:normalize=0[mix]", job.Voices)
	}
	if graph.Len() > 0 {
		args = append(args, "-filter_complex", graph.String())
	}
	if len(job.Rungs) > 0 {
		for i := range job.Rungs {
			args = append(args, "-map", "[o"+strconv.Itoa(i)+"]")
		}
		args = append(args, e.Args...)
		gop := max(job.GOP, 100*time.Millisecond).Seconds()
		if job.WebRTC {
			// VAAPI names the profile its own way, and its frames are
			// uploaded to the GPU by e.Filter: no pixel format here.
			profile := "baseline"
			if strings.Contains(e.Name, "vaapi") {
				profile = "constrained_baseline"
			}
			args = append(args, "-profile:v", profile)
			if e.Filter == "" {
				args = append(args, "-pix_fmt", "yuv420p")
			}
		}
		args = append(args, "-sc_threshold", "0", "-bf", "0",
			"-force_key_frames", fmt.Sprintf("expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+%.3f))", gop))
		for i, r := range job.Rungs {
			s := strconv.Itoa(i)
			br := strconv.Itoa(r.Bitrate)
			args = append(args, "-b:v:"+s, br, "-maxrate:v:"+s, br, "-bufsize:v:"+s, strconv.Itoa(r.Bitrate))
		}
	}
	if job.Audio {
		audio := "0:a:0"
		if job.Voices > 1 {
			audio = "[mix]"
		}
		if job.WebRTC {
			args = append(args, "-map", audio, "-c:a", "libopus", "-b:a", strconv.Itoa(OpusBitrate), "-ar", "48000", "-ac", "2",
				"-frame_duration", "20", "-application", "lowdelay")
		} else {
			args = append(args, "-map", audio, "-c:a", "aac", "-b:a", strconv.Itoa(AudioBitrate), "-ar", "48000", "-ac", "2")
		}
	}
	// One PES per audio frame: by default the muxer gathers 2930 bytes of
	// audio first (a quarter second of Opus).
	return append(args, "-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0", "-pes_payload_size", "0", "-flush_packets", "1", "pipe:1")
}
