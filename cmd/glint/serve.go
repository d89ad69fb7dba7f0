package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/glintlive/glint/chat"
	"github.com/glintlive/glint/examples/web"
	"github.com/glintlive/glint/hlsbridge"
	"github.com/glintlive/glint/ingest"
	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
	"github.com/glintlive/glint/transcode"
)

// drainTimeout bounds the second stage of shutdown.
const drainTimeout = 10 * time.Second

// serve runs a node until ctx ends. ready, if not nil, receives the HTTP
// address once the node accepts requests (tests use it).
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer, ready chan<- string) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(cfg.LogLevel)}))
	debug.SetGCPercent(cfg.GCPercent)
	keys, created, err := signaling.LoadKeys(cfg.DataDir, cfg.StreamKeys)
	if err != nil {
		return fmt.Errorf("stream keys: %w", err)
	}
	sc := cfg.SFU
	switch cfg.FanoutWorkers {
	case 0:
		// One lane per core; on one core the ingest goroutine serves the
		// viewers itself (a lane only adds a hand-off there).
		if n := runtime.GOMAXPROCS(0); n > 1 {
			sc.Workers = n
		}
	case -1:
		sc.Workers = 0
	default:
		sc.Workers = cfg.FanoutWorkers
	}
	reg := sfu.NewRegistry(sc)
	defer reg.Close()
	node, err := peer.NewEndpoint(cfg.RTC, reg, log)
	if err != nil {
		return err
	}
	defer func() { _ = node.Close() }()
	srv, err := signaling.New(cfg.Signaling, keys, reg, node, log)
	if err != nil {
		return err
	}
	hub, chatAPI, err := newChat(ctx, cfg.Chat, cfg.DataDir, cfg.Signaling.CORSOrigins, keys, reg, log)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	running := false
	defer func() {
		if !running { // an early return: release chat's log
			_ = hub.Close()
		}
	}()
	attachChannels(srv, hub)
	var hls *hlsbridge.Bridge
	vodDir := filepath.Join(cfg.DataDir, "vod")
	if !cfg.HLSOff {
		hc := cfg.HLS
		if !cfg.VODOff {
			hc.RecordDir = vodDir
		}
		hls = hlsbridge.New(reg, hc, log)
		srv.SetHLS(func(stream string) (any, string) {
			st, ok := hls.Status(stream)
			if !ok {
				return nil, ""
			}
			return st, st.URL
		})
	}
	msh, err := newMesh(ctx, cfg, reg, srv, log)
	if err != nil {
		return err
	}
	var rtmp *ingest.Server
	if cfg.RTMPListen != "" || cfg.RTMPSListen != "" || cfg.SRTListen != "" {
		ff := cfg.HLS.FFmpeg
		probe := sync.OnceValues(func() (transcode.Encoder, error) {
			if ff == "" {
				return transcode.Encoder{}, errors.New("no ffmpeg configured (--ffmpeg)")
			}
			return transcode.Probe(ctx, ff)
		})
		if rtmp, err = ingest.New(ingest.Config{RTMPListen: cfg.RTMPListen, RTMPSListen: cfg.RTMPSListen, TLSCert: cfg.RTMPSCert, TLSKey: cfg.RTMPSKey,
			SRTListen: cfg.SRTListen, SRTLatency: cfg.SRTLatency, FFmpeg: ff, Encoder: probe}, reg, keys, log); err != nil {
			return err
		}
		defer func() {
			if !running { // an early return: nothing will serve the listeners
				rtmp.Close()
			}
		}()
	}
	srv.SetIngest(func(stream string) any {
		if rtmp != nil {
			if st, ok := rtmp.Status(stream); ok {
				return st
			}
		}
		if msh != nil {
			if from := msh.edge.Relayed()[stream]; from != "" {
				return map[string]string{"protocol": "relay", "from": from}
			}
		}
		return map[string]string{"protocol": "whip"}
	})
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(newCollector(reg, node, srv, hls, msh), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// Metrics go on their own listener when one is set: they name every
	// stream, which the public listener need not tell.
	publicMetrics := metrics
	if cfg.MetricsListen != "" {
		publicMetrics = nil
	}
	hs := &http.Server{
		Handler:           routes(srv, keys, chatAPI, hls, msh, rtmp, vodDir, publicMetrics, cfg.Signaling.CORSOrigins),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // bodies are at most 64 KiB
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       120 * time.Second,
	}
	var rtmpURL, rtmpsURL, srtURL string
	if rtmp != nil {
		rtmpURL, rtmpsURL, srtURL = rtmp.URLs(bannerHost(ln.Addr().String()))
	}
	banner(stdout, ln.Addr().String(), rtmpURL, rtmpsURL, srtURL, keys, created, node.Port())
	log.Info("node up", "http", ln.Addr().String(), "rtc-port", node.Port())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.MetricsListen != "" {
		ml, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics-listen: %w", err)
		}
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
		ms := &http.Server{Handler: mm, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ms.Serve(ml) }()
		defer func() { _ = ms.Close() }()
		log.Info("metrics", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	if cfg.Debug != "" {
		dl, err := net.Listen("tcp", cfg.Debug)
		if err != nil {
			return fmt.Errorf("debug-listen: %w", err)
		}
		dm := http.NewServeMux()
		dm.HandleFunc("/debug/pprof/", pprof.Index)
		dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		ds := &http.Server{Handler: dm, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ds.Serve(dl) }()
		defer func() { _ = ds.Close() }()
		log.Info("profiles", "url", "http://"+dl.Addr().String()+"/debug/pprof/")
	}
	errc := make(chan error, 4)
	chatDone := make(chan struct{})
	go func() { errc <- hs.Serve(ln) }()
	go func() { defer close(chatDone); _ = hub.Run(ctx) }()
	running = true
	go func() { errc <- reg.Run(ctx) }()
	go func() { errc <- node.Run(ctx) }()
	hlsDone := make(chan struct{})
	go func() {
		defer close(hlsDone)
		if hls != nil {
			_ = hls.Run(ctx)
		}
	}()
	rtmpDone := make(chan struct{})
	go func() {
		defer close(rtmpDone)
		if rtmp != nil {
			for _, a := range []struct {
				name string
				addr net.Addr
			}{{"rtmp", rtmp.Addr()}, {"rtmps", rtmp.TLSAddr()}} {
				if a.addr != nil {
					log.Info("ingest", "listen", a.addr.String(), "protocol", a.name)
				}
			}
			if a := rtmp.SRTAddr(); a != "" {
				log.Info("ingest", "listen", a, "protocol", "srt")
			}
			_ = rtmp.Serve(ctx)
		}
	}()
	if msh != nil {
		msh.start(ctx, ln.Addr().String(), node.Port())
		defer msh.close()
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	// Stage one: refuse new sessions and end the open ones, which ends the
	// event streams watch pages hold open. Stage two: stop the HTTP server,
	// whose remaining requests are short. Both within a deadline.
	drain, done := context.WithTimeout(context.Background(), drainTimeout)
	defer done()
	log.Info("shutting down")
	errs := []error{srv.Shutdown(drain), hs.Shutdown(drain)}
	<-chatDone
	<-hlsDone
	<-rtmpDone
	errs = append(errs, hub.Close())
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return errors.Join(append(errs, runErr)...)
}

// routes mounts the endpoints, the API, metrics and the pages.
func routes(srv *signaling.Server, keys *signaling.KeyFile, chatAPI *chat.API, hls *hlsbridge.Bridge, msh *mesh, rtmp *ingest.Server, vodDir string,
	metrics *prometheus.Registry, cors []string) http.Handler {
	m := http.NewServeMux()
	// Where encoders that do not speak WHIP publish: the go-live page
	// shows it beside the key.
	m.Handle("GET /api/ingest", httpx.CORS(cors, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := map[string]string{"whip": httpx.Origin(r) + "/whip/{stream}"}
		if rtmp != nil {
			u, us, sr := rtmp.URLs(r.Host)
			for k, v := range map[string]string{"rtmp": u, "rtmps": us, "srt": sr} {
				if v != "" {
					out[k] = v
				}
			}
		}
		httpx.JSON(w, http.StatusOK, out)
	})))
	if msh != nil {
		// Watch pages of other nodes read it (and /healthz) to fail over.
		m.Handle("GET /api/mesh", httpx.CORS(cors, http.HandlerFunc(msh.handleAPI)))
		m.Handle("GET /relay/", msh.origin)
		m.Handle("POST /relay/", msh.origin)
	}
	srv.Register(m)
	chatAPI.Register(m)
	if hls != nil {
		m.Handle("GET /hls/", hls)
		m.HandleFunc("POST /api/streams/{stream}/markers", markerHandler(keys, hls))
		m.HandleFunc("GET /api/transcoder", func(w http.ResponseWriter, _ *http.Request) {
			enc, ok, err := hls.Encoder()
			out := map[string]any{"probed": ok}
			if ok {
				out["encoder"], out["gpu"], out["why"], out["tried"] = enc.Name, enc.GPU, enc.Why, enc.Tried
				if err != nil {
					out["error"] = err.Error()
				}
			}
			httpx.JSON(w, http.StatusOK, out)
		})
	}
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := fs.ReadFile(web.FS, name)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(b)
		}
	}
	m.HandleFunc("GET /api/vods", func(w http.ResponseWriter, _ *http.Request) {
		vods, err := hlsbridge.ListVODs(vodDir)
		if err != nil {
			httpx.Problem(w, http.StatusInternalServerError, "listing recordings: "+err.Error())
			return
		}
		httpx.JSON(w, http.StatusOK, map[string]any{"vods": vods})
	})
	m.HandleFunc("GET /api/vods/{stream}/{start}", func(w http.ResponseWriter, r *http.Request) {
		d, err := hlsbridge.ReadVOD(vodDir, r.PathValue("stream")+"/"+r.PathValue("start"))
		switch {
		case errors.Is(err, hlsbridge.ErrNoVOD):
			httpx.Problem(w, http.StatusNotFound, "no such recording")
		case err != nil:
			httpx.Problem(w, http.StatusInternalServerError, "reading the recording: "+err.Error())
		default:
			httpx.JSON(w, http.StatusOK, d)
		}
	})
	// Recordings, as files: playlists and segments, no folder listings;
	// /vod/{stream}/{start} itself is the replay page.
	vod := http.StripPrefix("/vod/", http.FileServer(http.Dir(vodDir)))
	m.HandleFunc("GET /vod/", func(w http.ResponseWriter, r *http.Request) {
		if p := strings.Split(strings.TrimPrefix(r.URL.Path, "/vod/"), "/"); len(p) == 2 {
			if _, err := hlsbridge.ReadVOD(vodDir, p[0]+"/"+p[1]); err == nil {
				page("vod.html")(w, r)
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, "/") || strings.Contains(r.URL.Path, ".tmp") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		vod.ServeHTTP(w, r)
	})
	if metrics != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	}
	m.Handle("GET /healthz", httpx.CORS(cors, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })))
	static := http.FileServerFS(web.FS)
	m.Handle("GET /static/", http.StripPrefix("/static/", static))
	m.HandleFunc("GET /{$}", page("index.html"))
	m.HandleFunc("GET /live", page("live.html"))
	m.HandleFunc("GET /watch/{stream}", page("watch.html"))
	m.HandleFunc("GET /guest/{stream}", page("guest.html"))
	return m
}

