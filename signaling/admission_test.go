package signaling_test

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/signaling"
)

// The attack: anonymous WHEP offers, as fast as one machine sends them.
// They never take the slots kept for publishers, one address gets at most
// its share of sessions and of offers, and the streamer's own WHIP offer
// is answered throughout.
func TestAnonymousViewersCannotLockOutThePublisher(t *testing.T) {
	n := startNode(t, nodeOptions{maxSessions: 40, limits: func(c *signaling.Config) {
		c.PublisherSlots, c.MaxViewersPerAddress, c.OfferRate, c.OfferBurst = 5, 30, 50, 100
	}})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	offer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeVP8, "")
	// The crowd comes from 127.0.0.2, the streamer from 127.0.0.1.
	crowd := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := crowd.Post(n.URL+"/whep/demo", "application/sdp", strings.NewReader(offer))
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode != http.StatusCreated && resp.Header.Get("Retry-After") == "" {
					t.Errorf("%d without Retry-After", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("400 anonymous offers from one address: %v", statuses)
	if statuses[http.StatusCreated] > 30 {
		t.Fatalf("one address got %d viewer sessions, the limit is 30", statuses[http.StatusCreated])
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Fatal("nothing was throttled")
	}
	// The streamer reconnects (a takeover) while the crowd holds its slots.
	p, err := client.Publish(t.Context(), client.PublisherConfig{Endpoint: n.URL + "/whip/demo", Token: testKey,
		Simulcast: true, Options: client.Options{Loopback: true}})
	if err != nil {
		t.Fatalf("the publisher was locked out: %v", err)
	}
	_ = p.Stop()
}

// Viewers never take the publishers' slots; a node-wide limit answers 503.
func TestPublisherSlotsAreKept(t *testing.T) {
	n := startNode(t, nodeOptions{maxSessions: 6, limits: func(c *signaling.Config) { c.PublisherSlots = 2 }})
	n.publish(t, client.PublisherConfig{Simulcast: true})
	eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
	offer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeVP8, "")
	var codes []int
	for range 5 {
		resp, _ := do(t, n.URL, req{method: "POST", path: "/whep/demo", ctype: "application/sdp", body: offer})
		codes = append(codes, resp.StatusCode)
	}
	want := []int{201, 201, 201, 201, 503} // 6 sessions, 2 of them publishers'; one publisher is on
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("viewer offers answered %v, want %v", codes, want)
		}
	}
	pub := offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.MimeTypeVP8, "")
	if resp, body := do(t, n.URL, req{method: "POST", path: "/whip/other", ctype: "application/sdp", token: "other-key-123456", body: pub}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("a publisher past the viewers: %d %s", resp.StatusCode, body)
	}
}

// Wrong stream keys: a few are answered 403; after that the address waits,
// longer each time, even with the right key.
func TestKeyGuessingBacksOff(t *testing.T) {
	n := startNode(t, nodeOptions{limits: func(c *signaling.Config) { c.KeyFailures = 3 }})
	offer := offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.MimeTypeVP8, "")
	try := func(key string) *http.Response {
		resp, _ := do(t, n.URL, req{method: "POST", path: "/whip/demo", ctype: "application/sdp", token: key, body: offer})
		return resp
	}
	for i := range 4 {
		if r := try("wrong-key-000000" + string(rune('a'+i))); r.StatusCode != http.StatusForbidden {
			t.Fatalf("wrong key %d: %d, want 403", i+1, r.StatusCode)
		}
	}
	r := try(testKey)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the right key while backing off: %d (Retry-After %q), want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	time.Sleep(1100 * time.Millisecond) // the first block is 1 s
	if r := try(testKey); r.StatusCode != http.StatusCreated {
		t.Fatalf("the right key after the wait: %d", r.StatusCode)
	}
}

// A viewer refused because WebRTC is full, for the stream
// (MaxViewersPerStream) or the node (MaxViewers), is pointed at the
// stream's LL-HLS playlist (Link rel=alternate), besides 503 and
// Retry-After.
func TestFullStreamPointsAtLLHLS(t *testing.T) {
	for name, limit := range map[string]func(*signaling.Config){
		"stream": func(c *signaling.Config) { c.MaxViewersPerStream = 1 },
		"node":   func(c *signaling.Config) { c.MaxViewers = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			n := startNode(t, nodeOptions{limits: limit})
			n.Srv.SetHLS(func(stream string) (any, string) { return nil, "/hls/" + stream + "/index.m3u8" })
			n.publish(t, client.PublisherConfig{Simulcast: true})
			eventually(t, 5*time.Second, "live", func() bool { return roomState(n) == "live" })
			offer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.MimeTypeVP8, "")
			post := func() *http.Response {
				resp, err := http.Post(n.URL+"/whep/demo", "application/sdp", strings.NewReader(offer))
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				return resp
			}
			if resp := post(); resp.StatusCode != http.StatusCreated {
				t.Fatalf("the first viewer: %d", resp.StatusCode)
			}
			resp := post()
			want := `</hls/demo/index.m3u8>; rel="alternate"; type="application/vnd.apple.mpegurl"`
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Link") != want || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("the second viewer: %d, Link %q", resp.StatusCode, resp.Header.Get("Link"))
			}
		})
	}
}
