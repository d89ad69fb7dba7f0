package signaling

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glintlive/glint/internal/httpx"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
)

// ICEServer is a STUN or TURN server advertised to clients in Link headers
// (RFC 9725 §4.6). Glint itself does not contact it.
type ICEServer struct {
	URL        string `yaml:"url"`
	Username   string `yaml:"username"`
	Credential string `yaml:"credential"`
}

// Config holds the HTTP endpoints' settings.
type Config struct {
	// MaxSessions is the most WHIP plus WHEP sessions the node serves; past
	// it, offers get 503 with Retry-After.
	MaxSessions int
	// PublisherSlots of MaxSessions are kept for WHIP: viewers never take
	// them, so a crowd cannot lock a streamer out.
	PublisherSlots int
	// MaxViewersPerAddress bounds the WHEP sessions of one client address
	// (IPv6: one /64); past it, 429.
	MaxViewersPerAddress int
	// MaxViewersPerStream bounds one stream's WHEP sessions; 0 is no bound
	// but the node's.
	MaxViewersPerStream int
	// MaxViewers bounds the node's WHEP sessions, below what MaxSessions
	// and PublisherSlots leave; 0 is no bound but those. Past it or the
	// stream's bound, a packaged stream's viewers are sent to LL-HLS.
	MaxViewers int
	// OfferRate and OfferBurst throttle WHIP and WHEP offers per client
	// address: past them, 429 with Retry-After.
	OfferRate  float64
	OfferBurst int
	// KeyFailures wrong stream keys from one address are free; after that
	// each blocks the address for twice as long as the last (1 s to 1 min),
	// answered 429.
	KeyFailures int
	// CORSOrigins may call the endpoints from a browser; "*" allows any.
	CORSOrigins []string
	// ICEServers are advertised to clients.
	ICEServers []ICEServer
	// OfferTimeout bounds answering one offer.
	OfferTimeout time.Duration
	// InviteTTL is how long a Live Room guest invite can be used.
	InviteTTL time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxSessions: 2000, PublisherSlots: 50, MaxViewersPerAddress: 20,
		OfferRate: 2, OfferBurst: 20, KeyFailures: 5,
		CORSOrigins: []string{"*"}, OfferTimeout: 10 * time.Second,
		InviteTTL: time.Hour,
	}
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case c.MaxSessions < 1:
		return errors.New("max sessions must be at least 1")
	case c.PublisherSlots < 0 || c.PublisherSlots >= c.MaxSessions:
		return errors.New("publisher slots must be 0 or more and fewer than max sessions")
	case c.MaxViewersPerAddress < 1 || c.MaxViewersPerStream < 0 || c.MaxViewers < 0:
		return errors.New("viewers per address must be at least 1, per stream and per node 0 (no bound) or more")
	case c.OfferRate < 0 || c.OfferBurst < 1:
		return errors.New("offer rate must not be negative and the burst at least 1")
	case c.KeyFailures < 1:
		return errors.New("free key failures must be at least 1")
	case c.OfferTimeout < time.Second:
		return errors.New("offer timeout must be at least 1s")
	case c.InviteTTL < time.Minute || c.InviteTTL > 7*24*time.Hour:
		return errors.New("invite TTL must be between 1m and 168h")
	}
	for _, s := range c.ICEServers {
		if s.URL == "" {
			return errors.New("an ICE server needs a URL")
		}
	}
	return nil
}

// maxBody is the largest SDP or sdpfrag body accepted.
const maxBody = 64 << 10

// Retry-After values.
const (
	retryOffline = 5 * time.Second
	retryBusy    = 10 * time.Second
)

// StreamKeys says which streams exist and who may publish them: the
// node's streams.json (KeyFile) today, a platform's accounts or the mesh
// later.
type StreamKeys interface {
	// Known reports whether a stream exists.
	Known(name string) bool
	// Check verifies a publisher's bearer token in constant time: nil,
	// ErrUnknownStream, ErrNoKey or ErrBadKey.
	Check(name, token string) error
	// Names lists every stream, sorted.
	Names() []string
}

// Directory finds a stream's media: the node's own registry today; the
// mesh directory, which knows streams on other nodes, later.
type Directory interface {
	// Stream returns the stream called name, creating it if needed.
	Stream(name string) *sfu.Stream
	// Lookup returns the stream called name, or nil.
	Lookup(name string) *sfu.Stream
}

// Session is the media side of a WHIP or WHEP session: a publisher's
// connection or a viewer's. Signaling needs nothing else of either.
type Session interface {
	ID() string
	LocalICE() peer.ICE
	RemoteICE() peer.ICE
	AddCandidates(mid string, cands []string) error
	Restart(ctx context.Context, ufrag, pwd string, cands []string) (peer.ICE, error)
	// OnChannel hands over the session's "glint" data channel.
	OnChannel(fn func(*peer.Channel))
	Done() <-chan struct{}
	OnDone(fn func())
	// End ends the session; a publisher's ends the broadcast.
	End() error
}

