package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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

// startServe runs a node on loopback and returns its base URL and output.
func startServe(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	base := []string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--data-dir", t.TempDir(),
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
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + addr, out
}

func get(t *testing.T, url string) (int, string) {
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

func TestServeKeepsKeysAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	keyOf := func() string {
		cfg, err := loadConfig([]string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--data-dir", dir}, envOf(nil), io.Discard)
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
	first, second := keyOf(), keyOf()
	if first == "" || first != second {
		t.Fatalf("demo key changed across restarts: %q then %q", first, second)
	}
}
