package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/testredis"
)

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
// the node without the stream is sent (307) to the origin and plays; with
// Redis gone, such a viewer is told to retry (503), and the directory is
// rebuilt from the nodes when Redis returns; a node killed drops out when
// its record expires. `glint mesh` prints the same.
func TestMeshPlacesViewersOnTheOrigin(t *testing.T) {
	fullSuiteOnly(t, "two glint processes and redis-server")
	ffmpeg(t)
	rs := testredis.Start(t)
	const key = "mesh-test-stream-key"
	args := func(id string) []string {
		return []string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--data-dir", t.TempDir(),
			"--log-level", "warn", "--stream-key", "demo=" + key, "--redis", rs.URL(), "--node-id", id, "--hls-off"}
	}
	a, b := startNode(t, args("node-a")...), startNode(t, args("node-b")...)
	publishH264Clip(t, a.base, key)
	v := waitMesh(t, b.base, "both nodes and the stream's origin", func(v meshView) bool {
		return len(v.Nodes) == 2 && v.Origins["demo"] == "node-a"
	})
	if v.Self != "node-b" || v.Nodes[0].URL != a.base || v.Nodes[1].URL != b.base || len(v.Nodes[0].Origins) != 1 {
		t.Fatalf("the mesh: %+v", v)
	}

	// Placement: B has no publisher for demo; it sends the viewer to A.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, b.base+"/whep/demo", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != a.base+"/whep/demo" {
		t.Fatalf("WHEP on the node without the stream: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	viewer, err := client.View(ctx, client.ViewerConfig{Endpoint: b.base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatalf("a viewer following the redirect: %v", err)
	}
	defer func() { _ = viewer.Close(context.Background()) }()
	if !strings.HasPrefix(viewer.Resource.URL, a.base+"/") {
		t.Fatalf("the viewer's session is at %s, not on the origin", viewer.Resource.URL)
	}
	for deadline := time.Now().Add(10 * time.Second); viewer.Stats().VideoPackets < 50; {
		if time.Now().After(deadline) {
			t.Fatalf("the redirected viewer got %+v", viewer.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"mesh", "--redis", rs.URL()}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "node-a") || !strings.Contains(out.String(), "node-b") || !strings.Contains(out.String(), "stream demo: origin node-a") {
		t.Fatalf("glint mesh: %v\n%s", err, out.String())
	}

	// Redis goes away: what is connected stays; new placements wait.
	rs.Stop()
	time.Sleep(3 * time.Second) // a heartbeat fails
	req, _ = http.NewRequest(http.MethodPost, b.base+"/whep/demo", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	resp, err = noFollow.Do(req)
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

	// A node killed drops out when its record expires.
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
	a.cmd = nil
	waitMesh(t, b.base, "the killed node gone", func(v meshView) bool {
		return len(v.Nodes) == 1 && v.Nodes[0].ID == "node-b" && v.Origins["demo"] == ""
	})
}
