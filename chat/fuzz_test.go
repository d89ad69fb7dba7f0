package chat

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

// discard is a transport that drops what it is given.
type discard struct{}

func (discard) Write([]byte) error { return nil }
func (discard) Close(string) error { return nil }

// FuzzReceive feeds client frames, as they come off a WebSocket or a data
// channel, to the host's connection: nothing may panic, and bad frames
// get error events. (A fuzzer sends faster than any writer drains, so the
// connection may be dropped as too slow; it is then opened again.)
func FuzzReceive(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"message","body":{"text":"hi"}}`,
		`{"v":1,"type":"reaction","body":{"emoji":"❤️"}}`,
		`{"v":1,"type":"words","body":{"add":["a","b"]}}`,
		`{"v":1,"type":"timeout","body":{"user":"x","seconds":5}}`,
		`{"v":1,"type":"delete","body":{"seq":1}}`,
		`{"v":1,"type":"slow","body":{"seconds":-1}}`,
		`{"v":1,"type":"auth","body":{"token":"a.b"}}`,
		`{"v":1,"type":"resume","body":{"after":18446744073709551615}}`,
		`{"v":1,"type":"message","st":-9223372036854775808,"body":{"text":"x"}}`,
		`{"v":2}`, `[]`, `null`, `{"v":1,"type":"message","body":null}`,
	} {
		f.Add([]byte(s))
	}
	m, err := NewMemory(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := NewSigner(testSecret)
	st := &streams{}
	st.live.Store(true)
	cfg := DefaultConfig()
	cfg.Rate, cfg.Burst = 1e9, 1<<30
	hub, err := NewHub(cfg, m, signer, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done; _ = m.Close() })
	tok, _ := signer.Issue(Claims{Sub: "host:demo", Name: "H", Role: RoleHost, Stream: "demo"}, MaxTokenTTL)
	var c *Conn
	f.Fuzz(func(t *testing.T, frame []byte) {
		if c == nil || c.closed.Load() {
			if c, err = hub.Connect(ctx, "demo", discard{}, tok, false, 0); err != nil {
				t.Fatal(err)
			}
		}
		c.Receive(frame)
	})
}
