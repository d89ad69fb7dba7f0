package hlsbridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/glintlive/glint/sfu"
)

func writeVOD(t *testing.T, dir, stream, start, playlist string) {
	t.Helper()
	p := filepath.Join(dir, stream, start, "video")
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "video1_stream.m3u8"), []byte(playlist), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Recordings are listed newest first with their durations and whether they
// ended; delete takes only IDs that name a recording, never a path out.
func TestListAndDeleteVODs(t *testing.T) {
	dir := t.TempDir()
	if vods, err := ListVODs(filepath.Join(dir, "none")); err != nil || len(vods) != 0 {
		t.Fatalf("no directory: %v %v", vods, err)
	}
	ended := "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n#EXTINF:0.50000,\nseg8.mp4\n#EXT-X-ENDLIST\n"
	writeVOD(t, dir, "demo", "20261207T010000.000Z", ended)
	writeVOD(t, dir, "demo", "20261207T020000.000Z", "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n")
	writeVOD(t, dir, "demo", "not-a-time", ended)
	vods, err := ListVODs(dir)
	if err != nil || len(vods) != 2 {
		t.Fatalf("%+v %v", vods, err)
	}
	if vods[0].ID != "demo/20261207T020000.000Z" || !vods[0].Live || vods[1].Duration != 1.5 || vods[1].Live ||
		vods[1].HLS != "/vod/demo/20261207T010000.000Z/index.m3u8" {
		t.Fatalf("listed %+v", vods)
	}
	for _, bad := range []string{"../demo", "demo/..", "demo/../../etc", "demo", "demo/not-a-time/x", "other/20261207T010000.000Z"} {
		if err := DeleteVOD(dir, bad); !errors.Is(err, ErrNoVOD) {
			t.Errorf("delete %q: %v", bad, err)
		}
	}
	if err := DeleteVOD(dir, "demo/20261207T010000.000Z"); err != nil {
		t.Fatal(err)
	}
	if vods, _ := ListVODs(dir); len(vods) != 1 {
		t.Fatalf("after delete: %+v", vods)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo", "not-a-time")); err != nil {
		t.Fatal("delete touched another folder")
	}
}

// Recordings that started before the cutoff are deleted when they ended;
// newer ones and ones still being written stay.
func TestPruneVODs(t *testing.T) {
	dir := t.TempDir()
	ended := "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n#EXT-X-ENDLIST\n"
	writeVOD(t, dir, "demo", "20261101T010000.000Z", ended)
	writeVOD(t, dir, "demo", "20261102T010000.000Z", "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n") // written just now: live
	writeVOD(t, dir, "demo", "20261207T010000.000Z", ended)
	cutoff, _ := time.Parse(time.RFC3339, "2026-12-01T00:00:00Z")
	gone, err := PruneVODs(dir, cutoff)
	if err != nil || len(gone) != 1 || gone[0] != "demo/20261101T010000.000Z" {
		t.Fatalf("pruned %v (%v)", gone, err)
	}
	if vods, _ := ListVODs(dir); len(vods) != 2 {
		t.Fatalf("left %+v", vods)
	}
}

// A running bridge prunes at start.
func TestBridgePrunesAtStart(t *testing.T) {
	dir := t.TempDir()
	writeVOD(t, dir, "demo", "20200101T000000.000Z", "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n#EXT-X-ENDLIST\n")
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	defer reg.Close()
	br := New(reg, Config{RecordDir: dir, Retention: 24 * time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = br.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if vods, _ := ListVODs(dir); len(vods) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a recording past the retention is still there")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A recording a crash left open is closed at the next start with the
// segments whose files are whole on disk; a torn last line and
// half-written files go.
func TestRecoverVODs(t *testing.T) {
	dir := t.TempDir()
	open := "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.00000,\nseg7.mp4\n#EXTINF:1.00000,\nseg8.mp4\n#EXTINF:1.00000,\nseg9.mp4\n#EXTINF:0.5"
	writeVOD(t, dir, "demo", "20261207T010000.000Z", open)
	writeVOD(t, dir, "demo", "20261207T020000.000Z", "#EXTM3U\n#EXTINF:1.00000,\nseg7.mp4\n#EXT-X-ENDLIST\n")
	video := filepath.Join(dir, "demo", "20261207T010000.000Z", "video")
	for _, f := range []string{"init.mp4", "seg7.mp4", "seg9.mp4", "seg10.mp4.tmp"} { // seg8 lost
		if err := os.WriteFile(filepath.Join(video, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := RecoverVODs(dir)
	if err != nil || len(ids) != 1 || ids[0] != "demo/20261207T010000.000Z" {
		t.Fatalf("recovered %v %v", ids, err)
	}
	b, _ := os.ReadFile(filepath.Join(video, "video1_stream.m3u8"))
	want := "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.00000,\nseg7.mp4\n#EXTINF:1.00000,\nseg9.mp4\n#EXT-X-ENDLIST\n"
	if string(b) != want {
		t.Fatalf("closed playlist:\n%s\nwant:\n%s", b, want)
	}
	if _, err := os.Stat(filepath.Join(video, "seg10.mp4.tmp")); err == nil {
		t.Error("a half-written file was kept")
	}
	vods, _ := ListVODs(dir)
	if len(vods) != 2 || vods[1].Live || !vods[1].CutOff || vods[1].Duration != 2 || vods[0].CutOff {
		t.Fatalf("listed %+v", vods)
	}
	if ids, err := RecoverVODs(dir); err != nil || len(ids) != 0 {
		t.Fatalf("a second pass recovered %v %v", ids, err)
	}
}

// A recording that cannot be written (here its folder is a file; a full
// disk fails the same way) stops with the reason in the status, and live
// viewing goes on.
func TestRecordingFailureKeepsLiveViewing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vod")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ls := startLiveWith(t, Config{RecordDir: dir})
	if code, _ := getBody(t, ls.url+"/hls/demo/index.m3u8"); code != 200 {
		t.Fatalf("index %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := ls.br.Status("demo")
		if st.RecordingError != "" && st.Recording != "" {
			t.Logf("status: %+v", st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording error in %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, pl := getBody(t, ls.url+"/hls/demo/r0/video1_stream.m3u8")
	next := parseMedia(pl).making
	if code, _ := getBody(t, ls.url+"/hls/demo/r0/video1_stream.m3u8?_HLS_msn="+strconv.Itoa(next+1)+"&_HLS_part=0"); code != 200 {
		t.Fatalf("live playlists stopped with the recording: %d", code)
	}
}
