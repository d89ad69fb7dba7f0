package chat

import (
	"context"

	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/glintlive/glint/internal/httpx"
)

// wsTransport is a chat connection over a WebSocket (RFC 6455).
type wsTransport struct {
	c    *websocket.Conn
	addr netip.Addr
	// batch: the client asked for batches (?batch=1): several queued
	// events go in one message, a JSON array of envelopes.
	batch bool
}

// Batches reports whether the client takes batches (batchWriter).
func (t wsTransport) Batches() bool { return t.batch }

// WriteBatch sends frames as one message, a JSON array: one frame and one
// system call for a burst instead of one per event.
func (t wsTransport) WriteBatch(frames [][]byte) error {
	_ = t.c.SetWriteDeadline(time.Now().Add(wsWriteWait))
	w, err := t.c.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	sep := byte('[')
	for _, f := range frames {
		if _, err := w.Write([]byte{sep}); err != nil {
			return err
		}
		if _, err := w.Write(f); err != nil {
			return err
		}
		sep = ','
	}
	if _, err := w.Write([]byte{']'}); err != nil {
		return err
	}
	return w.Close()
}

func (t wsTransport) Addr() netip.Addr { return t.addr }

const (
	wsWriteWait = 10 * time.Second
	wsIdle      = 2*pingInterval + 10*time.Second
)

func (t wsTransport) Write(frame []byte) error {
	_ = t.c.SetWriteDeadline(time.Now().Add(wsWriteWait))
	return t.c.WriteMessage(websocket.TextMessage, frame)
}

func (t wsTransport) Ping() error {
	return t.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait))
}

func (t wsTransport) Close(reason string) error {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	_ = t.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, reason), time.Now().Add(time.Second))
	return t.c.Close()
}

// serveWebSocket upgrades a request to a chat connection. The token comes
// in the first frame (an auth request), which keeps it out of URLs and so
// out of proxies' logs; ?token= still works for older clients. ?after=N
// resumes after sequence number N.
func (a *API) serveWebSocket(w http.ResponseWriter, r *http.Request, stream string) {
	token := r.URL.Query().Get("token")
	after, resume := uint64(0), false
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			httpx.Problem(w, http.StatusBadRequest, "after must be a sequence number")
			return
		}
		after, resume = n, true
	}
	if token != "" {
		if _, err := a.hub.signer.Verify(token, stream); err != nil {
			httpx.Problem(w, http.StatusUnauthorized, "token: "+err.Error())
			return
		}
	}
	if !a.hub.streams.Known(stream) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
		return
	}
	up := websocket.Upgrader{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
		CheckOrigin: a.originAllowed,
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	ws.SetReadLimit(HardMaxFrame)
	_ = ws.SetReadDeadline(time.Now().Add(wsIdle))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsIdle)) })
	t := wsTransport{c: ws, addr: httpx.ClientIP(r), batch: r.URL.Query().Get("batch") == "1"}
	var receive func([]byte)
	if token != "" || (a.hub.cfg.Anonymous && resume) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		conn, err := a.hub.Connect(ctx, stream, t, token, resume, after)
		cancel()
		if err != nil {
			_ = t.Close(err.Error())
			return
		}
		defer conn.Close()
		receive = conn.Receive
	} else {
		// The token comes in the first frame, as on a data channel.
		_ = ws.SetReadDeadline(time.Now().Add(authWait))
		at := a.hub.Attach(stream, t)
		defer at.Close()
		receive = at.Receive
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(wsIdle))
		receive(data)
	}
}

// authWait is how long a WebSocket may take to send its auth frame.
const authWait = 10 * time.Second

func (a *API) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	for _, o := range a.origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	// Same host: the pages Glint serves itself.
	if u := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://"); strings.EqualFold(u, r.Host) {
		return true
	}
	return false
}
