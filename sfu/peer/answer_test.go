package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/internal/sdpcheck"
	"github.com/glintlive/glint/sfu"
)

// viewerOffers returns the browsers' offers kept in testdata/offers
// (Chromium 156 and Firefox 153, as captured, with and without a data
// channel), variants with what other Firefox set-ups send, and an offer of
// pion's made now.
func viewerOffers(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("testdata/offers/*.sdp")
	if err != nil || len(files) < 4 {
		t.Fatalf("testdata/offers: %v (%d files)", err, len(files))
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".sdp")] = string(b)
	}
	ff := out["firefox-153-datachannel"]
	// Firefox with the direction at session level too, a=rtcp lines, and
	// its ICE-TCP active candidates in the offer.
	ff = strings.Replace(ff, "a=msid-semantic:WMS *\r\n", "a=msid-semantic:WMS *\r\na=sendrecv\r\n", 1)
	ff = strings.ReplaceAll(ff, "c=IN IP4 0.0.0.0\r\n", "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	ff = strings.ReplaceAll(ff, "a=mid:", "a=candidate:1 1 UDP 2122252543 10.0.0.2 40000 typ host\r\n"+
		"a=candidate:2 1 TCP 2105524479 10.0.0.2 9 typ host tcptype active\r\na=mid:")
	out["firefox-variants"] = ff

	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.CreateDataChannel("glint", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	out["pion"] = offer.SDP
	return out
}

