package chat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// streams is a fake media side: a clock the test moves.
type streams struct {
	live atomic.Bool
	st   atomic.Int64
}

func (s *streams) Known(name string) bool { return name == "demo" }
func (s *streams) StreamTime(string) (int64, bool) {
	return s.st.Load(), s.live.Load()
}

func (s *streams) CheckKey(_, key string) error {
	if key != "stream-key-123" {
		return errors.New("wrong key")
	}
	return nil
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type env struct {
	t       *testing.T
	hub     *Hub
	streams *streams
	srv     *httptest.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

func newEnv(t *testing.T, cfg Config, bp Backplane, pay Provider) *env {
	t.Helper()
	signer, err := NewSigner(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	st := &streams{}
	st.live.Store(true)
	st.st.Store(60_000)
	hub, err := NewHub(cfg, bp, signer, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if pay == nil {
		pay = TestProvider{}
	}
	m := http.NewServeMux()
	NewAPI(hub, pay, []string{"*"}, "operator-api-key").Register(m)
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, hub: hub, streams: st, srv: httptest.NewServer(m), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		_ = hub.Run(ctx)
	}()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		e.srv.CloseClientConnections()
		e.srv.Close()
		cancel()
		<-e.done
		_ = bp.Close()
	})
	return e
}

func memEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	m, err := NewMemory(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, cfg, m, nil)
}

// token issues a token for a user.
func (e *env) token(id, name string, role Role) string {
	e.t.Helper()
	tok, err := e.hub.signer.Issue(Claims{Sub: id, Name: name, Role: role, Stream: "demo"}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// client is a WebSocket chat client that records what it receives.
type client struct {
	t  *testing.T
	ws *websocket.Conn

	mu      sync.Mutex
	events  []Envelope
	closed  chan struct{}
	ref     atomic.Int64
	batches atomic.Int64 // messages that were batches
}

func (e *env) dial(query string) *client {
	e.t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/streams/demo/chat"
	if query != "" {
		url += "?" + query
	}
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (HTTP %d)", url, err, code)
	}
	c := &client{t: e.t, ws: ws, closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var evs []Envelope
			if len(data) > 0 && data[0] == '[' { // a batch (?batch=1)
				if json.Unmarshal(data, &evs) != nil {
					continue
				}
				c.batches.Add(1)
			} else {
				var ev Envelope
				if json.Unmarshal(data, &ev) != nil {
					continue
				}
				evs = []Envelope{ev}
			}
			c.mu.Lock()
			c.events = append(c.events, evs...)
			c.mu.Unlock()
		}
	}()
	e.t.Cleanup(func() { _ = ws.Close(); <-c.closed })
	c.waitFor("hello", func(ev Envelope) bool { return ev.Type == TypeHello })
	return c
}

// send writes a request and returns its ref.
func (c *client) send(typ string, body any, extra ...func(*Envelope)) string {
	c.t.Helper()
	ref := "r" + strconv.FormatInt(c.ref.Add(1), 10)
	e := Envelope{V: Version, Type: typ, Ref: ref}
	if body != nil {
		e.Body = mustJSON(body)
	}
	for _, f := range extra {
		f(&e)
	}
	b, _ := json.Marshal(e)
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatal(err)
	}
	return ref
}

func (c *client) raw(b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatal(err)
	}
}

// waitFor waits for an event matching cond and returns it.
func (c *client) waitFor(what string, cond func(Envelope) bool) Envelope {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range c.all("") {
			if cond(ev) {
				return ev
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("timed out waiting for %s; got %s", what, c.dump())
	return Envelope{}
}

// reply waits for the ack or error answering ref.
func (c *client) reply(ref string) Envelope {
	c.t.Helper()
	return c.waitFor("the reply to "+ref, func(ev Envelope) bool {
		return ev.Ref == ref && (ev.Type == TypeAck || ev.Type == TypeError || ev.Type == TypePong || ev.Type == TypeHello)
	})
}

func (c *client) errorCode(ref string) string {
	c.t.Helper()
	ev := c.reply(ref)
	if ev.Type != TypeError {
		return ""
	}
	b, _ := body[ErrorBody](&ev)
	return b.Code
}

func (c *client) all(typ string) []Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Envelope
	for _, ev := range c.events {
		if typ == "" || ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func (c *client) dump() string {
	var b strings.Builder
	for _, ev := range c.all("") {
		raw, _ := json.Marshal(ev)
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

func text(ev Envelope) string {
	b, _ := body[MessageBody](&ev)
	return b.Text
}
