package load

import (
	"fmt"
	"io"
	"math"
	"time"
)

// Report is what a run measured.
type Report struct {
	Config     ReportConfig `json:"config"`
	Joined     int          `json:"viewers_joined"`
	Failed     int          `json:"viewers_failed"`
	FirstError string       `json:"first_error,omitempty"`

	WindowSeconds    float64 `json:"window_seconds"`
	PacketsPerSecond float64 `json:"delivered_packets_per_second"`
	// Loss is the fraction of packets (by sequence number) still missing a
	// second after the window, after NACK repair.
	Loss float64 `json:"loss_after_repair"`

	// FirstFrame: from the WHEP request to the first video packet;
	// FirstKeyframe: to the first keyframe.
	FirstFrame    Quantiles `json:"time_to_first_frame"`
	FirstKeyframe Quantiles `json:"time_to_first_keyframe"`
	// Latency: publisher's send to a viewer's receipt of each frame's first
	// packet, over every (frame, viewer); LastViewer: per frame, to the last
	// viewer that got it. With an RTMP publisher, from the frame's arrival
	// at the node (its abs-capture-time) instead: the node's added latency.
	Latency    Quantiles `json:"latency"`
	LastViewer Quantiles `json:"latency_last_viewer"`
	// AtSocket and AtSocketLastViewer are socket to socket: from the
	// publisher's hand-off of a frame's first packet to its socket, to the
	// kernel's receipt of it on each viewer's socket (SO_TIMESTAMPNS),
	// before this process reads and decrypts it — what the server and
	// network took, without the load tool's own queues. Loopback runs
	// only; LastViewer counts a frame only when every viewer's receipt of
	// it was stamped.
	AtSocket           Quantiles `json:"latency_at_socket"`
	AtSocketLastViewer Quantiles `json:"latency_at_socket_last_viewer"`
	// FrameAtSocket and FrameAtSocketLastViewer run to the kernel's receipt
	// of each frame's last packet instead: when a viewer holds the whole
	// frame and can decode it.
	FrameAtSocket           Quantiles `json:"frame_latency_at_socket"`
	FrameAtSocketLastViewer Quantiles `json:"frame_latency_at_socket_last_viewer"`

	// ServerFanout is the server's own view (Glint's /metrics): from a
	// packet's arrival to its last viewer's write, per packet; bucket
	// upper bounds.
	ServerFanout *Quantiles `json:"server_fanout,omitempty"`

	KeyframeRequests int            `json:"keyframe_requests_to_publisher"`
	Server           *ServerFigures `json:"server,omitempty"`
}

// ReportConfig echoes the run's settings.
type ReportConfig struct {
	WHIP, WHEP string
	Viewers    int    `json:"viewers"`
	Codec      string `json:"codec"`
	Media      string `json:"media"`
	Simulcast  bool   `json:"simulcast"`
	Bitrate    int    `json:"bitrate"`
	FPS        int    `json:"fps"`
	Window     string `json:"window"`
	Guests     int    `json:"guests,omitempty"`
}

// ServerFigures come from /proc for the server's pid.
type ServerFigures struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPercent      float64 `json:"cpu_percent"`
	MicrosPerPacket float64 `json:"cpu_us_per_delivered_packet"`
	RSSBytes        int64   `json:"rss_bytes"`
	BaseRSS         int64   `json:"rss_before_viewers_bytes"`
	RSSPerViewer    float64 `json:"rss_per_viewer_bytes"`
	// TranscoderCPUPercent is the server's child processes' CPU (its
	// ffmpeg transcoders) over the window, in % of a core.
	TranscoderCPUPercent float64 `json:"transcoder_cpu_percent"`
}

func reportConfig(c Config) ReportConfig {
	return ReportConfig{WHIP: c.WHIP, WHEP: c.WHEP, Viewers: c.Viewers, Codec: c.Codec, Simulcast: c.Simulcast,
		Bitrate: c.Bitrate, FPS: c.FPS, Window: c.Window.String(), Guests: c.Guests}
}

