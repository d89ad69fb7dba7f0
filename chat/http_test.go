package chat

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func getJSON(t *testing.T, url, auth string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestTokensFromTheOperatorAndTheStreamKey(t *testing.T) {
	e := memEnv(t, DefaultConfig())
	u := e.srv.URL + "/api/tokens"
	good := map[string]any{"user_id": "u42", "name": "Mia", "role": "moderator", "stream": "demo", "ttl_seconds": 600}
	for _, c := range []struct {
		auth string
		body any
		want int
	}{
		{"", good, http.StatusUnauthorized},
		{"wrong-key", good, http.StatusUnauthorized},
		{"operator-api-key", map[string]any{"user_id": "u42", "name": "Mia", "role": "admin", "stream": "demo"}, http.StatusBadRequest},
		{"operator-api-key", map[string]any{"user_id": "u42", "name": "Mia", "role": "viewer", "stream": "demo", "ttl_seconds": 90000}, http.StatusBadRequest},
		{"operator-api-key", "not an object", http.StatusBadRequest},
	} {
		if resp, b := httpPost(t, u, c.auth, c.body); resp.StatusCode != c.want {
			t.Fatalf("%v with %q: %d %s, want %d", c.body, c.auth, resp.StatusCode, b, c.want)
		}
	}
	resp, b := httpPost(t, u, "operator-api-key", good)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("issuing: %d %s", resp.StatusCode, b)
	}
	var tok tokenAnswer
	_ = json.Unmarshal(b, &tok)
	// The operator's moderator can moderate.
	mod := e.dial("token=" + url.QueryEscape(tok.Token))
	viewer := e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	if code := mod.errorCode(mod.send(TypeTimeout, TargetBody{User: "u1", Seconds: 5})); code != "" {
		t.Fatalf("operator's moderator: %q", code)
	}
	if code := viewer.errorCode(viewer.send(TypeMessage, MessageBody{Text: "hey"})); code != CodeBanned {
		t.Fatalf("timed-out viewer: %q", code)
	}

	// The host's token comes from the stream key; guests get viewer tokens.
	tu := e.srv.URL + "/api/streams/demo/chat/token"
	if resp, _ := httpPost(t, tu, "not-the-key", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong stream key: %d", resp.StatusCode)
	}
	if resp, _ := httpPost(t, e.srv.URL+"/api/streams/nope/chat/token", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", resp.StatusCode)
	}
	resp, b = httpPost(t, tu, "stream-key-123", map[string]string{"name": "Streamer"})
	_ = json.Unmarshal(b, &tok)
	if resp.StatusCode != http.StatusCreated || tok.User.Role != RoleHost || tok.User.Name != "Streamer" {
		t.Fatalf("host token: %d %s", resp.StatusCode, b)
	}
	resp, b = httpPost(t, tu, "", map[string]string{"name": "Guest"})
	_ = json.Unmarshal(b, &tok)
	if resp.StatusCode != http.StatusCreated || tok.User.Role != RoleViewer || !strings.HasPrefix(tok.User.ID, "guest:") {
		t.Fatalf("guest token: %d %s", resp.StatusCode, b)
	}
	// A token for one stream does not open another's chat.
	if _, err := e.hub.signer.Verify(tok.Token, "other"); err == nil {
		t.Fatal("a demo token verified for another stream")
	}
}

