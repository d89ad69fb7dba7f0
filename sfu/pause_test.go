package sfu

import (
	"slices"
	"sync"
	"testing"
)

// pauser is a publisher that can pause its layers.
type pauser struct {
	testSource
	mu    sync.Mutex
	calls [][]string
}

func (p *pauser) PauseLayers(rids []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, slices.Clone(rids))
	return true
}

func (p *pauser) last() ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		return nil, 0
	}
	return p.calls[len(p.calls)-1], len(p.calls)
}

// A layer no viewer is on or bound for is paused a while after; the
// lowest always runs; a viewer wanting a paused layer brings it back.
func TestUnwatchedLayersPause(t *testing.T) {
	cfg := testConfig()
	cfg.KeyframeCache = 0
	reg := NewRegistry(cfg)
	now := second
	src := &pauser{}
	st := reg.Stream("demo")
	pub := st.StartPublication(HostID, src, now)
	var vs []*video
	for i, rid := range []string{"l", "m", "h"} {
		l, err := pub.AddLayer(rid, vp8Codec, ExtIDs{}, now)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, &video{l: l, ssrc: uint32(1000 + i), w: 320 << i, h: 180 << i})
	}
	frame := func(at int64) {
		for _, v := range vs {
			if !v.l.paused.Load() {
				v.frame(t, true, 1, at)
			}
		}
	}
	frame(now)
	sub, _ := subscribe(t, st, now)
	sub.SetPreferences(Preferences{RID: "l"}, now)
	for at := now; at <= now+5*second; at += second / 2 {
		frame(at)
		reg.Tick(at)
	}
	if got, _ := src.last(); !slices.Equal(got, []string{"h", "m"}) {
		t.Fatalf("with a viewer on l: paused %v, want h and m", got)
	}
	// The viewer asks for h: it comes back (m stays paused).
	at := now + 6*second
	sub.SetPreferences(Preferences{RID: "h"}, at)
	reg.Tick(at)
	if got, _ := src.last(); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("with a viewer wanting h: paused %v, want m alone", got)
	}
	if vs[2].l.paused.Load() || !vs[1].l.paused.Load() {
		t.Fatal("the layers' paused marks do not follow")
	}
	_, n := src.last()
	frame(at + second/4) // the publisher sends h again
	reg.Tick(at + second/2)
	if _, n2 := src.last(); n2 != n {
		t.Fatalf("the publisher was told again with nothing changed: %v", src.calls)
	}
}

// gopSource is an encoder that cannot be asked for keyframes (RTMP).
type gopSource struct{ testSource }

func (*gopSource) StartsFromGOP() bool { return true }

// A viewer of a source that cannot make keyframes on request starts at
// once from the last keyframe and the frames since, however much older
// than the keyframe cache that keyframe is.
func TestViewerStartsFromTheCachedGOP(t *testing.T) {
	reg := NewRegistry(testConfig()) // a 250 ms keyframe cache
	now := second
	st := reg.Stream("demo")
	src := &gopSource{}
	pub := st.StartPublication(HostID, src, now)
	l, err := pub.AddLayer("", vp8Codec, ExtIDs{}, now)
	if err != nil {
		t.Fatal(err)
	}
	v := &video{l: l, ssrc: 7, w: 320, h: 180}
	v.frame(t, true, 2, now)
	for i := 1; i <= 20; i++ { // 800 ms of frames after the keyframe
		v.frame(t, false, 1, now+int64(i)*40*millisecond)
	}
	asked := src.count(l)
	sub, rec := subscribe(t, st, now+800*millisecond)
	got := rec.all()
	if len(got) != 22 {
		t.Fatalf("the viewer got %d packets at once, want the GOP's 22", len(got))
	}
	if !vp8Keyframe(got[0].payload) {
		t.Fatal("the replay does not start with the keyframe")
	}
	if src.count(l) != asked {
		t.Fatal("a keyframe was asked of a source that cannot make one")
	}
	_ = sub
}

func vp8Keyframe(p []byte) bool {
	// The descriptor of vp8Payload is 4 bytes; a keyframe's tag has bit 0 clear.
	return len(p) > 4 && p[4]&0x01 == 0
}

// A viewer of a GOPSource whose top layer's GOP is too long to replay
// (an encoder's own, passed through) starts at once from a lower layer's
// cached GOP (the transcoder's short one) and moves up to the top at its
// next keyframe.
func TestViewerStartsFromALowerLayersGOP(t *testing.T) {
	reg := NewRegistry(testConfig())
	now := second
	st := reg.Stream("demo")
	pub := st.StartPublication(HostID, &gopSource{}, now)
	low, err := pub.AddLayer("l", vp8Codec, ExtIDs{}, now)
	if err != nil {
		t.Fatal(err)
	}
	high, err := pub.AddLayer("h", vp8Codec, ExtIDs{}, now)
	if err != nil {
		t.Fatal(err)
	}
	lv := &video{l: low, ssrc: 1, w: 160, h: 90}
	hv := &video{l: high, ssrc: 2, w: 640, h: 360}
	// The top's keyframe, then more packets than a replay may send; the low
	// layer's keyframe is recent.
	hv.frame(t, true, 20, now)
	for i := 1; i <= 60; i++ {
		at := now + int64(i)*33*millisecond
		hv.frame(t, false, 6, at)
		if i == 40 {
			lv.frame(t, true, 3, at)
		} else if i > 40 {
			lv.frame(t, false, 1, at)
		}
	}
	now += 2 * second
	sub, err := st.Subscribe("v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := sub.DownTracks()[1].Bind(rec, 4242, []Codec{{MimeType: "video/VP8", ClockRate: 90000, PayloadType: 100}}, ExtIDs{}); err != nil {
		t.Fatal(err)
	}
	sub.SetPreferences(Preferences{RID: "h"}, now)
	sub.Start(now)
	got := rec.all()
	if len(got) != 3+20 || !vp8Keyframe(got[0].payload) || vp8Width(got[0].payload) != 160 {
		t.Fatalf("the viewer got %d packets at once, want the low layer's GOP of 23 from its keyframe", len(got))
	}
	// The top's next keyframe: the viewer moves up.
	hv.frame(t, true, 20, now+10*millisecond)
	lv.frame(t, false, 1, now+20*millisecond)
	got = rec.all()
	last := got[len(got)-20]
	if !vp8Keyframe(last.payload) || vp8Width(last.payload) != 640 {
		t.Fatalf("after the top's keyframe the viewer got %d packets, not the top layer's keyframe", len(got))
	}
	checkContinuous(t, got)
	if cur := sub.DownTracks()[1].cur.Load(); cur != high {
		t.Fatalf("the viewer is on layer %v, not the top", cur)
	}
}
