package sfu

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// broadcaster is a synthetic room participant: a video layer and an audio
// layer with RFC 6464 levels.
type broadcaster struct {
	src   *testSource
	pub   *Publication
	v     *video
	audio *Layer
	aseq  uint16
}

const testLevelExt = 1

func newBroadcaster(t *testing.T, st *Stream, id string, ssrc uint32, now int64) *broadcaster {
	t.Helper()
	b := &broadcaster{src: &testSource{}}
	if id == HostID {
		b.pub = st.StartPublication(HostID, b.src, now)
	} else {
		var err error
		if b.pub, err = st.Join(id, "guest "+id, b.src, now); err != nil {
			t.Fatalf("join %s: %v", id, err)
		}
	}
	l, err := b.pub.AddLayer("", vp8Codec, ExtIDs{}, now)
	if err != nil {
		t.Fatal(err)
	}
	b.v = &video{l: l, ssrc: ssrc, w: 320, h: 240}
	if b.audio, err = b.pub.AddLayer("", opusCodec, ExtIDs{AudioLevel: testLevelExt}, now); err != nil {
		t.Fatal(err)
	}
	return b
}

// speak sends an audio packet at the given level (0 loudest, 127 silent).
func (b *broadcaster) speak(t *testing.T, level uint8, now int64) {
	t.Helper()
	h := rtp.Header{PayloadType: 111, SequenceNumber: b.aseq, Timestamp: uint32(b.aseq) * 960, SSRC: b.v.ssrc + 1}
	if err := h.SetExtension(testLevelExt, []byte{0x80 | level}); err != nil {
		t.Fatal(err)
	}
	if err := b.audio.Ingest(marshal(t, h, []byte{0xfc, 1, 2, 3}), now); err != nil {
		t.Fatal(err)
	}
	b.aseq++
}

// roomViewer is a subscriber with n slots, each video slot recorded.
type roomViewer struct {
	sub    *Subscriber
	videos []*recorder
	rooms  atomic.Int32 // OnRoom calls
	// notHost counts OnRoom calls that found someone but the host in
	// slot 0, which is the host's.
	notHost atomic.Int32
}

func newRoomViewer(t *testing.T, st *Stream, n int, now int64) *roomViewer {
	t.Helper()
	sub, err := st.SubscribeSlots("v", n, "")
	if err != nil {
		t.Fatal(err)
	}
	rv := &roomViewer{sub: sub}
	sub.OnRoom(func() {
		rv.rooms.Add(1)
		if p := sub.Slots()[0].Participant; p != HostID && p != "" {
			rv.notHost.Add(1)
		}
	})
	for _, d := range sub.DownTracks() {
		c := opusCodec
		var w RTPWriter = &nullWriter{}
		if d.Kind() == KindVideo {
			c = vp8Codec
			rec := &recorder{}
			rv.videos = append(rv.videos, rec)
			w = rec
		}
		if _, err := d.Bind(w, uint32(100+len(rv.videos)), []Codec{c}, ExtIDs{}); err != nil {
			t.Fatal(err)
		}
	}
	sub.Start(now)
	return rv
}

func (rv *roomViewer) slots() []string {
	var out []string
	for _, s := range rv.sub.Slots() {
		out = append(out, s.Participant)
	}
	return out
}

