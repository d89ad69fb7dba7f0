package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// Edge pulls streams published on other nodes into its registry, one
// relay session per stream, for as long as it has viewers of them (and
// Linger after the last leaves).
type Edge struct {
	Registry  *sfu.Registry
	Secret    func() string
	Transport Transport
	Log       *slog.Logger
	// Linger is how long a relay stays after its last viewer leaves
	// (default 10 s).
	Linger time.Duration
	HTTP   *http.Client
	// Locate finds where to pull a stream from now (its origin, or a
	// relay of it): a node's id and URL. When a relay's upstream goes
	// away, the edge keeps its viewers waiting (the stream reconnecting)
	// and asks Locate again each second until a node has the stream or
	// the publisher's reconnect grace runs out.
	Locate func(ctx context.Context, stream string) (id, base string, err error)
	// Grace bounds that search (default 60 s, the core's reconnect grace).
	Grace time.Duration
	// Children, when set, says how many relay sessions of a stream this
	// node serves to others (Origin.ChildrenOf): a relay with relays
	// below it stays while they do.
	Children func(stream string) int

	mu    sync.Mutex
	pulls map[string]*pull
}

// pull is one stream relayed in from its origin: its host, or (a guest
// pull, which a host pull's followRoom starts) one Live Room guest.
type pull struct {
	e        *Edge
	stream   *sfu.Stream
	part     string       // sfu.HostID, or a guest's id
	name     string       // a guest's name
	from     string       // the upstream node's id
	hops     atomic.Int64 // relays from the origin to here, this one included
	pc       *webrtc.PeerConnection
	pub      *sfu.Publication
	mu       sync.Mutex
	remote   map[*sfu.Layer]uint32 // the upstream SSRC of each layer, for keyframe requests
	lastSeen atomic.Int64          // unix ns of the last time it had a viewer (or a join)
	// repointing: a search for another upstream is under way.
	repointing atomic.Bool
	ready      chan struct{} // closed once started (err says how)
	err        error
	done       chan struct{}
	once       sync.Once
}

// Hops returns how many relays a stream crossed to reach this node: 0
// for one not relayed in.
func (e *Edge) Hops(stream string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.pulls[stream]; p != nil {
		return int(p.hops.Load())
	}
	return 0
}

// Relayed returns the streams relayed in now and the node each comes from.
func (e *Edge) Relayed() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.pulls))
	for s, p := range e.pulls {
		out[s] = p.from
	}
	return out
}