// Every answer Glint writes, to every browser's offer and for every codec a
// stream can carry, passes the strict grammar check Firefox's parser
// enforces; an offer that cannot carry the stream's codec gets ErrNoCodec.
func TestViewerAnswersPassTheStrictGrammar(t *testing.T) {
	n := testNode(t)
	defer n.Close()
	streams := map[string]sfu.Codec{
		"VP8":  {MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		"H264": {MimeType: webrtc.MimeTypeH264, ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		"VP9":  {MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, Fmtp: "profile-id=0"},
		"AV1":  {MimeType: webrtc.MimeTypeAV1, ClockRate: 90000},
	}
	opus := sfu.Codec{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	reg := sfu.NewRegistry(sfu.DefaultConfig())
	for name, text := range viewerOffers(t) {
		o, err := ParseOffer(text, RoleViewer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for codecName, codec := range streams {
			room := reg.Stream(name + "-" + codecName)
			pub := room.StartPublication(sfu.HostID, nopSource{}, sfu.Now())
			pub.Announce(opus)
			pub.Announce(codec)
			v, answer, err := n.View(context.Background(), room, "v-"+name+codecName, o, sfu.Preferences{})
			offered := false
			if m, ok := o.mediaOf(sfu.KindVideo); ok {
				for _, c := range m.Codecs {
					offered = offered || codec.Compatible(c) > 0
				}
			}
			switch {
			case !offered:
				if !errors.Is(err, ErrNoCodec) {
					t.Errorf("%s, %s stream: the offer carries no %s, got %v, want ErrNoCodec", name, codecName, codecName, err)
				}
				continue
			case err != nil:
				t.Errorf("%s, %s stream: %v", name, codecName, err)
				continue
			}
			if err := sdpcheck.Answer(answer); err != nil {
				t.Errorf("%s, %s stream: the answer breaks the grammar:\n%v\n%s", name, codecName, err, answer)
			}
			if !strings.Contains(answer, " "+codec.Name()+"/90000\r\n") || !strings.Contains(answer, " opus/48000/2\r\n") {
				t.Errorf("%s, %s stream: the answer lacks the stream's codecs:\n%s", name, codecName, answer)
			}
			if o.DataChannel != strings.Contains(answer, "m=application 9 ") {
				t.Errorf("%s, %s stream: data channel offered %v, answer:\n%s", name, codecName, o.DataChannel, answer)
			}
			_ = v.Close()
		}
	}
}

// The checker itself refuses what Firefox refused, and what an answer
// must not say.
func TestStrictGrammarCatchesMistakes(t *testing.T) {
	n := testNode(t)
	defer n.Close()
	room := sfu.NewRegistry(sfu.DefaultConfig()).Stream("demo")
	pub := room.StartPublication(sfu.HostID, nopSource{}, sfu.Now())
	pub.Announce(sfu.Codec{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})
	o, err := ParseOffer(viewerOffers(t)["firefox-153-datachannel"], RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	v, good, err := n.View(context.Background(), room, "v1", o, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := sdpcheck.Answer(good); err != nil {
		t.Fatalf("a good answer refused: %v", err)
	}
	_, fp, _ := strings.Cut(n.fingerprint, " ")
	for name, bad := range map[string]string{
		"lower-case fingerprint":                       strings.ReplaceAll(good, fp, strings.ToLower(fp)),
		"short fingerprint":                            strings.ReplaceAll(good, fp, fp[:20]),
		"actpass in an answer":                         strings.ReplaceAll(good, "a=setup:passive", "a=setup:actpass"),
		"LF line ends":                                 strings.ReplaceAll(good, "\r\n", "\n"),
		"rtcp-fb for a payload type not on the m-line": strings.Replace(good, "a=rtcp-mux\r\n", "a=rtcp-mux\r\na=rtcp-fb:33 nack\r\n", 1),
		"fmtp with spaces":                             strings.Replace(good, "a=rtcp-mux\r\n", "a=rtcp-mux\r\na=fmtp:120 a=1; b=2\r\n", 1),
		"candidate missing typ":                        strings.Replace(good, " typ host\r\n", " host\r\n", 1),
		"tcp candidate without tcptype":                strings.Replace(good, " typ host tcptype passive\r\n", " typ host\r\n", 1),
		"ssrc without cname":                           strings.Replace(good, " cname:demo\r\n", " cname:\r\n", 1),
		"bundle names a missing mid":                   strings.Replace(good, "a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1 2 7", 1),
		"sctp-port on audio":                           strings.Replace(good, "a=sendonly\r\n", "a=sendonly\r\na=sctp-port:5000\r\n", 1),
		"two directions":                               strings.Replace(good, "a=sendonly\r\n", "a=sendonly\r\na=recvonly\r\n", 1),
		"m-line before t=":                             strings.Replace(good, "t=0 0\r\n", "", 1),
		"ufrag too short":                              strings.Replace(good, "a=ice-ufrag:", "a=ice-ufrag:ab\r\na=x-old-ufrag:", 1),
	} {
		if bad == good {
			t.Fatalf("%s: the mutation did not apply", name)
		}
		if sdpcheck.Answer(bad) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// An offer inflated with repeated payload types, feedback lines and
// rejected m-lines gets an answer no longer than an honest one's; one past
// the bounds is refused.
func TestInflatedOffersGetShortAnswers(t *testing.T) {
	n := testNode(t)
	defer n.Close()
	base := viewerOffers(t)["chromium-156-datachannel"]
	honest, err := ParseOffer(base, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	st := liveStream(t)
	v, plain, err := n.View(context.Background(), st, "v1", honest, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// 100 repeats of VP8's payload type and its feedback, and 12 rejected
	// m-lines of 120 formats each.
	var dup strings.Builder
	for range 300 {
		dup.WriteString("a=rtcp-fb:96 nack\r\na=rtcp-fb:96 transport-cc\r\n")
	}
	inflated := strings.Replace(base, "m=video 55672 UDP/TLS/RTP/SAVPF 96 ", "m=video 55672 UDP/TLS/RTP/SAVPF 96"+strings.Repeat(" 96", 80)+" ", 1)
	inflated = strings.Replace(inflated, "a=rtcp-fb:96 nack\r\n", dup.String(), 1)
	var rejected strings.Builder
	for i := range 12 {
		fmt.Fprintf(&rejected, "m=video 0 UDP/TLS/RTP/SAVPF %s\r\na=mid:x%d\r\n", strings.TrimSpace(strings.Repeat("97 ", 120)), i)
	}
	inflated += rejected.String()
	if len(inflated) < 20_000 {
		t.Fatalf("the inflated offer is only %d bytes", len(inflated))
	}
	o, err := ParseOffer(inflated, RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	v2, answer, err := n.View(context.Background(), st, "v2", o, sfu.Preferences{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if err := sdpcheck.Answer(answer); err != nil {
		t.Fatalf("%v\n%s", err, answer)
	}
	if len(answer) > len(plain)+12*80 {
		t.Fatalf("a %d-byte offer got a %d-byte answer; the honest one %d", len(inflated), len(answer), len(plain))
	}
	tooMany := base + strings.Repeat("m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:y\r\n", maxMLines)
	if _, err := ParseOffer(tooMany, RoleViewer); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("an offer of %d m-lines: %v", maxMLines+3, err)
	}
	tooWide := strings.Replace(base, "m=video 55672 UDP/TLS/RTP/SAVPF 96 ", "m=video 55672 UDP/TLS/RTP/SAVPF 96"+strings.Repeat(" 96", maxFormats)+" ", 1)
	if _, err := ParseOffer(tooWide, RoleViewer); !errors.Is(err, ErrBadOffer) {
		t.Fatalf("an m-line of %d formats: %v", maxFormats+30, err)
	}
}