// maxMarkerTitle bounds a marker's title, in characters.
const maxMarkerTitle = 200

// markerHandler adds a chapter to a live stream's recording at the
// present moment: POST with the stream key as bearer and {"title": …}.
func markerHandler(keys *signaling.KeyFile, hls *hlsbridge.Bridge) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		stream := r.PathValue("stream")
		switch err := keys.Check(stream, httpx.Bearer(r)); {
		case errors.Is(err, signaling.ErrUnknownStream):
			httpx.Problem(w, http.StatusNotFound, "no such stream")
			return
		case errors.Is(err, signaling.ErrNoKey):
			w.Header().Set("WWW-Authenticate", `Bearer realm="glint"`)
			httpx.Problem(w, http.StatusUnauthorized, "the stream key is required as a bearer token")
			return
		case err != nil:
			httpx.Problem(w, http.StatusForbidden, "wrong stream key")
			return
		}
		var in struct {
			Title string `json:"title"`
		}
		if body, ok := httpx.ReadBody(w, r, 4096); !ok {
			return
		} else if len(body) > 0 {
			if err := json.Unmarshal(body, &in); err != nil {
				httpx.Problem(w, http.StatusBadRequest, "the body is not JSON like {\"title\": \"…\"}")
				return
			}
		}
		in.Title = strings.TrimSpace(in.Title)
		switch {
		case in.Title == "":
			in.Title = "Marker"
		case utf8.RuneCountInString(in.Title) > maxMarkerTitle || strings.ContainsFunc(in.Title, unicode.IsControl):
			httpx.Problem(w, http.StatusBadRequest, fmt.Sprintf("a title is up to %d characters, without control characters", maxMarkerTitle))
			return
		}
		ch, err := hls.Mark(stream, in.Title)
		switch {
		case errors.Is(err, hlsbridge.ErrNotLive), errors.Is(err, hlsbridge.ErrNotRecorded), errors.Is(err, hlsbridge.ErrTooManyChapters):
			httpx.Problem(w, http.StatusConflict, err.Error())
		case err != nil:
			httpx.Problem(w, http.StatusInternalServerError, "recording the marker: "+err.Error())
		default:
			httpx.JSON(w, http.StatusCreated, ch)
		}
	}
}