func equalSlots(a []string, b ...string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRoomFillsAndEmptiesSlotsWithoutRenegotiation(t *testing.T) {
	reg := NewRegistry(testConfig())
	st := reg.Stream("room")
	now := Now()
	host := newBroadcaster(t, st, HostID, 1000, now)
	host.v.frame(t, true, 2, now)
	rv := newRoomViewer(t, st, 4, now)
	if got := rv.slots(); !equalSlots(got, HostID, "", "", "") {
		t.Fatalf("slots before guests = %q", got)
	}
	g1 := newBroadcaster(t, st, "g1", 2000, now)
	g2 := newBroadcaster(t, st, "g2", 3000, now)
	g3 := newBroadcaster(t, st, "g3", 4000, now)
	if got := rv.slots(); !equalSlots(got, HostID, "g1", "g2", "g3") {
		t.Fatalf("slots with three guests = %q", got)
	}
	if rv.rooms.Load() < 3 {
		t.Fatalf("OnRoom called %d times for three joins", rv.rooms.Load())
	}
	if _, err := st.Join("g4", "fifth", &testSource{}, now); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("a fifth broadcaster: %v, want ErrRoomFull", err)
	}
	for i, b := range []*broadcaster{host, g1, g2, g3} {
		b.v.frame(t, true, 2, now+int64(i))
	}
	for i, rec := range rv.videos {
		if n := len(rec.all()); n == 0 {
			t.Fatalf("slot %d got no video", i)
		}
	}
	// Every slot carries exactly its broadcaster: host frames only in slot 0.
	host.v.frame(t, false, 3, now+10)
	before := make([]int, 4)
	for i, rec := range rv.videos {
		before[i] = len(rec.all())
	}
	host.v.frame(t, false, 3, now+20)
	for i, rec := range rv.videos {
		grew := len(rec.all()) - before[i]
		if want := map[bool]int{true: 3, false: 0}[i == 0]; grew != want {
			t.Fatalf("slot %d got %d packets of a host frame, want %d", i, grew, want)
		}
	}

	// g2 leaves; g4 takes its slot on the same down track, and the
	// viewer's RTP stream continues without a gap.
	slot2 := rv.videos[2]
	last := slot2.all()[len(slot2.all())-1].h
	g2.pub.End(now + 30)
	if got := rv.slots(); !equalSlots(got, HostID, "g1", "", "g3") {
		t.Fatalf("slots after g2 left = %q", got)
	}
	g4 := newBroadcaster(t, st, "g4", 5000, now+40)
	if got := rv.slots(); !equalSlots(got, HostID, "g1", "g4", "g3") {
		t.Fatalf("slots after g4 joined = %q", got)
	}
	g4.v.frame(t, false, 2, now+50) // not a keyframe: not shown
	g4.v.frame(t, true, 2, now+60)
	got := slot2.all()
	first := got[len(got)-2].h
	if first.SSRC != last.SSRC || first.SequenceNumber != last.SequenceNumber+1 {
		t.Fatalf("g4's first packet in slot 2: ssrc %d seq %d; the slot's last was ssrc %d seq %d",
			first.SSRC, first.SequenceNumber, last.SSRC, last.SequenceNumber)
	}

	// The host removes g1: its connection closes, its slot empties.
	if err := st.Remove("g1", now+70); err != nil {
		t.Fatal(err)
	}
	if !g1.src.closed {
		t.Fatal("a removed guest's connection was not closed")
	}
	if got := rv.slots(); !equalSlots(got, HostID, "", "g4", "g3") {
		t.Fatalf("slots after g1 was removed = %q", got)
	}
	n := len(rv.videos[1].all())
	if err := g1.v.l.Ingest(marshal(t, rtp.Header{PayloadType: 96, SequenceNumber: 9, SSRC: 2000}, vp8Payload(true, 1, 320, 240, 10)), now+80); !errors.Is(err, ErrPublicationEnded) {
		t.Fatalf("a removed guest's layer took a packet: %v", err)
	}
	if len(rv.videos[1].all()) != n {
		t.Fatal("a removed guest's packets still reached a viewer")
	}
	if err := st.Remove(HostID, now); !errors.Is(err, ErrNoParticipant) {
		t.Fatalf("removing the host: %v, want ErrNoParticipant", err)
	}

	// The host ends the room: guests' connections close, viewers end.
	host.pub.End(now + 90)
	if !g3.src.closed || !g4.src.closed {
		t.Fatal("guests were not closed when the host ended the room")
	}
	if !rv.sub.Closed() {
		t.Fatal("the viewer was not ended with the room")
	}
	if bs := st.Broadcasters(); len(bs) != 0 {
		t.Fatalf("broadcasters after the room ended: %+v", bs)
	}
	if n := rv.notHost.Load(); n != 0 {
		t.Fatalf("slot 0 carried a guest %d times (on the room's way out)", n)
	}
}

func TestGuestNeedsALiveHost(t *testing.T) {
	st := NewRegistry(testConfig()).Stream("room")
	if _, err := st.Join("g1", "g", &testSource{}, Now()); !errors.Is(err, ErrNotLive) {
		t.Fatalf("joining an offline room: %v, want ErrNotLive", err)
	}
	if _, err := st.Join(HostID, "g", &testSource{}, Now()); !errors.Is(err, ErrBadParticipant) {
		t.Fatalf("joining as the host: %v, want ErrBadParticipant", err)
	}
}

