package relay

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// The relay: a node with viewers for a stream published elsewhere pulls
// every layer and the audio of it, once, from the stream's origin over an
// internal WebRTC session (pion at both ends: NACKs answered per hop,
// keyframe requests passed upstream), and publishes them into its own
// registry, where its viewers subscribe as to any stream.
//
//	GET  /relay/{stream}  the stream's layers and its stream time (JSON)
//	POST /relay/{stream}  an SDP offer receiving them; 201 with the answer
//
// Both need the cluster secret as a bearer token.

// Transport is where relay sessions' ICE candidates are gathered.
type Transport struct {
	// IPs are the addresses to gather on (none: every interface's);
	// loopback ones are taken too when listed (nodes on one machine).
	IPs []string
}

func (t Transport) settingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetSRTPReplayProtectionWindow(1024)
	// A node that dies is noticed in seconds, so its relays re-point
	// well within a publisher's reconnect grace.
	se.SetICETimeouts(2*time.Second, 4*time.Second, 500*time.Millisecond)
	if len(t.IPs) > 0 {
		allowed := map[string]bool{}
		loop := false
		for _, s := range t.IPs {
			if ip := net.ParseIP(s); ip != nil {
				allowed[ip.String()] = true
				loop = loop || ip.IsLoopback()
			}
		}
		se.SetIPFilter(func(ip net.IP) bool { return allowed[ip.String()] })
		se.SetIncludeLoopbackCandidate(loop)
	}
	return se
}

// Layers describes a stream for a relay: its codecs by layer and where
// its clock is.
type Layers struct {
	StreamMS int64 `json:"stream_ms"`
	// Hops is how many relays the stream crossed to reach this node (0
	// at its origin).
	Hops  int         `json:"hops"`
	Video []LayerInfo `json:"video"`
	Audio *LayerInfo  `json:"audio,omitempty"`
	// Guests are a Live Room's guests (on the host's description): an
	// edge relays each in a session of its own (?participant=ID).
	Guests  []sfu.Broadcaster `json:"guests,omitempty"`
	Speaker string            `json:"speaker,omitempty"`
	// Hosted is the host as a broadcaster (its mutes).
	Hosted sfu.Broadcaster `json:"host"`
}

// LayerInfo is one layer's rid and codec.
type LayerInfo struct {
	RID       string `json:"rid"`
	MimeType  string `json:"mime"`
	ClockRate uint32 `json:"clock"`
	Channels  uint16 `json:"channels,omitempty"`
	Fmtp      string `json:"fmtp,omitempty"`
}

func infoOf(l *sfu.Layer) LayerInfo {
	c := l.Codec()
	return LayerInfo{RID: l.RID(), MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, Fmtp: c.Fmtp}
}

func (li LayerInfo) capability() webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: li.MimeType, ClockRate: li.ClockRate, Channels: li.Channels, SDPFmtpLine: li.Fmtp}
}

// mediaEngine registers the stream's codecs with the same payload types
// at both ends of a relay: video from 96 in layer order (one per distinct
// codec), audio at 111.
func (ls Layers) mediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	seen := map[string]bool{}
	pt := webrtc.PayloadType(96)
	for _, v := range ls.Video {
		k := v.MimeType + ";" + v.Fmtp
		if seen[k] {
			continue
		}
		seen[k] = true
		c := v.capability()
		c.RTCPFeedback = fb
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c, PayloadType: pt}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		pt++
	}
	if ls.Audio != nil {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: ls.Audio.capability(), PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// api is a pion API for one relay session: the stream's codecs, NACK
// (responder at the origin, generator at the edge) and RTCP reports.
func (ls Layers) api(t Transport, sender bool) (*webrtc.API, error) {
	m, err := ls.mediaEngine()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if sender {
		r, err := nack.NewResponderInterceptor(nack.ResponderSize(1024))
		if err != nil {
			return nil, err
		}
		ir.Add(r)
		sr, err := report.NewSenderInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(sr)
	} else {
		g, err := nack.NewGeneratorInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(g)
		rr, err := report.NewReceiverInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(rr)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(t.settingEngine())), nil
}

// Origin serves relay sessions of its registry's streams to other nodes.
type Origin struct {
	Registry  *sfu.Registry
	Secret    func() string // the cluster secret
	Transport Transport
	Log       *slog.Logger
	// TakeOver, when set, hands a stream published here to the node
	// (id, base URL) where its publisher now is: POST
	// /relay/{stream}/takeover. The node relays the stream from there,
	// which ends the publisher here as a local takeover would, and its
	// viewers continue.
	TakeOver func(stream, id, base string) error
	// Hops, when set, says how many relays a stream crossed to reach this
	// node (Edge.Hops); without it, every stream is an origin's.
	Hops func(stream string) int

	mu       sync.Mutex
	sessions map[*push]struct{}
	closed   bool
	active   atomic.Int64
}

// Active is how many relay sessions the origin serves.
func (o *Origin) Active() int { return int(o.active.Load()) }

// ChildrenOf is how many nodes the origin relays stream to: its host's
// relay sessions (a Live Room's guests ride in sessions of their own to
// the same nodes, which do not count again).
func (o *Origin) ChildrenOf(stream string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for p := range o.sessions {
		if p.st.Name() == stream && p.part == sfu.HostID {
			n++
		}
	}
	return n
}

// authorized checks the cluster secret, answering 401 or 403 when it is
// missing or wrong.
func authorized(w http.ResponseWriter, r *http.Request, secret string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		w.Header().Set("WWW-Authenticate", `Bearer realm="glint-cluster"`)
		http.Error(w, "the cluster secret is required", http.StatusUnauthorized)
		return false
	case secret == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) != 1:
		http.Error(w, "wrong cluster secret", http.StatusForbidden)
		return false
	}
	return true
}

