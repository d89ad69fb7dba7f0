package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
)

// Config describes one load run.
type Config struct {
	WHIP, WHEP  string // endpoint URLs
	Token       string // WHIP bearer token (the stream key)
	ViewerToken string // WHEP bearer token, for servers that want one
	Viewers     int
	Ramp        time.Duration // joins are spread over this
	Settle      time.Duration // wait after the last join before measuring
	Window      time.Duration // the steady-state measurement
	Codec       string        // VP8 or H264
	// Media is "clip" (H.264 encoded by ffmpeg at start), "synthetic"
	// (filler slices: forwarders accept them, servers that parse slices do
	// not) or "auto" (a clip when ffmpeg is installed). VP8 is synthetic.
	Media     string
	FFmpeg    string // the ffmpeg command
	Simulcast bool
	Bitrate   int // top layer, bits per second
	FPS       int
	Audio     bool
	ServerPID int // 0: no server CPU or memory figures
	// MetricsURL is a Glint node's /metrics page: the run then also reports
	// the server's own fan-out time (arrival to the last viewer's write).
	MetricsURL  string
	Concurrency int  // joins in flight at once
	Loopback    bool // keep the clients on 127.0.0.1
	// RTMP, when set, publishes with ffmpeg over RTMP to this URL (with
	// the key: rtmp://host/live/KEY) instead of over WHIP: a test pattern
	// with a keyframe every RTMPGOP, as encoders send, so the run measures
	// how soon viewers of a source that cannot be asked for keyframes see
	// their first frame. WHEP must be set.
	RTMP    string
	RTMPGOP time.Duration
	// RTMPBFrames is the RTMP encoder's B-frames: 0 has a Glint node pass
	// its H.264 through to WebRTC viewers, more has it transcode.
	RTMPBFrames int
	// Guests (0-3) join the publisher as Live Room guests (a Glint node:
	// invites are made with Token), each publishing like it; viewers then
	// receive every broadcaster. Latency figures are the host's frames.
	Guests int
	// Progress receives a status line several times a second; nil for none.
	Progress io.Writer
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case c.WHEP == "" || c.WHIP == "" && c.RTMP == "":
		return errors.New("a WHEP endpoint and a WHIP endpoint (or an RTMP URL) are needed")
	case c.RTMP != "" && c.Guests > 0:
		return errors.New("guests join a WHIP publisher, not an RTMP one")
	case c.RTMPBFrames < 0 || c.RTMPBFrames > 16:
		return fmt.Errorf("rtmp-bframes %d: use 0..16", c.RTMPBFrames)
	case c.Viewers < 1 || c.Viewers > 5000:
		return fmt.Errorf("viewers %d: use 1..5000", c.Viewers)
	case c.Window < time.Second:
		return errors.New("the measurement window must be at least 1s")
	case c.Ramp < 0 || c.Settle < 0:
		return errors.New("ramp and settle must not be negative")
	case c.Bitrate < 50_000 || c.FPS < 1 || c.FPS > 120:
		return errors.New("bitrate must be at least 50 kbit/s and fps 1..120")
	case c.Concurrency < 1:
		return errors.New("concurrency must be at least 1")
	case c.Media != "auto" && c.Media != "clip" && c.Media != "synthetic":
		return fmt.Errorf("media %q: use auto, clip or synthetic", c.Media)
	case c.Guests < 0 || c.Guests > 3:
		return fmt.Errorf("guests %d: a room has 0 to 3", c.Guests)
	case c.Guests > 0 && !strings.Contains(c.WHIP, "/whip/"):
		return errors.New("guests need a Glint WHIP endpoint (…/whip/{stream}) to make invites at")
	}
	return nil
}

// viewer is one WHEP viewer and what the run records of it.
type viewer struct {
	v         *client.Viewer
	pub       *client.Publisher
	joinErr   error
	recording *atomic.Bool

	mu      sync.Mutex
	packets int
	frames  []frameSample        // frames that started during the window
	open    map[uint32]openFrame // per SSRC: the frame whose last packet is awaited
}

type frameSample struct {
	layer   int
	frame   uint32
	latency time.Duration
	socket  time.Duration // to the kernel's receipt on the viewer's socket; 0 if unknown
	// socketEnd is to the kernel's receipt of the frame's last packet (the
	// marker): when a decoder can have the whole frame. 0 if unknown.
	socketEnd time.Duration
}

