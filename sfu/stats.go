package sfu

import "sync/atomic"

// layerStats are a layer's counters. The ingest goroutine bumps them; the
// registry tick turns them into rates; readers take snapshots.
type layerStats struct {
	packets, bytes, frames, keyframes atomic.Uint64
	malformed, duplicates             atomic.Uint64
	lastArrival, lastKeyframe         atomic.Int64
	width, height                     atomic.Uint32

	bitrate atomic.Uint64 // bits per second, smoothed
	fps100  atomic.Uint64 // frames per second × 100, smoothed

	// Tick-goroutine state.
	prevBytes, prevFrames uint64
	prevAt                int64
}

func (s *layerStats) onPacket(p *Packet) {
	s.packets.Add(1)
	s.bytes.Add(uint64(p.size))
	if p.Marker {
		s.frames.Add(1)
	}
	s.lastArrival.Store(p.Arrival)
}

// tick updates the rates from the counters; called about once a second.
func (s *layerStats) tick(now int64) {
	b, f := s.bytes.Load(), s.frames.Load()
	if s.prevAt != 0 && now > s.prevAt {
		dt := float64(now-s.prevAt) / float64(second)
		br := float64(b-s.prevBytes) * 8 / dt
		fps := float64(f-s.prevFrames) / dt
		s.bitrate.Store(uint64(smooth(float64(s.bitrate.Load()), br)))
		s.fps100.Store(uint64(smooth(float64(s.fps100.Load()), fps*100)))
	}
	s.prevBytes, s.prevFrames, s.prevAt = b, f, now
}

// smooth is an exponential moving average that follows a rise at once when
// starting from zero.
func smooth(old, x float64) float64 {
	if old == 0 {
		return x
	}
	return old*0.5 + x*0.5
}

// LayerInfo is a snapshot of one layer for the API.
type LayerInfo struct {
	RID       string  `json:"rid"`
	Active    bool    `json:"active"`
	Width     int     `json:"width,omitempty"`
	Height    int     `json:"height,omitempty"`
	FPS       float64 `json:"fps"`
	Bitrate   uint64  `json:"bitrate"`
	Packets   uint64  `json:"packets"`
	Keyframes uint64  `json:"keyframes"`
	// KeyframeRequests counts requests sent upstream after coalescing;
	// CachedStarts the viewers started from the cached keyframe instead.
	KeyframeRequests uint64 `json:"keyframe_requests"`
	CachedStarts     uint64 `json:"cached_keyframe_starts"`
	Malformed        uint64 `json:"malformed,omitempty"`
	SSRC             uint32 `json:"ssrc"`
}

// Info returns a snapshot of the layer.
func (l *Layer) Info(now int64) LayerInfo {
	s := &l.stats
	return LayerInfo{
		RID:              l.rid,
		Active:           l.active(now),
		Width:            int(s.width.Load()),
		Height:           int(s.height.Load()),
		FPS:              float64(s.fps100.Load()) / 100,
		Bitrate:          s.bitrate.Load(),
		Packets:          s.packets.Load(),
		Keyframes:        s.keyframes.Load(),
		KeyframeRequests: l.keyReqs.Load(),
		CachedStarts:     l.replays.Load(),
		Malformed:        s.malformed.Load(),
		SSRC:             l.ssrc.Load(),
	}
}