func TestActiveSpeakerFollowsTheLouderVoice(t *testing.T) {
	reg := NewRegistry(testConfig())
	st := reg.Stream("room")
	now := Now()
	host := newBroadcaster(t, st, HostID, 1000, now)
	host.v.frame(t, true, 1, now)
	g1 := newBroadcaster(t, st, "g1", 2000, now)
	g2 := newBroadcaster(t, st, "g2", 3000, now)
	rv := newRoomViewer(t, st, 2, now) // room for the host and one guest
	if got := rv.slots(); !equalSlots(got, HostID, "g1") {
		t.Fatalf("slots = %q, want host and the first guest", got)
	}
	step := func(at int64, levels map[*broadcaster]uint8) {
		for range 25 { // half a second of 20 ms packets
			for b, lvl := range levels {
				b.speak(t, lvl, at)
			}
		}
		reg.Tick(at)
	}
	step(now+second, map[*broadcaster]uint8{host: 30, g1: 127, g2: 127})
	if sp := st.Speaker(); sp != HostID {
		t.Fatalf("speaker = %q, want the host", sp)
	}
	step(now+2*second, map[*broadcaster]uint8{host: 127, g1: 127, g2: 25})
	if sp := st.Speaker(); sp != "g2" {
		t.Fatalf("speaker = %q, want g2 (the only voice)", sp)
	}
	if got := rv.slots(); !equalSlots(got, HostID, "g2") {
		t.Fatalf("a two-slot viewer's slots = %q, want the host and the speaker", got)
	}
	// A pause keeps the speaker; a slightly louder voice does not take
	// over from one still speaking, a clearly louder one does.
	step(now+3*second, map[*broadcaster]uint8{host: 127, g1: 127, g2: 127})
	if sp := st.Speaker(); sp != "g2" {
		t.Fatalf("speaker after a pause = %q, want g2 still", sp)
	}
	step(now+4*second, map[*broadcaster]uint8{g1: 28, g2: 30})
	if sp := st.Speaker(); sp != "g2" {
		t.Fatalf("speaker = %q, want g2 kept against a voice 2 dB louder", sp)
	}
	step(now+5*second, map[*broadcaster]uint8{g1: 10, g2: 40})
	if sp := st.Speaker(); sp != "g1" {
		t.Fatalf("speaker = %q, want g1 (30 dB louder)", sp)
	}
	// Muted audio never speaks.
	if err := st.SetMuted("g1", KindAudio, true, now+5*second); err != nil {
		t.Fatal(err)
	}
	step(now+6*second, map[*broadcaster]uint8{g1: 0, g2: 50})
	if sp := st.Speaker(); sp != "g2" {
		t.Fatalf("speaker = %q with g1 muted, want g2", sp)
	}
	_ = g1
}

func TestMutedVideoReachesNobodyAndResumesAtAKeyframe(t *testing.T) {
	reg := NewRegistry(testConfig())
	st := reg.Stream("room")
	now := Now()
	host := newBroadcaster(t, st, HostID, 1000, now)
	host.v.frame(t, true, 1, now)
	g1 := newBroadcaster(t, st, "g1", 2000, now)
	rv := newRoomViewer(t, st, 2, now)
	g1.v.frame(t, true, 2, now)
	rec := rv.videos[1]
	n := len(rec.all())
	if n == 0 {
		t.Fatal("no video from g1 before the mute")
	}
	last := rec.all()[n-1].h
	if err := st.SetMuted("g1", KindVideo, true, now+1); err != nil {
		t.Fatal(err)
	}
	if bs := st.Broadcasters(); len(bs) != 2 || !bs[1].VideoMuted {
		t.Fatalf("broadcasters = %+v, want g1's video muted", bs)
	}
	mutedSeq := g1.v.seq
	g1.v.frame(t, true, 2, now+2)
	g1.v.frame(t, false, 2, now+3)
	if len(rec.all()) != n {
		t.Fatal("muted video reached a viewer")
	}
	var p Packet
	if g1.v.l.copyPacket(mutedSeq, &p) {
		t.Fatal("muted video was cached, where a NACK could fetch it")
	}
	asked := g1.src.count(g1.v.l)
	if err := st.SetMuted("g1", KindVideo, false, now+second); err != nil {
		t.Fatal(err)
	}
	if g1.src.count(g1.v.l) <= asked {
		t.Fatal("unmuting video did not ask for a keyframe")
	}
	g1.v.frame(t, false, 2, now+second+1) // waits for the keyframe
	g1.v.frame(t, true, 2, now+second+2)
	got := rec.all()
	if len(got) != n+2 {
		t.Fatalf("after unmuting: %d packets, want the keyframe's 2", len(got)-n)
	}
	if first := got[n].h; first.SequenceNumber != last.SequenceNumber+1 {
		t.Fatalf("after unmuting: seq %d follows %d", first.SequenceNumber, last.SequenceNumber)
	}
	if err := st.SetMuted("nobody", KindVideo, true, now); !errors.Is(err, ErrNoParticipant) {
		t.Fatalf("muting nobody: %v", err)
	}
	// What the host muted ends with the broadcast.
	if err := st.SetMuted(HostID, KindAudio, true, now); err != nil {
		t.Fatal(err)
	}
	host.pub.End(now + 2*second)
	st.StartPublication(HostID, &testSource{}, now+3*second)
	if bs := st.Broadcasters(); len(bs) != 1 || bs[0].AudioMuted {
		t.Fatalf("the next broadcast: %+v, want the host unmuted", bs)
	}
}

