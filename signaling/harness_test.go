package signaling_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/sdpcheck"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
)

const testKey = "test-key-1234567"

// node is a Glint node on loopback: real UDP and TCP sockets on 127.0.0.1,
// real HTTP.
type node struct {
	URL  string
	Reg  *sfu.Registry
	Peer *peer.Endpoint
	Srv  *signaling.Server
	http *httptest.Server
	stop context.CancelFunc
	done chan struct{}
}

type nodeOptions struct {
	grace       time.Duration
	maxSessions int
	iceServers  []signaling.ICEServer
	tcp         bool
	publicIPs   []string
	limits      func(*signaling.Config) // sets admission limits for a test
	estimator   func() sfu.Estimator    // in place of the core's own (BenchmarkLayerChanges)
}

func startNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	return startNodeWith(t, o, nil)
}

func startNodeWith(t testing.TB, o nodeOptions, listenTCP func(network, addr string) (net.Listener, error)) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("GLINT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	keys, _, err := signaling.LoadKeys(t.TempDir(), map[string]string{"demo": testKey, "other": "other-key-123456"})
	if err != nil {
		t.Fatal(err)
	}
	sc := sfu.DefaultConfig()
	sc.ReconnectGrace = o.grace
	if sc.ReconnectGrace == 0 {
		sc.ReconnectGrace = 30 * time.Second
	}
	sc.Workers = 2 // lanes, as glint serve runs them on two cores
	sc.NewEstimator = o.estimator
	reg := sfu.NewRegistry(sc)
	pc := peer.DefaultConfig()
	pc.Port = 0
	pc.IPs = []string{"127.0.0.1"}
	pc.TCP = o.tcp
	pc.PublicIPs = o.publicIPs
	pc.ListenTCP = listenTCP
	pc.ICEDisconnectedTimeout, pc.ICEFailedTimeout, pc.ICEKeepalive = time.Second, time.Second, 300*time.Millisecond
	pn, err := peer.NewEndpoint(pc, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := signaling.DefaultConfig()
	if o.maxSessions > 0 {
		cfg.MaxSessions = o.maxSessions
		cfg.PublisherSlots = min(cfg.PublisherSlots, o.maxSessions-1)
	}
	// Every test client comes from 127.0.0.1: the per-address limits are
	// off unless a test is about them.
	cfg.MaxViewersPerAddress, cfg.OfferRate = 1_000_000, 0
	if o.limits != nil {
		o.limits(&cfg)
	}
	cfg.ICEServers = o.iceServers
	srv, err := signaling.New(cfg, keys, reg, pn, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(checkAnswers(t, srv.Handler()))
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{URL: hs.URL, Reg: reg, Peer: pn, Srv: srv, http: hs, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		go func() { _ = pn.Run(ctx) }()
		_ = reg.Run(ctx)
	}()
	t.Cleanup(n.close)
	return n
}

// close shuts the node down as glint serve does: sessions (and with them
// the event streams pages hold open) end first, then the HTTP server.
func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.Srv.Shutdown(ctx)
	n.http.Close()
	n.stop()
	<-n.done
	_ = n.Peer.Close()
	n.Reg.Close()
}

func (n *node) publish(t testing.TB, cfg client.PublisherConfig) *client.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.Endpoint == "" {
		cfg.Endpoint = n.URL + "/whip/demo"
	}
	if cfg.Token == "" {
		cfg.Token = testKey
	}
	cfg.Loopback = true
	p, err := client.Publish(ctx, cfg)
	if err != nil {
		t.Fatal("publish:", err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

func (n *node) view(t testing.TB, cfg client.ViewerConfig) *client.Viewer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cfg.Endpoint == "" {
		cfg.Endpoint = n.URL + "/whep/demo"
	}
	cfg.Loopback = true
	v, err := client.View(ctx, cfg)
	if err != nil {
		t.Fatal("view:", err)
	}
	t.Cleanup(func() { _ = v.Close(context.Background()) })
	return v
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAnswers runs every SDP answer the node writes (a 201 to a POST of an
// offer, WHIP or WHEP) through the strict grammar check, so a browser that
// parses strictly never meets one it refuses.
func checkAnswers(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/sdp" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusCreated {
			if err := sdpcheck.Answer(rec.Body.String()); err != nil {
				t.Errorf("the answer to POST %s breaks the SDP grammar: %v\n%s", r.URL.Path, err, rec.Body.String())
			}
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}
