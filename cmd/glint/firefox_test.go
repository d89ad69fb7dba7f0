package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/glintlive/glint/internal/client"
	"github.com/glintlive/glint/internal/sdpcheck"
	"github.com/glintlive/glint/internal/testnet"
)

// firefoxBinary finds Debian's Firefox ESR; a test that needs it fails,
// never skips, when it is missing.
func firefoxBinary(t *testing.T) string {
	t.Helper()
	fullSuiteOnly(t, "a Firefox test")
	for _, name := range []string{os.Getenv("GLINT_FIREFOX"), "firefox-esr", "firefox"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Firefox is not installed: run `make test` (it installs it), or `sudo apt-get install firefox-esr`")
	return ""
}

// firefoxPrefs keep a headless Firefox on loopback: no updates, telemetry,
// safe browsing, captive-portal or connectivity checks, remote settings,
// DNS over HTTPS or prefetching; camera and microphone allowed without a
// prompt; loopback ICE candidates allowed.
var firefoxPrefs = map[string]any{
	"app.normandy.enabled":                              false,
	"app.update.auto":                                   false,
	"app.update.checkInstallTime":                       false,
	"app.update.disabledForTesting":                     true,
	"browser.aboutwelcome.enabled":                      false,
	"browser.newtabpage.enabled":                        false,
	"browser.ping-centre.telemetry":                     false,
	"browser.safebrowsing.blockedURIs.enabled":          false,
	"browser.safebrowsing.downloads.enabled":            false,
	"browser.safebrowsing.malware.enabled":              false,
	"browser.safebrowsing.phishing.enabled":             false,
	"browser.safebrowsing.provider.mozilla.updateURL":   "",
	"browser.search.update":                             false,
	"browser.shell.checkDefaultBrowser":                 false,
	"browser.startup.homepage_override.mstone":          "ignore",
	"browser.startup.page":                              0,
	"browser.tabs.warnOnClose":                          false,
	"datareporting.healthreport.uploadEnabled":          false,
	"datareporting.policy.dataSubmissionEnabled":        false,
	"dom.push.connection.enabled":                       false,
	"extensions.getAddons.cache.enabled":                false,
	"extensions.update.enabled":                         false,
	"media.autoplay.default":                            0,
	"media.gmp-manager.updateEnabled":                   false,
	"media.navigator.permission.disabled":               true,
	"media.navigator.streams.fake":                      true,
	"media.peerconnection.ice.loopback":                 true,
	"media.peerconnection.ice.obfuscate_host_addresses": false,
	"network.captive-portal-service.enabled":            false,
	"network.connectivity-service.enabled":              false,
	"network.dns.disablePrefetch":                       true,
	"network.http.speculative-parallel-limit":           0,
	"network.prefetch-next":                             false,
	"network.trr.mode":                                  5,
	"services.settings.server":                          "http://127.0.0.1:9/",
	"toolkit.telemetry.enabled":                         false,
	"toolkit.telemetry.server":                          "",
	"toolkit.telemetry.unified":                         false,
}

// startFirefox opens url in a headless Firefox with a fresh profile,
// inside the namespace of link. It returns a function that stops Firefox;
// it stops anyway when the test ends.
func startFirefox(t *testing.T, link *testnet.Link, url string) (stop func()) {
	t.Helper()
	bin := firefoxBinary(t)
	profile := t.TempDir()
	var prefs strings.Builder
	for k, v := range firefoxPrefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&prefs, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := link.Command(bin, "--headless", "--no-remote", "--profile", profile, url)
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "HOME="+profile, "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Firefox: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("Firefox said:\n%s", out.String())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// firefoxPage either plays the stream on the watch page (mode=watch, in a
// frame of the same origin, counting the frames it renders) or is a WHEP
// player of its own (mode=whep): it offers to receive audio and video, and
// the "glint" data channel when asked, posts the offer, and reports what
// came back, whether Firefox took the answer, connected, decoded video and
// opened the channel.
const firefoxPage = `<!doctype html><meta charset="utf-8"><title>Glint in Firefox</title><body><script>
const q = new URLSearchParams(location.search);
const out = {ua: navigator.userAgent};
const report = () => fetch("/report", {method: "POST", body: JSON.stringify(out)});
const until = async (ms, ok) => { for (const end = Date.now() + ms; Date.now() < end && !ok(); ) await new Promise(r => setTimeout(r, 100)); };
async function whep() {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.addTransceiver("video", {direction: "recvonly"});
  let dc = null;
  if (q.get("dc") === "1") dc = pc.createDataChannel("glint");
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  out.offer = offer.sdp;
  const r = await fetch("/whep/" + q.get("stream"), {method: "POST", headers: {"Content-Type": "application/sdp"}, body: offer.sdp});
  out.status = r.status;
  out.body = await r.text();
  if (r.status !== 201) return;
  try {
    await pc.setRemoteDescription({type: "answer", sdp: out.body});
    out.accepted = true;
  } catch (e) {
    out.error = String(e && e.message || e);
    return;
  }
  const decoded = async () => {
    let n = 0, audio = 0;
    (await pc.getStats()).forEach(s => {
      if (s.type === "inbound-rtp" && s.kind === "video") n = s.framesDecoded || 0;
      if (s.type === "inbound-rtp" && s.kind === "audio") audio = s.packetsReceived || 0;
    });
    out.framesDecoded = n; out.audioPackets = audio;
  };
  await until(15000, () => pc.connectionState === "connected");
  out.state = pc.connectionState;
  for (const end = Date.now() + 15000; Date.now() < end && !(out.framesDecoded >= 10 && out.audioPackets > 0 && (!dc || dc.readyState === "open")); ) {
    await decoded();
    await new Promise(r => setTimeout(r, 200));
  }
  out.channel = dc ? dc.readyState : "";
  pc.close();
}
async function watch() {
  const f = document.createElement("iframe");
  f.src = "/watch/" + q.get("stream");
  document.body.append(f);
  await until(20000, () => f.contentWindow.glintWatch && f.contentWindow.glintWatch.frames >= 30);
  const w = f.contentWindow.glintWatch || {};
  Object.assign(out, {frames: w.frames, state: w.state, width: w.width, height: w.height});
}
(q.get("mode") === "watch" ? watch() : whep()).catch(e => { out.error = "page: " + String(e && e.message || e); }).finally(report);
</script>`

type firefoxReport struct {
	UA            string `json:"ua"`
	Offer         string `json:"offer"`
	Status        int    `json:"status"`
	Body          string `json:"body"`
	Accepted      bool   `json:"accepted"`
	Error         string `json:"error"`
	State         string `json:"state"`
	FramesDecoded int    `json:"framesDecoded"`
	AudioPackets  int    `json:"audioPackets"`
	Channel       string `json:"channel"`
	Frames        int    `json:"frames"`
	Width         int    `json:"width"`
}

// firefoxRun serves firefoxPage on the host end of link, in front of a
// proxy to the node (one origin, as the node's own pages have), opens it in
// Firefox inside the link's namespace and returns the page's report.
func firefoxRun(t *testing.T, link *testnet.Link, base, query string) firefoxReport {
	t.Helper()
	target, _ := url.Parse(base)
	reports := make(chan firefoxReport, 1)
	mux := http.NewServeMux()
	mux.Handle("/", httputil.NewSingleHostReverseProxy(target))
	mux.HandleFunc("GET /firefox", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, firefoxPage)
	})
	mux.HandleFunc("POST /report", func(_ http.ResponseWriter, r *http.Request) {
		var rep firefoxReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			t.Errorf("report: %v", err)
		}
		select {
		case reports <- rep:
		default:
		}
	})
	ts := httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", net.JoinHostPort(link.HostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener = l
	ts.Start()
	defer ts.Close()
	// Firefox goes first: the watch page holds an event stream open.
	defer startFirefox(t, link, ts.URL+"/firefox?"+query)()
	select {
	case rep := <-reports:
		return rep
	case <-time.After(90 * time.Second):
		t.Fatal("Firefox did not report within 90 s")
	}
	return firefoxReport{}
}