// layersOf describes a live stream's participant (sfu.HostID: the
// stream, with its room's guests), or false when it is not live here.
func layersOf(st *sfu.Stream, part string) (Layers, bool) {
	ms, ok := st.StreamTime(sfu.Now())
	if !ok {
		return Layers{}, false
	}
	audio, video := st.Participant(part)
	ls := Layers{StreamMS: ms}
	if part == sfu.HostID {
		for _, b := range st.Broadcasters() {
			if b.Role == sfu.RoleGuest {
				ls.Guests = append(ls.Guests, b)
			} else {
				ls.Hosted = b
			}
		}
		ls.Speaker = st.Speaker()
	}
	if video != nil {
		for _, l := range video.Layers() {
			ls.Video = append(ls.Video, infoOf(l))
		}
	}
	if audio != nil {
		if a := audio.Layers(); len(a) > 0 {
			li := infoOf(a[0])
			ls.Audio = &li
		}
	}
	return ls, len(ls.Video) > 0
}

// ServeHTTP answers GET and POST /relay/{stream}.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, o.Secret()) {
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/relay/")
	if n, ok := strings.CutSuffix(name, "/takeover"); ok && r.Method == http.MethodPost {
		o.takeover(w, r, n)
		return
	}
	st := o.Registry.Lookup(name)
	if st == nil || strings.Contains(name, "/") {
		http.Error(w, "no such stream", http.StatusNotFound)
		return
	}
	part := r.URL.Query().Get("participant")
	if part == "" {
		part = sfu.HostID
	}
	ls, ok := layersOf(st, part)
	if o.Hops != nil {
		ls.Hops = o.Hops(name)
	}
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the stream is not live here", http.StatusConflict)
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(ls)
		return
	}
	offer, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "reading the offer", http.StatusBadRequest)
		return
	}
	answer, err := o.start(st, part, ls, string(offer))
	if err != nil {
		o.Log.Warn("relay: cannot serve a relay session", "stream", name, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Glint-Stream-Time", strconv.FormatInt(ls.StreamMS, 10))
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// Takeover is the body of POST /relay/{stream}/takeover: the node the
// stream's publisher is on now.
type Takeover struct {
	Node string `json:"node"`
	URL  string `json:"url"`
}

func (o *Origin) takeover(w http.ResponseWriter, r *http.Request, stream string) {
	var t Takeover
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&t); err != nil || t.Node == "" || validNode(Node{ID: t.Node, URL: t.URL}, t.Node) != nil {
		http.Error(w, "the body must be {\"node\", \"url\"}", http.StatusBadRequest)
		return
	}
	if o.TakeOver == nil || o.Registry.Lookup(stream) == nil {
		http.Error(w, "no such stream", http.StatusNotFound)
		return
	}
	if err := o.TakeOver(stream, t.Node, t.URL); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	o.Log.Info("relay: the stream's publisher is on another node now; relaying from there", "stream", stream, "node", t.Node)
	w.WriteHeader(http.StatusNoContent)
}

// push is one relay session at the origin: a sink on the stream's tracks
// whose packets a worker writes to one pion track per layer.
type push struct {
	o    *Origin
	st   *sfu.Stream
	part string // the participant relayed: sfu.HostID, or a guest
	pc   *webrtc.PeerConnection
	// tracks are the pion tracks by trackID: a layer's kind and rid, so a
	// publisher that returns (new layers) goes on in the same tracks.
	tracks map[string]*webrtc.TrackLocalStaticRTP
	// free and work hold the packet copies: taken from free by Deliver,
	// written and returned by the worker, so nothing is allocated per
	// packet.
	free, work chan *item
	subs       []*sfu.Track
	done       chan struct{}
	once       sync.Once
}

// item is one packet copied off the forwarding path.
type item struct {
	tr  *webrtc.TrackLocalStaticRTP
	n   int
	buf [sfu.MaxPacketSize]byte
}

// trackID names a layer's relay track.
func trackID(l *sfu.Layer) string {
	if l.Track().Kind() == sfu.KindVideo {
		return "v-" + l.RID()
	}
	return "a"
}

// pushQueue bounds the packets waiting for a relay session's worker; a
// relay that falls behind drops packets (its edge NACKs them).
const pushQueue = 1024

func (o *Origin) start(st *sfu.Stream, part string, ls Layers, offer string) (string, error) {
	api, err := ls.api(o.Transport, true)
	if err != nil {
		return "", err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return "", err
	}
	p := &push{o: o, st: st, part: part, pc: pc, tracks: map[string]*webrtc.TrackLocalStaticRTP{},
		free: make(chan *item, pushQueue), work: make(chan *item, pushQueue), done: make(chan struct{})}
	for range pushQueue {
		p.free <- &item{}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		_ = pc.Close()
		return "", err
	}
	audio, video := st.Participant(part)
	var all []*sfu.Layer
	if video != nil {
		all = append(all, video.Layers()...)
	}
	if audio != nil && len(audio.Layers()) > 0 {
		all = append(all, audio.Layers()[0])
	}
	for _, l := range all {
		id := trackID(l)
		tr, err := webrtc.NewTrackLocalStaticRTP(infoOf(l).capability(), id, "glint")
		if err != nil {
			_ = pc.Close()
			return "", err
		}
		sender, err := pc.AddTrack(tr)
		if err != nil {
			_ = pc.Close()
			return "", err
		}
		p.tracks[id] = tr
		go p.readRTCP(sender, id)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		_ = pc.Close()
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		_ = pc.Close()
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		_ = pc.Close()
		return "", errors.New("gathering candidates took too long")
	}
	// The sinks first: close (from here on) removes what it finds.
	for _, t := range []*sfu.Track{video, audio} {
		if t != nil {
			t.AddSink(p)
			p.subs = append(p.subs, t)
		}
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		for _, t := range p.subs {
			t.RemoveSink(p)
		}
		_ = pc.Close()
		return "", errors.New("the node is shutting down")
	}
	if o.sessions == nil {
		o.sessions = map[*push]struct{}{}
	}
	o.sessions[p] = struct{}{}
	o.mu.Unlock()
	o.active.Add(1)
	go p.run()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			go p.close()
		}
	})
	for _, l := range all {
		l.RequestKeyframe(sfu.Now()) // the edge starts from a keyframe
	}
	o.Log.Info("relay: serving a relay session", "stream", st.Name(), "participant", part, "layers", len(p.tracks))
	return pc.LocalDescription().SDP, nil
}

