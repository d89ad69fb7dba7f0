package signaling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
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
	// CORSOrigins may call the endpoints from a browser; "*" allows any.
	CORSOrigins []string
	// ICEServers are advertised to clients.
	ICEServers []ICEServer
	// OfferTimeout bounds answering one offer.
	OfferTimeout time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxSessions: 2000, CORSOrigins: []string{"*"}, OfferTimeout: 10 * time.Second}
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case c.MaxSessions < 1:
		return errors.New("max sessions must be at least 1")
	case c.OfferTimeout < time.Second:
		return errors.New("offer timeout must be at least 1s")
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

	onChannel func(stream string, ch *peer.Channel)

	mu       sync.Mutex
	sessions map[string]*session
	reserved int
	closing  bool
	wg       sync.WaitGroup
	quit     chan struct{} // closed by Shutdown: long requests (event streams) return
}

type session struct {
	id, stream string
	role       peer.Role
	media      Session
	sub        *sfu.Subscriber // a viewer's; nil for a publisher

	mu     sync.Mutex // serialises PATCHes
	etag   string
	events int // open event streams
}

// maxEventStreams bounds the event streams one viewer session may hold open.
const maxEventStreams = 4

// New returns a Server. keys, dir and node must outlive it.
func New(cfg Config, keys StreamKeys, dir Directory, node *peer.Endpoint, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, keys: keys, dir: dir, node: node, log: log, sessions: map[string]*session{}, quit: make(chan struct{})}, nil
}

// OnChannel sets the handler for the "glint" data channel of any WHIP or
// WHEP session whose offer carries one: chat plugs in here. Set it before
// serving.
func (s *Server) OnChannel(fn func(stream string, ch *peer.Channel)) { s.onChannel = fn }

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
}

// reserve claims a session slot; release gives it back.
func (s *Server) reserve() (ok, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, true
	}
	if len(s.sessions)+s.reserved >= s.cfg.MaxSessions {
		return false, false
	}
	s.reserved++
	return true, false
}

func (s *Server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved--
}

// add registers a session whose slot was reserved, and forgets it when its
// connection closes.
func (s *Server) add(sess *session) {
	s.mu.Lock()
	s.reserved--
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	s.wg.Add(1)
	sess.media.OnDone(func() {
		s.mu.Lock()
		delete(s.sessions, sess.id)
		s.mu.Unlock()
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
