package sfu

import (
	"slices"
)

// Layers nobody watches are not encoded: a publisher that can stop and
// restart its encodings (a page's, told over the glint data channel) is
// told which simulcast layers no viewer is on or bound for, a while after
// the last left, and which are wanted again as soon as one is. The
// lowest layer always runs, so a new viewer starts at once. A relay or
// the HLS bridge on the track takes every layer, so nothing pauses then.

// LayerPauser is a Source that can stop and restart its simulcast
// encodings. PauseLayers gets the rids to pause now (none: run them all)
// and reports whether the publisher can be told (a page without the
// channel cannot); it must not block.
type LayerPauser interface {
	PauseLayers(rids []string) bool
}

// pauseAfter is how long a layer goes unwatched before it is paused;
// resumeWait how long a layer asked back counts as sending before its
// first packets arrive.
const (
	pauseAfter = 3 * second
	resumeWait = 2 * second
)

// markWanted notes the layers the track's sinks take: a viewer's current
// and target layers, every layer for any other sink.
func (t *Track) markWanted(now int64) {
	for _, lane := range *t.sinks.Load() {
		for _, s := range lane {
			d, ok := s.(*DownTrack)
			if !ok {
				for _, l := range t.Layers() {
					l.lastWanted.Store(now)
				}
				return
			}
			if l := d.cur.Load(); l != nil {
				l.lastWanted.Store(now)
			}
			if l := d.target.Load(); l != nil {
				l.lastWanted.Store(now)
			}
		}
	}
}

// pauseUnwatched tells each publisher that can pause layers which of its
// video layers to pause, when that changed.
func (r *Stream) pauseUnwatched(now int64) {
	r.mu.Lock()
	var pubs []*Publication
	for _, p := range r.parts {
		if p.pub != nil && p.lostAt == 0 {
			pubs = append(pubs, p.pub)
		}
	}
	r.mu.Unlock()
	for _, pub := range pubs {
		lp, ok := pub.src.(LayerPauser)
		if !ok {
			continue
		}
		ls := pub.part.video.Layers() // lowest first
		var paused []string
		changed := false
		for i, l := range ls {
			if i == 0 || l.rid == "" {
				continue // the lowest always runs
			}
			last := max(l.lastWanted.Load(), l.since.Load())
			// Only a layer that is being sent is paused: one the encoder
			// stopped itself (its estimate) is not ours to bring back.
			sending := now-l.stats.lastArrival.Load() < 1500*millisecond
			pause := now-last >= pauseAfter && (l.paused.Load() || sending)
			if pause {
				paused = append(paused, l.rid)
			}
			changed = changed || pause != l.paused.Load()
		}
		if !changed {
			continue
		}
		slices.Sort(paused)
		if !lp.PauseLayers(paused) {
			continue // it cannot be told: it keeps sending them all
		}
		for _, l := range ls {
			want := slices.Contains(paused, l.rid)
			if l.paused.Swap(want) != want && !want {
				l.resumed.Store(now)
				l.RequestKeyframe(now) // back: start from a keyframe
			}
		}
	}
}