// banner prints where everything is.
// bannerHost is the host:port the banner names for a listener's address.
func bannerHost(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func banner(w io.Writer, addr, rtmpURL, rtmpsURL, srtURL string, keys *signaling.KeyFile, created []string, rtcPort int) {
	base := "http://" + bannerHost(addr)
	fmt.Fprintf(w, "Glint is running. Media on UDP/TCP port %d.\n\n", rtcPort)
	fmt.Fprintf(w, "  Streams:  %s/\n  Go live:  %s/live\n", base, base)
	if rtmpURL != "" {
		fmt.Fprintf(w, "  RTMP:     %s (OBS: this server, and the stream key)\n", rtmpURL)
	}
	if rtmpsURL != "" {
		fmt.Fprintf(w, "  RTMPS:    %s\n", rtmpsURL)
	}
	if srtURL != "" {
		fmt.Fprintf(w, "  SRT:      %s?streamid=publish:{stream}:{key}\n", srtURL)
	}
	for _, name := range keys.Names() {
		note := ""
		for _, c := range created {
			if c == name {
				note = " (new)"
			}
		}
		// A key is printed once, when it is made; later starts point to
		// where it is kept, so logs do not carry it.
		key := "in " + keys.Path()
		if note != "" {
			key = keys.Key(name)
		}
		fmt.Fprintf(w, "\n  Stream %q%s\n    watch:      %s/watch/%s\n    WHIP:       %s/whip/%s\n    WHEP:       %s/whep/%s\n    stream key: %s\n",
			name, note, base, name, base, name, base, name, key)
	}
	fmt.Fprintln(w)
}

func logLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
