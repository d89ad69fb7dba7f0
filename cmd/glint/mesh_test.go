package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/testredis"
	"github.com/glintlive/glint/relay"
)

// meshNode starts a glint process in the mesh on rs: stream demo with
// key, named id, HLS off, and extra flags.
func meshNode(t *testing.T, rs *testredis.Server, key, id string, extra ...string) *node {
	t.Helper()
	args := []string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--rtmp-listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--log-level", "warn", "--stream-key", "demo=" + key, "--redis", rs.URL(), "--node-id", id, "--hls-off"}
	return startNode(t, append(args, extra...)...)
}

// viewOn connects a pion viewer of demo on the node at base until the
// test ends.
func viewOn(t *testing.T, base string) *client.Viewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := client.View(ctx, client.ViewerConfig{Endpoint: base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatalf("a viewer on %s: %v", base, err)
	}
	t.Cleanup(func() { _ = v.Close(context.Background()) })
	return v
}

// growing waits for 50 more video packets at v.
func growing(t *testing.T, what string, v *client.Viewer) {
	t.Helper()
	start := v.Stats().VideoPackets
	for deadline := time.Now().Add(15 * time.Second); v.Stats().VideoPackets < start+50; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d video packets, then no more", what, v.Stats().VideoPackets)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// meshOf reads a node's GET /api/mesh.
func meshOf(t *testing.T, base string) (int, meshView) {
	t.Helper()
	code, body := get(t, base+"/api/mesh")
	var v meshView
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("GET /api/mesh: %s", body)
		}
	}
	return code, v
}

