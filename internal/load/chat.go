package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ChatConfig describes a chat fan-out run: Clients read-only WebSocket
// clients in one stream's chat, and one poster sending Messages at Rate.
type ChatConfig struct {
	Base     string // the server, http://host:port
	Stream   string
	Clients  int
	Messages int
	Rate     float64       // messages per second
	Dial     int           // concurrent dials while connecting
	Drain    time.Duration // wait for deliveries after the last post
	// Singles makes the readers ask for one message per event, as clients
	// before batches did; by default they take batches (?batch=1).
	Singles bool
}

// ChatResult is what a chat run measured.
type ChatResult struct {
	Clients      int     `json:"clients"`
	Connected    int     `json:"connected"`
	Dropped      int     `json:"dropped"` // clients the server closed during the run
	Sent         int     `json:"sent"`
	Delivered    int64   `json:"delivered"`
	Expected     int64   `json:"expected"`
	Seconds      float64 `json:"seconds"` // first post to last delivery
	PerSecond    float64 `json:"delivered_per_second"`
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	LatencyMaxMs float64 `json:"latency_max_ms"`
}

// chatMark prefixes the poster's send time in a message's text.
const chatMark = "lt:"

// chatReader is one read-only client: it notes when each marked message
// arrives, in microseconds after its send.
type chatReader struct {
	ws   *websocket.Conn
	mark []byte // this run's marker: backlog from earlier runs is not counted
	lat  []int32
	n    atomic.Int64 // len(lat), for progress while reading
	last time.Time
	gone atomic.Bool
}

func (r *chatReader) read(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			r.gone.Store(true)
			return
		}
		// One envelope, or a batch of them (an array): every marked
		// message in it counts.
		if len(b) == 0 || b[0] != '[' && !bytes.Contains(b[:min(len(b), 40)], []byte(`"message"`)) {
			continue
		}
		now := time.Now()
		for {
			i := bytes.Index(b, r.mark)
			if i < 0 {
				break
			}
			j := i + len(r.mark)
			k := j
			for k < len(b) && b[k] >= '0' && b[k] <= '9' {
				k++
			}
			sent, err := strconv.ParseInt(string(b[j:k]), 10, 64)
			b = b[k:]
			if err != nil {
				continue
			}
			r.lat = append(r.lat, int32(min(now.UnixMicro()-sent, 1<<31-1)))
			r.last = now
			r.n.Add(1)
		}
	}
}

