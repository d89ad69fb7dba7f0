package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"strconv"

	"github.com/glintlive/glint/hlsbridge"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
)

// collector reads the core's counters at scrape time; nothing on the media
// path touches Prometheus.
type collector struct {
	reg  *sfu.Registry
	node *peer.Endpoint
	srv  *signaling.Server
	hls  *hlsbridge.Bridge // nil with --hls-off
	mesh *mesh             // nil without --redis

	hlsRenditions, hlsDropped                                                                  *prometheus.Desc
	encoder, tcRunning, tcRestarts, tcDropped, recording                                       *prometheus.Desc
	meshReachable, relaysIn, relayChildren, placements, relayHops                              *prometheus.Desc
	sessions, streams, viewers, bitrate, packets, malformedRTP, malformedRTCP, keyReqs, fanout *prometheus.Desc
	retransmits, rtxRefused, laneDrops, rtcpDropped, tcpRefused                                *prometheus.Desc
}

func newCollector(reg *sfu.Registry, node *peer.Endpoint, srv *signaling.Server, hls *hlsbridge.Bridge, msh *mesh) *collector {
	return &collector{
		reg: reg, node: node, srv: srv, hls: hls, mesh: msh,
		meshReachable: prometheus.NewDesc("glint_mesh_directory_reachable", "1 while the mesh's Redis answers this node's heartbeats.", nil, nil),
		relaysIn:      prometheus.NewDesc("glint_mesh_relays_in", "Streams this node relays in from another node.", nil, nil),
		relayHops:     prometheus.NewDesc("glint_mesh_relay_hops", "Relays a stream crossed from its origin to this node.", []string{"stream", "from"}, nil),
		relayChildren: prometheus.NewDesc("glint_mesh_relay_children", "Relay sessions this node serves to other nodes.", nil, nil),
		placements:    prometheus.NewDesc("glint_mesh_placements_total", "WHEP viewers this node could not serve from its own streams, by what it did: relayed the stream in, redirected (307), asked to retry (503), or nothing (not live anywhere).", []string{"result"}, nil),
		hlsRenditions: prometheus.NewDesc("glint_hls_renditions", "LL-HLS renditions a live stream is packaged in; 0 with the reason when it cannot be.", []string{"stream", "error"}, nil),
		hlsDropped:    prometheus.NewDesc("glint_hls_dropped_total", "Packets the HLS bridge dropped for a stream because its queue was full.", []string{"stream"}, nil),
		encoder:       prometheus.NewDesc("glint_transcode_encoder_info", "The transcoder's H.264 encoder, chosen by probing at start, and why (1); with no encoder, encoder is empty and why says what failed.", []string{"encoder", "gpu", "why"}, nil),
		tcRunning:     prometheus.NewDesc("glint_hls_transcoder_running", "Whether a transcoded stream's ffmpeg is running (0 while it is restarted).", []string{"stream"}, nil),
		tcRestarts:    prometheus.NewDesc("glint_hls_transcoder_restarts_total", "Times a stream's ffmpeg was started again after a crash or stall.", []string{"stream"}, nil),
		tcDropped:     prometheus.NewDesc("glint_hls_transcoder_dropped_total", "Frames not given to a stream's ffmpeg because it fell behind.", []string{"stream"}, nil),
		recording:     prometheus.NewDesc("glint_vod_recording", "1 while a live stream is recorded; 0 with the reason when its recording stopped (a full disk, say) while live viewing goes on.", []string{"stream", "error"}, nil),
		sessions:      prometheus.NewDesc("glint_sessions", "Open WHIP and WHEP sessions.", []string{"role"}, nil),
		streams:       prometheus.NewDesc("glint_streams", "Streams by state.", []string{"state"}, nil),
		viewers:       prometheus.NewDesc("glint_stream_viewers", "Viewers of a stream.", []string{"stream"}, nil),
		bitrate:       prometheus.NewDesc("glint_layer_bitrate_bits", "Bitrate a publisher sends on a layer.", []string{"stream", "kind", "rid"}, nil),
		packets:       prometheus.NewDesc("glint_layer_packets_total", "RTP packets received on a layer.", []string{"stream", "kind", "rid"}, nil),
		malformedRTP:  prometheus.NewDesc("glint_rtp_malformed_total", "Malformed RTP packets dropped.", nil, nil),
		malformedRTCP: prometheus.NewDesc("glint_rtcp_malformed_total", "Malformed RTCP packets dropped.", nil, nil),
		keyReqs:       prometheus.NewDesc("glint_keyframe_requests_total", "Keyframe requests sent to publishers, after coalescing.", []string{"stream"}, nil),
		fanout:        prometheus.NewDesc("glint_fanout_seconds", "Time from a packet's arrival to the return of the last viewer's write, per fan-out lane.", nil, nil),
		retransmits:   prometheus.NewDesc("glint_retransmits_total", "Packets resent to viewers that NACKed them.", nil, nil),
		rtxRefused:    prometheus.NewDesc("glint_retransmits_refused_total", "NACKed packets not resent: the viewer's retransmit budget (bytes per second, packets per NACK) was spent.", nil, nil),
		laneDrops:     prometheus.NewDesc("glint_fanout_lane_drops_total", "Packets a fan-out lane dropped for its viewers because it was full.", nil, nil),
		rtcpDropped:   prometheus.NewDesc("glint_viewer_rtcp_dropped_total", "Viewer RTCP packets dropped because the viewer's queue was full.", nil, nil),
		tcpRefused:    prometheus.NewDesc("glint_ice_tcp_refused_total", "ICE-TCP connections closed before they carried a verified check.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	pubs, views := c.srv.Sessions()
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(pubs), "publisher")
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(views), "viewer")
	states := map[string]int{"live": 0, "reconnecting": 0, "offline": 0}
	now := sfu.Now()
	for _, r := range c.reg.Streams() {
		in := r.Info(now)
		states[in.State]++
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(in.Viewers), in.Name)
		ch <- prometheus.MustNewConstMetric(c.keyReqs, prometheus.CounterValue, float64(in.Keyframes), in.Name)
		for kind, t := range map[string]*sfu.TrackInfo{"audio": in.Audio, "video": in.Video} {
			if t == nil {
				continue
			}
			for _, l := range t.Layers {
				ch <- prometheus.MustNewConstMetric(c.bitrate, prometheus.GaugeValue, float64(l.Bitrate), in.Name, kind, l.RID)
				ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(l.Packets), in.Name, kind, l.RID)
			}
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(n), s)
	}
	counts, sum := c.reg.Fanout().Snapshot()
	buckets := map[float64]uint64{}
	var total uint64
	for i, n := range &counts {
		total += n
		if up := sfu.BucketUpperMicros(i); up > 0 {
			buckets[up/1e6] = total
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.fanout, total, float64(sum)/1e9, buckets)
	ch <- prometheus.MustNewConstMetric(c.malformedRTP, prometheus.CounterValue, float64(c.reg.MalformedRTP()))
	ns := c.node.Stats()
	ch <- prometheus.MustNewConstMetric(c.malformedRTCP, prometheus.CounterValue, float64(ns.MalformedRTCP))
	sent, refused := c.reg.Retransmits()
	ch <- prometheus.MustNewConstMetric(c.retransmits, prometheus.CounterValue, float64(sent))
	ch <- prometheus.MustNewConstMetric(c.rtxRefused, prometheus.CounterValue, float64(refused))
	ch <- prometheus.MustNewConstMetric(c.laneDrops, prometheus.CounterValue, float64(c.reg.LaneDrops()))
	ch <- prometheus.MustNewConstMetric(c.rtcpDropped, prometheus.CounterValue, float64(ns.ViewerRTCPDropped))
	ch <- prometheus.MustNewConstMetric(c.tcpRefused, prometheus.CounterValue, float64(ns.ICETCPRefused))
	if m := c.mesh; m != nil {
		ch <- prometheus.MustNewConstMetric(c.meshReachable, prometheus.GaugeValue, bool01(m.member.Reachable()))
		relayed := m.edge.Relayed()
		ch <- prometheus.MustNewConstMetric(c.relaysIn, prometheus.GaugeValue, float64(len(relayed)))
		for stream, from := range relayed {
			ch <- prometheus.MustNewConstMetric(c.relayHops, prometheus.GaugeValue, float64(m.edge.Hops(stream)), stream, from)
		}
		ch <- prometheus.MustNewConstMetric(c.relayChildren, prometheus.GaugeValue, float64(m.origin.Active()))
		for i, r := range placementResults {
			ch <- prometheus.MustNewConstMetric(c.placements, prometheus.CounterValue, float64(m.placed[i].Load()), r)
		}
	}
	if c.hls != nil {
		for name, st := range c.hls.Statuses() {
			ch <- prometheus.MustNewConstMetric(c.hlsRenditions, prometheus.GaugeValue, float64(st.Renditions), name, st.Error)
			ch <- prometheus.MustNewConstMetric(c.hlsDropped, prometheus.CounterValue, float64(st.Dropped), name)
			if st.Recording != "" {
				ch <- prometheus.MustNewConstMetric(c.recording, prometheus.GaugeValue, bool01(st.RecordingError == ""), name, st.RecordingError)
			}
			if tc := st.Transcoder; tc != nil {
				ch <- prometheus.MustNewConstMetric(c.tcRunning, prometheus.GaugeValue, bool01(tc.Running), name)
				ch <- prometheus.MustNewConstMetric(c.tcRestarts, prometheus.CounterValue, float64(tc.Restarts), name)
				ch <- prometheus.MustNewConstMetric(c.tcDropped, prometheus.CounterValue, float64(tc.Dropped), name)
			}
		}
		if enc, ok, err := c.hls.Encoder(); ok {
			why := enc.Why
			if err != nil {
				why = err.Error()
			}
			ch <- prometheus.MustNewConstMetric(c.encoder, prometheus.GaugeValue, 1, enc.Name, strconv.FormatBool(enc.GPU), why)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