func (r *Report) fill(vs []*viewer, before, after counters, elapsed time.Duration) {
	r.WindowSeconds = elapsed.Seconds()
	r.PacketsPerSecond = float64(after.delivered-before.delivered) / elapsed.Seconds()
	if exp := after.expected - before.expected; exp > 0 {
		r.Loss = math.Max(0, float64(after.missing-before.missing)/float64(exp))
	}
	var ttff, ttfk, lat []float64
	type key struct {
		layer int
		frame uint32
	}
	last := map[key]time.Duration{}
	type sockFrame struct {
		max, maxEnd               time.Duration
		seen, stamped, stampedEnd int
	}
	var sock, sockEnd []float64
	sockLast := map[key]*sockFrame{}
	for _, vw := range vs {
		if vw == nil || vw.v == nil {
			continue
		}
		s := vw.v.Stats()
		if !s.FirstPacketAt.IsZero() {
			ttff = append(ttff, ms(s.FirstPacketAt.Sub(s.Started)))
		}
		if !s.FirstKeyframeAt.IsZero() {
			ttfk = append(ttfk, ms(s.FirstKeyframeAt.Sub(s.Started)))
		}
		vw.mu.Lock()
		for _, f := range vw.frames {
			lat = append(lat, ms(f.latency))
			k := key{f.layer, f.frame}
			last[k] = max(last[k], f.latency)
			sf := sockLast[k]
			if sf == nil {
				sf = &sockFrame{}
				sockLast[k] = sf
			}
			sf.seen++
			if f.socket > 0 {
				sock = append(sock, ms(f.socket))
				sf.stamped++
				sf.max = max(sf.max, f.socket)
			}
			if f.socketEnd > 0 {
				sockEnd = append(sockEnd, ms(f.socketEnd))
				sf.stampedEnd++
				sf.maxEnd = max(sf.maxEnd, f.socketEnd)
			}
		}
		vw.mu.Unlock()
	}
	lastv := make([]float64, 0, len(last))
	for _, d := range last {
		lastv = append(lastv, ms(d))
	}
	r.FirstFrame, r.FirstKeyframe = summarize(ttff), summarize(ttfk)
	r.Latency, r.LastViewer = summarize(lat), summarize(lastv)
	var sockLastv, sockEndLastv []float64
	for _, sf := range sockLast {
		if sf.stamped == sf.seen {
			sockLastv = append(sockLastv, ms(sf.max))
		}
		if sf.stampedEnd == sf.seen {
			sockEndLastv = append(sockEndLastv, ms(sf.maxEnd))
		}
	}
	r.AtSocket, r.AtSocketLastViewer = summarize(sock), summarize(sockLastv)
	r.FrameAtSocket, r.FrameAtSocketLastViewer = summarize(sockEnd), summarize(sockEndLastv)
}

// Write prints the report for a person.
func (r *Report) Write(w io.Writer) {
	c := r.Config
	layers := "one layer"
	if c.Simulcast {
		layers = "3-layer simulcast"
	}
	guests := ""
	if c.Guests > 0 {
		guests = fmt.Sprintf(" and %d Live Room guests like it", c.Guests)
	}
	fmt.Fprintf(w, "Load: 1 publisher (%s %s %s, %.1f Mbit/s top layer, %d fps)%s → %d viewers\n", c.Media, c.Codec, layers, float64(c.Bitrate)/1e6, c.FPS, guests, c.Viewers)
	fmt.Fprintf(w, "  WHIP %s\n  WHEP %s\n", c.WHIP, c.WHEP)
	fmt.Fprintf(w, "  viewers joined          %d (%d failed)\n", r.Joined, r.Failed)
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first join error        %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "  window                  %.1f s\n", r.WindowSeconds)
	fmt.Fprintf(w, "  delivered               %.0f packets/s\n", r.PacketsPerSecond)
	fmt.Fprintf(w, "  loss after repair       %.3f %%\n", 100*r.Loss)
	fmt.Fprintf(w, "  time to first frame     p50 %.0f ms, p95 %.0f ms\n", r.FirstFrame.P50, r.FirstFrame.P95)
	fmt.Fprintf(w, "  time to first keyframe  p50 %.0f ms, p95 %.0f ms\n", r.FirstKeyframe.P50, r.FirstKeyframe.P95)
	fmt.Fprintf(w, "  latency, every viewer   p50 %.2f ms, p99 %.2f ms (%d frames×viewers)\n", r.Latency.P50, r.Latency.P99, r.Latency.N)
	fmt.Fprintf(w, "  latency, last viewer    p50 %.2f ms, p99 %.2f ms (%d frames)\n", r.LastViewer.P50, r.LastViewer.P99, r.LastViewer.N)
	if r.AtSocket.N > 0 {
		fmt.Fprintf(w, "  at the viewers' sockets p50 %.2f ms, p99 %.2f ms; last viewer p50 %.2f ms, p99 %.2f ms (%d frames)\n",
			r.AtSocket.P50, r.AtSocket.P99, r.AtSocketLastViewer.P50, r.AtSocketLastViewer.P99, r.AtSocketLastViewer.N)
	}
	if r.FrameAtSocket.N > 0 {
		fmt.Fprintf(w, "  a frame's last packet at the sockets p50 %.2f ms, p99 %.2f ms; last viewer p50 %.2f ms, p99 %.2f ms (%d frames)\n",
			r.FrameAtSocket.P50, r.FrameAtSocket.P99, r.FrameAtSocketLastViewer.P50, r.FrameAtSocketLastViewer.P99, r.FrameAtSocketLastViewer.N)
	}
	if f := r.ServerFanout; f != nil {
		fmt.Fprintf(w, "  server fan-out          p50 ≤ %.3g ms, p99 ≤ %.3g ms (arrival to last viewer's write, %d packets)\n", f.P50, f.P99, f.N)
	}
	fmt.Fprintf(w, "  keyframe requests       %d to the publisher\n", r.KeyframeRequests)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "  server CPU              %.2f µs per delivered packet, %.0f %% of a core\n", s.MicrosPerPacket, s.CPUPercent)
		if s.TranscoderCPUPercent > 0 {
			fmt.Fprintf(w, "  transcoders' CPU        %.0f %% of a core\n", s.TranscoderCPUPercent)
		}
		fmt.Fprintf(w, "  server memory           %.0f KB per viewer (RSS %.1f MB, %.1f MB before viewers)\n",
			s.RSSPerViewer/1024, float64(s.RSSBytes)/(1<<20), float64(s.BaseRSS)/(1<<20))
	}
}
