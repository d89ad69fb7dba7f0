package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/glintlive/glint/internal/codec"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/transcode"
)

// streamKeys is the one stream's key, as a node's key file would answer.
type streamKeys map[string]string

func (k streamKeys) StreamOf(key string) (string, error) {
	for name, want := range k {
		if want == key {
			return name, nil
		}
	}
	return "", errors.New("wrong key")
}

// counter counts a track's packets by layer.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) Deliver(l *sfu.Layer, _ *sfu.Packet) {
	c.mu.Lock()
	c.n[l.RID()]++
	c.mu.Unlock()
}

func (c *counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *counter) get(rid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[rid]
}

func ffmpegPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatalf("these tests run the real ffmpeg: apt-get install ffmpeg (or make test-deps): %v", err)
	}
	return p
}

// publish runs ffmpeg as an RTMP encoder would: a 640x360 test pattern
// in H.264 with B-frames and AAC, in real time, for d.
func publish(ctx context.Context, ff, url string, d time.Duration) *exec.Cmd {
	return exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(d.Seconds()), "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "2", "-g", "30",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url)
}

// serveIngest runs a Server on cfg's listeners with the real ffmpeg and
// the encoder it probed, publishing into a fresh registry. stop cancels
// ctx and fails the test if Serve returned an error.
func serveIngest(t *testing.T, cfg Config, keys streamKeys) (s *Server, reg *sfu.Registry, ctx context.Context, stop func()) {
	t.Helper()
	return serveIngestLog(t, cfg, keys, testLog())
}

