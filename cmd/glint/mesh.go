package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/relay"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/signaling"
)

// MeshConfig places the node in a mesh of nodes sharing a Redis (the
// same --redis chat uses).
type MeshConfig struct {
	// NodeID names the node in the directory (default a random one).
	NodeID string
	// AdvertiseURL is the HTTP base other nodes and viewers reach this
	// node at (default http:// and the address it listens on).
	AdvertiseURL string
}

// mesh is this node's part in the mesh: its heartbeat into the directory
// and the placement of viewers it cannot serve.
type mesh struct {
	dir    *relay.Directory
	member *relay.Member
	id     string
	url    string
	reg    *sfu.Registry
	srv    *signaling.Server
	cap    int

	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
	done     chan struct{}
}

// newMesh joins the directory at redisURL; nil without one.
func newMesh(ctx context.Context, cfg Config, reg *sfu.Registry, srv *signaling.Server, log *slog.Logger) (*mesh, error) {
	if cfg.Chat.Redis == "" {
		return nil, nil
	}
	dir, err := relay.Open(ctx, cfg.Chat.Redis, log)
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	m := &mesh{dir: dir, id: relay.NewID(cfg.Mesh.NodeID), url: cfg.Mesh.AdvertiseURL, reg: reg, srv: srv,
		cap: cfg.Signaling.MaxViewers, done: make(chan struct{})}
	m.member = &relay.Member{Dir: dir, Self: m.self}
	srv.SetPlacement(m.place)
	return m, nil
}

// start heartbeats until ctx ends, advertising addr (the HTTP listener)
// when no URL was given.
func (m *mesh) start(ctx context.Context, addr string) {
	if m.url == "" {
		host, port, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "localhost"
		}
		m.url = "http://" + net.JoinHostPort(host, port)
	}
	go func() {
		defer close(m.done)
		m.member.Run(ctx)
	}()
}

// close waits for the heartbeat to withdraw the node, then disconnects.
func (m *mesh) close() {
	<-m.done
	_ = m.dir.Close()
}

// self is this node's record for the directory.
func (m *mesh) self() relay.Node {
	_, viewers := m.srv.Sessions()
	n := relay.Node{ID: m.id, URL: m.url, Capacity: m.cap, Viewers: viewers, CPU: m.cpu()}
	now := sfu.Now()
	for _, st := range m.reg.Streams() {
		if in := st.Info(now); in.State != sfu.StateOffline.String() {
			n.Origins = append(n.Origins, in.Name)
		}
	}
	slices.Sort(n.Origins)
	return n
}

// cpu is the share of the machine's cores the process used since the
// last call.
func (m *mesh) cpu() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	share := 0.0
	if !m.lastWall.IsZero() {
		share = float64(used-m.lastCPU) / float64(now.Sub(m.lastWall)) / float64(runtime.NumCPU())
	}
	m.lastCPU, m.lastWall = used, now
	return min(max(share, 0), 1)
}

// place sends a viewer this node cannot serve to the stream's origin
// when it has room: the node the stream is published on. Relays that
// carry streams to other nodes come with the relay itself.
func (m *mesh) place(ctx context.Context, stream string, _ bool) (string, error) {
	if !m.member.Reachable() {
		return "", errors.New("the directory is unreachable")
	}
	origin, ok, err := m.dir.Origin(ctx, stream)
	if err != nil || !ok || origin.ID == m.id || !origin.Room() {
		return "", err
	}
	return origin.URL + "/whep/" + url.PathEscape(stream), nil
}

// meshView is GET /api/mesh and `glint mesh --json`.
type meshView struct {
	Self      string            `json:"self,omitempty"`
	Reachable bool              `json:"reachable"`
	Nodes     []relay.Node      `json:"nodes"`
	Origins   map[string]string `json:"origins"`
}

func readMesh(ctx context.Context, dir *relay.Directory) (meshView, error) {
	nodes, err := dir.Nodes(ctx)
	if err != nil {
		return meshView{}, err
	}
	origins, err := dir.Origins(ctx)
	if err != nil {
		return meshView{}, err
	}
	return meshView{Reachable: true, Nodes: nodes, Origins: origins}, nil
}

func (m *mesh) handleAPI(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	v, err := readMesh(ctx, m.dir)
	if err != nil {
		httpx.RetryLater(w, http.StatusServiceUnavailable, 2*time.Second, "the mesh directory cannot be reached: "+err.Error())
		return
	}
	v.Self = m.id
	httpx.JSON(w, http.StatusOK, v)
}

const meshUsage = `Usage: glint mesh --redis URL [--json]

Prints the nodes of the mesh that share the Redis at URL (id, URL, viewers
and capacity, CPU, the streams published on each) and each live stream's
origin node.
`

// meshCmd runs 'glint mesh'.
func meshCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("glint mesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	redisURL := fs.String("redis", "", "the mesh's Redis URL (redis://host:6379/0)")
	asJSON := fs.Bool("json", false, "print as JSON")
	fs.Usage = func() { fmt.Fprint(stderr, meshUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *redisURL == "" {
		fs.Usage()
		return errors.New("mesh: --redis is required")
	}
	dir, err := relay.Open(ctx, *redisURL, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer func() { _ = dir.Close() }()
	v, err := readMesh(ctx, dir)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tURL\tVIEWERS\tCPU\tSTREAMS")
	for _, n := range v.Nodes {
		capacity := "∞"
		if n.Capacity > 0 {
			capacity = fmt.Sprint(n.Capacity)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%s\t%.0f%%\t%v\n", n.ID, n.URL, n.Viewers, capacity, n.CPU*100, n.Origins)
	}
	_ = tw.Flush()
	if len(v.Nodes) == 0 {
		fmt.Fprintln(stdout, "no nodes")
	}
	streams := make([]string, 0, len(v.Origins))
	for s := range v.Origins {
		streams = append(streams, s)
	}
	slices.Sort(streams)
	for _, s := range streams {
		fmt.Fprintf(stdout, "stream %s: origin %s\n", s, v.Origins[s])
	}
	return nil
}
