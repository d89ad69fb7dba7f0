package hlsbridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"go.uber.org/goleak"

	"github.com/glintlive/glint/internal/load"
	"github.com/glintlive/glint/sfu"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("this test runs the real %s: apt-get install ffmpeg (or make test-deps): %v", name, err)
	}
	return p
}

type keySource struct{ asked atomic.Int32 }

func (k *keySource) RequestKeyframe(*sfu.Layer) { k.asked.Add(1) }
func (k *keySource) Close() error               { return nil }

// live publishes two H.264 simulcast layers (real x264 encodings of a test
// picture, 15 fps, a keyframe a second) and Opus audio into a registry in
// real time, as a WHIP publisher's packets would arrive, until the test
// ends. It returns the bridge serving the stream over real HTTP.
func live(t testing.TB) (url string, src *keySource) {
	t.Helper()
	ls := startLive(t)
	return ls.url, ls.src
}

// liveBridge is live, returning the bridge too.
func liveBridge(t testing.TB) (string, *Bridge) {
	t.Helper()
	ls := startLive(t)
	return ls.url, ls.br
}

// liveStream is a stream published into a registry, packaged by a bridge
// served over real HTTP.
type liveStream struct {
	url      string
	src      *keySource
	br       *Bridge
	st       *sfu.Stream
	clips    [][][][]byte
	ctx      context.Context
	wg       *sync.WaitGroup
	stopFeed context.CancelFunc
	pub      *sfu.Publication
	started  time.Time // of the last publication's feed
}

// publish starts a publication of layers h and l and Opus, fed with the
// clips from ssrc and ts on until the test ends or stopFeed.
func (ls *liveStream) publish(t testing.TB, ssrc, ts uint32) *sfu.Publication {
	t.Helper()
	pub := ls.st.StartPublication(sfu.HostID, ls.src, sfu.Now())
	var layers []*sfu.Layer
	for _, rid := range []string{"h", "l"} {
		l, err := pub.AddLayer(rid, sfu.Codec{MimeType: "video/H264", ClockRate: 90000, Fmtp: "packetization-mode=1;profile-level-id=42e01f"}, sfu.ExtIDs{}, sfu.Now())
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	audio, err := pub.AddLayer("", sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, sfu.ExtIDs{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(ls.ctx)
	ls.stopFeed = stop
	ls.started = time.Now()
	ls.wg.Go(func() { feed(ctx, layers, audio, ls.clips, ssrc, ts) })
	return pub
}

func startLive(t testing.TB) *liveStream {
	t.Helper()
	return startLiveWith(t, Config{})
}

func startLiveWith(t testing.TB, cfg Config) *liveStream {
	t.Helper()
	ff := tool(t, "ffmpeg")
	ls := &liveStream{src: &keySource{}, wg: &sync.WaitGroup{}}
	for _, size := range [][2]int{{320, 180}, {160, 90}} {
		aus, _, err := load.EncodeClip(context.Background(), ff, size[0], size[1], 15, 300_000)
		if err != nil {
			t.Fatal(err)
		}
		ls.clips = append(ls.clips, aus)
	}
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	logTo := io.Discard
	if testing.Verbose() {
		logTo = os.Stderr
	}
	ls.br = New(reg, cfg, slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	ls.ctx = ctx
	ls.wg.Go(func() { _ = ls.br.Run(ctx) })
	ls.st = reg.Stream("demo")
	ls.pub = ls.publish(t, 100, 0)
	hs := httptest.NewServer(ls.br)
	ls.url = hs.URL
	t.Cleanup(func() {
		cancel()
		ls.wg.Wait()
		hs.Close()
		reg.Close()
	})
	// The bridge takes the stream up on its events, asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, ok := ls.br.Status("demo"); ok && st.URL != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the bridge never took the stream up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ls
}

// feed sends the clips on layers and Opus on audio in real time until ctx
// ends, as a publisher's packets arrive: SSRCs from ssrc, RTP timestamps
// from ts.
func feed(ctx context.Context, layers []*sfu.Layer, audio *sfu.Layer, clips [][][][]byte, ssrc, ts uint32) {
	const fps = 15
	var pay codecs.H264Payloader
	seqs := make([]uint16, len(layers))
	var aseq uint16
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	frames := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: aseq, Timestamp: ts + uint32(i*960), SSRC: ssrc + 9, Marker: true},
			Payload: []byte{0xf8, 0xff, 0xfe}}
		aseq++
		b, _ := p.Marshal()
		_ = audio.Ingest(b, sfu.Now())
		for time.Since(start) >= time.Duration(frames)*time.Second/fps {
			for li, l := range layers {
				au := clips[li][frames%len(clips[li])]
				var annexB []byte
				for _, n := range au {
					annexB = append(append(annexB, 0, 0, 0, 1), n...)
				}
				payloads := pay.Payload(1200, annexB)
				for pi, pl := range payloads {
					p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seqs[li], Timestamp: ts + uint32(frames*90000/fps),
						SSRC: ssrc + uint32(li), Marker: pi == len(payloads)-1}, Payload: pl}
					seqs[li]++
					b, _ := p.Marshal()
					_ = l.Ingest(b, sfu.Now())
				}
			}
			frames++
		}
	}
}

