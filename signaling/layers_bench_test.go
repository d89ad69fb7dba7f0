package signaling_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/sfu"
)

// frameTracker follows what a viewer could decode: like a receiver's
// frame buffer it takes frames in sequence-number order (skipping padding),
// each once all its packets are in. A gap still open after
// trackerGiveUp is given up: the tracker asks for a keyframe, as a
// browser does, and resumes at the next keyframe.
type frameTracker struct {
	mu      sync.Mutex
	pkts    map[uint16]trackedPacket
	next    uint16 // the first sequence number not yet consumed
	started bool
	stuck   time.Time // since when next has been missing or incomplete
	shown   []time.Time
	givenUp int
	layers  []client.LayerChange // the layer of the frames shown, when it changed
	ssrc    uint32
	pli     func(ssrc uint32)
}

type trackedPacket struct {
	at                       time.Time
	start, key, end, padding bool
	layer                    int
}

const trackerGiveUp = 500 * time.Millisecond

func newFrameTracker(pli func(ssrc uint32)) *frameTracker {
	return &frameTracker{pkts: map[uint16]trackedPacket{}, pli: pli}
}

func (f *frameTracker) onPacket(kind webrtc.RTPCodecType, mime string, p *rtp.Packet, at time.Time) {
	if kind != webrtc.RTPCodecTypeVideo {
		return
	}
	f.mu.Lock()
	tp := trackedPacket{at: at, end: p.Marker, padding: len(p.Payload) == 0}
	if !tp.padding {
		var m client.Marker
		m, tp.start = client.ReadMarker(mime, p.Payload)
		tp.layer = m.Layer
		tp.key = tp.start && client.IsKeyframe(mime, p.Payload)
	}
	if !f.started && !tp.key {
		f.mu.Unlock()
		return
	}
	if !f.started {
		f.started, f.next = true, p.SequenceNumber
	}
	if int16(p.SequenceNumber-f.next) >= 0 {
		f.pkts[p.SequenceNumber] = tp
	}
	f.ssrc = p.SSRC
	ask := f.advance(at)
	f.mu.Unlock()
	if ask && f.pli != nil {
		f.pli(p.SSRC)
	}
}

// advance takes every frame that can be taken; it reports whether a gap
// was given up.
func (f *frameTracker) advance(now time.Time) (gaveUp bool) {
	for {
		for {
			p, ok := f.pkts[f.next]
			if !ok || !p.padding {
				break
			}
			delete(f.pkts, f.next)
			f.next++
		}
		end, latest, ok := f.frameAt(f.next)
		if ok {
			if l := f.pkts[f.next].layer; len(f.layers) == 0 || f.layers[len(f.layers)-1].Layer != l {
				f.layers = append(f.layers, client.LayerChange{At: latest, Layer: l})
			}
			for s := f.next; s != end+1; s++ {
				delete(f.pkts, s)
			}
			f.shown = append(f.shown, latest)
			f.next, f.stuck = end+1, time.Time{}
			continue
		}
		if f.stuck.IsZero() {
			f.stuck = now
		}
		if now.Sub(f.stuck) < trackerGiveUp {
			return gaveUp
		}
		// Given up: resume at the next keyframe that has arrived.
		key, found := uint16(0), false
		for s, p := range f.pkts {
			if p.key && int16(s-f.next) > 0 && (!found || int16(s-key) < 0) {
				key, found = s, true
			}
		}
		if !gaveUp {
			f.givenUp++
			gaveUp = true
		}
		if !found {
			return gaveUp
		}
		for s := range f.pkts {
			if int16(s-key) < 0 {
				delete(f.pkts, s)
			}
		}
		f.next, f.stuck = key, time.Time{}
	}
}

// frameAt returns the end of the complete frame that starts at seq and
// when its last packet arrived.
func (f *frameTracker) frameAt(seq uint16) (end uint16, latest time.Time, ok bool) {
	p, have := f.pkts[seq]
	if !have || !p.start {
		return 0, time.Time{}, false
	}
	for s := seq; s-seq < 2048; s++ {
		q, have := f.pkts[s]
		if !have {
			return 0, time.Time{}, false
		}
		if q.at.After(latest) {
			latest = q.at
		}
		if q.end {
			return s, latest, true
		}
	}
	return 0, time.Time{}, false
}