// RunChat connects the clients, posts, waits for the deliveries and
// reports. Progress lines go to progress.
func RunChat(ctx context.Context, cfg ChatConfig, progress io.Writer) (ChatResult, error) {
	res := ChatResult{Clients: cfg.Clients}
	if cfg.Clients < 1 || cfg.Messages < 1 || cfg.Rate <= 0 {
		return res, errors.New("clients, messages and rate must be positive")
	}
	if cfg.Dial < 1 {
		cfg.Dial = 32
	}
	ws := "ws" + strings.TrimPrefix(cfg.Base, "http") + "/api/streams/" + cfg.Stream + "/chat"
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 512}
	readers := make([]*chatReader, cfg.Clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Dial)
	var connected atomic.Int64
	var dialErr atomic.Value
	start := time.Now()
	mark := []byte(fmt.Sprintf("%s%x:", chatMark, start.UnixNano()))
	for i := range readers {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			// Anonymous read-only clients resume (?after=0: a fresh stream
			// has nothing before); without it the node waits for a
			// sign-in frame and closes them after authWait.
			url := ws + "?after=0&batch=1"
			if cfg.Singles {
				url = ws + "?after=0"
			}
			c, resp, err := dialer.DialContext(ctx, url, nil)
			if resp != nil && resp.Body != nil {
				_ = resp.Body.Close()
			}
			if err != nil {
				dialErr.Store(err)
				return
			}
			r := &chatReader{ws: c, mark: mark, lat: make([]int32, 0, cfg.Messages)}
			readers[i] = r
			wg.Add(1)
			go r.read(&wg)
			if n := connected.Add(1); n%1000 == 0 {
				fmt.Fprintf(progress, "\rconnected %d/%d clients (%.1fs)", n, cfg.Clients, time.Since(start).Seconds())
			}
		}()
	}
	for range cfg.Dial {
		sem <- struct{}{}
	}
	fmt.Fprintf(progress, "\rconnected %d/%d clients in %.1fs\n", connected.Load(), cfg.Clients, time.Since(start).Seconds())
	res.Connected = int(connected.Load())
	defer func() {
		for _, r := range readers {
			if r != nil {
				_ = r.ws.Close()
			}
		}
		wg.Wait()
	}()
	if res.Connected == 0 {
		err, _ := dialErr.Load().(error)
		return res, fmt.Errorf("no client connected: %w", err)
	}
	time.Sleep(time.Second) // let the backlog drain

	poster, err := chatPoster(ctx, cfg, dialer, ws)
	if err != nil {
		return res, err
	}
	defer func() { _ = poster.Close() }()
	go func() { // acks and errors
		for {
			if _, _, err := poster.ReadMessage(); err != nil {
				return
			}
		}
	}()
	first := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	for i := range cfg.Messages {
		<-tick.C
		msg := map[string]any{"v": 1, "type": "message", "id": fmt.Sprint("load-", first.UnixNano(), "-", i),
			"body": map[string]string{"text": fmt.Sprintf("%s%d #%d", mark, time.Now().UnixMicro(), i)}}
		if err := poster.WriteJSON(msg); err != nil {
			return res, fmt.Errorf("post: %w", err)
		}
		res.Sent++
		if i%50 == 0 {
			fmt.Fprintf(progress, "\rposted %d/%d", i, cfg.Messages)
		}
	}
	fmt.Fprintf(progress, "\rposted %d/%d\n", res.Sent, cfg.Messages)
	res.Expected = int64(res.Sent) * int64(res.Connected)
	drain := cfg.Drain
	if drain == 0 {
		drain = 10 * time.Second
	}
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) {
		var n int64
		for _, r := range readers {
			if r != nil {
				n += r.n.Load()
			}
		}
		if n >= res.Expected {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Close and collect.
	for _, r := range readers {
		if r != nil {
			_ = r.ws.Close()
		}
	}
	wg.Wait()
	var all []int32
	var last time.Time
	for _, r := range readers {
		if r == nil {
			continue
		}
		if r.gone.Load() && len(r.lat) < res.Sent {
			res.Dropped++
		}
		all = append(all, r.lat...)
		if r.last.After(last) {
			last = r.last
		}
	}
	res.Delivered = int64(len(all))
	res.Seconds = last.Sub(first).Seconds()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Delivered) / res.Seconds
	}
	if len(all) > 0 {
		slices.Sort(all)
		q := func(p float64) float64 { return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1000 }
		res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = q(0.50), q(0.99), float64(all[len(all)-1])/1000
	}
	return res, nil
}

// chatPoster signs in as a guest and connects.
func chatPoster(ctx context.Context, cfg ChatConfig, dialer *websocket.Dialer, ws string) (*websocket.Conn, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Base+"/api/streams/"+cfg.Stream+"/chat/token", strings.NewReader(`{"name":"load"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("guest token: HTTP %d", resp.StatusCode)
	}
	c, wsResp, err := dialer.DialContext(ctx, ws+"?token="+tok.Token, nil)
	if wsResp != nil && wsResp.Body != nil {
		_ = wsResp.Body.Close()
	}
	return c, err
}

// Print writes a human summary.
func (r ChatResult) Print(w io.Writer) {
	fmt.Fprintf(w, "clients     %d connected of %d, %d dropped by the server\n", r.Connected, r.Clients, r.Dropped)
	fmt.Fprintf(w, "messages    %d posted, %d of %d deliveries (%.2f%%)\n", r.Sent, r.Delivered, r.Expected, 100*float64(r.Delivered)/float64(max(r.Expected, 1)))
	fmt.Fprintf(w, "throughput  %.0f deliveries/s over %.1fs\n", r.PerSecond, r.Seconds)
	fmt.Fprintf(w, "latency     p50 %.1f ms, p99 %.1f ms, max %.1f ms (post sent → client read)\n", r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
}