// openFrame is a frame whose first packet arrived: its timestamp, the
// publisher's hand-off of that first packet, and its sample.
type openFrame struct {
	ts    uint32
	sent  time.Time
	index int
}

func (vw *viewer) onPacket(_ webrtc.RTPCodecType, mime string, p *rtp.Packet, at time.Time) {
	if !vw.recording.Load() {
		return
	}
	vw.mu.Lock()
	defer vw.mu.Unlock()
	vw.packets++
	if m, ok := client.ReadMarker(mime, p.Payload); ok && m.Tag == 0 { // the host's frames
		f := frameSample{layer: m.Layer, frame: m.Frame, latency: at.Sub(m.Sent)}
		arrived, ok := vw.v.Arrival(p.SSRC, p.SequenceNumber)
		var sent time.Time
		ok2 := false
		if vw.pub != nil {
			sent, ok2 = vw.pub.FrameSent(m.Layer, m.Frame)
		}
		if ok && ok2 {
			f.socket = max(arrived.Sub(sent), 1)
			if vw.open == nil {
				vw.open = map[uint32]openFrame{}
			}
			vw.open[p.SSRC] = openFrame{ts: p.Timestamp, sent: sent, index: len(vw.frames)}
		}
		vw.frames = append(vw.frames, f)
	}
	if p.Marker {
		if o, ok := vw.open[p.SSRC]; ok && o.ts == p.Timestamp {
			if arrived, ok := vw.v.Arrival(p.SSRC, p.SequenceNumber); ok {
				vw.frames[o.index].socketEnd = max(arrived.Sub(o.sent), 1)
			}
			delete(vw.open, p.SSRC)
		}
	}
}

// onCapture notes, for an RTMP publisher's frames (which carry no
// markers), how long after its arrival at the node each video frame's
// first packet reached the viewer.
func (vw *viewer) onCapture(kind webrtc.RTPCodecType, _ *rtp.Packet, captured, at time.Time) {
	if vw.pub != nil || kind != webrtc.RTPCodecTypeVideo || !vw.recording.Load() {
		return
	}
	vw.mu.Lock()
	// The capture time names the frame on every layer and viewer.
	vw.frames = append(vw.frames, frameSample{frame: uint32(captured.UnixMicro()), latency: at.Sub(captured)})
	vw.mu.Unlock()
}

