package peer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/glintlive/glint/sfu"

	"github.com/glintlive/glint/sfu/peer/lite"
)

// offerLine is what the answer to a viewer needs of one offered m-line:
// the feedback and header extensions it can take.
type offerLine struct {
	media   string // audio, video, application
	mid     string
	proto   string
	formats []string
	port    int
	rsize   bool
	fb      map[string][]string // payload type → rtcp-fb values
	exts    map[string]int      // header extension URI → id
}

// Feedback and extensions Glint answers when offered.
var (
	answerFeedback = map[string]bool{"nack": true, "nack pli": true, "ccm fir": true, "goog-remb": true, "transport-cc": true} //nolint:gochecknoglobals // static table
	answerExts     = []string{extTransportCC, extAbsCaptureTime}                                                               //nolint:gochecknoglobals // static table
)

func lineOf(m *sdp.MediaDescription) offerLine {
	l := offerLine{
		media: m.MediaName.Media, proto: strings.Join(m.MediaName.Protos, "/"),
		formats: m.MediaName.Formats, port: m.MediaName.Port.Value,
		fb: map[string][]string{}, exts: map[string]int{},
	}
	l.mid, _ = m.Attribute("mid")
	_, l.rsize = m.Attribute("rtcp-rsize")
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtcp-fb":
			pt, v, _ := strings.Cut(a.Value, " ")
			if answerFeedback[v] && !slices.Contains(l.fb[pt], v) {
				l.fb[pt] = append(l.fb[pt], v)
			}
		case "extmap":
			f := strings.Fields(a.Value)
			if len(f) < 2 {
				continue
			}
			idText, _, _ := strings.Cut(f[0], "/")
			if id, err := strconv.Atoi(idText); err == nil && id >= 1 && id <= 14 {
				l.exts[f[1]] = id
			}
		}
	}
	return l
}

// answerTrack is one down track as the answer describes it.
type answerTrack struct {
	mid    string
	dt     *sfu.DownTrack
	ssrc   uint32
	codecs []sfu.Codec
	exts   sfu.ExtIDs
}

// buildAnswer writes the answer to a viewer's offer: Glint is a controlled
// ICE agent, DTLS-passive (unless the offer insists) sender on every m-line it
// accepts, bundled on one transport.
func buildAnswer(o *Offer, tracks map[string]*answerTrack, stream, ufrag, pwd, fp string, cands []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", rand.Uint64()>>2)
	var mids []string
	for _, l := range o.lines {
		if l.port != 0 && (tracks[l.mid] != nil || l.media == "application") {
			mids = append(mids, l.mid)
		}
	}
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\na=msid-semantic: WMS *\r\n", strings.Join(mids, " "))
	setup := "passive"
	if o.remote.Active {
		setup = "active"
	}
	common := func() {
		fmt.Fprintf(&b, "c=IN IP4 0.0.0.0\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\na=setup:%s\r\n", ufrag, pwd, fp, setup)
		for _, c := range cands {
			fmt.Fprintf(&b, "a=%s\r\n", c)
		}
		b.WriteString("a=end-of-candidates\r\n")
	}
	for _, l := range o.lines {
		at := tracks[l.mid]
		switch {
		case l.port != 0 && l.media == "application":
			fmt.Fprintf(&b, "m=application 9 %s webrtc-datachannel\r\n", l.proto)
			common()
			fmt.Fprintf(&b, "a=mid:%s\r\na=sctp-port:5000\r\na=max-message-size:%d\r\n", l.mid, lite.MaxMessage)
		case l.port != 0 && at != nil:
			pts := make([]string, len(at.codecs))
			for i, c := range at.codecs {
				pts[i] = strconv.Itoa(int(c.PayloadType))
			}
			fmt.Fprintf(&b, "m=%s 9 %s %s\r\n", l.media, l.proto, strings.Join(pts, " "))
			common()
			fmt.Fprintf(&b, "a=mid:%s\r\na=sendonly\r\na=rtcp-mux\r\n", l.mid)
			if l.rsize {
				b.WriteString("a=rtcp-rsize\r\n")
			}
			for i, c := range at.codecs {
				name := c.MimeType[strings.IndexByte(c.MimeType, '/')+1:]
				fmt.Fprintf(&b, "a=rtpmap:%s %s/%d", pts[i], name, c.ClockRate)
				if c.Channels > 1 {
					fmt.Fprintf(&b, "/%d", c.Channels)
				}
				b.WriteString("\r\n")
				if c.Fmtp != "" {
					fmt.Fprintf(&b, "a=fmtp:%s %s\r\n", pts[i], c.Fmtp)
				}
				for _, fb := range l.fb[pts[i]] {
					fmt.Fprintf(&b, "a=rtcp-fb:%s %s\r\n", pts[i], fb)
				}
			}
			for _, uri := range answerExts {
				if id, ok := l.exts[uri]; ok {
					fmt.Fprintf(&b, "a=extmap:%d %s\r\n", id, uri)
				}
			}
			// Each slot is its own media stream: a browser syncs the audio
			// and video of one broadcaster, not everyone's to the host's.
			track, ms := at.dt.ID(), stream
			if slot := at.dt.Slot(); slot > 0 {
				ms = stream + "-" + strconv.Itoa(slot)
			}
			fmt.Fprintf(&b, "a=msid:%s %s\r\na=ssrc:%d cname:%s\r\na=ssrc:%d msid:%s %s\r\n",
				ms, track, at.ssrc, ms, at.ssrc, ms, track)
		default:
			// A rejected m-line repeats one format, whatever the offer listed.
			format := "0"
			if len(l.formats) > 0 {
				format = l.formats[0]
			}
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\na=inactive\r\n", l.media, l.proto, format, l.mid)
		}
	}
	return b.String()
}

// answerTracks binds the viewer's down tracks to the m-lines offered for
// them: the n-th audio m-line to slot n's audio, the n-th video m-line to
// slot n's video.
func answerTracks(o *Offer, dts []*sfu.DownTrack, w sfu.RTPWriter) (map[string]*answerTrack, error) {
	out := map[string]*answerTrack{}
	for _, dt := range dts {
		ms := o.mediaList(dt.Kind())
		if dt.Slot() >= len(ms) {
			continue
		}
		m := ms[dt.Slot()]
		var line *offerLine
		for i := range o.lines {
			if o.lines[i].mid == m.Mid {
				line = &o.lines[i]
			}
		}
		if line == nil {
			continue
		}
		var ids sfu.ExtIDs
		if id, ok := line.exts[extTransportCC]; ok {
			ids.TransportCC = uint8(id)
		}
		if id, ok := line.exts[extAbsCaptureTime]; ok {
			ids.AbsCaptureTime = uint8(id)
		}
		at := &answerTrack{mid: m.Mid, dt: dt, ssrc: randomSSRC(), codecs: m.Codecs, exts: ids}
		if _, err := dt.Bind(w, at.ssrc, at.codecs, ids); err != nil {
			return nil, err
		}
		out[m.Mid] = at
	}
	return out, nil
}

func randomSSRC() uint32 {
	for {
		if v := rand.Uint32(); v != 0 {
			return v
		}
	}
}