// Deliver copies a packet of a relayed layer into the queue (sfu.Sink):
// it never waits.
func (p *push) Deliver(l *sfu.Layer, pk *sfu.Packet) {
	tr := p.tracks[trackID(l)]
	if tr == nil {
		return
	}
	var it *item
	select {
	case it = <-p.free:
	default:
		return // behind: dropped here, NACKed by the edge
	}
	it.tr, it.n = tr, copy(it.buf[:], pk.Bytes())
	p.work <- it // never blocks: there are as many items as room
}

func (p *push) run() {
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-check.C:
			if _, v := p.st.Participant(p.part); v == nil {
				go p.close() // the stream (or the guest) ended here: so does its relay
			}
		case it := <-p.work:
			_, _ = it.tr.Write(it.buf[:it.n])
			p.free <- it
		}
	}
}

// readRTCP passes the edge's keyframe requests for a track upstream, to
// the current publication's layer of that rid.
func (p *push) readRTCP(s *webrtc.RTPSender, id string) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, pk := range pkts {
			switch pk.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if _, video := p.st.Participant(p.part); video != nil {
					for _, l := range video.Layers() {
						if trackID(l) == id {
							l.RequestKeyframe(sfu.Now())
						}
					}
				}
			}
		}
	}
}

func (p *push) close() {
	p.once.Do(func() {
		for _, t := range p.subs {
			t.RemoveSink(p)
		}
		close(p.done)
		_ = p.pc.Close()
		p.o.mu.Lock()
		delete(p.o.sessions, p)
		p.o.mu.Unlock()
		p.o.active.Add(-1)
		p.o.Log.Info("relay: a relay session ended", "stream", p.st.Name())
	})
}

// Close ends every relay session.
func (o *Origin) Close() {
	o.mu.Lock()
	o.closed = true
	ss := make([]*push, 0, len(o.sessions))
	for p := range o.sessions {
		ss = append(ss, p)
	}
	o.mu.Unlock()
	for _, p := range ss {
		p.close()
	}
}