// Run performs one load run and returns its report. It stops early with an
// error when ctx ends or the publisher cannot connect.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	rep := &Report{Config: reportConfig(cfg)}
	prog := newProgress(cfg.Progress)
	defer prog.done()

	br := [3]int{cfg.Bitrate / 12, cfg.Bitrate / 4, cfg.Bitrate}
	var video client.VideoSource
	rep.Config.Media = "synthetic"
	if cfg.Codec == "H264" && cfg.Media != "synthetic" {
		ffmpeg, err := exec.LookPath(cfg.FFmpeg)
		switch {
		case err == nil:
			prog.set("encoding the H.264 clip with ffmpeg…")
			layers := []int{2}
			if cfg.Simulcast {
				layers = []int{0, 1, 2}
			}
			c, err := makeClip(ctx, ffmpeg, layers, br, cfg.FPS)
			if err != nil {
				return nil, err
			}
			video, rep.Config.Media = c, "clip"
		case cfg.Media == "clip":
			return nil, fmt.Errorf("media clip needs ffmpeg (apt-get install ffmpeg): %w", err)
		}
	}

	prog.set("publishing…")
	var pub *client.Publisher
	if cfg.RTMP != "" {
		stop, err := publishRTMP(ctx, hc, cfg)
		if err != nil {
			return nil, err
		}
		defer stop()
		rep.Config.Media = "ffmpeg over RTMP"
	} else {
		pubCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		var err error
		pub, err = client.Publish(pubCtx, client.PublisherConfig{
			Endpoint: cfg.WHIP, Token: cfg.Token, HTTP: hc, Simulcast: cfg.Simulcast, Audio: cfg.Audio,
			Codec: cfg.Codec, FPS: cfg.FPS, Bitrates: br, Video: video, Options: client.Options{Loopback: cfg.Loopback, Stamp: cfg.Loopback},
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("publisher: %w", err)
		}
		defer pub.Stop() //nolint:errcheck // the run's result is what matters
	}
	var guests []*client.Publisher
	defer func() {
		for _, g := range guests {
			_ = g.Stop()
		}
	}()
	for i := range cfg.Guests {
		prog.set(fmt.Sprintf("guest %d joining…", i+1))
		g, err := joinGuest(ctx, hc, cfg, uint8(i+1), br, video)
		if err != nil {
			return nil, fmt.Errorf("guest %d: %w", i+1, err)
		}
		guests = append(guests, g)
	}
	time.Sleep(time.Second) // let the server see the first frames

	var err error
	var baseRSS int64
	if cfg.ServerPID != 0 {
		if baseRSS, err = procRSS(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("server pid %d: %w", cfg.ServerPID, err)
		}
	}

	// Join viewers at an even pace over the ramp.
	recording := &atomic.Bool{}
	viewers := make([]*viewer, cfg.Viewers)
	var joined, failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	start := time.Now()
	for i := range viewers {
		vw := &viewer{recording: recording, pub: pub}
		viewers[i] = vw
		at := start.Add(time.Duration(int64(cfg.Ramp) * int64(i) / int64(cfg.Viewers)))
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			vw.v, vw.joinErr = client.View(jctx, client.ViewerConfig{
				Endpoint: cfg.WHEP, Token: cfg.ViewerToken, HTTP: hc, NoAudio: !cfg.Audio, Slots: 1 + cfg.Guests,
				Options: client.Options{Loopback: cfg.Loopback, Stamp: cfg.Loopback}, OnPacket: vw.onPacket, OnCapture: vw.onCapture,
			})
			if vw.joinErr != nil {
				failed.Add(1)
				return
			}
			joined.Add(1)
		}()
		prog.set(fmt.Sprintf("joining %s %d/%d viewers (%d failed)", bar(i+1, cfg.Viewers), joined.Load(), cfg.Viewers, failed.Load()))
	}
	wg.Wait()
	defer func() {
		for _, vw := range viewers {
			if vw != nil && vw.v != nil {
				_ = vw.v.Close(context.Background())
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Joined, rep.Failed = int(joined.Load()), int(failed.Load())
	for _, vw := range viewers {
		if vw.joinErr != nil && rep.FirstError == "" {
			rep.FirstError = vw.joinErr.Error()
		}
	}
	settleEnd := time.Now().Add(cfg.Settle)
	for time.Now().Before(settleEnd) && ctx.Err() == nil {
		prog.set(fmt.Sprintf("settling %.0fs", time.Until(settleEnd).Seconds()))
		time.Sleep(250 * time.Millisecond)
	}

	// The window: counters at both ends.
	before := snapshot(viewers)
	var fan0 histogram
	if cfg.MetricsURL != "" {
		if fan0, err = scrapeHistogram(ctx, hc, cfg.MetricsURL, "glint_fanout_seconds"); err != nil {
			return nil, err
		}
	}
	cpu0, _ := cpuOf(cfg.ServerPID)
	var kids0 map[int]float64
	if cfg.ServerPID != 0 {
		kids0 = childrenCPU(cfg.ServerPID)
	}
	recording.Store(true)
	t0 := time.Now()
	for time.Since(t0) < cfg.Window && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		sec := time.Since(t0).Seconds()
		prog.set(fmt.Sprintf("measuring %s %.0f/%.0fs, %.0f packets/s delivered", bar(int(sec*10), int(cfg.Window.Seconds()*10)),
			sec, cfg.Window.Seconds(), float64(snapshot(viewers).packets-before.packets)/sec))
	}
	recording.Store(false)
	elapsed := time.Since(t0)
	cpu1, _ := cpuOf(cfg.ServerPID)
	var kids float64
	if cfg.ServerPID != 0 {
		kids = cpuBetween(kids0, childrenCPU(cfg.ServerPID))
	}
	if fan0 != nil {
		fan1, err := scrapeHistogram(ctx, hc, cfg.MetricsURL, "glint_fanout_seconds")
		if err != nil {
			return nil, err
		}
		q := between(fan0, fan1)
		rep.ServerFanout = &q
	}
	var rss int64
	if cfg.ServerPID != 0 {
		rss, _ = procRSS(cfg.ServerPID)
	}
	time.Sleep(time.Second) // late retransmissions still count as repaired
	after := snapshot(viewers)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	rep.fill(viewers, before, after, elapsed)
	if pub != nil {
		rep.KeyframeRequests = int(pub.KeyframeRequests())
	}
	if cfg.ServerPID != 0 {
		cpu := cpu1 - cpu0
		rep.Server = &ServerFigures{
			CPUSeconds: cpu,
			CPUPercent: 100 * cpu / elapsed.Seconds(),
			RSSBytes:   rss,
			BaseRSS:    baseRSS,

			TranscoderCPUPercent: 100 * kids / elapsed.Seconds(),
		}
		if n := after.delivered - before.delivered; n > 0 {
			rep.Server.MicrosPerPacket = cpu * 1e6 / float64(n)
		}
		if rep.Joined > 0 {
			rep.Server.RSSPerViewer = float64(rss-baseRSS) / float64(rep.Joined)
		}
	}
	return rep, nil
}

// publishRTMP runs ffmpeg as an RTMP encoder until stop: a test pattern
// of cfg's rate and bitrate (720p, or 360p under 1 Mbit/s) in H.264 (a
// keyframe every cfg.RTMPGOP, cfg.RTMPBFrames B-frames) and AAC, once the
// stream is live at the WHEP endpoint's node.
func publishRTMP(ctx context.Context, hc *http.Client, cfg Config) (stop func(), err error) {
	ffmpeg, err := exec.LookPath(cfg.FFmpeg)
	if err != nil {
		return nil, fmt.Errorf("--rtmp needs ffmpeg (apt-get install ffmpeg): %w", err)
	}
	gop := max(int(cfg.RTMPGOP.Seconds()*float64(cfg.FPS)), 1)
	br := strconv.Itoa(cfg.Bitrate)
	rctx, cancel := context.WithCancel(ctx)
	size := "1280x720"
	if cfg.Bitrate < 1_000_000 {
		size = "640x360"
	}
	cmd := exec.CommandContext(rctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", size, cfg.FPS), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", strconv.Itoa(cfg.RTMPBFrames), "-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop),
		"-b:v", br, "-maxrate", br, "-bufsize", br, "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", cfg.RTMP)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	stop = func() { cancel(); _ = cmd.Wait() }
	// Live once the node answers a viewer's offer (not 409).
	deadline := time.Now().Add(20 * time.Second)
	api := strings.Replace(cfg.WHEP, "/whep/", "/api/streams/", 1)
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api, nil)
		if err != nil {
			stop()
			return nil, err
		}
		if resp, err := hc.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			_ = resp.Body.Close()
			if strings.Contains(string(b), `"state":"live"`) {
				time.Sleep(2 * time.Second) // a GOP in the cache
				return stop, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	return nil, errors.New("the RTMP stream did not go live within 20 s")
}

// joinGuest makes an invite with the stream key and publishes as a guest
// with it, tagged so its frames are told from the host's: the host's
// clip, from cursors of its own.
func joinGuest(ctx context.Context, hc *http.Client, cfg Config, tag uint8, br [3]int, video client.VideoSource) (*client.Publisher, error) {
	if c, ok := video.(*clip); ok {
		video = c.fork()
	}
	api := strings.Replace(cfg.WHIP, "/whip/", "/api/streams/", 1) + "/invites"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api, strings.NewReader(`{"name":"load guest"}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	var inv struct{ Token string }
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&inv)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("invite at %s: HTTP %d", api, resp.StatusCode)
	}
	if err != nil {
		return nil, fmt.Errorf("invite at %s: %w", api, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return client.Publish(pctx, client.PublisherConfig{
		Endpoint: cfg.WHIP, Token: inv.Token, HTTP: hc, Simulcast: cfg.Simulcast, Audio: cfg.Audio, Tag: tag,
		Codec: cfg.Codec, FPS: cfg.FPS, Bitrates: br, Video: video, Options: client.Options{Loopback: cfg.Loopback},
	})
}

func cpuOf(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	return procCPU(pid)
}

// counters are the viewers' totals at one moment.
type counters struct {
	packets           int // recorded by the run (window only)
	delivered         int // every media packet received
	expected, missing int
}

func snapshot(vs []*viewer) counters {
	var c counters
	for _, vw := range vs {
		if vw == nil || vw.v == nil {
			continue
		}
		s := vw.v.Stats()
		c.delivered += vw.v.Packets() // every slot's
		c.expected += s.Expected
		c.missing += s.Missing
		vw.mu.Lock()
		c.packets += vw.packets
		vw.mu.Unlock()
	}
	return c
}
