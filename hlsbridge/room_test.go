package hlsbridge

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/glintlive/glint/sfu"
)

// grab decodes the newest frame of a rendition's playlist to 8-bit gray.
func grab(t *testing.T, playlist string) (pix []byte, w, h int) {
	t.Helper()
	p := ffprobe(t, playlist).Streams[0]
	w, h = p.Width, p.Height
	out, err := exec.Command(tool(t, "ffmpeg"), "-v", "error", "-live_start_index", "-1", "-i", playlist,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1").Output()
	if err != nil || len(out) < w*h {
		t.Fatalf("frame grab of %s: %v (%d bytes for %dx%d)", playlist, err, len(out), w, h)
	}
	return out[:w*h], w, h
}

// luma is the mean brightness of a w-wide picture's rectangle.
func luma(pix []byte, w, x0, y0, x1, y1 int) int {
	sum, n := 0, 0
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			sum += int(pix[y*w+x])
			n++
		}
	}
	return sum / n
}

// A Live Room on LL-HLS: when a guest joins the host (4:3 VP8), the
// rendition becomes a 16:9 composite with the two side by side; when the
// guest leaves, the host fills the canvas again; the recording has a
// chapter for each.
func TestRoomIsCompositedIntoLLHLS(t *testing.T) {
	v := startVP8(t, Config{Ladder: []int{240}, RecordDir: t.TempDir()})
	if code, body := getBody(t, v.url+"/hls/vp8/index.m3u8"); code != 200 {
		t.Fatalf("index %d: %s", code, body)
	}
	ctx, stop := context.WithCancel(v.ctx)
	defer stop()
	pub, err := v.st.Join("g1", "Ann", &keySource{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	video, err := pub.AddLayer("", sfu.Codec{MimeType: "video/VP8", ClockRate: 90000}, sfu.ExtIDs{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	audio, err := pub.AddLayer("", sfu.Codec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, sfu.ExtIDs{}, sfu.Now())
	if err != nil {
		t.Fatal(err)
	}
	v.wg.Go(func() { feedVP8(ctx, video, audio, v.frames) })
	tiles := func(want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, _ := v.br.Status("vp8")
			if tc := st.Transcoder; tc != nil && tc.Tiles == want && tc.Running {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no composite of %d tiles: %+v %+v", want, st, st.Transcoder)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	tiles(2)
	playlist := func() string {
		t.Helper()
		code, index := getBody(t, v.url+"/hls/vp8/index.m3u8")
		m := regexp.MustCompile(`RESOLUTION=(\d+)x(\d+)[^\n]*\n([^\n]+)`).FindStringSubmatch(index)
		if code != 200 || m == nil {
			t.Fatalf("index %d: %s", code, index)
		}
		return v.url + "/hls/vp8/" + m[3]
	}
	// Wait for segments of the composite, then look at one.
	time.Sleep(3 * time.Second)
	pix, w, h := grab(t, playlist())
	if w != 424 || h != 240 {
		t.Fatalf("the room's canvas is %dx%d, want 424x240 (16:9, in multiples of 4)", w, h)
	}
	// Two 4:3 tiles side by side: each 213x160 in a 213x240 cell, black
	// above and below; pictures in the middle of both halves.
	top, left, right := luma(pix, w, 0, 0, w, 30), luma(pix, w, 40, 100, 170, 140), luma(pix, w, 254, 100, 384, 140)
	if top > 30 || left < 40 || right < 40 {
		t.Fatalf("two tiles: top band %d (want black), left %d, right %d (want pictures)", top, left, right)
	}

	// The guest leaves: the host alone fills the canvas's height, with
	// black at the sides.
	pub.End(sfu.Now())
	tiles(1)
	time.Sleep(3 * time.Second)
	pix, w, h = grab(t, playlist())
	if w != 424 || h != 240 {
		t.Fatalf("the canvas changed size with the room, to %dx%d", w, h)
	}
	top, side := luma(pix, w, 100, 0, 320, 30), luma(pix, w, 0, 0, 40, 240)
	if top < 40 || side > 30 {
		t.Fatalf("one tile: top band %d (want picture), left edge %d (want black)", top, side)
	}

	st, _ := v.br.Status("vp8")
	id := st.Recording
	v.st.StartPublication(sfu.HostID, &keySource{}, sfu.Now()).End(sfu.Now()) // the stream ends
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d, err := ReadVOD(v.br.cfg.RecordDir, id); err == nil {
			var titles []string
			for _, c := range d.Chapters {
				titles = append(titles, c.Title)
			}
			if got := strings.Join(titles, "|"); strings.Contains(got, "Guest joined: Ann") && strings.Contains(got, "|Guest left: Ann") {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("chapters %q, want the guest's join and leave", got)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("the room's recording %q: %v", id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
