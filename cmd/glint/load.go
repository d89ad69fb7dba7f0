package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/glintlive/glint/internal/load"
)

const loadUsage = `Usage: glint load [flags]

Drives any WHIP/WHEP server with one synthetic publisher and N viewers, then
reports joins, delivered packets, loss after repair, time to first frame
and keyframe, per-frame latency and, with --server-pid, the server's CPU
time per delivered packet and memory per viewer. Run the server in its own
process; keep it on this machine (the clients use loopback by default).

`

// loadCmd runs `glint load`.
func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glint load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := load.Config{}
	fs.StringVar(&cfg.WHIP, "whip", "http://127.0.0.1:8080/whip/demo", "WHIP endpoint to publish to")
	fs.StringVar(&cfg.WHEP, "whep", "", "WHEP endpoint to watch (default: the WHIP URL with /whip/ replaced by /whep/)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for WHIP (the stream key)")
	fs.StringVar(&cfg.ViewerToken, "viewer-token", "", "bearer token for WHEP, for servers that want one")
	fs.IntVar(&cfg.Viewers, "viewers", 10, "number of WHEP viewers")
	fs.DurationVar(&cfg.Ramp, "ramp", 5*time.Second, "spread the viewers' joins over this long")
	fs.DurationVar(&cfg.Settle, "settle", 3*time.Second, "wait this long after the last join before measuring")
	fs.DurationVar(&cfg.Window, "window", 20*time.Second, "length of the steady-state measurement")
	fs.StringVar(&cfg.Codec, "codec", "H264", "publisher video codec: H264 or VP8")
	fs.StringVar(&cfg.Media, "media", "auto", "H.264 media: clip (a real encoding ffmpeg makes at start), synthetic (filler slices, no ffmpeg; servers that parse slices reject them) or auto (clip when ffmpeg is installed)")
	fs.StringVar(&cfg.FFmpeg, "ffmpeg", "ffmpeg", "the ffmpeg command, for --media clip")
	fs.BoolVar(&cfg.Simulcast, "simulcast", false, "publish three simulcast layers (1/12, 1/4 and all of --bitrate)")
	fs.IntVar(&cfg.Bitrate, "bitrate", 2_000_000, "top layer bitrate, bits per second")
	fs.IntVar(&cfg.FPS, "fps", 30, "frames per second")
	fs.BoolVar(&cfg.Audio, "audio", true, "also publish and receive Opus audio (50 packets/s)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "pid of the server process, for its CPU and memory figures (Linux /proc)")
	fs.StringVar(&cfg.MetricsURL, "metrics", "", "a Glint node's /metrics URL, to also report its own fan-out time")
	fs.IntVar(&cfg.Concurrency, "concurrency", 16, "joins in flight at once")
	fs.BoolVar(&cfg.Loopback, "loopback", true, "keep the clients' ICE candidates on 127.0.0.1")
	fs.StringVar(&cfg.RTMP, "rtmp", "", "publish with ffmpeg over RTMP to this URL (rtmp://HOST/live/KEY) instead of over WHIP (a 720p test pattern, 360p under 1 Mbit/s), to measure the first frame of a source that cannot be asked for keyframes and the node's added latency (needs --whep)")
	fs.DurationVar(&cfg.RTMPGOP, "rtmp-gop", 2*time.Second, "keyframe interval of the --rtmp encoder")
	fs.IntVar(&cfg.RTMPBFrames, "rtmp-bframes", 0, "B-frames of the --rtmp encoder: 0 has a Glint node pass its H.264 through to WebRTC viewers, more has it transcode; latency is then from the frame's arrival at the node")
	fs.IntVar(&cfg.Guests, "guests", 0, "Live Room guests (0-3) joining the publisher, each publishing like it, invited with --token (a Glint node); viewers receive every broadcaster")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile to this file")
	fs.Usage = func() {
		fmt.Fprint(stderr, loadUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.WHEP == "" {
		cfg.WHEP = strings.Replace(cfg.WHIP, "/whip/", "/whep/", 1)
	}
	cfg.Codec = strings.ToUpper(cfg.Codec)
	cfg.Progress = stderr
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Write(stdout)
	return nil
}

const chatLoadUsage = `Usage: glint chatload [flags]

Connects N read-only WebSocket clients to one stream's chat on a Glint node,
posts messages as a guest at a steady rate, and reports deliveries per
second and delivery latency (post sent → client read). Run the node in its
own process (glint serve --chat-rate 1000 --chat-burst 1000 lets one guest
post fast); each client holds a file descriptor here and one there.

`

// chatLoadCmd runs `glint chatload`.
func chatLoadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glint chatload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := load.ChatConfig{}
	fs.StringVar(&cfg.Base, "url", "http://127.0.0.1:8080", "the Glint node")
	fs.StringVar(&cfg.Stream, "stream", "demo", "the stream whose chat to fill")
	fs.IntVar(&cfg.Clients, "clients", 1000, "read-only WebSocket clients")
	fs.IntVar(&cfg.Messages, "messages", 200, "messages to post")
	fs.Float64Var(&cfg.Rate, "rate", 20, "messages posted per second")
	fs.IntVar(&cfg.Dial, "dial", 32, "concurrent connection attempts")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "longest wait for deliveries after the last post")
	fs.BoolVar(&cfg.Singles, "singles", false, "readers ask for one WebSocket message per event, as clients before batches did (default: batches)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Usage = func() { fmt.Fprint(stderr, chatLoadUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := load.RunChat(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.Print(stdout)
	return nil
}
