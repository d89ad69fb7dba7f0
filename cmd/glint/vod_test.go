package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The host marks moments of a live stream through the API; when the stream
// ends the node stitches the recording into an MP4 with those chapters,
// listed in GET /api/vods and served; `glint vod export` makes another
// copy with a progress bar.
func TestVODMarkersAndMP4(t *testing.T) {
	ffmpeg(t)
	const key = "vod-marker-stream-key"
	node := launch(t, "--stream-key", "demo="+key)
	pub := publishH264Clip(t, node.URL, key)
	markers := node.URL + "/api/streams/demo/markers"
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := post(t, markers, key, `{"title":"Kick-off"}`)
		if code == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) || code != http.StatusConflict {
			t.Fatalf("marker: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range []struct {
		url, token, body string
		want             int
	}{
		{markers, "", `{}`, http.StatusUnauthorized},
		{markers, "wrong-key", `{}`, http.StatusForbidden},
		{node.URL + "/api/streams/nostream/markers", key, `{}`, http.StatusNotFound},
		{markers, key, `{"title":`, http.StatusBadRequest},
		{markers, key, `{"title":"` + strings.Repeat("x", 201) + `"}`, http.StatusBadRequest},
		{markers, key, `{"title":"a\u0007b"}`, http.StatusBadRequest},
	} {
		if code, body := post(t, c.url, c.token, c.body); code != c.want {
			t.Errorf("POST %s %q: %d %s, want %d", c.url, c.body, code, body, c.want)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if code, body := post(t, markers, key, ``); code != http.StatusCreated || !strings.Contains(body, `"title":"Marker"`) {
		t.Fatalf("an untitled marker: %d %s", code, body)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var vod struct {
		ID  string `json:"id"`
		MP4 string `json:"mp4"`
	}
	for vod.MP4 == "" {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("no MP4 after the stream ended")
		}
		time.Sleep(200 * time.Millisecond)
		_, body := get(t, node.URL+"/api/vods")
		var list struct {
			VODs []json.RawMessage `json:"vods"`
		}
		if json.Unmarshal([]byte(body), &list) == nil && len(list.VODs) > 0 {
			_ = json.Unmarshal(list.VODs[0], &vod)
		}
	}
	resp, err := http.Get(node.URL + vod.MP4)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n < 10_000 {
		t.Fatalf("GET %s: %d, %d bytes", vod.MP4, resp.StatusCode, n)
	}

	out := filepath.Join(t.TempDir(), "export.mp4")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"vod", "export", "--data-dir", node.DataDir, "-o", out, vod.ID}, &stdout, &stderr); err != nil {
		t.Fatalf("glint vod export: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "100%") || !strings.Contains(stdout.String(), "wrote "+out) {
		t.Fatalf("export printed %q / %q", stdout.String(), stderr.String())
	}
	for _, path := range []string{out, filepath.Join(node.DataDir, "vod", filepath.FromSlash(vod.ID), "vod.mp4")} {
		b, err := exec.Command("ffprobe", "-v", "error", "-show_chapters", "-of", "csv=p=0", path).Output()
		titles := string(b)
		// Kick-off was marked as the recording began: its own chapter, or,
		// marked before the first frame was recorded, part of Start's title.
		lines := strings.Count(titles, "\n")
		kickoff := lines == 3 && strings.Contains(titles, ",Kick-off") || lines == 2 && strings.Contains(titles, ",Start · Kick-off")
		if err != nil || !kickoff || !strings.Contains(titles, ",Start") || !strings.Contains(titles, ",Marker") {
			t.Fatalf("chapters of %s: %v\n%s", path, err, titles)
		}
	}
	if err := run(context.Background(), []string{"vod", "export", "--data-dir", node.DataDir, "demo/none"}, io.Discard, io.Discard); err == nil {
		t.Fatal("exporting a recording that does not exist succeeded")
	}
}