// An H.264 simulcast stream becomes a multivariant LL-HLS playlist with a
// rendition per layer and the audio, without transcoding: ffprobe reads
// every rendition at its layer's size.
func TestSimulcastBecomesLLHLS(t *testing.T) {
	url, src := live(t)
	resp, err := http.Get(url + "/hls/demo/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	index := string(body)
	t.Logf("multivariant playlist:\n%s", index)
	for _, want := range []string{"#EXT-X-STREAM-INF:", "RESOLUTION=320x180", "RESOLUTION=160x90", "r0/video1_stream.m3u8", "r1/video1_stream.m3u8", `URI="r0/audio2_stream.m3u8"`, "avc1.", "opus"} {
		if !strings.Contains(index, want) {
			t.Errorf("the multivariant playlist lacks %q:\n%s", want, index)
		}
	}
	if src.asked.Load() == 0 {
		t.Error("the bridge did not ask the publisher for keyframes")
	}
	small := regexp.MustCompile(`RESOLUTION=160x90[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
	if small == nil {
		t.Fatalf("no 160x90 rendition:\n%s", index)
	}
	out, err := exec.Command(tool(t, "ffprobe"), "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", url+"/hls/demo/"+small[1]).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var probe struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) == 0 {
		t.Fatalf("ffprobe said %s (%v)", out, err)
	}
	if s := probe.Streams[0]; s.Codec != "h264" || s.Width != 160 || s.Height != 90 {
		t.Fatalf("the 160x90 rendition reads as %+v", s)
	}
}

// A blocking playlist request for a part that does not exist yet returns
// once it does, with that part in it; unknown names are 404.
func TestBlockingReloadAndMissingFiles(t *testing.T) {
	url, _ := live(t)
	get := func(path string) (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	if code, _, _ := get("/hls/demo/index.m3u8"); code != http.StatusOK {
		t.Fatalf("index %d", code)
	}
	code, pl, _ := get("/hls/demo/r0/video1_stream.m3u8")
	if code != http.StatusOK || !strings.Contains(pl, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES") || !strings.Contains(pl, "#EXT-X-PRELOAD-HINT") {
		t.Fatalf("media playlist %d:\n%s", code, pl)
	}
	t.Logf("media playlist:\n%s", pl)
	if !regexp.MustCompile(`#EXT-X-RENDITION-REPORT:URI="\.\./r1/video1_stream\.m3u8",LAST-MSN=\d+,LAST-PART=\d+\n`).MatchString(pl) {
		t.Fatalf("no rendition report for r1:\n%s", pl)
	}
	hint := regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*_part(\d+)\.mp4"`).FindStringSubmatch(pl)
	msn := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl)
	segs := strings.Count(pl, "#EXTINF:")
	if hint == nil || msn == nil {
		t.Fatalf("no preload hint or media sequence:\n%s", pl)
	}
	first, _ := strconv.Atoi(msn[1])
	next := first + segs // the segment being made
	code, pl2, took := get("/hls/demo/r0/video1_stream.m3u8?_HLS_msn=" + strconv.Itoa(next+1) + "&_HLS_part=0")
	if code != http.StatusOK || took < 100*time.Millisecond || took > 5*time.Second {
		t.Fatalf("a blocking request for the next segment's first part: %d after %v", code, took)
	}
	if got := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl2); len(got) < 2 || strings.Count(pl2, "#EXTINF:")+atoi(got[1]) < next+1 {
		t.Fatalf("the playlist returned does not hold segment %d:\n%s", next, pl2)
	}
	for _, p := range []string{"/hls/other/index.m3u8", "/hls/demo/r9/video1_stream.m3u8", "/hls/demo/r0/nothing_seg1.mp4", "/hls/demo/r0/..%2fsecret.mp4", "/hls/demo/r0/a.b.m3u8"} {
		if code, _, _ := get(p); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	if code, _, _ := get("/hls/demo/r0/video1_stream.m3u8?_HLS_msn=99999"); code != http.StatusBadRequest {
		t.Errorf("a request far ahead: %d, want 400", code)
	}
	for _, q := range []string{"_HLS_msn=abc", "_HLS_msn=1&_HLS_part=x", "_HLS_part=1", "_HLS_msn=-1"} {
		if code, _, _ := get("/hls/demo/r0/video1_stream.m3u8?" + q); code != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", q, code)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// A stream the bridge cannot package yet (VP8 needs the transcoder) is
// reported with the reason, and nothing is served for it.
func TestUnpackagedStreamSaysWhy(t *testing.T) {
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	defer reg.Close()
	br := New(reg, Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = br.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	pub := reg.Stream("vp8").StartPublication(sfu.HostID, &keySource{}, sfu.Now())
	if _, err := pub.AddLayer("", sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, ok := br.Status("vp8")
		if ok && strings.Contains(st.Error, "transcoder") && st.URL == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v %v, want the reason", st, ok)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := httptest.NewRecorder()
	br.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hls/vp8/index.m3u8", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("an unpackaged stream's playlist: %d", rec.Code)
	}
	pub.End(sfu.Now())
	deadline = time.Now().Add(5 * time.Second)
	for {
		if _, ok := br.Status("vp8"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an ended stream is still reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLastPart(t *testing.T) {
	pl := "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1.0,\nseg7.mp4\n" +
		"#EXT-X-PART:DURATION=0.2,URI=\"p0\"\n#EXT-X-PART:DURATION=0.2,URI=\"p1\"\n#EXTINF:1.0,\nseg8.mp4\n" +
		"#EXT-X-PART:DURATION=0.2,URI=\"p2\"\n#EXT-X-PART:DURATION=0.2,URI=\"p3\"\n#EXT-X-PART:DURATION=0.2,URI=\"p4\"\n" +
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p5\"\n"
	if msn, part, ok := lastPart(pl); !ok || msn != 9 || part != 2 {
		t.Fatalf("in progress: %d %d %v, want segment 9 part 2", msn, part, ok)
	}
	done := "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:1.0,\nseg7.mp4\n#EXT-X-PART:DURATION=0.2,URI=\"p0\"\n#EXTINF:1.0,\nseg8.mp4\n"
	if msn, part, ok := lastPart(done); !ok || msn != 8 || part != 0 {
		t.Fatalf("ending on a segment: %d %d %v, want segment 8 part 0", msn, part, ok)
	}
	if _, _, ok := lastPart("#EXTM3U\n"); ok {
		t.Fatal("a playlist with nothing in it has a last part")
	}
}

// Every player waiting for the same next part is answered by one render,
// all with the same playlist.
func TestIdenticalBlockingRequestsShareOneRender(t *testing.T) {
	url, br := liveBridge(t)
	resp, err := http.Get(url + "/hls/demo/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, pl := getBody(t, url+"/hls/demo/r0/video1_stream.m3u8")
	msn := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl)
	if msn == nil {
		t.Fatalf("no media sequence:\n%s", pl)
	}
	next := atoi(msn[1]) + strings.Count(pl, "#EXTINF:") + 1
	br.mu.Lock()
	s := br.sessions["demo"]
	br.mu.Unlock()
	before := s.renders.Load()
	const waiters = 50
	bodies := make([]string, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			code, b := getBody(t, url+"/hls/demo/r0/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part=0")
			if code != http.StatusOK {
				t.Errorf("waiter %d: %d", i, code)
			}
			bodies[i] = b
		})
	}
	wg.Wait()
	n := s.renders.Load() - before
	if n == 0 || n > 2 { // 2: a waiter may arrive after the first render ended
		t.Fatalf("%d waiters caused %d renders", waiters, n)
	}
	for i, b := range bodies {
		if !strings.Contains(b, "#EXT-X-RENDITION-REPORT") || n == 1 && b != bodies[0] {
			t.Fatalf("waiter %d got a different playlist:\n%s", i, b)
		}
	}
}

func getBody(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// BenchmarkBlockedWaiters: 1,000 players blocked on the next part of one
// rendition (a CDN's worth of edge requests), answered when it exists.
// Reported: the spread from the first answer to the last, and answers per
// second over that spread.
//
//	go test -run '^$' -bench BlockedWaiters -benchtime 5x ./hlsbridge/
func BenchmarkBlockedWaiters(b *testing.B) {
	url, _ := liveBridge(b)
	if code, _ := getBody(b, url+"/hls/demo/index.m3u8"); code != http.StatusOK {
		b.Fatalf("index %d", code)
	}
	const waiters = 1000
	tr := &http.Transport{MaxIdleConnsPerHost: waiters, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var spreads []time.Duration
	for range b.N {
		_, pl := getBody(b, url+"/hls/demo/r0/video1_stream.m3u8")
		msn := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl)
		if msn == nil {
			b.Fatalf("no media sequence:\n%s", pl)
		}
		next := atoi(msn[1]) + strings.Count(pl, "#EXTINF:") + 1
		done := make([]time.Time, waiters)
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Go(func() {
				resp, err := client.Get(url + "/hls/demo/r0/video1_stream.m3u8?_HLS_msn=" + strconv.Itoa(next) + "&_HLS_part=0")
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done[i] = time.Now()
			})
		}
		wg.Wait()
		first, last := done[0], done[0]
		for _, d := range done {
			if d.Before(first) {
				first = d
			}
			if d.After(last) {
				last = d
			}
		}
		spreads = append(spreads, last.Sub(first))
	}
	slices.Sort(spreads)
	med := spreads[len(spreads)/2]
	b.ReportMetric(float64(med.Microseconds())/1000, "spread-ms")
	b.ReportMetric(waiters/med.Seconds(), "answers/s")
}

// A publisher that returns (a new publication, new SSRCs and timestamps)
// continues the same playlists: the multivariant playlist and the segment
// names stay, and new parts keep coming.
func TestNewPublicationContinuesThePlaylists(t *testing.T) {
	ls := startLive(t)
	_, index := getBody(t, ls.url+"/hls/demo/index.m3u8")
	_, pl := getBody(t, ls.url+"/hls/demo/r0/video1_stream.m3u8")
	initName := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(pl)
	if initName == nil {
		t.Fatalf("no init segment:\n%s", pl)
	}
	ls.stopFeed()
	time.Sleep(300 * time.Millisecond)
	ls.publish(t, 500, 123_456_789)
	time.Sleep(300 * time.Millisecond)
	_, pl = getBody(t, ls.url+"/hls/demo/r0/video1_stream.m3u8")
	msn := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindStringSubmatch(pl)
	if msn == nil {
		t.Fatalf("no playlist after the new publication:\n%s", pl)
	}
	next := atoi(msn[1]) + strings.Count(pl, "#EXTINF:") + 1
	code, after := getBody(t, ls.url+"/hls/demo/r0/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part=0")
	if code != http.StatusOK || !strings.Contains(after, initName[1]) {
		t.Fatalf("after the new publication: %d, init %s\n%s", code, initName[1], after)
	}
	// Bandwidths are measured and move; the renditions and their URIs stay.
	shape := func(pl string) string {
		return regexp.MustCompile(`(AVERAGE-)?BANDWIDTH=\d+,`).ReplaceAllString(pl, "")
	}
	if _, index2 := getBody(t, ls.url+"/hls/demo/index.m3u8"); shape(index2) != shape(index) {
		t.Fatalf("the multivariant playlist changed:\n%s\n---\n%s", index, index2)
	}
}

// With recording on, the top rendition is written as it is made and is a
// VOD when the stream ends: playlists that end, whole segments, and
// ffprobe reads the recording from the files alone.
func TestRecordingIsAVODWhenTheStreamEnds(t *testing.T) {
	dir := t.TempDir()
	ls := startLiveWith(t, Config{RecordDir: dir, FFmpeg: tool(t, "ffmpeg")})
	if code, _ := getBody(t, ls.url+"/hls/demo/index.m3u8"); code != http.StatusOK {
		t.Fatalf("index %d", code)
	}
	time.Sleep(time.Until(ls.started.Add(2500 * time.Millisecond)))
	mark, err := ls.br.Mark("demo", "Goal = 1; #2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.br.Mark("nothing", "x"); !errors.Is(err, ErrNotLive) {
		t.Fatalf("a marker on a stream that is not live: %v", err)
	}
	// Ended halfway through a segment: the recording keeps its parts.
	time.Sleep(time.Until(ls.started.Add(3500 * time.Millisecond)))
	ls.stopFeed()
	fed := time.Since(ls.started).Seconds()
	ls.pub.End(sfu.Now())
	deadline := time.Now().Add(10 * time.Second)
	var pl []byte
	var vod string
	for {
		if m, _ := filepath.Glob(filepath.Join(dir, "demo", "*", "video", "video1_stream.m3u8")); len(m) > 0 {
			pl, _ = os.ReadFile(m[len(m)-1])
			vod = filepath.Dir(filepath.Dir(m[len(m)-1]))
			if strings.Contains(string(pl), "#EXT-X-ENDLIST") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished recording in %s:\n%s", dir, pl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Count(string(pl), "#EXTINF:") < 2 {
		t.Fatalf("the recording holds fewer than two segments:\n%s", pl)
	}
	out, err := exec.Command(tool(t, "ffprobe"), "-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height", "-of", "json", filepath.Join(vod, "index.m3u8")).Output()
	if err != nil {
		t.Fatalf("ffprobe of the recording: %v", err)
	}
	var probe struct {
		Streams []struct {
			Codec         string `json:"codec_name"`
			Width, Height int
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatal(err)
	}
	d, _ := strconv.ParseFloat(probe.Format.Duration, 64)
	var video, audio bool
	for _, st := range probe.Streams {
		video = video || st.Codec == "h264" && st.Width == 320 && st.Height == 180
		audio = audio || st.Codec == "aac"
	}
	t.Logf("the recording: %d segments, %.2f s of %.2f s fed\n%s", strings.Count(string(pl), "#EXTINF:"), d, fed, pl)
	if !video || !audio || d < 1.5 {
		t.Fatalf("ffprobe read %s", out)
	}
	// It runs from its first segment (the packaging starts a little after
	// the publication) to the end of the feed, the last segment's parts
	// included.
	first, err := firstSegmentMS(vod)
	if err != nil {
		t.Fatal(err)
	}
	if want := fed - float64(first)/1000; d < want-0.45 {
		t.Errorf("the recording lost the end: %.2f s of the %.2f s fed after its first segment", d, want)
	}
	vods, err := ListVODs(dir)
	if err != nil || len(vods) == 0 || vods[0].Live || vods[0].Duration < 1.5 || vods[0].Stream != "demo" {
		t.Fatalf("listed %+v (%v)", vods, err)
	}

	// The MP4, stitched once the stream ended: its duration and chapters.
	for vods[0].MP4 == "" {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("no MP4: %+v", vods[0])
		}
		time.Sleep(50 * time.Millisecond)
		vods, _ = ListVODs(dir)
	}
	if vods[0].MP4 != "/vod/"+vods[0].ID+"/vod.mp4" {
		t.Fatalf("mp4 at %q", vods[0].MP4)
	}
	out, err = exec.Command(tool(t, "ffprobe"), "-v", "error", "-show_chapters", "-show_entries", "format=duration", "-of", "json", filepath.Join(vod, "vod.mp4")).Output()
	if err != nil {
		t.Fatalf("ffprobe of the MP4: %v", err)
	}
	var mp4 struct {
		Chapters []struct {
			Start string `json:"start_time"`
			End   string `json:"end_time"`
			Tags  struct {
				Title string `json:"title"`
			} `json:"tags"`
		} `json:"chapters"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &mp4); err != nil {
		t.Fatal(err)
	}
	md, _ := strconv.ParseFloat(mp4.Format.Duration, 64)
	t.Logf("MP4: %.2f s, chapters %+v; the marker at stream time %d ms, the first segment at %d ms", md, mp4.Chapters, mark.StreamMS, first)
	if md < vods[0].Duration-0.3 || md > vods[0].Duration+0.3 {
		t.Errorf("the MP4 lasts %.2f s, the VOD %.2f s", md, vods[0].Duration)
	}
	if len(mp4.Chapters) != 2 || mp4.Chapters[0].Tags.Title != "Start" || mp4.Chapters[0].Start != "0.000000" ||
		mp4.Chapters[1].Tags.Title != "Goal = 1; #2" || mp4.Chapters[0].End != mp4.Chapters[1].Start {
		t.Fatalf("chapters %+v", mp4.Chapters)
	}
	// The marker's chapter is where it was set on the recording's timeline.
	want := float64(mark.StreamMS-first) / 1000
	if at, _ := strconv.ParseFloat(mp4.Chapters[1].Start, 64); at < want-0.05 || at > want+0.05 {
		t.Errorf("the marker's chapter starts at %.3f s, want %.3f s", at, want)
	}
}