func TestGuestsOffAndReadersNeedTokens(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Guests, cfg.Anonymous = false, false
	e := memEnv(t, cfg)
	if resp, _ := httpPost(t, e.srv.URL+"/api/streams/demo/chat/token", "", map[string]string{"name": "G"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("guest token with guests off: %d", resp.StatusCode)
	}
	if code := getJSON(t, e.srv.URL+"/api/streams/demo/chat", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("history without a token: %d", code)
	}
	ws := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/streams/demo/chat"
	// Without a token in the URL, the connection waits for an auth frame:
	// nothing of the chat comes before it, and a token in the first frame
	// (kept out of URLs and proxy logs) lets the reader in.
	c, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_ = c.WriteMessage(websocket.TextMessage, []byte(`{"v":1,"type":"message","body":{"text":"hi"}}`))
	if _, b, err := c.ReadMessage(); err != nil || !strings.Contains(string(b), `"auth"`) || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("a frame before auth: %s %v", b, err)
	}
	auth, _ := json.Marshal(Envelope{V: Version, Type: TypeAuth, Body: mustJSON(AuthBody{Token: e.token("u2", "Bo", RoleViewer)})})
	_ = c.WriteMessage(websocket.TextMessage, auth)
	if _, b, err := c.ReadMessage(); err != nil || !strings.Contains(string(b), `"type":"hello"`) {
		t.Fatalf("after an auth frame: %s %v", b, err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ws+"?token=forged", nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a WebSocket with a forged token: %v", err)
	}
	e.dial("token=" + e.token("u1", "Ann", RoleViewer))
	if code := getJSON(t, e.srv.URL+"/api/streams/demo/chat", e.token("u1", "Ann", RoleViewer), nil); code != http.StatusOK {
		t.Fatalf("history with a token: %d", code)
	}
}

func TestHistoryByStreamTime(t *testing.T) {
	e := memEnv(t, bigBurst())
	host := e.dial("token=" + e.token("host:demo", "Host", RoleHost))
	var seqs []uint64
	for i := range 10 {
		st := int64(10_000 + i*1000)
		e.streams.st.Store(st)
		ev := host.reply(host.send(TypeMessage, MessageBody{Text: fmt.Sprint("at ", st)}, func(e *Envelope) { e.ST = &st }))
		seqs = append(seqs, ev.Seq)
	}
	host.reply(host.send(TypeDelete, DeleteBody{Seq: seqs[3]})) // 13 s
	var page struct {
		Events []Envelope
		Next   uint64
	}
	base := e.srv.URL + "/api/streams/demo/chat"
	if code := getJSON(t, base+"?from=12000&to=16000", "", &page); code != http.StatusOK {
		t.Fatalf("history: %d", code)
	}
	var got []string
	for _, ev := range page.Events {
		got = append(got, text(ev))
	}
	if fmt.Sprint(got) != "[at 12000 at 14000 at 15000 at 16000]" {
		t.Fatalf("12 s..16 s without the deleted message: %v", got)
	}
	// Paging.
	getJSON(t, base+"?limit=3", "", &page)
	if len(page.Events) != 3 || page.Next != page.Events[2].Seq {
		t.Fatalf("first page: %d events, next %d", len(page.Events), page.Next)
	}
	getJSON(t, fmt.Sprint(base, "?limit=3&after=", page.Next), "", &page)
	if text(page.Events[0]) != "at 14000" {
		t.Fatalf("second page starts %q", text(page.Events[0]))
	}
	for _, q := range []string{"?from=-1", "?from=5&to=4", "?limit=0", "?limit=5000", "?after=x"} {
		if code := getJSON(t, base+q, "", nil); code != http.StatusBadRequest {
			t.Fatalf("%s: %d", q, code)
		}
	}
	if code := getJSON(t, e.srv.URL+"/api/streams/nope/chat", "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown stream: %d", code)
	}
}

func buyBadge(t *testing.T, e *env, token string, tier int) string {
	t.Helper()
	resp, b := httpPost(t, e.srv.URL+"/api/streams/demo/badges/checkout", token, map[string]int{"tier": tier})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("checkout: %d %s", resp.StatusCode, b)
	}
	var out struct{ URL string }
	_ = json.Unmarshal(b, &out)
	return out.URL
}

