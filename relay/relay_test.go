package relay

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/glintlive/glint/sfu"
)

type keySource struct{ asked atomic.Int32 }

func (k *keySource) RequestKeyframe(*sfu.Layer) { k.asked.Add(1) }
func (k *keySource) Close() error               { return nil }

// counter counts the packets a track delivers, by rid.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Deliver(l *sfu.Layer, _ *sfu.Packet) {
	c.mu.Lock()
	c.n[l.RID()]++
	c.mu.Unlock()
}

func (c *counter) get(rid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[rid]
}

// originAndEdge makes two nodes' registries and serves the first's
// Origin over real HTTP; newEdge makes an Edge into the second with the
// same cluster secret, on loopback.
func originAndEdge(t *testing.T) (regA, regB *sfu.Registry, origin *Origin, originURL string, newEdge func(linger time.Duration) *Edge) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	secret := func() string { return "a-cluster-secret-of-32-characters!" }
	tr := Transport{IPs: []string{"127.0.0.1"}}
	regA, regB = sfu.NewRegistry(sfu.DefaultConfig()), sfu.NewRegistry(sfu.DefaultConfig())
	t.Cleanup(regA.Close)
	t.Cleanup(regB.Close)
	origin = &Origin{Registry: regA, Secret: secret, Transport: tr, Log: log}
	hs := httptest.NewServer(origin)
	t.Cleanup(hs.Close)
	t.Cleanup(origin.Close)
	return regA, regB, origin, hs.URL, func(linger time.Duration) *Edge {
		return &Edge{Registry: regB, Secret: secret, Transport: tr, Log: log, Linger: linger}
	}
}

