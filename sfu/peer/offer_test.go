package peer

import (
	"errors"
	"strings"
	"testing"

	"github.com/glintlive/glint/sfu"
)

const chromeOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=fingerprint:" + testFingerprint + "\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sendonly\r\na=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sendonly\r\na=rtcp-mux\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rid:h send\r\na=rid:m send\r\na=rid:l send\r\na=simulcast:send h;m;l\r\n"

func TestParseOffer(t *testing.T) {
	o, err := ParseOffer(chromeOffer, RolePublisher)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Media) != 2 || o.Media[1].Kind != sfu.KindVideo || len(o.Media[1].RIDs) != 3 {
		t.Fatalf("parsed %+v", o.Media)
	}
	var names []string
	for _, c := range o.Media[1].Codecs {
		names = append(names, c.Name())
	}
	if strings.Join(names, ",") != "VP8,H264" || o.Media[1].Codecs[1].Fmtp == "" {
		t.Fatalf("video codecs %v (rtx must be left out, fmtp kept)", o.Media[1].Codecs)
	}
	for _, c := range []struct {
		name, offer string
		role        Role
		want        error
	}{
		{"viewer offer to WHIP", strings.ReplaceAll(chromeOffer, "a=sendonly", "a=recvonly"), RolePublisher, ErrBadOffer},
		{"publisher offer to WHEP", chromeOffer, RoleViewer, ErrBadOffer},
		{"not bundled", strings.Replace(chromeOffer, "a=group:BUNDLE 0 1", "a=group:BUNDLE 0", 1), RolePublisher, ErrBadOffer},
		{"no rtcp-mux", strings.ReplaceAll(chromeOffer, "a=rtcp-mux\r\n", ""), RolePublisher, ErrBadOffer},
		{"no fingerprint", strings.Replace(chromeOffer, "a=fingerprint:"+testFingerprint+"\r\n", "", 1), RolePublisher, ErrBadOffer},
		{"no ICE credentials", strings.ReplaceAll(chromeOffer, "a=ice-pwd:", "a=x-pwd:"), RolePublisher, ErrBadOffer},
		{"two video m-lines", chromeOffer + strings.Replace(chromeOffer[strings.Index(chromeOffer, "m=video"):], "a=mid:1", "a=mid:2", 1), RolePublisher, ErrBadOffer},
		{"four simulcast layers", strings.Replace(chromeOffer, "a=rid:l send\r\n", "a=rid:l send\r\na=rid:x send\r\n", 1), RolePublisher, ErrBadOffer},
		{"no usable video codec", strings.NewReplacer("VP8/90000", "H265/90000", "H264/90000", "H265/90000").Replace(chromeOffer), RolePublisher, ErrNoCodec},
		{"not SDP", "hello", RolePublisher, ErrBadOffer},
		{"a mid that is not a token", strings.NewReplacer("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 a/b", "a=mid:1", "a=mid:a/b").Replace(chromeOffer), RolePublisher, ErrBadOffer},
		{"a mid too long", strings.NewReplacer("BUNDLE 0 1", "BUNDLE 0 "+strings.Repeat("m", 33), "a=mid:1", "a=mid:"+strings.Repeat("m", 33)).Replace(chromeOffer), RolePublisher, ErrBadOffer},
		{"too large", chromeOffer + strings.Repeat("a=x\r\n", MaxOfferSize/5), RolePublisher, ErrBadOffer},
	} {
		if _, err := ParseOffer(c.offer, c.role); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestAnswerCodecsTakeTheFirst(t *testing.T) {
	cs := answerCodecs(strings.ReplaceAll(chromeOffer, "a=sendonly", "a=recvonly"))
	if len(cs) != 2 || cs[0].Name() != "opus" || cs[1].Name() != "VP8" {
		t.Fatalf("answer codecs %v", cs)
	}
}

// FuzzParseOffer: any text a client posts is parsed without panicking, and
// whatever is accepted has the shape the rest of Glint relies on.
func FuzzParseOffer(f *testing.F) {
	f.Add(chromeOffer, uint8(1))
	f.Add(strings.ReplaceAll(chromeOffer, "a=sendonly", "a=recvonly"), uint8(2))
	f.Add("v=0\r\n", uint8(1))
	f.Fuzz(func(t *testing.T, text string, role uint8) {
		o, err := ParseOffer(text, Role(role%2+1))
		if err != nil {
			return
		}
		audio, video := 0, 0
		for _, m := range o.Media {
			if len(m.Codecs) == 0 || m.Mid == "" {
				t.Fatalf("accepted m-line %+v", m)
			}
			if m.Kind == sfu.KindAudio {
				audio++
			} else {
				video++
			}
		}
		if audio > 1 || video > 1 || audio+video == 0 {
			t.Fatalf("accepted %d audio and %d video m-lines", audio, video)
		}
	})
}