// frozen returns the share of [from, to] during which no new frame was
// shown for longer than 100 ms (three frames at 30 fps).
func (f *frameTracker) frozen(from, to time.Time) float64 {
	f.mu.Lock()
	shown := slices.Clone(f.shown)
	f.mu.Unlock()
	slices.SortFunc(shown, func(a, b time.Time) int { return a.Compare(b) })
	prev := from
	var frozen time.Duration
	for _, t := range shown {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		if gap := t.Sub(prev); gap > 100*time.Millisecond {
			frozen += gap - 100*time.Millisecond
		}
		prev = t
	}
	if gap := to.Sub(prev); gap > 100*time.Millisecond {
		frozen += gap - 100*time.Millisecond
	}
	return float64(frozen) / float64(to.Sub(from))
}

// layerFigures are what one capped viewer did.
type layerFigures struct {
	down, up     time.Duration // from the cap to the first lower layer; from the lift to the top again
	frozen       float64       // share of the capped time without a new frame
	changes      int           // layer changes in the run
	extra        int           // changes beyond the one down and the one up: oscillation
	reachedDown  bool
	reachedUpTop bool
}

func figures(layers []client.LayerChange, capAt, liftAt time.Time, fr *frameTracker) layerFigures {
	var f layerFigures
	wentDown := false
	for _, c := range layers {
		if c.At.Before(capAt) {
			continue
		}
		f.changes++
		switch {
		case !wentDown && c.Layer < 2 && c.At.Before(liftAt):
			wentDown, f.reachedDown, f.down = true, true, c.At.Sub(capAt)
		case wentDown && !f.reachedUpTop && c.Layer == 2 && !c.At.Before(liftAt):
			f.reachedUpTop, f.up = true, c.At.Sub(liftAt)
		}
	}
	f.extra = f.changes
	if f.reachedDown {
		f.extra--
	}
	if f.reachedUpTop {
		f.extra--
	}
	f.frozen = fr.frozen(capAt, liftAt)
	return f
}

// BenchmarkLayerChanges measures how viewers on a bottleneck change
// simulcast layers: a 3-layer H.264 simulcast publisher (150 k, 500 k,
// 1.2 Mbit/s) and 4 viewers with transport-cc; 2 of them are capped at
// 1 Mbit/s (a FIFO bottleneck with a 200 ms queue) from 10 s to 30 s, and
// watched until 40 s. Reported per capped viewer, as medians over the
// capped viewers of -benchtime runs: seconds to move down after the cap,
// the share of the capped time frozen, seconds to return to the top layer
// after the lift, and layer changes beyond that one down and one up.
// The "lossy" case adds 5% random loss and up to 50 ms of jitter (which
// reorders) to every viewer's link for the whole run. The link sits on the
// viewer's socket, before decryption, as a real one would; a viewer asks
// for a keyframe when a gap stays open for 500 ms, as a browser does.
// Each case runs with Glint's estimator ("glint") and with
// pion/interceptor's GCC in its place ("pion-gcc", see pionGCC).
//
//	go test -run '^$' -bench 'LayerChanges/glint' -benchtime 3x -timeout 30m ./signaling/
func BenchmarkLayerChanges(b *testing.B) {
	for _, est := range []struct {
		name string
		new  func() sfu.Estimator
	}{{"glint", nil}, {"pion-gcc", newPionGCC}} {
		for _, lossy := range []bool{false, true} {
			name := est.name + "/clean"
			if lossy {
				name = est.name + "/lossy"
			}
			b.Run(name, func(b *testing.B) { layerBench(b, est.new, lossy) })
		}
	}
}

