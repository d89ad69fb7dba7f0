package chat

import (
	"context"

	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/glintlive/glint/internal/httpx"
)

// wsTransport is a chat connection over a WebSocket (RFC 6455).
type wsTransport struct{ c *websocket.Conn }

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
// in ?token= or later in an auth frame; ?after=N resumes after sequence
// number N.
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
	} else if !a.hub.cfg.Anonymous {
		httpx.Problem(w, http.StatusUnauthorized, ErrReadOnly.Error())
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
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	conn, err := a.hub.Connect(ctx, stream, wsTransport{ws}, token, resume, after)
	cancel()
	if err != nil {
		_ = wsTransport{ws}.Close(err.Error())
		return
	}
	defer conn.Close()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(wsIdle))
		conn.Receive(data)
	}
}

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