// Firefox parses SDP more strictly than Chromium or pion (it refused a
// lower-case fingerprint). It must accept the answer Glint writes for a VP8
// stream, with and without a data channel, connect, decode video and open
// the channel; play the stream on the watch page; and get a 406 with the
// reason for an H.264-only stream when it offers no H.264.
//
// Firefox gathers no loopback candidates, so it runs in a network
// namespace of the test's own, joined to the node by a veth pair: every
// packet stays on this machine.
func TestBrowserFirefox(t *testing.T) {
	const key = "firefox-test-key-123"
	firefoxBinary(t)
	link := testnet.New(t)
	base, _ := startServe(t, "--stream-key", "vp8="+key, "--stream-key", "h264="+key, "--rtc-ip", link.HostIP)
	for _, codec := range []string{"VP8", "H264"} {
		pub, err := client.Publish(context.Background(), client.PublisherConfig{
			Endpoint: base + "/whip/" + strings.ToLower(codec), Token: key, Codec: codec, Audio: true, FPS: 15,
			Options: client.Options{Loopback: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pub.Close(context.Background()) })
	}
	for _, dc := range []bool{false, true} {
		t.Run(fmt.Sprintf("WHEP/datachannel=%v", dc), func(t *testing.T) {
			rep := firefoxRun(t, link, base, fmt.Sprintf("mode=whep&stream=vp8&dc=%d", map[bool]int{false: 0, true: 1}[dc]))
			t.Log(rep.UA)
			if rep.Status != http.StatusCreated {
				t.Fatalf("WHEP answered %d: %s %s\noffer:\n%s", rep.Status, rep.Body, rep.Error, rep.Offer)
			}
			if !rep.Accepted {
				t.Fatalf("Firefox refused the answer: %s\nanswer:\n%s\noffer:\n%s", rep.Error, rep.Body, rep.Offer)
			}
			if err := sdpcheck.Answer(rep.Body); err != nil {
				t.Errorf("answer grammar: %v\n%s", err, rep.Body)
			}
			if dc != strings.Contains(rep.Body, "m=application 9 ") {
				t.Errorf("data channel offered %v, answer:\n%s", dc, rep.Body)
			}
			if rep.State != "connected" || rep.FramesDecoded < 10 || rep.AudioPackets == 0 {
				t.Fatalf("Firefox %s, decoded %d video frames and %d audio packets; want connected, ≥ 10 and > 0 (%s)",
					rep.State, rep.FramesDecoded, rep.AudioPackets, rep.Error)
			}
			if dc && rep.Channel != "open" {
				t.Fatalf("the glint data channel is %q, want open", rep.Channel)
			}
			t.Logf("connected; %d video frames decoded, %d audio packets", rep.FramesDecoded, rep.AudioPackets)
		})
	}
	t.Run("WatchPage", func(t *testing.T) {
		rep := firefoxRun(t, link, base, "mode=watch&stream=vp8")
		if rep.Frames < 30 || rep.Width == 0 {
			t.Fatalf("the watch page rendered %d frames (width %d, state %q, %s); want ≥ 30", rep.Frames, rep.Width, rep.State, rep.Error)
		}
		t.Logf("watch page: %d frames rendered, %d px wide", rep.Frames, rep.Width)
	})
	t.Run("H264Only", func(t *testing.T) {
		rep := firefoxRun(t, link, base, "mode=whep&stream=h264")
		if strings.Contains(rep.Offer, "H264/90000") {
			t.Fatalf("this Firefox offers H.264 (OpenH264 installed?); the test needs one that does not:\n%s", rep.Offer)
		}
		if rep.Status != http.StatusNotAcceptable || !strings.Contains(rep.Body, "H264") {
			t.Fatalf("an offer without H.264 for an H.264 stream: %d %s, want 406 naming the codec", rep.Status, rep.Body)
		}
	})
}