func TestBadgeWithTheTestProvider(t *testing.T) {
	e := memEnv(t, bigBurst())
	watcher := e.dial("")
	fan := e.dial("token=" + e.token("u-fan", "Fan", RoleViewer))
	fanTok := e.token("u-fan", "Fan", RoleViewer)

	if resp, _ := httpPost(t, e.srv.URL+"/api/streams/demo/badges/checkout", "", map[string]int{"tier": 1}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("checkout without a token: %d", resp.StatusCode)
	}
	if resp, _ := httpPost(t, e.srv.URL+"/api/streams/demo/badges/checkout", fanTok, map[string]int{"tier": 4}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("tier 4: %d", resp.StatusCode)
	}
	pay := buyBadge(t, e, fanTok, 2)
	resp, err := http.Get(e.srv.URL + pay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("test checkout page: %d", resp.StatusCode)
	}
	for range 2 { // paying twice counts once
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+pay, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("paying: %d", resp.StatusCode)
		}
	}
	// A forged reference is refused.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+pay+"x", nil)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged order: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	watcher.waitFor("the badge", func(ev Envelope) bool { return ev.Type == TypeBadge })
	msg := fan.reply(fan.send(TypeMessage, MessageBody{Text: "thanks!"}))
	m := watcher.waitFor("the fan's message", func(ev Envelope) bool { return ev.Seq == msg.Seq })
	if m.From == nil || m.From.Badge != 2 {
		t.Fatalf("the buyer's name carries no heart: %+v", m.From)
	}
	// A second purchase adds to the total.
	pay = buyBadge(t, e, fanTok, 1)
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+pay, nil)
	req.Header.Set("Accept", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	var list struct {
		Supporters []Supporter
		Total      int `json:"total_cents"`
	}
	if code := getJSON(t, e.srv.URL+"/api/streams/demo/supporters", fanTok, nil); code != http.StatusForbidden {
		t.Fatalf("a viewer reading the supporters: %d", code)
	}
	host := e.token("host:demo", "Host", RoleHost)
	deadline := time.Now().Add(5 * time.Second)
	for list.Total != 499+199 && time.Now().Before(deadline) {
		getJSON(t, e.srv.URL+"/api/streams/demo/supporters", host, &list)
		time.Sleep(10 * time.Millisecond)
	}
	if len(list.Supporters) != 1 || list.Supporters[0].Total != 698 || list.Supporters[0].Tier != 2 || list.Supporters[0].Count != 2 {
		t.Fatalf("supporters: %+v", list)
	}
	// Badges are on sale only while live.
	e.streams.live.Store(false)
	if resp, _ := httpPost(t, e.srv.URL+"/api/streams/demo/badges/checkout", fanTok, map[string]int{"tier": 1}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("checkout while offline: %d", resp.StatusCode)
	}
}

func TestBadgeWithAWebhookProvider(t *testing.T) {
	secret := []byte("whsec_test_0123456789")
	m, err := NewMemory(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &WebhookProvider{CheckoutURL: "https://pay.example/checkout?ref={order}&amount={amount}", Secret: secret, Tolerance: 5 * time.Minute}
	e := newEnv(t, bigBurst(), m, p)
	fanTok := e.token("u-fan", "Fan", RoleViewer)
	checkout := buyBadge(t, e, fanTok, 3)
	u, err := url.Parse(checkout)
	if err != nil || u.Host != "pay.example" || u.Query().Get("amount") != "999" {
		t.Fatalf("checkout URL %q", checkout)
	}
	ref := u.Query().Get("ref")
	notify := func(body string, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/payments/webhook", strings.NewReader(body))
		if sig != "" {
			req.Header.Set("Glint-Signature", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	paid := fmt.Sprintf(`{"order":%q,"status":"paid","amount":999}`, ref)
	now := time.Now()
	for _, c := range []struct {
		name, body, sig string
		want            int
	}{
		{"unsigned", paid, "", http.StatusUnauthorized},
		{"wrong secret", paid, SignWebhook([]byte("guess"), now, []byte(paid)), http.StatusUnauthorized},
		{"stale", paid, SignWebhook(secret, now.Add(-time.Hour), []byte(paid)), http.StatusUnauthorized},
		{"body changed", strings.Replace(paid, "999", "1", 1), SignWebhook(secret, now, []byte(paid)), http.StatusUnauthorized},
		{"wrong amount", strings.Replace(paid, "999", "1", 1), SignWebhook(secret, now, []byte(strings.Replace(paid, "999", "1", 1))), http.StatusBadRequest},
		{"forged order", `{"order":"abc.def","status":"paid","amount":999}`, SignWebhook(secret, now, []byte(`{"order":"abc.def","status":"paid","amount":999}`)), http.StatusBadRequest},
		{"paid", paid, SignWebhook(secret, now, []byte(paid)), http.StatusNoContent},
		{"replayed", paid, SignWebhook(secret, now, []byte(paid)), http.StatusNoContent},
	} {
		if got := notify(c.body, c.sig); got != c.want {
			t.Fatalf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	var list struct {
		Supporters []Supporter
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(list.Supporters) == 0 && time.Now().Before(deadline) {
		getJSON(t, e.srv.URL+"/api/streams/demo/supporters", e.token("host:demo", "Host", RoleHost), &list)
		time.Sleep(10 * time.Millisecond)
	}
	if len(list.Supporters) != 1 || list.Supporters[0].Total != 999 || list.Supporters[0].Count != 1 {
		t.Fatalf("a replayed notification counted twice or not at all: %+v", list)
	}
	// The test provider's pages are not served with a real provider.
	if resp, err := http.Get(e.srv.URL + "/api/payments/test/" + ref); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("test checkout with a webhook provider: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}
