package signaling_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
)

// frameTracker follows what a viewer could show: frames in timestamp
// order, each shown when all its packets have arrived and it is a keyframe
// or its predecessor was shown. A frame still incomplete a second after a
// newer one completed is lost, and so is every frame up to the next
// keyframe.
type frameTracker struct {
	mu       sync.Mutex
	received map[uint16]time.Time
	frames   []*trackedFrame // by timestamp order of arrival of their first packet
	shown    []time.Time     // when each shown frame became showable
	last     bool            // the previous frame in order was shown
}

type trackedFrame struct {
	ts          uint32
	first, end  uint16
	haveEnd     bool
	key         bool
	completedAt time.Time
}

func newFrameTracker() *frameTracker {
	return &frameTracker{received: map[uint16]time.Time{}}
}

func (f *frameTracker) onPacket(kind webrtc.RTPCodecType, mime string, p *rtp.Packet, at time.Time) {
	if kind != webrtc.RTPCodecTypeVideo || len(p.Payload) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.received[p.SequenceNumber] = at
	if _, ok := client.ReadMarker(mime, p.Payload); ok {
		f.frames = append(f.frames, &trackedFrame{ts: p.Timestamp, first: p.SequenceNumber, key: client.IsKeyframe(mime, p.Payload)})
	}
	if p.Marker {
		for i := len(f.frames) - 1; i >= 0 && i >= len(f.frames)-8; i-- {
			if fr := f.frames[i]; fr.ts == p.Timestamp {
				fr.end, fr.haveEnd = p.SequenceNumber, true
			}
		}
	}
	f.advance(at)
}

// advance shows, in order, the frames that can be shown.
func (f *frameTracker) advance(now time.Time) {
	for len(f.frames) > 0 {
		fr := f.frames[0]
		if fr.completedAt.IsZero() && fr.haveEnd {
			done := true
			var latest time.Time
			for s := fr.first; ; s++ {
				t, ok := f.received[s]
				if !ok {
					done = false
					break
				}
				if t.After(latest) {
					latest = t
				}
				if s == fr.end {
					break
				}
			}
			if done {
				fr.completedAt = latest
			}
		}
		switch {
		case !fr.completedAt.IsZero():
			if fr.key || f.last {
				f.shown = append(f.shown, fr.completedAt)
				f.last = true
			} else {
				f.last = false
			}
		case len(f.frames) > 1 && now.Sub(f.frames[1].firstSeen(f)) > time.Second:
			f.last = false // given up for lost
		default:
			return
		}
		for s := fr.first; s != fr.end+1 && fr.haveEnd; s++ {
			delete(f.received, s)
		}
		f.frames = f.frames[1:]
	}
}

func (fr *trackedFrame) firstSeen(f *frameTracker) time.Time { return f.received[fr.first] }

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

func figures(s client.ViewerStats, capAt, liftAt time.Time, fr *frameTracker) layerFigures {
	var f layerFigures
	wentDown := false
	for _, c := range s.Layers {
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
// The "lossy" case adds 5% random loss and up to 50 ms of jitter to every
// viewer's link for the whole run.
//
//	go test -run '^$' -bench LayerChanges -benchtime 3x ./signaling/
func BenchmarkLayerChanges(b *testing.B) {
	for _, lossy := range []bool{false, true} {
		name := "clean"
		if lossy {
			name = "lossy"
		}
		b.Run(name, func(b *testing.B) {
			var all []layerFigures
			for range b.N {
				all = append(all, layerRun(b, lossy)...)
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
		})
	}
}

// layerRun is one 40 s run; it returns the capped viewers' figures.
func layerRun(b *testing.B, lossy bool) []layerFigures {
	b.Helper()
	n := startNode(b, nodeOptions{})
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
		w := watcher{link: &client.Link{}, fr: newFrameTracker()}
		if lossy {
			w.link.SetLoss(0.05)
			w.link.SetJitter(50 * time.Millisecond)
		}
		w.v = n.view(b, client.ViewerConfig{OnPacket: w.fr.onPacket,
			Options: client.Options{Interceptors: []interceptor.Factory{w.link}, NACKRetries: 10}})
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
	for i, w := range ws {
		s := w.v.Stats()
		f := figures(s, capAt, liftAt, w.fr)
		if i < 2 {
			out = append(out, f)
			continue
		}
		if f.changes != 0 {
			b.Logf("uncapped viewer %d changed layers %d times after %v: %v", i, f.changes, capAt.Sub(start).Round(time.Second), fmt.Sprint(s.Layers))
		}
	}
	return out
}