// simulcastGuest is a guest sending three simulcast layers with measured
// bitrates.
func simulcastGuest(t *testing.T, st *Stream, id string, ssrc uint32, now int64) []*video {
	t.Helper()
	pub, err := st.Join(id, id, &testSource{}, now)
	if err != nil {
		t.Fatal(err)
	}
	var out []*video
	for i, rid := range []string{"l", "m", "h"} {
		l, err := pub.AddLayer(rid, vp8Codec, ExtIDs{}, now)
		if err != nil {
			t.Fatal(err)
		}
		v := &video{l: l, ssrc: ssrc + uint32(i), w: 320 << i, h: 180 << i}
		v.frame(t, true, 2, now)
		l.stats.bitrate.Store([]uint64{150_000, 500_000, 1_200_000}[i])
		out = append(out, v)
	}
	return out
}

// The speaker's tile gets the layer the budget allows once the other
// tiles keep their lowest; when the speaker changes, so do the layers.
func TestSpeakerIsAllocatedFirst(t *testing.T) {
	now := second
	cfg := testConfig()
	cfg.KeyframeCache = 0
	reg := NewRegistry(cfg)
	s := newSimulcast(t, reg, now)
	s.frameAll(t, true, now)
	for i, br := range []uint64{150_000, 500_000, 1_200_000} {
		s.layers[i].l.stats.bitrate.Store(br)
	}
	simulcastGuest(t, s.stream, "g1", 2000, now)
	sub, err := s.stream.SubscribeSlots("v", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sub.DownTracks() {
		c := vp8Codec
		if d.Kind() == KindAudio {
			c = opusCodec
		}
		if _, err := d.Bind(&nullWriter{}, 1, []Codec{c}, ExtIDs{}); err != nil {
			t.Fatal(err)
		}
	}
	sub.Start(now)
	layers := func(speaker string) (host, guest string) {
		t.Helper()
		s.stream.mu.Lock()
		s.stream.setSpeakerLocked(speaker)
		s.stream.mu.Unlock()
		sub.mu.Lock()
		defer sub.mu.Unlock()
		sub.bwe.est = 1_600_000 // the top layer for one tile, not for two
		sub.allocateLocked(now)
		rid := func(d *DownTrack) string {
			if d.fw.target == nil {
				return ""
			}
			return d.fw.target.rid
		}
		return rid(sub.slots[0].video), rid(sub.slots[1].video)
	}
	if h, g := layers("g1"); h != "l" || g != "h" {
		t.Fatalf("g1 speaking: host on %q, g1 on %q; want l and h", h, g)
	}
	if h, g := layers(HostID); h != "h" || g != "l" {
		t.Fatalf("the host speaking: host on %q, g1 on %q; want h and l", h, g)
	}
	if h, g := layers(""); h == "h" && g == "h" {
		t.Fatalf("nobody speaking: both on h over a budget for one")
	}
}

// A guest whose connection drops keeps its slot through its grace and
// returns to it; past the grace the slot empties. The host's reconnect
// keeps the room.
func TestGuestGrace(t *testing.T) {
	cfg := testConfig()
	cfg.GuestGrace = time.Second
	reg := NewRegistry(cfg)
	st := reg.Stream("room")
	now := Now()
	host := newBroadcaster(t, st, HostID, 1000, now)
	host.v.frame(t, true, 1, now)
	g1 := newBroadcaster(t, st, "g1", 2000, now)
	rv := newRoomViewer(t, st, 3, now)
	g1.v.frame(t, true, 2, now)
	g1.pub.Lost(now)
	reg.Tick(now + second/2)
	if bs := st.Broadcasters(); len(bs) != 2 || bs[1].State != "reconnecting" {
		t.Fatalf("a dropped guest within its grace: %+v", bs)
	}
	back, err := st.Join("g1", "ignored", &testSource{}, now+second/2)
	if err != nil {
		t.Fatal(err)
	}
	if got := rv.slots(); !equalSlots(got, HostID, "g1", "") {
		t.Fatalf("slots after g1 returned = %q", got)
	}
	if bs := st.Broadcasters(); bs[1].Name != "guest g1" || bs[1].State != "live" {
		t.Fatalf("the returning guest: %+v (keeps its name)", bs[1])
	}
	// The host drops: the room waits with its guests.
	host.pub.Lost(now + second)
	reg.Tick(now + second + second/2)
	if st.State() != StateReconnecting || len(st.Broadcasters()) != 2 {
		t.Fatalf("the host reconnecting: %v, %+v", st.State(), st.Broadcasters())
	}
	host.pub = st.StartPublication(HostID, host.src, now+2*second)
	// g1 drops for good: gone after its grace (1 s), well inside the
	// host's (2 s).
	back.Lost(now + 2*second)
	reg.Tick(now + 3*second + 1)
	if got := rv.slots(); !equalSlots(got, HostID, "", "") {
		t.Fatalf("slots after g1's grace = %q", got)
	}
}