// Server serves WHIP, WHEP and the API.
type Server struct {
	cfg  Config
	keys StreamKeys
	dir  Directory
	node *peer.Endpoint
	log  *slog.Logger
	hls  func(stream string) (status any, playlist string)
	// ingest says how a live stream comes in.
	ingest func(stream string) any
	// place, when set, says where a viewer this node cannot serve goes;
	// relayed which streams the node relays from another.
	place   Placement
	relayed func(stream string) bool

	onChannel func(stream string, addr netip.Addr, ch *peer.Channel)

	offers  httpx.Limiter // per address
	guesses httpx.Backoff // wrong stream keys per address
	invites *invites

	mu       sync.Mutex
	sessions map[string]*session
	// Slots held by offers being answered and by open sessions: viewers
	// by address and by stream, and publishers.
	viewers    int
	publishers int
	byAddr     map[netip.Addr]int
	byStream   map[string]int
	closing    bool
	wg         sync.WaitGroup
	quit       chan struct{} // closed by Shutdown: long requests (event streams) return
}

type session struct {
	id, stream string
	role       peer.Role
	addr       netip.Addr
	media      Session
	sub        *sfu.Subscriber // a viewer's; nil for a publisher
	// A Live Room guest's participant id and a hash of its invite token,
	// which authorises its session's later requests.
	guest *peer.Guest
	token [32]byte

	// A viewer's: the mid each down track is sent on, a wake-up for its
	// event streams when the room changes, and the room as last sent on
	// its data channel.
	mid        func(*sfu.DownTrack) string
	wake       chan struct{}
	roomDirty  atomic.Bool
	announcing atomic.Bool
	lastRoom   string // owned by the announcing goroutine

	mu     sync.Mutex // serialises PATCHes
	etag   string
	events int           // open event streams
	ch     *peer.Channel // a viewer's data channel, once open
}

// maxEventStreams bounds the event streams one viewer session may hold open.
const maxEventStreams = 4

// New returns a Server. keys, dir and node must outlive it.
func New(cfg Config, keys StreamKeys, dir Directory, node *peer.Endpoint, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, keys: keys, dir: dir, node: node, log: log,
		offers:   httpx.Limiter{Rate: cfg.OfferRate, Burst: cfg.OfferBurst},
		invites:  newInvites(cfg.InviteTTL),
		guesses:  httpx.Backoff{Free: cfg.KeyFailures, Max: time.Minute},
		sessions: map[string]*session{}, byAddr: map[netip.Addr]int{}, byStream: map[string]int{},
		quit: make(chan struct{}),
	}, nil
}

// OnChannel sets the handler for the "glint" data channel of any WHIP or
// WHEP session whose offer carries one: chat plugs in here. Set it before
// serving.
// The client's address comes with it, for per-address limits.
func (s *Server) OnChannel(fn func(stream string, addr netip.Addr, ch *peer.Channel)) {
	s.onChannel = fn
}

// Handler returns the HTTP handler for every endpoint.
func (s *Server) Handler() http.Handler {
	m := http.NewServeMux()
	s.Register(m)
	return m
}

// Register adds the WHIP, WHEP and streams API routes to m, with CORS.
func (s *Server) Register(m *http.ServeMux) {
	cors := func(h http.HandlerFunc) http.Handler { return httpx.CORS(s.cfg.CORSOrigins, h) }
	handle := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, cors(h)) }
	for _, kind := range []struct {
		prefix string
		role   peer.Role
	}{{"/whip/", peer.RolePublisher}, {"/whep/", peer.RoleViewer}} {
		p, role := kind.prefix, kind.role
		handle("POST "+p+"{stream}", func(w http.ResponseWriter, r *http.Request) { s.offer(w, r, role) })
		handle("OPTIONS "+p+"{stream}", s.preflight("OPTIONS, GET, HEAD, POST", true))
		handle("GET "+p+"{stream}", s.endpointInfo)
		handle("PATCH "+p+"{stream}/{id}", func(w http.ResponseWriter, r *http.Request) { s.patch(w, r, role) })
		handle("DELETE "+p+"{stream}/{id}", func(w http.ResponseWriter, r *http.Request) { s.delete(w, r, role) })
		handle("GET "+p+"{stream}/{id}", func(w http.ResponseWriter, r *http.Request) { s.sessionInfo(w, r, role) })
		handle("OPTIONS "+p+"{stream}/{id}", s.preflight("OPTIONS, GET, HEAD, PATCH, DELETE", false))
	}
	handle("POST /whep/{stream}/{id}/events", s.eventsSubscribe)
	handle("GET /whep/{stream}/{id}/events", s.events)
	handle("OPTIONS /whep/{stream}/{id}/events", s.preflight("OPTIONS, GET, POST", false))
	handle("POST /whep/{stream}/{id}/layer", s.layer)
	handle("OPTIONS /whep/{stream}/{id}/layer", s.preflight("OPTIONS, POST", false))
	handle("GET /api/streams", s.listStreams)
	handle("GET /api/streams/{stream}", s.getStream)
	s.registerRoom(handle)
}