// layerBench runs b.N layer runs and reports the capped viewers' medians.
func layerBench(b *testing.B, est func() sfu.Estimator, lossy bool) {
	var all []layerFigures
	for range b.N {
		all = append(all, layerRun(b, est, lossy)...)
	}
	med := func(get func(layerFigures) float64) float64 {
		v := make([]float64, len(all))
		for i, f := range all {
			v[i] = get(f)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(med(func(f layerFigures) float64 { return f.down.Seconds() }), "down-s")
	b.ReportMetric(med(func(f layerFigures) float64 { return f.frozen * 100 }), "frozen-%")
	b.ReportMetric(med(func(f layerFigures) float64 { return f.up.Seconds() }), "up-s")
	b.ReportMetric(med(func(f layerFigures) float64 { return float64(f.extra) }), "extra-changes")
	for i, f := range all {
		b.Logf("capped viewer %d: down %v (%v), frozen %.1f%%, up %v (%v), %d changes, %d extra",
			i, f.down.Round(time.Millisecond), f.reachedDown, f.frozen*100, f.up.Round(time.Millisecond), f.reachedUpTop, f.changes, f.extra)
	}
}

// layerRun is one 40 s run; it returns the capped viewers' figures.
func layerRun(b *testing.B, est func() sfu.Estimator, lossy bool) []layerFigures {
	b.Helper()
	n := startNode(b, nodeOptions{estimator: est})
	defer n.close()
	n.publish(b, client.PublisherConfig{Codec: "H264", Simulcast: true, Audio: true})
	eventually(b, 5*time.Second, "stream live", func() bool { return roomState(n) == "live" })
	type watcher struct {
		v    *client.Viewer
		link *client.Link
		fr   *frameTracker
	}
	var ws []watcher
	for range 4 {
		w := watcher{link: &client.Link{}}
		var viewer atomic.Pointer[client.Viewer]
		w.fr = newFrameTracker(func(ssrc uint32) {
			if v := viewer.Load(); v != nil {
				_ = v.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
			}
		})
		if lossy {
			w.link.SetLoss(0.05)
			w.link.SetJitter(50 * time.Millisecond)
		}
		w.v = n.view(b, client.ViewerConfig{OnPacket: w.fr.onPacket,
			Options: client.Options{Link: w.link, NACKRetries: 10}})
		viewer.Store(w.v)
		ws = append(ws, w)
	}
	start := time.Now()
	time.Sleep(10 * time.Second)
	capAt := time.Now()
	for _, w := range ws[:2] {
		w.link.SetRate(1_000_000)
	}
	time.Sleep(20 * time.Second)
	liftAt := time.Now()
	for _, w := range ws[:2] {
		w.link.SetRate(0)
	}
	time.Sleep(10 * time.Second)
	var out []layerFigures
	rtx, refused := n.Reg.Retransmits()
	b.Logf("retransmits %d, refused %d", rtx, refused)
	for i, w := range ws {
		s := w.v.Stats()
		w.fr.mu.Lock()
		layers := slices.Clone(w.fr.layers)
		w.fr.mu.Unlock()
		f := figures(layers, capAt, liftAt, w.fr)
		var timeline []string
		for _, c := range layers {
			timeline = append(timeline, fmt.Sprintf("%.1fs→%d", c.At.Sub(start).Seconds(), c.Layer))
		}
		w.fr.mu.Lock()
		shownIn, pending := 0, len(w.fr.pkts)
		var maxGap time.Duration
		prev := capAt
		for _, t := range w.fr.shown {
			if t.After(capAt) && t.Before(liftAt) {
				shownIn++
				maxGap = max(maxGap, t.Sub(prev))
				prev = t
			}
		}
		w.fr.mu.Unlock()
		b.Logf("viewer %d (capped %v): layers %v; link drops %d; %d frames shown while capped (longest gap %v), %d pending; packets missing %d of %d, frame gaps %d, given up %d",
			i, i < 2, timeline, w.link.Drops(), shownIn, maxGap.Round(time.Millisecond), pending, s.Missing, s.Expected, s.FrameGaps, w.fr.givenUp)
		if i < 2 {
			out = append(out, f)
			continue
		}
		if f.changes != 0 {
			b.Logf("uncapped viewer %d changed layers %d times after the cap", i, f.changes)
		}
	}
	return out
}