// Pull relays stream in from the node at base (its HTTP URL, id from) and
// returns once the stream is live here; a stream already relayed returns
// at once.
func (e *Edge) Pull(ctx context.Context, stream, from, base string) error {
	e.mu.Lock()
	if e.pulls == nil {
		e.pulls = map[string]*pull{}
	}
	if p, ok := e.pulls[stream]; ok {
		e.mu.Unlock()
		p.lastSeen.Store(time.Now().UnixNano()) // a join: the linger starts again
		select {                                // another viewer started it: wait for it
		case <-p.ready:
			return p.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p := e.newPull(from)
	e.pulls[stream] = p
	e.mu.Unlock()
	p.err = p.start(ctx, stream, base)
	if p.err != nil {
		e.mu.Lock()
		if e.pulls[stream] == p {
			delete(e.pulls, stream)
		}
		e.mu.Unlock()
		p.close()
	}
	close(p.ready)
	return p.err
}

func (e *Edge) newPull(from string) *pull {
	p := &pull{e: e, part: sfu.HostID, from: from, remote: map[*sfu.Layer]uint32{}, ready: make(chan struct{}), done: make(chan struct{})}
	p.lastSeen.Store(time.Now().UnixNano())
	return p
}

func (e *Edge) client() *http.Client {
	if e.HTTP != nil {
		return e.HTTP
	}
	return http.DefaultClient
}

// reply is an answer to a request to another node.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (e *Edge) request(ctx context.Context, method, u string, body []byte) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+e.Secret())
	if body != nil {
		req.Header.Set("Content-Type", "application/sdp")
	}
	resp, err := e.client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{code: resp.StatusCode, header: resp.Header, body: b}, err
}

func (p *pull) start(ctx context.Context, stream, base string) error {
	e := p.e
	u := strings.TrimSuffix(base, "/") + "/relay/" + url.PathEscape(stream)
	guest := p.part != sfu.HostID
	if guest {
		u += "?participant=" + url.QueryEscape(p.part)
	}
	desc, err := e.request(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if desc.code != http.StatusOK {
		return fmt.Errorf("relay: %s answered %d: %s", base, desc.code, strings.TrimSpace(string(desc.body)))
	}
	var ls Layers
	if err := json.Unmarshal(desc.body, &ls); err != nil || len(ls.Video) == 0 {
		return fmt.Errorf("relay: %s described the stream as %q", base, desc.body)
	}
	p.hops.Store(int64(ls.Hops) + 1)
	api, err := ls.api(e.Transport, false)
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.pc = pc
	p.mu.Unlock()
	for range ls.Video {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	if ls.Audio != nil {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return err
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	sent := time.Now()
	ans, err := e.request(ctx, http.MethodPost, u, []byte(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	if ans.code != http.StatusCreated {
		return fmt.Errorf("relay: %s answered %d: %s", base, ans.code, strings.TrimSpace(string(ans.body)))
	}
	streamMS, _ := strconv.ParseInt(ans.header.Get("Glint-Stream-Time"), 10, 64)
	streamMS += time.Since(sent).Milliseconds() / 2 // the answer's half of the round trip

	p.stream = e.Registry.Stream(stream)
	var pub *sfu.Publication
	if guest {
		// A guest joins the relayed host's room here as it did there.
		if pub, err = p.stream.Join(p.part, p.name, p, sfu.Now()); err != nil {
			return err
		}
		if p.ended() { // it left the origin's room meanwhile
			pub.End(sfu.Now())
			return errGuestLeft
		}
	} else {
		pub = p.stream.StartPublication(sfu.HostID, p, sfu.Now())
	}
	p.mu.Lock()
	p.pub = pub
	p.mu.Unlock()
	if !guest {
		p.stream.AlignStreamTime(streamMS, sfu.Now())
	}
	byID := map[string]LayerInfo{}
	for _, v := range ls.Video {
		byID["v-"+v.RID] = v
	}
	if ls.Audio != nil {
		byID["a"] = *ls.Audio
	}
	live := make(chan struct{})
	var liveOnce sync.Once
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		info, ok := byID[t.ID()]
		if !ok {
			e.Log.Warn("relay: a track the origin did not describe", "id", t.ID())
			return
		}
		l, err := pub.AddLayer(info.RID, sfu.Codec{MimeType: info.MimeType, ClockRate: info.ClockRate, Channels: info.Channels, Fmtp: info.Fmtp}, sfu.ExtIDs{}, sfu.Now())
		if err != nil {
			e.Log.Warn("relay: a layer the registry refused", "rid", info.RID, "err", err)
			return
		}
		p.mu.Lock()
		p.remote[l] = uint32(t.SSRC())
		p.mu.Unlock()
		if t.Kind() == webrtc.RTPCodecTypeVideo {
			liveOnce.Do(func() { close(live) })
		}
		go p.read(t, l)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s != webrtc.PeerConnectionStateFailed && s != webrtc.PeerConnectionStateClosed {
			return
		}
		if guest {
			go p.close() // the guest left (or its node went): its slot empties
			return
		}
		go p.e.repoint(stream, p)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(ans.body)}); err != nil {
		return err
	}
	select {
	case <-live:
	case <-ctx.Done():
		return fmt.Errorf("relay: no video from %s: %w", base, ctx.Err())
	}
	e.Log.Info("relay: pulling a stream", "stream", stream, "participant", p.part, "from", from(base), "layers", len(ls.Video))
	if !guest {
		go p.linger()
		// It outlives this start: the host pull's end stops it.
		go p.followRoom(context.WithoutCancel(ctx), stream, base)
	}
	return nil
}

func from(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return base
}

// read ingests a track's packets into its layer.
func (p *pull) read(t *webrtc.TrackRemote, l *sfu.Layer) {
	buf := make([]byte, sfu.MaxPacketSize)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		_ = l.Ingest(buf[:n], sfu.Now())
	}
}

// RequestKeyframe asks the origin for a keyframe of l (sfu.Source): a PLI
// upstream, which the origin passes on to its publisher.
func (p *pull) RequestKeyframe(l *sfu.Layer) {
	p.mu.Lock()
	ssrc, ok := p.remote[l]
	p.mu.Unlock()
	if pc := p.peer(); ok && pc != nil {
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
	}
}

// Close ends the relay (sfu.Source: a local publisher took the stream).
// It stops counting as a relay at once.
func (p *pull) Close() error {
	p.e.mu.Lock()
	if p.e.pulls[p.stream.Name()] == p {
		delete(p.e.pulls, p.stream.Name())
	}
	p.e.mu.Unlock()
	go p.closeQuietly()
	return nil
}

// StreamTime asks the node at base where stream's clock is now (ms), for
// a node taking the stream over to keep it.
func (e *Edge) StreamTime(ctx context.Context, stream, base string) (int64, error) {
	sent := time.Now()
	desc, err := e.request(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/relay/"+url.PathEscape(stream), nil)
	if err != nil {
		return 0, err
	}
	var ls Layers
	if desc.code != http.StatusOK || json.Unmarshal(desc.body, &ls) != nil {
		return 0, fmt.Errorf("relay: %s answered %d", base, desc.code)
	}
	return ls.StreamMS + time.Since(sent).Milliseconds()/2, nil
}

// Hand asks the node at base that has stream published to relay it from
// this node (id, url) instead: its publisher here is ended, its viewers
// continue.
func (e *Edge) Hand(ctx context.Context, stream, base, id, self string) error {
	b, _ := json.Marshal(Takeover{Node: id, URL: self})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/relay/"+url.PathEscape(stream)+"/takeover", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.Secret())
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client().Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("takeover: %s answered %d: %s", base, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// linger ends the relay once the stream has had no viewer here for the
// Edge's Linger.
func (p *pull) linger() {
	linger := p.e.Linger
	if linger <= 0 {
		linger = 10 * time.Second
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		children := 0
		if p.e.Children != nil {
			children = p.e.Children(p.stream.Name())
		}
		if p.stream.Info(sfu.Now()).Viewers > 0 || children > 0 { // relays below this one count as viewers
			p.lastSeen.Store(time.Now().UnixNano())
		} else if time.Since(time.Unix(0, p.lastSeen.Load())) > linger {
			p.e.Log.Info("relay: no viewer left; the relay ends", "stream", p.stream.Name())
			p.e.drop(p.stream.Name(), p)
			return
		}
	}
}

// repoint follows a stream whose upstream went away: its viewers wait
// (the stream reconnecting) while the edge looks for a node that has it,
// each second, and pulls from that one — the new publication continues
// on the viewers' sessions. Without one before the grace ends, the stream
// ends here too. The old pull stands for the stream in the meantime.
func (e *Edge) repoint(stream string, old *pull) {
	if !old.repointing.CompareAndSwap(false, true) {
		return // a search for this relay is under way already
	}
	if !e.holds(stream, old) || e.Locate == nil {
		e.drop(stream, old)
		return
	}
	select {
	case <-old.done:
		return // ended here (linger, shutdown)
	default:
	}
	if pub := old.publication(); pub != nil {
		pub.Lost(sfu.Now())
	}
	old.closePC()
	e.Log.Warn("relay: the upstream went away; looking for the stream on another node", "stream", stream, "from", old.from)
	grace := e.Grace
	if grace <= 0 {
		grace = 60 * time.Second
	}
	until := time.Now().Add(grace)
	for {
		time.Sleep(time.Second)
		if !e.holds(stream, old) {
			return // shutdown, or a publisher here took the stream
		}
		if old.stream.State() == sfu.StateOffline || time.Now().After(until) {
			e.Log.Warn("relay: no node has the stream; it ends here", "stream", stream)
			e.drop(stream, old)
			return
		}
		if e.tryFrom(stream, old) {
			return
		}
	}
}

// holds reports whether p stands for stream in the edge.
func (e *Edge) holds(stream string, p *pull) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pulls != nil && e.pulls[stream] == p
}

// tryFrom makes one attempt to pull stream from wherever Locate says, in
// place of old; it reports whether the stream is relayed again (or is no
// longer old's to look for).
func (e *Edge) tryFrom(stream string, old *pull) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, base, err := e.Locate(ctx, stream)
	if err != nil || base == "" {
		return false
	}
	next := e.newPull(id)
	e.mu.Lock()
	if e.pulls == nil || e.pulls[stream] != old {
		e.mu.Unlock()
		return true
	}
	e.pulls[stream] = next
	e.mu.Unlock()
	next.err = next.start(ctx, stream, base)
	close(next.ready)
	if next.err == nil {
		old.closeQuietly()
		e.Log.Info("relay: the stream continues from another node", "stream", stream, "from", id)
		return true
	}
	e.mu.Lock()
	restored := e.pulls != nil && e.pulls[stream] == next
	if restored {
		e.pulls[stream] = old
	}
	e.mu.Unlock()
	if pub := next.publication(); pub != nil && restored {
		pub.Lost(sfu.Now()) // it took the stream over: it waits as the old one did
		old.mu.Lock()
		old.pub = pub
		old.mu.Unlock()
	}
	next.closeQuietly()
	return !restored
}

// drop ends a relay and forgets it.
func (e *Edge) drop(stream string, p *pull) {
	e.mu.Lock()
	if e.pulls[stream] == p {
		delete(e.pulls, stream)
	}
	e.mu.Unlock()
	p.close()
}

func (p *pull) close() {
	p.once.Do(func() {
		close(p.done)
		if pub := p.publication(); pub != nil && !pub.Ended() {
			pub.End(sfu.Now())
		}
		p.closePC()
	})
}

// closeQuietly ends a relay whose publication a newer one replaced (or
// that never started one the viewers saw): its viewers stay.
func (p *pull) closeQuietly() {
	p.once.Do(func() {
		close(p.done)
		p.closePC()
	})
}

func (p *pull) closePC() {
	if pc := p.peer(); pc != nil {
		_ = pc.Close()
	}
}

func (p *pull) peer() *webrtc.PeerConnection {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pc
}

// Close ends every relay.
func (e *Edge) Close() {
	e.mu.Lock()
	ps := e.pulls
	e.pulls = nil
	e.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
}

func (p *pull) publication() *sfu.Publication {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pub
}