// serveIngestLog is serveIngest with the server's log going to logw.
func serveIngestLog(t *testing.T, cfg Config, keys streamKeys, logw io.Writer) (s *Server, reg *sfu.Registry, ctx context.Context, stop func()) {
	t.Helper()
	ff := ffmpegPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	enc, err := transcode.Probe(ctx, ff)
	if err != nil {
		t.Fatal(err)
	}
	reg = sfu.NewRegistry(sfu.DefaultConfig())
	t.Cleanup(reg.Close)
	cfg.FFmpeg, cfg.Encoder = ff, func() (transcode.Encoder, error) { return enc, nil }
	s, err = New(cfg, reg, keys, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	return s, reg, ctx, func() {
		t.Helper()
		cancel()
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
}

// An RTMP encoder (ffmpeg, H.264 with B-frames and AAC) publishes with
// the stream key: the stream goes live with two layers the transcoder
// made of it (360p and 180p) and Opus; a wrong key is refused and the
// stream stays offline.
func TestRTMPPublisherBecomesAPublication(t *testing.T) {
	s, reg, ctx, stop := serveIngest(t, Config{RTMPListen: "127.0.0.1:0"}, streamKeys{"demo": "rtmp-test-key-1234"})
	ff := ffmpegPath(t)
	base := "rtmp://" + s.Addr().String() + "/live/"

	if out, err := publish(ctx, ff, base+"wrong-key-00000000", 2*time.Second).CombinedOutput(); err == nil {
		t.Fatalf("a wrong key was taken: %s", out)
	}
	if st := reg.Lookup("demo"); st != nil && st.State() != sfu.StateOffline {
		t.Fatal("the stream went live on a wrong key")
	}

	enc1 := publish(ctx, ff, base+"rtmp-test-key-1234", 8*time.Second)
	if err := enc1.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = enc1.Process.Kill(); _ = enc1.Wait() }()
	var st *sfu.Stream
	deadline := time.Now().Add(15 * time.Second)
	for st == nil || st.State() != sfu.StateLive {
		if time.Now().After(deadline) {
			t.Fatal("the RTMP publisher never made the stream live")
		}
		time.Sleep(50 * time.Millisecond)
		st = reg.Lookup("demo")
	}
	c := &counter{n: map[string]int{}}
	audio, video := st.Tracks()
	video.AddSink(c)
	audio.AddSink(c)
	for c.get("h") < 30 || c.get("m") < 10 || c.get("") < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("packets at the layers: %v; stream %+v", c.snapshot(), st.Info(sfu.Now()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	info := st.Info(sfu.Now())
	if info.Video == nil || len(info.Video.Layers) != 2 || info.Audio == nil || info.Audio.Codec != "audio/opus" {
		t.Fatalf("stream %+v", info)
	}
	for _, l := range info.Video.Layers {
		if l.Keyframes == 0 || l.Height == 0 {
			t.Fatalf("layer %+v: no keyframe read", l)
		}
	}
	t.Logf("layers %dp and %dp, %v packets", info.Video.Layers[1].Height, info.Video.Layers[0].Height, c.snapshot())
	// The encoder stops: the stream waits for it to come back.
	_ = enc1.Process.Kill()
	_ = enc1.Wait()
	for st.State() != sfu.StateReconnecting {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("after the encoder went: %v", st.State())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
}

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// RTMPS: the same publisher over TLS.
func TestRTMPSPublisher(t *testing.T) {
	cert, key := selfSigned(t)
	s, reg, ctx, stop := serveIngest(t, Config{RTMPSListen: "127.0.0.1:0", TLSCert: cert, TLSKey: key}, streamKeys{"demo": "rtmps-test-key-1234"})
	ff := ffmpegPath(t)
	if s.Addr() != nil {
		t.Fatal("a plain RTMP listener without one configured")
	}
	_, rtmps, _ := s.URLs("127.0.0.1")
	encoder := publish(ctx, ff, rtmps+"/rtmps-test-key-1234", 6*time.Second)
	if err := encoder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = encoder.Process.Kill(); _ = encoder.Wait() }()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if st := reg.Lookup("demo"); st != nil && st.State() == sfu.StateLive {
			if in := st.Info(sfu.Now()); in.Video != nil && in.Video.Layers[0].Packets > 10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the RTMPS publisher never made the stream live")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
}

// publishSRT runs ffmpeg as an SRT encoder: MPEG-TS with 640x360 video of
// codec (libx264 with B-frames, or libx265) and AAC, in real time.
func publishSRT(ctx context.Context, ff, url, streamID, codec string, d time.Duration) *exec.Cmd {
	return exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", fmt.Sprint(d.Seconds()), "-c:v", codec, "-preset", "veryfast", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "mpegts", url+"?streamid="+streamID+"&latency=120000")
}

// SRT encoders (ffmpeg: H.264 with B-frames, and H.265, each with AAC)
// publish with "publish:{stream}:{key}": the stream goes live with its
// layers and Opus; a wrong key is refused.
func TestSRTPublishers(t *testing.T) {
	s, reg, ctx, stop := serveIngest(t, Config{SRTListen: "127.0.0.1:0"}, streamKeys{"demo": "srt-test-key-12345"})
	ff := ffmpegPath(t)
	_, _, base := s.URLs("127.0.0.1")

	if out, err := publishSRT(ctx, ff, base, "publish:demo:not-the-key-0000", "libx264", time.Second).CombinedOutput(); err == nil {
		t.Fatalf("a wrong key was taken: %s", out)
	}
	for _, c := range []struct{ codec, want, id string }{
		{"libx264", "H.264 640x360", "publish:demo:srt-test-key-12345"},
		{"libx265", "H.265 640x360", "#!::r=demo,m=publish,s=srt-test-key-12345"},
	} {
		encoder := publishSRT(ctx, ff, base, c.id, c.codec, 8*time.Second)
		var stderr strings.Builder
		encoder.Stderr = &stderr
		if err := encoder.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			st := reg.Lookup("demo")
			if stt, ok := s.Status("demo"); ok && stt.Video == c.want && st != nil && st.State() == sfu.StateLive {
				in := st.Info(sfu.Now())
				if in.Video != nil && len(in.Video.Layers) == 2 && in.Video.Layers[0].Keyframes > 0 && in.Audio != nil && in.Audio.Layers[0].Packets > 20 {
					break
				}
			}
			if time.Now().After(deadline) {
				stt, _ := s.Status("demo")
				t.Fatalf("%s over SRT: status %+v; ffmpeg: %s", c.codec, stt, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = encoder.Process.Kill()
		_ = encoder.Wait()
		waitSession(t, s, false, c.codec+": the SRT session outlived its encoder")
	}
	stop()
}

func TestParseStreamID(t *testing.T) {
	for id, want := range map[string][3]string{
		"publish:demo:k1":                {"publish", "demo", "k1"},
		"publish:demo:key:with:colons":   {"publish", "demo", "key:with:colons"},
		"#!::r=demo,m=publish,s=k2":      {"publish", "demo", "k2"},
		"#!::m=publish,s=k3,r=demo,u=me": {"publish", "demo", "k3"},
	} {
		m, s, k, err := parseStreamID(id)
		if err != nil || [3]string{m, s, k} != want {
			t.Errorf("%q: %q %q %q %v, want %q", id, m, s, k, err, want)
		}
	}
	for _, bad := range []string{"", "demo", "publish:demo", "publish::k", "#!::r=demo,m=publish", "publish:a/b:k", strings.Repeat("x", 600)} {
		if _, _, _, err := parseStreamID(bad); err == nil {
			t.Errorf("%q was taken", bad)
		}
	}
}

// FuzzStreamID: a caller's stream id never panics the parser, and what it
// accepts has a stream and a key.
func FuzzStreamID(f *testing.F) {
	for _, s := range []string{"publish:demo:k1", "#!::r=demo,m=publish,s=k2", "read:x:y", "#!::", ":::", "publish:a/b:k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		_, s, k, err := parseStreamID(id)
		if err == nil && (s == "" || k == "") {
			t.Fatalf("%q: accepted without a stream or a key", id)
		}
	})
}

// testLog is where a test's node logs: stderr with -v.
func testLog() io.Writer {
	if testing.Verbose() {
		return os.Stderr
	}
	return io.Discard
}

// tsCounter keeps the RTP timestamps of each layer's packets and the
// payload of its first keyframe packet.
type tsCounter struct {
	mu  sync.Mutex
	ts  map[string]map[uint32]bool
	key map[string][]byte
	// age is, per layer, how long before its delivery each frame reached
	// the node, by its capture time.
	age map[string][]time.Duration
}

func (c *tsCounter) Deliver(l *sfu.Layer, p *sfu.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ts[l.RID()] == nil {
		c.ts[l.RID()] = map[uint32]bool{}
	}
	c.ts[l.RID()][p.Timestamp] = true
	if v := p.AbsCaptureTime(); len(v) >= 8 {
		c.age[l.RID()] = append(c.age[l.RID()], time.Since(codec.TimeOfNTP(binary.BigEndian.Uint64(v))))
	}
	if p.Keyframe && c.key[l.RID()] == nil {
		c.key[l.RID()] = append([]byte(nil), p.Payload()...)
	}
}

// An RTMP encoder sending H.264 without B-frames (x264 with bframes=0,
// High profile) is passed through: the top layer carries the source's own
// 640x360 frames with the codec its SPS announces, the transcoder makes
// only the layer under it (180p), on the same clock: the two layers'
// frames carry the same RTP timestamps.
func TestRTMPPassesH264WithoutBFramesThrough(t *testing.T) {
	s, reg, ctx, stop := serveIngest(t, Config{RTMPListen: "127.0.0.1:0"}, streamKeys{"demo": "rtmp-test-key-1234"})
	ff := ffmpegPath(t)
	enc := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", "8", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0", "-g", "30",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", "rtmp://"+s.Addr().String()+"/live/rtmp-test-key-1234")
	if err := enc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = enc.Process.Kill(); _ = enc.Wait() }()
	c := &tsCounter{ts: map[string]map[uint32]bool{}, key: map[string][]byte{}, age: map[string][]time.Duration{}}
	deadline := time.Now().Add(15 * time.Second)
	var st *sfu.Stream
	for st == nil || st.State() != sfu.StateLive {
		if time.Now().After(deadline) {
			t.Fatal("the RTMP publisher never made the stream live")
		}
		time.Sleep(50 * time.Millisecond)
		st = reg.Lookup("demo")
	}
	audioT, video := st.Tracks()
	video.AddSink(c)
	audioT.AddSink(c)
	// A viewer, for the sender reports it would be sent.
	sub, err := st.Subscribe("viewer")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range sub.DownTracks() {
		codecs := []sfu.Codec{{MimeType: "audio/opus", ClockRate: 48000, Channels: 2, PayloadType: 111}}
		if d.Kind() == sfu.KindVideo {
			codecs = []sfu.Codec{{MimeType: "video/H264", ClockRate: 90000, PayloadType: 96, Fmtp: "packetization-mode=1;profile-level-id=64001f"}}
		}
		if _, err := d.Bind(discard{}, 1, codecs, sfu.ExtIDs{}); err != nil {
			t.Fatal(err)
		}
	}
	sub.Start(sfu.Now())
	defer sub.Close(nil)
	for {
		c.mu.Lock()
		n, m := len(c.ts["h"]), len(c.ts["m"])
		c.mu.Unlock()
		if n >= 45 && m >= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("frames: h %d, m %d", n, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stt, _ := s.Status("demo")
	info := st.Info(sfu.Now())
	if !stt.Passthrough || info.Video == nil || len(info.Video.Layers) != 2 {
		t.Fatalf("status %+v, stream %+v", stt, info)
	}
	if l, h := info.Video.Layers[0], info.Video.Layers[1]; h.Height != 360 || l.Height != 180 {
		t.Fatalf("layers %dp and %dp, want 180p and the source's 360p", l.Height, h.Height)
	}
	if vc, ok := video.Codec(); !ok || !strings.EqualFold(vc.MimeType, "video/H264") || !strings.Contains(vc.Fmtp, "profile-level-id=64") {
		t.Fatalf("codec %+v: want the source's High profile", vc)
	}
	// The viewer's sender reports map audio and video to when their frames
	// reached the node, one clock: the audio, through the transcoder,
	// reaches it later than the passed-through video.
	now, wall := sfu.Now(), codec.NTPTime(time.Now())
	var at [2]time.Time
	for i, d := range sub.DownTracks() {
		sr, ok := d.SenderReport(now, wall)
		if !ok {
			t.Fatalf("no sender report for the viewer's %v", d.Kind())
		}
		at[i] = codec.TimeOfNTP(sr.NTPTime)
	}
	// The audio is on the video's clock: its frames reach the layer soon
	// after the node (it was a second and more off before).
	for i, d := range at {
		if ago := time.Since(d); ago < 0 || ago > time.Second {
			t.Fatalf("the %v sender report maps now to %v ago", sub.DownTracks()[i].Kind(), ago)
		}
	}
	t.Logf("sender reports: audio %v, video %v before now", time.Since(at[0]), time.Since(at[1]))
	video.RemoveSink(c)
	audioT.RemoveSink(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	// The source's keyframe: its SPS (in a STAP-A, or alone) says High (100).
	k := c.key["h"]
	if !bytes.Contains(k, []byte{0x67, 100}) && !bytes.Contains(k, []byte{0x27, 100}) {
		t.Fatalf("the top layer's first keyframe packet is not the source's High-profile H.264: % x", k[:min(len(k), 16)])
	}
	// The made layer's frames since the top's first one seen, and those of
	// them with a timestamp of the top's (up to its last, the child lags).
	hs := slices.Sorted(maps.Keys(c.ts["h"]))
	both, same := 0, 0
	for ts := range c.ts["m"] {
		if ts >= hs[0] && ts <= hs[len(hs)-1] {
			both++
			if c.ts["h"][ts] {
				same++
			}
		}
	}
	if both < 20 || same < both*9/10 {
		t.Fatalf("only %d of the made layer's %d frame timestamps are the passthrough's (%v; %v)", same, both, slices.Sorted(maps.Keys(c.ts["m"]))[:5], hs[:5])
	}
	// Every frame's first packet says when the frame reached the node: the
	// passthrough's a moment ago, the made layer's after the transcoder.
	for _, rid := range []string{"h", "m", ""} { // "": the audio
		ages := c.age[rid]
		if len(ages) < 20 {
			t.Fatalf("layer %s: %d frames with a capture time", rid, len(ages))
		}
		slices.Sort(ages)
		if med := ages[len(ages)/2]; med < 0 || med > 3*time.Second {
			t.Fatalf("layer %s: frames reached the node a median %v before their delivery", rid, med)
		}
		t.Logf("layer %q: median %v from the node's receipt to the layer", rid, ages[len(ages)/2])
	}
	stop()
}

// discard is a viewer's connection that sends nowhere.
type discard struct{}

func (discard) WriteRTP(*rtp.Header, []byte) (int, error) { return 0, nil }

// waitSession waits up to 10 s for stream demo to have an encoder's
// session (want) or none, and fails the test with what otherwise.
func waitSession(t *testing.T, s *Server, want bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, ok := s.Status("demo"); ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