// waitMesh polls a node's view of the mesh until ok holds.
func waitMesh(t *testing.T, base, what string, ok func(meshView) bool) meshView {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, v := meshOf(t, base)
		if code == http.StatusOK && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the mesh as %s sees it: %d %+v", what, base, code, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two glint processes on one real redis-server form a mesh: each sees
// both in the directory with the stream's origin; a WHEP viewer that asks
// the node without the stream is served there, the stream relayed in from
// its origin on the origin's clock; the relay endpoint wants the cluster
// secret; with
// Redis gone, such a viewer is told to retry (503), and the directory is
// rebuilt from the nodes when Redis returns; a node killed drops out when
// its record expires. `glint mesh` prints the same.
func TestMeshRelaysAStreamToTheViewersNode(t *testing.T) {
	fullSuiteOnly(t, "two glint processes and redis-server")
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-test-stream-key"
	a, b := meshNode(t, rs, key, "node-a", "--stream-key", "other="+key), meshNode(t, rs, key, "node-b", "--stream-key", "other="+key)
	pub := publishH264Clip(t, a.base, key)
	v := waitMesh(t, b.base, "both nodes and the stream's origin", func(v meshView) bool {
		return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a"
	})
	if v.Self != "node-b" || v.Nodes[0].URL != a.base || v.Nodes[1].URL != b.base || len(v.Nodes[0].Origins) != 1 ||
		!strings.HasPrefix(v.Nodes[0].Media, "127.0.0.1:") || v.Nodes[0].Media == "127.0.0.1:0" {
		t.Fatalf("the mesh: %+v", v)
	}

	// Placement: B has no publisher for demo; it relays the stream in from
	// A and serves the viewer itself, on A's stream clock.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	viewer, err := client.View(ctx, client.ViewerConfig{Endpoint: b.base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatalf("a viewer on the node without the stream: %v", err)
	}
	defer func() { _ = viewer.Close(context.Background()) }()
	if !strings.HasPrefix(viewer.Resource.URL, b.base+"/") {
		t.Fatalf("the viewer's session is at %s, not on the node it asked", viewer.Resource.URL)
	}
	for deadline := time.Now().Add(10 * time.Second); viewer.Stats().VideoPackets < 50 || !viewer.Stats().FirstVideoKeyframe; {
		if time.Now().After(deadline) {
			t.Fatalf("the relayed viewer got %+v", viewer.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	liveFor := func(base string) float64 {
		_, body := get(t, base+"/api/streams/demo")
		var in struct {
			LiveSeconds float64 `json:"live_seconds"`
		}
		_ = json.Unmarshal([]byte(body), &in)
		return in.LiveSeconds
	}
	if la, lb := liveFor(a.base), liveFor(b.base); lb < la-0.3 || lb > la+0.3 {
		t.Fatalf("stream clocks: origin %.2f s, relay %.2f s", la, lb)
	}
	// Eight more viewers join on B at once: nothing more from A (one relay
	// session), and their keyframe requests reach the publisher coalesced.
	time.Sleep(time.Second)
	asked := pub.KeyframeRequests()
	var joins sync.WaitGroup
	for range 8 {
		joins.Go(func() {
			v, err := client.View(ctx, client.ViewerConfig{Endpoint: b.base + "/whep/demo", Options: client.Options{Loopback: true}})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { _ = v.Close(context.Background()) })
			for deadline := time.Now().Add(10 * time.Second); !v.Stats().FirstVideoKeyframe || v.Stats().VideoPackets < 10; {
				if time.Now().After(deadline) {
					t.Errorf("a joining viewer on B: %+v", v.Stats())
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	joins.Wait()
	if n := pub.KeyframeRequests() - asked; n > 4 {
		t.Errorf("8 joins on the edge cost the publisher %d keyframe requests", n)
	} else {
		t.Logf("8 joins on the edge cost the publisher %d keyframe requests", n)
	}
	// B carries the stream as a relay, not as its origin; the cluster
	// secret guards the relay endpoint.
	waitMesh(t, a.base, "one relay from A to B, and B no origin", func(v meshView) bool {
		return len(v.Nodes) == 2 && len(v.Nodes[1].Origins) == 0 && v.Origins["demo"] == "node-a" &&
			v.Nodes[1].Relays["demo"] == "node-a" && v.Nodes[0].Children == 1 && v.Nodes[1].Viewers == 9 && v.Nodes[1].EgressBPS > 100_000
	})
	for base, want := range map[string][]string{
		b.base: {"glint_mesh_relays_in 1", `glint_mesh_placements_total{result="relayed"} 1`, "glint_mesh_directory_reachable 1"},
		a.base: {"glint_mesh_relay_children 1", "glint_mesh_relays_in 0"},
	} {
		_, metrics := get(t, base+"/metrics")
		for _, w := range want {
			if !strings.Contains(metrics, w+"\n") {
				t.Errorf("%s/metrics lacks %q", base, w)
			}
		}
	}
	for _, c := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer not-the-secret", http.StatusForbidden}} {
		req, _ := http.NewRequest(http.MethodGet, a.base+"/relay/demo", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET /relay/demo with %q: %d, want %d", c.auth, resp.StatusCode, c.want)
		}
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"mesh", "--redis", rs.URL()}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "node-a") || !strings.Contains(out.String(), "node-b") || !strings.Contains(out.String(), "stream demo: origin node-a, node-a → node-b") {
		t.Fatalf("glint mesh: %v\n%s", err, out.String())
	}

	// Redis goes away: what is connected stays; new placements wait.
	publishH264ClipTo(t, a.base, "other", key)
	rs.Stop()
	time.Sleep(3 * time.Second) // a heartbeat fails
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, b.base+"/whep/other", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("placement without Redis: %d", resp.StatusCode)
	}
	before := viewer.Stats().VideoPackets
	time.Sleep(time.Second)
	if viewer.Stats().VideoPackets <= before {
		t.Fatal("the viewer stopped while Redis was down")
	}
	rs.Restart(0) // the same port; its data kept on disk, the records expired meanwhile or not
	waitMesh(t, b.base, "the directory rebuilt after Redis came back", func(v meshView) bool {
		return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a"
	})
	before = viewer.Stats().VideoPackets
	time.Sleep(time.Second)
	if viewer.Stats().VideoPackets <= before || viewer.States()[len(viewer.States())-1] != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer after Redis came back: %+v %v", viewer.Stats(), viewer.States())
	}

	// A node killed drops out when its record expires.
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.cmd = nil
	waitMesh(t, b.base, "the killed node gone", func(v meshView) bool {
		return len(v.Nodes) == 1 && v.Nodes[0].ID == "node-b" && v.Origins["demo"] == ""
	})
}

// Three glint processes on one redis-server with --relay-fanout 1: a
// viewer on B relays the stream from its origin A; a viewer on C, A being
// full, relays it from B (a relay of a relay), and one there behind a
// thin link moves down a layer. Then A is killed (-9) and
// the publisher comes back on C: C's local publication takes the stream
// over, B re-points its relay to C within the grace, and both viewers go
// on receiving on the sessions they had.
func TestMeshRelayTreeAndOriginFailover(t *testing.T) {
	fullSuiteOnly(t, "three glint processes and redis-server")
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-tree-stream-key"
	a, b, c := meshNode(t, rs, key, "node-a", "--relay-fanout", "1"), meshNode(t, rs, key, "node-b", "--relay-fanout", "1"),
		meshNode(t, rs, key, "node-c", "--relay-fanout", "1")
	publishH264Clip(t, a.base, key)
	waitMesh(t, b.base, "the origin", func(v meshView) bool { return len(v.Nodes) == 3 && v.Origins["demo"] == "node-a" })

	vb := viewOn(t, b.base)
	growing(t, "the viewer on B", vb)
	waitMesh(t, a.base, "B relaying from A", func(v meshView) bool { return v.Nodes[1].Relays["demo"] == "node-a" && v.Nodes[0].Children == 1 })
	vc := viewOn(t, c.base)
	growing(t, "the viewer on C", vc)
	waitMesh(t, a.base, "C relaying from B", func(v meshView) bool {
		return v.Nodes[2].Relays["demo"] == "node-b" && v.Nodes[1].Children == 1 && v.Nodes[0].Children == 1
	})
	for base, want := range map[string]string{b.base: `glint_mesh_relay_hops{from="node-a",stream="demo"} 1`, c.base: `glint_mesh_relay_hops{from="node-b",stream="demo"} 2`} {
		if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, want+"\n") {
			t.Errorf("%s/metrics lacks %s", base, want)
		}
	}

	// A viewer on C behind a thin link moves down to a lower layer: every
	// layer made it through both hops.
	thin := &client.Link{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	vt, err := client.View(ctx, client.ViewerConfig{Endpoint: c.base + "/whep/demo", Options: client.Options{Loopback: true, Link: thin}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = vt.Close(context.Background()) }()
	for deadline := time.Now().Add(15 * time.Second); vt.Stats().Layer != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("an unthrottled viewer on C never reached the top layer: %+v", vt.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	thin.SetRate(300_000)
	for deadline := time.Now().Add(15 * time.Second); vt.Stats().Layer != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("a viewer on C behind 300 kbit/s stayed on layer %d: %+v", vt.Stats().Layer, vt.Stats().Layers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = vt.Close(context.Background())

	// The origin dies; the publisher returns on C.
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.cmd = nil
	publishH264ClipTo(t, c.base, "demo", key)
	waitMesh(t, b.base, "C the origin, B relaying from it", func(v meshView) bool {
		return v.Origins["demo"] == "node-c" && len(v.Nodes) == 2 && v.Nodes[0].Relays["demo"] == "node-c"
	})
	growing(t, "the viewer on B after the failover", vb)
	growing(t, "the viewer on C after the failover", vc)
	if len(vb.States()) > 0 && vb.States()[len(vb.States())-1] != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer on B: %v", vb.States())
	}
}

// A publisher that goes live on another node takes the stream over
// mesh-wide: the former origin relays it from the new one (its publisher
// ended, its viewers kept), the directory names the new origin, and
// viewers on both nodes keep receiving on their sessions.
func TestMeshPublisherMovesToAnotherNode(t *testing.T) {
	fullSuiteOnly(t, "two glint processes and redis-server")
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-move-stream-key"
	a, b := meshNode(t, rs, key, "node-a"), meshNode(t, rs, key, "node-b")
	first := publishH264Clip(t, a.base, key)
	waitMesh(t, b.base, "the origin", func(v meshView) bool { return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a" })
	va, vb := viewOn(t, a.base), viewOn(t, b.base)
	growing(t, "the viewer on A", va)
	growing(t, "the viewer on B", vb)

	publishH264ClipTo(t, b.base, "demo", key)
	v := waitMesh(t, a.base, "B the origin, A relaying from it", func(v meshView) bool {
		return v.Origins["demo"] == "node-b" && v.Nodes[0].Relays["demo"] == "node-b" && len(v.Nodes[1].Relays) == 0
	})
	if len(v.Nodes[0].Origins) != 0 {
		t.Fatalf("A still claims the stream: %+v", v.Nodes[0])
	}
	growing(t, "the viewer on A after the move", va)
	growing(t, "the viewer on B after the move", vb)
	for deadline := time.Now().Add(10 * time.Second); first.PC.ConnectionState() == webrtc.PeerConnectionStateConnected; {
		if time.Now().After(deadline) {
			t.Fatal("the publisher on A is still connected after the takeover")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The watch page on an edge that dies (kill -9) plays again from another
// node of the mesh within seconds, without the viewer doing anything.
func TestBrowserWatchFailsOverToAnotherNode(t *testing.T) {
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-failover-stream-key"
	a, b := meshNode(t, rs, key, "node-a", "--cors-origin", "*"), meshNode(t, rs, key, "node-b", "--cors-origin", "*")
	publishH264Clip(t, a.base, key)
	waitMesh(t, b.base, "the origin", func(v meshView) bool { return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a" })
	page := openPage(browser(t), t, b.base+"/watch/demo", "playing from B",
		`window.glintWatch && glintWatch.frames > 10 && glintWatch.node === "`+b.base+`"`)
	// A pion viewer on B too, which follows the documented retry: it keeps
	// the node list, and when its node stops answering, views elsewhere.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pv, err := client.View(ctx, client.ViewerConfig{Endpoint: b.base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pv.Close(context.Background()) }()
	_, known := meshOf(t, b.base)
	var before float64
	page(`glintWatch.frames`, &before)
	killed := time.Now()
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
	for last := pv.Stats().VideoPackets; ; {
		time.Sleep(500 * time.Millisecond)
		if n := pv.Stats().VideoPackets; n == last {
			break // no media: the node is gone
		} else {
			last = n
		}
	}
	var moved *client.Viewer
	for _, n := range known.Nodes {
		if n.URL == b.base {
			continue
		}
		if moved, err = client.View(ctx, client.ViewerConfig{Endpoint: n.URL + "/whep/demo", Options: client.Options{Loopback: true}}); err == nil {
			break
		}
	}
	if moved == nil {
		t.Fatalf("the pion viewer found no other node: %v", err)
	}
	defer func() { _ = moved.Close(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); moved.Stats().VideoPackets < 50; {
		if time.Now().After(deadline) {
			t.Fatalf("the pion viewer on another node: %+v", moved.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the pion viewer played again on %s %.1f s after B was killed", moved.Resource.URL, time.Since(killed).Seconds())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Node   string
			Frames float64
		}
		page(`({node: glintWatch.node, frames: glintWatch.frames})`, &st)
		if st.Node == a.base && st.Frames > before+30 {
			t.Logf("playing from A %.1f s after B was killed", time.Since(killed).Seconds())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after B was killed: %+v (frames before %v)", st, before)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A viewer a node cannot take goes to the least loaded node with room that
// carries the stream already, else to the least loaded with room.
func TestElsewherePrefersNodesCarryingTheStream(t *testing.T) {
	nodes := []relay.Node{
		{ID: "self", URL: "http://self", Origins: []string{"demo"}},
		{ID: "full", URL: "http://full", Capacity: 10, Viewers: 10, Relays: map[string]string{"demo": "self"}},
		{ID: "busy", URL: "http://busy", Capacity: 10, Viewers: 8, Relays: map[string]string{"demo": "self"}},
		{ID: "idle", URL: "http://idle", Capacity: 10, Viewers: 1},
		{ID: "calm", URL: "http://calm", Capacity: 10, Viewers: 5, Relays: map[string]string{"demo": "busy"}},
	}
	if got := elsewhere(nodes, "self", "demo"); got != "http://calm" {
		t.Fatalf("carrying the stream: %s, want the least loaded of busy and calm", got)
	}
	if got := elsewhere(nodes, "self", "other"); got != "http://idle" {
		t.Fatalf("nobody carries it: %s, want the least loaded with room", got)
	}
	if got := elsewhere(nodes[:2], "self", "demo"); got != "" {
		t.Fatalf("no room anywhere: %s", got)
	}
}

// Chat posted on one node of the mesh reaches a watch page on another
// (relayed) node, shown there when its playhead reaches the message's
// stream time: the relay keeps the origin's stream clock.
func TestBrowserChatAcrossTheMesh(t *testing.T) {
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-chat-stream-key"
	a, b := meshNode(t, rs, key, "node-a"), meshNode(t, rs, key, "node-b")
	publishH264Clip(t, a.base, key)
	waitMesh(t, b.base, "the origin", func(v meshView) bool { return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a" })
	root := browser(t)
	ready := `window.glintWatch && glintWatch.playhead() !== null && glintWatch.frames > 10 && window.glintChat.transport && window.glintChat.transport.kind === "datachannel"`
	onA := openPage(root, t, a.base+"/watch/demo", "playing on the origin", ready)
	onB := openPage(root, t, b.base+"/watch/demo", "playing on the relay", ready)
	var pa, pb float64
	onA(`glintWatch.playhead()`, &pa)
	onB(`glintWatch.playhead()`, &pb)
	t.Logf("playheads: origin %.0f ms, relay %.0f ms", pa, pb)
	if d := pa - pb; d < -500 || d > 500 {
		t.Fatalf("the relay's stream clock is %.0f ms off the origin's", d)
	}
	st := int64(max(pa, pb)) + 300 // a moment both pages have yet to show
	seq := postChatAt(t, a.base, st, "across the mesh")
	var sa, sb *shownAt
	for deadline := time.Now().Add(10 * time.Second); (sa == nil || sb == nil) && time.Now().Before(deadline); {
		if sa == nil {
			sa = shownOn(onA, seq)
		}
		if sb == nil {
			sb = shownOn(onB, seq)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sa == nil || sb == nil || sa.Playhead == nil || sb.Playhead == nil {
		t.Fatalf("shown on the origin's page %+v, on the relay's %+v", sa, sb)
	}
	for name, s := range map[string]*shownAt{"origin": sa, "relay": sb} {
		if *s.Playhead < float64(st) || *s.Playhead > float64(st)+500 {
			t.Errorf("on the %s's page a message of stream time %d ms was shown at playhead %.0f ms", name, st, *s.Playhead)
		}
	}
}

// A Live Room across the mesh: the host and a guest publish to node A; a
// viewer with two slots on node B gets both, the guest relayed in a
// session of its own; a guest trying node B, which relays the stream, is
// told to go where the host is (409).
func TestMeshRelaysTheRoom(t *testing.T) {
	fullSuiteOnly(t, "two glint processes and redis-server")
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-room-stream-key"
	a, b := meshNode(t, rs, key, "node-a"), meshNode(t, rs, key, "node-b")
	publishH264Clip(t, a.base, key)
	waitMesh(t, b.base, "the origin", func(v meshView) bool { return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a" })
	invite := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, a.base+"/api/streams/demo/invites", strings.NewReader(`{"name":"Ann"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("invite: %d %v", resp.StatusCode, err)
		}
		return out.Token
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g, err := client.Publish(ctx, client.PublisherConfig{Endpoint: a.base + "/whip/demo", Token: invite(), Audio: true, Tag: 2,
		Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Stop() }()
	v, err := client.View(ctx, client.ViewerConfig{Endpoint: b.base + "/whep/demo", Slots: 2, Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = v.Close(context.Background()) }()
	// Transceivers go video, audio per slot: slot 1's video is mid 2.
	for deadline := time.Now().Add(20 * time.Second); ; {
		st, _ := v.SlotStats("2")
		if st.Tags[2] > 20 && st.LastTag == 2 {
			break
		}
		if time.Now().After(deadline) {
			_, body := get(t, b.base+"/api/streams/demo")
			t.Fatalf("the guest's video never reached the viewer on B: %+v; B says %s", st, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, _ := v.SlotStats("0"); st.Packets < 20 {
		t.Fatalf("the host's video on B: %+v", st)
	}
	_, err = client.Publish(ctx, client.PublisherConfig{Endpoint: b.base + "/whip/demo", Token: invite(), Options: client.Options{Loopback: true}})
	if !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("a guest on the relaying node: %v, want 409", err)
	}
}
