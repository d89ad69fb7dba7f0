package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/glintlive/glint/internal/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe to read while serve writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a node started by launch.
type running struct {
	URL     string
	Out     *syncBuffer
	DataDir string
	stop    func() error
	once    sync.Once
	err     error
}

// Stop shuts the node down as SIGTERM does and returns serve's error.
func (r *running) Stop() error {
	r.once.Do(func() { r.err = r.stop() })
	return r.err
}

// launch runs a node on loopback until the test ends or Stop is called.
func launch(t testing.TB, args ...string) *running {
	t.Helper()
	base := []string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--rtmp-listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--log-level", "warn", "--ice-disconnected-timeout", "2s", "--ice-failed-timeout", "2s"}
	cfg, err := loadConfig(append(base, args...), envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, out, out, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	r := &running{URL: "http://" + addr, Out: out, DataDir: cfg.DataDir, stop: func() error { cancel(); return <-done }}
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// startServe runs a node on loopback and returns its base URL and output.
func startServe(t testing.TB, args ...string) (string, *syncBuffer) {
	t.Helper()
	r := launch(t, args...)
	return r.URL, r.Out
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeWithNoConfigCreatesDemo(t *testing.T) {
	base, out := startServe(t)
	text := out.String()
	for _, want := range []string{`Stream "demo" (new)`, "stream key: ", base + "/live", base + "/watch/demo", base + "/whip/demo"} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	for path, want := range map[string]string{
		"/":                 "Live now",
		"/live":             "Go live",
		"/watch/demo":       "whep",
		"/static/glint.js":  "export async function post",
		"/api/streams":      `"name":"demo"`,
		"/healthz":          "ok",
		"/metrics":          "glint_sessions",
		"/api/streams/demo": `"state":"offline"`,
		"/static/style.css": "--accent",
		"/watch/demo?x=1":   "requestVideoFrameCallback",
	} {
		code, body := get(t, base+path)
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	if code, _ := get(t, base+"/nothing-here"); code != 404 {
		t.Errorf("unknown page: %d", code)
	}
}

// The demo key survives restarts, and is printed only when it is made.
func TestServeKeepsKeysAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	keyOf := func() string {
		cfg, err := loadConfig([]string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--rtmp-listen", "127.0.0.1:0", "--data-dir", dir}, envOf(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := &syncBuffer{}
		ready := make(chan string, 1)
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, out, io.Discard, ready) }()
		<-ready
		cancel()
		<-done
		_, after, _ := strings.Cut(out.String(), "stream key: ")
		return strings.TrimSpace(strings.SplitN(after, "\n", 2)[0])
	}
	first, again := keyOf(), keyOf()
	raw, err := os.ReadFile(filepath.Join(dir, "streams.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct{ Streams map[string]string }
	_ = json.Unmarshal(raw, &saved)
	second := saved.Streams["demo"]
	if len(first) < 16 || again != "in "+filepath.Join(dir, "streams.json") {
		t.Fatalf("first start printed key %q, the second %q: the key is printed once, then where it is kept", first, again)
	}
	if first != second {
		t.Fatalf("demo key changed across restarts: %q then %q", first, second)
	}
}

// A watch page holds its WHEP session's event stream open. Shutting down
// (SIGTERM) ends the session and that stream and returns without error,
// well within the drain deadline.
func TestShutdownWithAWatchPageOpen(t *testing.T) {
	const key = "shutdown-test-key-123"
	node := launch(t, "--stream-key", "demo="+key)
	pub, err := client.Publish(context.Background(), client.PublisherConfig{Endpoint: node.URL + "/whip/demo", Token: key,
		Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	v, err := client.View(ctx, client.ViewerConfig{Endpoint: node.URL + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = v.Close(context.Background()) }()
	events := ""
	for _, l := range v.Resource.Links {
		if strings.Contains(l, "server-sent-events") {
			events = l[strings.Index(l, "<")+1 : strings.Index(l, ">")]
		}
	}
	if events == "" {
		t.Fatalf("no events link: %v", v.Resource.Links)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, node.URL+events, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	buf := make([]byte, 4096)
	if n, err := resp.Body.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "event: ") {
		t.Fatalf("event stream: %q %v", buf[:n], err)
	}
	streamDone := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(resp.Body)
		streamDone <- string(rest)
	}()

	start := time.Now()
	if err := node.Stop(); err != nil {
		t.Fatalf("shutdown with an event stream open: %v", err)
	}
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("shutdown took %v with an event stream open, want under 3 s", took)
	}
	select {
	case rest := <-streamDone:
		if !strings.Contains(rest, `"state":"ended"`) {
			t.Errorf("the event stream ended without saying so: %q", rest)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the event stream is still open after shutdown")
	}
	t.Logf("shutdown with an open event stream took %v", took.Round(time.Millisecond))
}

// Operational exposure: with --metrics-listen, /metrics (which names every
// stream) is only on its own listener; session ids, which authorise
// PATCH and DELETE of a viewer's session, are not logged at info.
func TestMetricsListenerAndQuietLogs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	_ = l.Close()
	const key = "exposure-test-key-123"
	node := launch(t, "--stream-key", "demo="+key, "--metrics-listen", metricsAddr, "--log-level", "info")
	if code, _ := get(t, node.URL+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the public listener: %d, want 404", code)
	}
	var code int
	deadline := time.Now().Add(3 * time.Second)
	for code != http.StatusOK && time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
			code = resp.StatusCode
			_ = resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("/metrics on its own listener: %d", code)
	}
	pub, err := client.Publish(context.Background(), client.PublisherConfig{Endpoint: node.URL + "/whip/demo", Token: key,
		Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := client.View(ctx, client.ViewerConfig{Endpoint: node.URL + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = v.Close(context.Background()) }()
	logs := node.Out.String()
	for _, loc := range []string{pub.Resource.URL, v.Resource.URL} {
		id := loc[strings.LastIndex(loc, "/")+1:]
		if strings.Contains(logs, id) {
			t.Fatalf("the session id %s is in the info log:\n%s", id, logs)
		}
	}
	if strings.Count(logs, key) != 0 {
		t.Fatal("the stream key is in the log")
	}
}

// An RTMP encoder (ffmpeg: H.264 with B-frames, AAC) publishes to the
// node with the stream key, as OBS is set up: a pion WHEP viewer gets
// H.264 video and Opus audio; a wrong key is refused.
func TestRTMPPublisherReachesAWebRTCViewer(t *testing.T) {
	ffmpeg(t)
	const ff = "ffmpeg"
	const key = "rtmp-serve-test-key-1"
	base, out := startServe(t, "--stream-key", "demo="+key, "--hls-off")
	m := regexp.MustCompile(`RTMP: +(rtmp://\S+/live)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the banner names no RTMP URL:\n%s", out.String())
	}
	bframes := "2"
	encoder := func(ctx context.Context, url string, d time.Duration) *exec.Cmd {
		return exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
			"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
			"-t", fmt.Sprint(d.Seconds()), "-c:v", "libx264", "-preset", "veryfast", "-bf", bframes, "-g", "30", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k", "-f", "flv", url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if b, err := encoder(ctx, m[1]+"/not-the-key-0000000", time.Second).CombinedOutput(); err == nil {
		t.Fatalf("a wrong key was taken: %s", b)
	}
	enc := encoder(ctx, m[1]+"/"+key, 20*time.Second)
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = enc.Process.Kill(); _ = enc.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, body := get(t, base+"/api/streams/demo"); strings.Contains(body, `"state":"live"`) && strings.Contains(body, `"video/H264"`) {
			break
		}
		if time.Now().After(deadline) {
			_, body := get(t, base+"/api/streams/demo")
			t.Fatalf("the RTMP stream never went live: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The API says how the stream comes in, and where encoders publish.
	if _, body := get(t, base+"/api/streams/demo"); !strings.Contains(body, `"ingest":{"protocol":"rtmp"`) || !strings.Contains(body, `"video":"H.264 320x180"`) ||
		!strings.Contains(body, `"passthrough":false`) {
		t.Fatalf("the stream's ingest: %s", body)
	}
	if _, body := get(t, base+"/api/ingest"); !strings.Contains(body, `"rtmp":"`+m[1]+`"`) {
		t.Fatalf("GET /api/ingest: %s, want the banner's %s", body, m[1])
	}
	vctx, vcancel := context.WithTimeout(ctx, 15*time.Second)
	defer vcancel()
	v, err := client.View(vctx, client.ViewerConfig{Endpoint: base + "/whep/demo", Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = v.Close(context.Background()) }()
	for deadline := time.Now().Add(15 * time.Second); v.Stats().VideoPackets < 30 || v.Stats().AudioPackets < 50 || !v.Stats().FirstVideoKeyframe; {
		if time.Now().After(deadline) {
			t.Fatalf("the WebRTC viewer of the RTMP stream got %+v", v.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := v.Stats(); s.SSRCChanges != 0 || s.SeqJumps > 2 {
		t.Fatalf("a broken stream: %+v", s)
	}
	// The encoder is killed and started again within the grace: the
	// viewer's session goes on, on the same tracks.
	_ = enc.Process.Kill()
	_ = enc.Wait()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if _, body := get(t, base+"/api/streams/demo"); strings.Contains(body, `"state":"reconnecting"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream did not wait for its encoder")
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := v.Stats().VideoPackets
	bframes = "0"
	enc = encoder(ctx, m[1]+"/"+key, 20*time.Second)
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); v.Stats().VideoPackets < before+30; {
		if time.Now().After(deadline) {
			t.Fatalf("after the encoder came back the viewer got %+v", v.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := v.Stats(); s.SSRCChanges != 0 {
		t.Fatalf("the viewer's stream changed SSRC across the encoder's return: %+v", s)
	}
	if _, body := get(t, base+"/api/streams/demo"); !strings.Contains(body, `"passthrough":true`) {
		t.Fatalf("without B-frames the video is not passed through: %s", body)
	}
}
