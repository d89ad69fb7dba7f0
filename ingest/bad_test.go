package ingest

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	rtmpcodecs "github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	srt "github.com/datarhei/gosrt"

	"github.com/glintlive/glint/internal/load"
	"github.com/glintlive/glint/sfu"
)

// logBuf keeps a server's log for a test to read (and shows it with -v).
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		_, _ = os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

// waitFor waits up to 10 s for a log line holding every one of parts.
func (l *logBuf) waitFor(t *testing.T, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		lines := strings.Split(l.b.String(), "\n")
		l.mu.Unlock()
		for _, line := range lines {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, strings.Join(lines, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedWithin reports whether the server closes c within d: a read
// ends other than by the deadline.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// publisher connects to url as an RTMP publisher, closed when the test
// ends, or fails the test.
func publisher(t *testing.T, rawURL string) *gortmplib.Client {
	t.Helper()
	c, err := rtmpClient(t, rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// rtmpClient connects to url as an RTMP publisher (handshake, connect,
// publish).
func rtmpClient(t *testing.T, rawURL string) (*gortmplib.Client, error) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &gortmplib.Client{URL: u, Publish: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Initialize(ctx)
	return c, err
}

// Encoders that send nonsense are logged and hung up on, and the node
// goes on: malformed chunks, an unknown application, no video, a
// timestamp hours ahead, a stalled encoder, a second publisher of the
// stream, and SRT carrying no MPEG-TS.
func TestBadEncodersAreTurnedAway(t *testing.T) {
	const key = "bad-input-key-123456"
	logs := &logBuf{}
	s, reg, _, stop := serveIngestLog(t, Config{RTMPListen: "127.0.0.1:0", SRTListen: "127.0.0.1:0", Timeout: 3 * time.Second},
		streamKeys{"demo": key}, logs)
	base := "rtmp://" + s.Addr().String() + "/live/"
	ff := ffmpegPath(t)
	aus, keys, err := load.EncodeClip(context.Background(), ff, 320, 180, 15, 300_000)
	if err != nil {
		t.Fatal(err)
	}
	h264 := &gortmplib.Track{Codec: &rtmpcodecs.H264{SPS: aus[0][0], PPS: aus[0][1]}}
	// publish sends the clip's frames at 15 a second, with pts(i) as
	// frame i's timestamp, until it has sent n or the server hangs up.
	publish := func(c *gortmplib.Client, n int, pts func(i int) time.Duration) error {
		w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{h264}}
		if err := w.Initialize(); err != nil {
			return err
		}
		for i := range n {
			if err := w.WriteH264(h264, pts(i), pts(i), aus[i%len(aus)]); err != nil {
				return err
			}
			time.Sleep(time.Second / 15)
		}
		return nil
	}
	steady := func(i int) time.Duration { return time.Duration(i) * time.Second / 15 }
	if !keys[0] {
		t.Fatal("the clip does not start with a keyframe")
	}

	t.Run("malformed chunks", func(t *testing.T) {
		c := publisher(t, base+key)
		junk := make([]byte, 4096)
		_, _ = rand.Read(junk)
		_, _ = c.NetConn().Write(junk)
		if !closedWithin(c.NetConn(), 5*time.Second) {
			t.Fatal("the connection stayed open after malformed chunks")
		}
		logs.waitFor(t, "rtmp: connection ended", "demo")
	})
	t.Run("not RTMP at all", func(t *testing.T) {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"+strings.Repeat("x", 3000))
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("the connection stayed open")
		}
		logs.waitFor(t, "rtmp: connection ended", "handshake")
	})
	t.Run("unknown application", func(t *testing.T) {
		c, err := rtmpClient(t, "rtmp://"+s.Addr().String()+"/other/"+key)
		if err == nil {
			c.Close()
			t.Fatal("a publisher to another application was taken")
		}
		logs.waitFor(t, "unknown application")
	})
	t.Run("no video", func(t *testing.T) {
		c := publisher(t, base+key)
		aac := &gortmplib.Track{Codec: &rtmpcodecs.MPEG4Audio{Config: &mpeg4audio.AudioSpecificConfig{
			Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelConfig: 2}}}
		w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{aac}}
		if err := w.Initialize(); err == nil {
			for i := range 100 {
				if w.WriteMPEG4Audio(aac, time.Duration(i)*time.Second*1024/48000, []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}) != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !closedWithin(c.NetConn(), 15*time.Second) {
			t.Fatal("a stream without video stayed connected")
		}
		logs.waitFor(t, "rtmp: connection ended", "no video track")
	})
	t.Run("timestamp hours ahead", func(t *testing.T) {
		c := publisher(t, base+key)
		err := publish(c, 60, func(i int) time.Duration {
			if i >= 30 {
				return 10*time.Hour + steady(i)
			}
			return steady(i)
		})
		if err == nil && !closedWithin(c.NetConn(), 5*time.Second) {
			t.Fatal("a 10 h jump was taken")
		}
		logs.waitFor(t, "rtmp: connection ended", "timestamps jumped by 10h")
	})
	t.Run("stalled", func(t *testing.T) {
		c := publisher(t, base+key)
		if !closedWithin(c.NetConn(), 10*time.Second) {
			t.Fatal("a publisher that sends nothing was kept")
		}
		logs.waitFor(t, "rtmp: connection ended", "timeout")
	})
	t.Run("second publisher", func(t *testing.T) {
		first := publisher(t, base+key)
		done := make(chan error, 1)
		go func() { done <- publish(first, 150, steady) }()
		waitSession(t, s, true, "the first publisher never went live")
		second := publisher(t, base+key)
		go func() { _ = publish(second, 60, steady) }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("the first publisher sent everything: its connection was not closed")
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the first publisher's connection stayed open")
		}
		logs.waitFor(t, "another publisher took the stream", "demo")
		if st := reg.Lookup("demo"); st == nil || st.State() == sfu.StateOffline {
			t.Fatal("the stream is offline: the second publisher did not take it")
		}
	})
	t.Run("SRT without MPEG-TS", func(t *testing.T) {
		cfg := srt.DefaultConfig()
		cfg.StreamId = "publish:demo:" + key
		c, err := srt.Dial("srt", s.SRTAddr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		junk := make([]byte, 1316)
		for range 50 {
			_, _ = rand.Read(junk)
			if _, err := c.Write(junk); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		logs.waitFor(t, "srt: connection ended", "demo", "no MPEG-TS program")
	})
	stop()
}