// An edge pulls every layer and the audio of a stream from an origin
// (two registries, pion at both ends over loopback, the relay endpoint over
// real HTTP): the packets arrive in the edge's layers, the edge's stream
// clock is the origin's, a keyframe request at the edge reaches the
// origin's publisher, and the relay ends with the edge.
func TestEdgePullsEveryLayer(t *testing.T) {
	regA, regB, origin, originURL, newEdge := originAndEdge(t)

	src := &keySource{}
	stA := regA.Stream("demo")
	var feeding sync.WaitGroup
	defer feeding.Wait()
	publish := func() context.CancelFunc {
		pub := stA.StartPublication(sfu.HostID, src, sfu.Now())
		var layers []*sfu.Layer
		for _, rid := range []string{"l", "h"} {
			l, err := pub.AddLayer(rid, sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now())
			if err != nil {
				t.Fatal(err)
			}
			layers = append(layers, l)
		}
		audio, err := pub.AddLayer("", sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, sfu.ExtIDs{}, sfu.Now())
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		feeding.Go(func() { feed(ctx, layers, audio) })
		return stop
	}
	stop := publish()
	defer func() { stop() }()
	time.Sleep(300 * time.Millisecond) // a stream clock worth aligning to

	edge := newEdge(3 * time.Second)
	defer edge.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wrong := newEdge(0)
	wrong.Secret = func() string { return "wrong" }
	if err := wrong.Pull(pctx, "demo", "a", originURL); err == nil {
		t.Fatal("a pull with the wrong secret succeeded")
	}
	if err := edge.Pull(pctx, "demo", "a", originURL); err != nil {
		t.Fatal(err)
	}
	if edge.Relayed()["demo"] != "a" || origin.Active() != 1 {
		t.Fatalf("relayed %v, origin sessions %d", edge.Relayed(), origin.Active())
	}
	stB := regB.Lookup("demo")
	msA, _ := stA.StreamTime(sfu.Now())
	msB, _ := stB.StreamTime(sfu.Now())
	if msB < msA-50 || msB > msA+50 {
		t.Fatalf("stream clocks: origin %d ms, edge %d ms", msA, msB)
	}
	c := &counter{n: map[string]int{}}
	audioB, videoB := stB.Tracks()
	videoB.AddSink(c)
	audioB.AddSink(c)
	deadline := time.Now().Add(10 * time.Second)
	for c.get("l") < 20 || c.get("h") < 20 || c.get("") < 20 || len(videoB.Layers()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("at the edge: %v, %d video layers", c.n, len(videoB.Layers()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := src.asked.Load()
	time.Sleep(600 * time.Millisecond) // past the core's keyframe interval
	videoB.Layers()[1].RequestKeyframe(sfu.Now())
	for src.asked.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("a keyframe request at the edge never reached the publisher")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The publisher comes back at the origin (new layers of the same
	// rids): the relay goes on.
	stop()
	stop = publish()
	l, h := c.get("l"), c.get("h")
	for c.get("l") < l+20 || c.get("h") < h+20 {
		if time.Now().After(deadline) {
			t.Fatalf("after the publisher returned: %v", c.n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// No viewer: the relay lingers, then ends.
	for edge.Relayed()["demo"] != "" || origin.Active() != 0 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("the relay outlived its linger: %v, %d", edge.Relayed(), origin.Active())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// feed sends VP8 on layers (a keyframe every 25 frames) and Opus on
// audio every 20 ms until ctx ends.
func feed(ctx context.Context, layers []*sfu.Layer, audio *sfu.Layer) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for li, l := range layers {
			key := byte(1) // VP8: bit 0 clear on keyframes
			if i%25 == 0 {
				key = 0
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i), Timestamp: uint32(i * 1800), SSRC: uint32(10 + li), Marker: true},
				Payload: []byte{0x10, key, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}}
			b, _ := p.Marshal()
			_ = l.Ingest(b, sfu.Now())
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), SSRC: 20, Marker: true},
			Payload: []byte{0xfc, 0xff, 0xfe}}
		b, _ := p.Marshal()
		_ = audio.Ingest(b, sfu.Now())
	}
}

// A Live Room across the mesh: the edge relaying the host relays each
// guest too, who joins the edge's copy of the room; mutes are mirrored,
// and a guest leaving at the origin leaves at the edge.
func TestEdgeRelaysTheRoom(t *testing.T) {
	regA, regB, origin, originURL, newEdge := originAndEdge(t)
	stA := regA.Stream("demo")
	var feeding sync.WaitGroup
	defer feeding.Wait()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	add := func(pub *sfu.Publication) {
		v, err := pub.AddLayer("", sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now())
		if err != nil {
			t.Fatal(err)
		}
		a, err := pub.AddLayer("", sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, sfu.ExtIDs{}, sfu.Now())
		if err != nil {
			t.Fatal(err)
		}
		feeding.Go(func() { feed(ctx, []*sfu.Layer{v}, a) })
	}
	add(stA.StartPublication(sfu.HostID, &keySource{}, sfu.Now()))
	guest, err := stA.Join("g1", "Ann", &keySource{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	add(guest)

	edge := newEdge(time.Minute)
	defer edge.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := edge.Pull(pctx, "demo", "a", originURL); err != nil {
		t.Fatal(err)
	}
	stB := regB.Lookup("demo")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: edge %+v", what, stB.Broadcasters())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the guest at the edge", func() bool {
		bs := stB.Broadcasters()
		return len(bs) == 2 && bs[1].ID == "g1" && bs[1].Name == "Ann"
	})
	c := &counter{n: map[string]int{}}
	_, gv := stB.Participant("g1")
	gv.AddSink(c)
	waitFor("the guest's video at the edge", func() bool { return c.get("") > 20 })
	if origin.Active() != 2 || origin.ChildrenOf("demo") != 1 {
		t.Fatalf("origin serves %d relay sessions, %d children of demo; want 2 (host and guest) to 1 node", origin.Active(), origin.ChildrenOf("demo"))
	}
	if err := stA.SetMuted("g1", sfu.KindVideo, true, sfu.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor("the guest shown muted at the edge", func() bool {
		bs := stB.Broadcasters()
		return len(bs) == 2 && bs[1].VideoMuted
	})
	guest.End(sfu.Now())
	waitFor("the guest gone at the edge", func() bool { return len(stB.Broadcasters()) == 1 })
}
