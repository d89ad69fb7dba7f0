package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/glintlive/glint/internal/testredis"
)

// buildGlint builds this command once per test binary run.
var buildGlint = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "glint-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "glint")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
})

// node is a `glint serve` process.
type node struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd
	base string
	log  *syncBuffer
}

var streamsLine = regexp.MustCompile(`Streams:\s+(http://\S+)/`)

func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	n := &node{t: t, args: args, log: &syncBuffer{}}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *node) start() {
	n.t.Helper()
	bin, err := buildGlint()
	if err != nil {
		n.t.Fatal(err)
	}
	n.cmd = exec.Command(bin, append([]string{"serve"}, n.args...)...)
	stdout, _ := n.cmd.StdoutPipe()
	n.cmd.Stderr = n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := streamsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case n.base = <-found:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("glint serve did not start: %s", n.log)
	}
}

func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	n.cmd = nil
}

// chatter is a WebSocket chat client recording the messages it sees.
type chatter struct {
	t  *testing.T
	ws *websocket.Conn

	wmu  sync.Mutex
	mu   sync.Mutex
	log  []seen
	acks map[string]chan wireEvent
}

type seen struct {
	Seq  uint64
	Text string
}

type wireEvent struct {
	Type string
	Seq  uint64
	Ref  string
	Body json.RawMessage
}