// refusal is why a slot was not given: the status and Retry-After to
// answer with.
type refusal struct {
	status int
	after  time.Duration
	detail string
	full   bool // no room for another viewer: LL-HLS may take them
}

// reserve claims a slot for a session of sess.role from sess.addr on
// sess.stream, within every limit; release gives it back. Publishers may
// use the whole node; viewers all but the publishers' slots, at most
// MaxViewersPerAddress per address and MaxViewersPerStream per stream.
func (s *Server) reserve(sess *session) *refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.cfg
	switch {
	case s.closing:
		return &refusal{http.StatusServiceUnavailable, retryBusy, "the node is shutting down", false}
	case s.viewers+s.publishers >= c.MaxSessions:
		return &refusal{http.StatusServiceUnavailable, retryBusy, fmt.Sprintf("the node is at its limit of %d sessions", c.MaxSessions), sess.role == peer.RoleViewer}
	case sess.role == peer.RolePublisher:
		s.publishers++
		return nil
	case c.MaxViewers > 0 && s.viewers >= c.MaxViewers:
		return &refusal{http.StatusServiceUnavailable, retryBusy, fmt.Sprintf("the node is at its limit of %d WebRTC viewers", c.MaxViewers), true}
	case s.viewers >= c.MaxSessions-c.PublisherSlots:
		return &refusal{http.StatusServiceUnavailable, retryBusy, fmt.Sprintf("the node is at its limit of %d viewers", c.MaxSessions-c.PublisherSlots), true}
	case s.byAddr[sess.addr] >= c.MaxViewersPerAddress:
		return &refusal{http.StatusTooManyRequests, retryBusy, fmt.Sprintf("at most %d viewer sessions per address", c.MaxViewersPerAddress), false}
	case c.MaxViewersPerStream > 0 && s.byStream[sess.stream] >= c.MaxViewersPerStream:
		return &refusal{http.StatusServiceUnavailable, retryBusy, fmt.Sprintf("%s is at its limit of %d viewers", sess.stream, c.MaxViewersPerStream), true}
	}
	s.viewers++
	s.byAddr[sess.addr]++
	s.byStream[sess.stream]++
	return nil
}

// release gives back the slot reserve took for sess.
func (s *Server) release(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.role == peer.RolePublisher {
		s.publishers--
		return
	}
	s.viewers--
	if s.byAddr[sess.addr]--; s.byAddr[sess.addr] <= 0 {
		delete(s.byAddr, sess.addr)
	}
	if s.byStream[sess.stream]--; s.byStream[sess.stream] <= 0 {
		delete(s.byStream, sess.stream)
	}
}

// add registers a session whose slot was reserved, and forgets it (and
// gives its slot back) when its connection closes.
func (s *Server) add(sess *session) {
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	s.wg.Add(1)
	sess.media.OnDone(func() {
		s.mu.Lock()
		delete(s.sessions, sess.id)
		s.mu.Unlock()
		s.release(sess)
		s.wg.Done()
	})
}

func (s *Server) lookup(r *http.Request, role peer.Role) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[r.PathValue("id")]
	if sess == nil || sess.role != role || sess.stream != r.PathValue("stream") {
		return nil
	}
	return sess
}

// find returns the session a request names, or answers 404; a WHIP
// session also needs its stream key (RFC 9725: a bearer token on every
// request but the preflight), or it answers 401/403.
func (s *Server) find(w http.ResponseWriter, r *http.Request, role peer.Role) *session {
	sess := s.lookup(r, role)
	switch {
	case sess == nil:
		httpx.Problem(w, http.StatusNotFound, "no such session")
		return nil
	case role == peer.RolePublisher && sess.guest != nil && subtle.ConstantTimeCompare(sess.token[:], tokenHashOf(httpx.Bearer(r))) == 1:
		// A guest's own invite token.
	case role == peer.RolePublisher && !s.authorize(w, r, sess.stream):
		return nil
	}
	return sess
}

// Sessions returns how many WHIP and WHEP sessions are open.
func (s *Server) Sessions() (publishers, viewers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		if sess.role == peer.RolePublisher {
			publishers++
		} else {
			viewers++
		}
	}
	return publishers, viewers
}

// Shutdown refuses new sessions, ends every open one and its event
// streams, and waits until they have closed or ctx ends. Call it before
// the HTTP server's Shutdown, which waits for those streams.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.quit)
	}
	s.closing = true
	var all []*session
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		_ = sess.media.End()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sessions still open: %w", ctx.Err())
	}
}
