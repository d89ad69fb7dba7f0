package chat

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Attached is a client on a transport with no URL to carry a token or a
// resume point: a data channel. It reads anonymously from the start when
// the stream allows that; an auth frame signs it in (and joins it when
// anonymous reading is off); a resume frame fetches what it missed.
type Attached struct {
	hub    *Hub
	stream string
	t      Transport

	mu     sync.Mutex
	conn   *Conn
	closed bool
}

// connectTimeout bounds joining a room (its log replays first).
const connectTimeout = 10 * time.Second

// Attach serves a client on t. Feed its frames to Receive; call Close when
// the transport ends.
func (h *Hub) Attach(stream string, t Transport) *Attached {
	a := &Attached{hub: h, stream: stream, t: t}
	if h.cfg.Anonymous {
		a.mu.Lock()
		a.connectLocked("")
		a.mu.Unlock()
	}
	return a
}

// connectLocked joins the room; failures are told to the client, whose
// transport stays open for another try.
func (a *Attached) connectLocked(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	c, err := a.hub.Connect(ctx, a.stream, a.t, token, false, 0)
	if err != nil {
		a.writeErrorLocked(err, "")
		return
	}
	a.conn = c
}

func (a *Attached) writeErrorLocked(err error, ref string) {
	code := CodeAuth
	if re, ok := err.(*reqError); ok { //nolint:errorlint // our own type, never wrapped
		code = re.code
	} else if err == ErrUnknownStream { //nolint:errorlint // a sentinel
		code = CodeNotFound
	}
	b, _ := json.Marshal(problem(TypeError, code, err.Error(), ref))
	_ = a.t.Write(b)
}

// Receive handles one frame from the client.
func (a *Attached) Receive(frame []byte) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	if c := a.conn; c != nil {
		a.mu.Unlock()
		c.Receive(frame)
		return
	}
	defer a.mu.Unlock()
	// Not joined: only an auth frame helps.
	e, err := ParseEnvelope(frame)
	if err != nil {
		a.writeErrorLocked(err, "")
		return
	}
	if e.Type != TypeAuth {
		a.writeErrorLocked(fail(CodeAuth, "this chat needs a token even to read: send auth first"), e.Ref)
		return
	}
	b, err := body[AuthBody](e)
	if err != nil {
		a.writeErrorLocked(err, e.Ref)
		return
	}
	if _, err := a.hub.signer.Verify(b.Token, a.stream); err != nil {
		a.writeErrorLocked(fail(CodeAuth, "%v", err), e.Ref)
		return
	}
	a.connectLocked(b.Token)
}

// Close ends the client's connection.
func (a *Attached) Close() {
	a.mu.Lock()
	a.closed = true
	c := a.conn
	a.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