func guestToken(t *testing.T, base, name, streamKey string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/streams/demo/chat/token", strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	if streamKey != "" {
		req.Header.Set("Authorization", "Bearer "+streamKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string
		User  struct{ ID string }
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	return out.Token
}

func dialChat(t *testing.T, base, token string) *chatter {
	t.Helper()
	url := "ws" + strings.TrimPrefix(base, "http") + "/api/streams/demo/chat"
	if token != "" {
		url += "?token=" + token
	}
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &chatter{t: t, ws: ws, acks: map[string]chan wireEvent{}}
	go func() {
		for {
			var ev wireEvent
			if err := ws.ReadJSON(&ev); err != nil {
				return
			}
			c.mu.Lock()
			if ch := c.acks[ev.Ref]; ch != nil && ev.Ref != "" {
				ch <- ev
				delete(c.acks, ev.Ref)
			}
			if ev.Type == "message" {
				var b struct{ Text string }
				_ = json.Unmarshal(ev.Body, &b)
				c.log = append(c.log, seen{ev.Seq, b.Text})
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

// request sends an envelope and waits for its answer.
func (c *chatter) request(typ, id string, body any) wireEvent {
	ref := fmt.Sprintf("%s-%d", typ, time.Now().UnixNano())
	ch := make(chan wireEvent, 1)
	c.mu.Lock()
	c.acks[ref] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := c.ws.WriteJSON(map[string]any{"v": 1, "type": typ, "ref": ref, "id": id, "body": body})
	c.wmu.Unlock()
	if err != nil {
		c.t.Error(err)
		return wireEvent{Type: "error"}
	}
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		return wireEvent{Type: "timeout"}
	}
}

func errCode(ev wireEvent) string {
	var b struct{ Code string }
	_ = json.Unmarshal(ev.Body, &b)
	return b.Code
}

// post sends a message until it is acknowledged, retrying with the same
// id while the backplane is away: a retry never makes a second copy.
func (c *chatter) post(id, text string) (uint64, int) {
	retries := 0
	var ev wireEvent
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); retries++ {
		ev = c.request("message", id, map[string]string{"text": text})
		if ev.Type == "ack" {
			return ev.Seq, retries
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Errorf("%s was never acknowledged: %s %s", text, ev.Type, ev.Body)
	return 0, retries
}

func (c *chatter) messages() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}

// Two glint processes share a real redis-server: clients on both see one
// order; a ban issued on one node holds on the other, and after that node
// restarts; Redis restarts mid-stream and chat resumes with no duplicate
// and nothing out of order.
func TestTwoNodesShareOneChat(t *testing.T) {
	fullSuiteOnly(t, "two glint processes and redis-server")
	rs := testredis.Start(t)
	const key = "two-nodes-stream-key"
	args := func() []string {
		return []string{"--listen", "127.0.0.1:0", "--rtc-ip", "127.0.0.1", "--rtc-port", "0", "--rtmp-listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--log-level", "warn", "--stream-key", "demo=" + key, "--redis", rs.URL(), "--chat-rate", "1000", "--chat-burst", "1000"}
	}
	a, b := startNode(t, args()...), startNode(t, args()...)

	// Tokens from one node are good on the other: the secret is shared
	// through Redis.
	var watchers, posters []*chatter
	for i, n := range []*node{a, b, a, b} {
		watchers = append(watchers, dialChat(t, n.base, ""))
		posters = append(posters, dialChat(t, n.base, guestToken(t, []*node{b, a}[i%2].base, fmt.Sprint("poster", i), "")))
	}
	var acked sync.Map // text → seq
	var posted, retried atomic.Int64
	// postAll has every poster post n messages, and go on until more is
	// closed.
	postAll := func(round string, n int, more <-chan struct{}) {
		var wg sync.WaitGroup
		for i, p := range posters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; ; j++ {
					if j >= n {
						select {
						case <-more:
							return
						default:
						}
					}
					text := fmt.Sprintf("%s p%d m%d", round, i, j)
					seq, retries := p.post(fmt.Sprintf("%s-%d-%d", round, i, j), text)
					if seq != 0 {
						acked.Store(text, seq)
					}
					posted.Add(1)
					retried.Add(int64(retries))
				}
			}()
		}
		wg.Wait()
	}
	done := make(chan struct{})
	close(done)
	postAll("before", 25, done)

	// Redis restarts while everyone keeps posting.
	restarted := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		rs.Restart(4 * time.Second) // longer than a post waits (3 s): some fail and are retried
		close(restarted)
	}()
	postAll("during", 20, restarted)
	postAll("after", 10, done)

	want := 0
	acked.Range(func(any, any) bool { want++; return true })
	if want != int(posted.Load()) || retried.Load() == 0 {
		t.Fatalf("%d of %d posts acknowledged, after %d retries (want some: Redis was down)", want, posted.Load(), retried.Load())
	}
	var first []seen
	for i, w := range append(watchers, posters...) {
		deadline := time.Now().Add(15 * time.Second)
		for len(w.messages()) < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := w.messages()
		texts := map[string]bool{}
		for k, m := range got {
			if k > 0 && m.Seq <= got[k-1].Seq {
				t.Fatalf("client %d: seq %d after %d", i, m.Seq, got[k-1].Seq)
			}
			if texts[m.Text] {
				t.Fatalf("client %d: %q twice", i, m.Text)
			}
			texts[m.Text] = true
			if seq, ok := acked.Load(m.Text); !ok || seq.(uint64) != m.Seq {
				t.Fatalf("client %d: %q as seq %d, acknowledged as %v", i, m.Text, m.Seq, seq)
			}
		}
		if len(got) != want {
			t.Fatalf("client %d saw %d messages, want %d", i, len(got), want)
		}
		if first == nil {
			first = got
		} else if !slices.Equal(first, got) {
			t.Fatalf("client %d saw another order", i)
		}
	}

	// The host bans, on node A, a viewer who is on node B.
	host := dialChat(t, a.base, guestToken(t, a.base, "Host", key))
	trollTok := guestToken(t, b.base, "Troll", "")
	troll := dialChat(t, b.base, trollTok)
	trollID := troll.request("auth", "", map[string]string{"token": trollTok})
	var hello struct{ You struct{ ID string } }
	_ = json.Unmarshal(trollID.Body, &hello)
	if ev := troll.request("message", "", map[string]string{"text": "first!"}); ev.Type != "ack" {
		t.Fatalf("troll's first post: %s %s", ev.Type, ev.Body)
	}
	if ev := host.request("ban", "", map[string]string{"user": hello.You.ID}); ev.Type != "ack" {
		t.Fatalf("ban: %s %s", ev.Type, ev.Body)
	}
	waitCode := func(c *chatter, want string) {
		t.Helper()
		var code string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if code = errCode(c.request("message", "", map[string]string{"text": fmt.Sprint("try ", time.Now().UnixNano())})); code == want {
				return
			}
		}
		t.Fatalf("post: %q, want %q", code, want)
	}
	waitCode(troll, "banned")
	// Node B restarts: the ban is in the log, so it holds.
	b.stop()
	b.start()
	troll = dialChat(t, b.base, trollTok)
	waitCode(troll, "banned")
	t.Logf("%d messages from 4 posters on 2 nodes (%d retries while Redis was down), one order for 8 clients; ban held across nodes and a node restart", want, retried.Load())
}
