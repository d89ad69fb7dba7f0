package peer

import (
	"context"
	"fmt"

	"strings"
	"sync"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// base is what publishers and viewers share: an id, an end, and the data
// channel hand-off.
type base struct {
	id   string
	node *Endpoint

	done      chan struct{}
	closeOnce sync.Once
	onDone    []func()
	doneMu    sync.Mutex

	ch channels
}

func newBase(n *Endpoint, id string) base {
	return base{id: id, node: n, done: make(chan struct{})}
}

// session is a publisher's: a PeerConnection, its current remote offer,
// and ICE trickle and restart (RFC 9725 §4.3).
type session struct {
	base
	pc *webrtc.PeerConnection

	negotiate sync.Mutex // one renegotiation at a time
	remote    string     // the offer in effect
}

func newSession(n *Endpoint, id string, pc *webrtc.PeerConnection, offer string) session {
	return session{base: newBase(n, id), pc: pc, remote: offer}
}

// ID returns the session id.
func (s *base) ID() string { return s.id }

// Done is closed when the session's connection has closed.
func (s *base) Done() <-chan struct{} { return s.done }

// OnDone registers fn to run once the session's connection has closed (at
// once if it already has), without a goroutine waiting for it.
func (s *base) OnDone(fn func()) {
	s.doneMu.Lock()
	select {
	case <-s.done:
		s.doneMu.Unlock()
		fn()
		return
	default:
	}
	s.onDone = append(s.onDone, fn)
	s.doneMu.Unlock()
}

func (s *base) markDone() {
	s.closeOnce.Do(func() {
		s.doneMu.Lock()
		close(s.done)
		fns := s.onDone
		s.onDone = nil
		s.doneMu.Unlock()
		for _, fn := range fns {
			fn()
		}
	})
}

// ICE is one side's ICE parameters and candidates.
type ICE struct {
	Ufrag, Pwd string
	Mid        string   // the first media section's mid, for sdpfrag answers
	Candidates []string // "candidate:…" attribute values
}

// RemoteICE returns the peer's current ICE credentials.
func (s *session) RemoteICE() ICE {
	s.negotiate.Lock()
	defer s.negotiate.Unlock()
	return iceOf(s.remote)
}

// LocalICE returns the server's current ICE credentials and candidates.
func (s *session) LocalICE() ICE {
	if d := s.pc.LocalDescription(); d != nil {
		return iceOf(d.SDP)
	}
	return ICE{}
}

func iceOf(text string) ICE {
	var d sdp.SessionDescription
	if d.UnmarshalString(text) != nil {
		return ICE{}
	}
	var ice ICE
	ice.Ufrag, _ = d.Attribute("ice-ufrag")
	ice.Pwd, _ = d.Attribute("ice-pwd")
	for i, m := range d.MediaDescriptions {
		if i == 0 {
			ice.Mid, _ = m.Attribute("mid")
		}
		if v, ok := m.Attribute("ice-ufrag"); ok && ice.Ufrag == "" {
			ice.Ufrag = v
		}
		if v, ok := m.Attribute("ice-pwd"); ok && ice.Pwd == "" {
			ice.Pwd = v
		}
		for _, a := range m.Attributes {
			if a.Key == "candidate" && i == 0 {
				ice.Candidates = append(ice.Candidates, "candidate:"+a.Value)
			}
		}
	}
	return ice
}

// AddCandidates adds trickled remote candidates ("candidate:…" values).
func (s *session) AddCandidates(mid string, cands []string) error {
	for _, c := range cands {
		m := mid
		if err := s.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &m}); err != nil {
			return fmt.Errorf("%w: candidate %q: %w", ErrBadOffer, c, err)
		}
	}
	return nil
}

// Restart performs an ICE restart with the peer's new credentials and
// candidates, and returns the server's new ones. On failure the session
// keeps its previous ICE state where pion allows.
func (s *session) Restart(ctx context.Context, ufrag, pwd string, cands []string) (ICE, error) {
	s.negotiate.Lock()
	defer s.negotiate.Unlock()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s.remote); err != nil {
		return ICE{}, fmt.Errorf("%w: %w", ErrRestartFailed, err)
	}
	d.Origin.SessionVersion++
	replace := func(attrs []sdp.Attribute) []sdp.Attribute {
		out := attrs[:0:0]
		for _, a := range attrs {
			switch a.Key {
			case "candidate", "end-of-candidates":
				continue
			case "ice-ufrag":
				a.Value = ufrag
			case "ice-pwd":
				a.Value = pwd
			}
			out = append(out, a)
		}
		return out
	}
	d.Attributes = replace(d.Attributes)
	for i, m := range d.MediaDescriptions {
		m.Attributes = replace(m.Attributes)
		if i == 0 {
			for _, c := range cands {
				m.Attributes = append(m.Attributes, sdp.Attribute{Key: "candidate", Value: strings.TrimPrefix(c, "candidate:")})
			}
		}
	}
	raw, err := d.Marshal()
	if err != nil {
		return ICE{}, fmt.Errorf("%w: %w", ErrRestartFailed, err)
	}
	if _, err := s.node.answer(ctx, s.pc, string(raw)); err != nil {
		return ICE{}, fmt.Errorf("%w: %w", ErrRestartFailed, err)
	}
	s.remote = string(raw)
	return s.LocalICE(), nil
}
