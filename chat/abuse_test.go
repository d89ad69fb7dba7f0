package chat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// The attack: mint guest tokens without end, then post from all of them.
// One address gets guestTokenBurst tokens at once (then 429), and all its
// users together post at most addrShare users' worth.
func TestGuestTokenFarmsAreLimitedPerAddress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate, cfg.Burst = 0.5, 2
	e := memEnv(t, cfg)
	codes := map[int]int{}
	var last *http.Response
	for range guestTokenBurst + 5 {
		resp, _ := httpPost(t, e.srv.URL+"/api/streams/demo/chat/token", "", map[string]string{"name": "Bot"})
		codes[resp.StatusCode]++
		last = resp
	}
	if codes[http.StatusCreated] != guestTokenBurst || codes[http.StatusTooManyRequests] != 5 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("guest tokens from one address: %v (Retry-After %q), want %d then 429s", codes, last.Header.Get("Retry-After"), guestTokenBurst)
	}
	// Ten users on one address, each with a fresh bucket of 2.
	accepted := 0
	for i := range 10 {
		c := e.dial("token=" + e.token("guest:bot"+string(rune('a'+i)), "Bot", RoleViewer))
		for j := range 2 {
			if c.errorCode(c.send(TypeMessage, MessageBody{Text: "spam " + string(rune('a'+i)) + string(rune('0'+j))})) == "" {
				accepted++
			}
		}
	}
	if accepted > addrShare*cfg.Burst {
		t.Fatalf("%d posts from one address went through; at most %d (%d users' worth)", accepted, addrShare*cfg.Burst, addrShare)
	}
	if accepted < cfg.Burst {
		t.Fatalf("only %d posts went through", accepted)
	}
}

// With --cors-origin set, a page of another origin cannot open the chat
// WebSocket; the node's own pages (same host) and non-browser clients can.
func TestChatWebSocketChecksTheOrigin(t *testing.T) {
	signer, _ := NewSigner(testSecret)
	st := &streams{}
	st.live.Store(true)
	hub, err := NewHub(DefaultConfig(), mustMemory(t), signer, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := http.NewServeMux()
	NewAPI(hub, TestProvider{}, []string{"https://good.example"}, "").Register(m)
	srv := httptest.NewServer(m)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/streams/demo/chat"
	for origin, want := range map[string]int{"https://evil.example": http.StatusForbidden, "https://good.example": http.StatusSwitchingProtocols, srv.URL: http.StatusSwitchingProtocols, "": http.StatusSwitchingProtocols} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, resp, _ := websocket.DefaultDialer.Dial(url, h)
		if c != nil {
			_ = c.Close()
		}
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %q: %v, want %d", origin, resp, want)
		}
	}
}

func mustMemory(t *testing.T) *Memory {
	t.Helper()
	m, err := NewMemory(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}
