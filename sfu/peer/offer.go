package peer

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/glintlive/glint/sfu"

	"github.com/glintlive/glint/sfu/peer/lite"
)

// Role says which side of a broadcast an offer comes from.
type Role uint8

// Roles.
const (
	RolePublisher Role = iota + 1 // WHIP: sends media
	RoleViewer                    // WHEP: receives media
)

// MaxOfferSize bounds the SDP text accepted.
const MaxOfferSize = 64 << 10

// Offer bounds: what an honest offer never exceeds. Past them the offer
// is refused (400) rather than answered at length.
const (
	maxOfferCandidates = 16  // candidates kept (more are ignored)
	maxMLines          = 16  // m-lines, rejected ones included
	maxFormats         = 128 // payload types on one m-line
	maxCodecs          = 16  // distinct usable codecs kept per m-line
)

// Offer is a parsed and checked SDP offer.
type Offer struct {
	SDP         string
	Media       []Media
	DataChannel bool // an application m-line for SCTP data channels

	remote lite.Remote // the offerer's ICE and DTLS parameters, and candidates
	lines  []offerLine // every m-line, rejected ones included, for the answer
}

// Media is one audio or video m-line of an offer.
type Media struct {
	Kind      sfu.Kind
	Mid       string
	Direction string
	Codecs    []sfu.Codec
	RIDs      []string // simulcast rids the peer sends
}

// ParseOffer parses an offer and checks what RFC 9725 and Glint require:
// ICE credentials, a DTLS fingerprint, rtcp-mux, BUNDLE, at most one audio and
// one video m-line (a viewer: one per Live Room slot) in the right direction, and at least one codec Glint can
// forward. Errors wrap ErrBadOffer or ErrNoCodec and say what is wrong.
func ParseOffer(text string, role Role) (*Offer, error) {
	if len(text) > MaxOfferSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadOffer, MaxOfferSize)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: cannot parse SDP: %w", ErrBadOffer, err)
	}
	if len(d.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("%w: no media", ErrBadOffer)
	}
	if len(d.MediaDescriptions) > maxMLines {
		return nil, fmt.Errorf("%w: %d m-lines, at most %d", ErrBadOffer, len(d.MediaDescriptions), maxMLines)
	}
	for i, m := range d.MediaDescriptions {
		if len(m.MediaName.Formats) > maxFormats {
			return nil, fmt.Errorf("%w: m-line %d offers %d formats, at most %d", ErrBadOffer, i, len(m.MediaName.Formats), maxFormats)
		}
	}
	sessUfrag, _ := d.Attribute("ice-ufrag")
	sessPwd, _ := d.Attribute("ice-pwd")
	_, sessFP := d.Attribute("fingerprint")
	attr := func(m *sdp.MediaDescription, key string) string {
		if v, ok := m.Attribute(key); ok {
			return v
		}
		v, _ := d.Attribute(key)
		return v
	}
	bundled := map[string]bool{}
	for _, a := range d.Attributes {
		if a.Key == "group" && strings.HasPrefix(a.Value, "BUNDLE") {
			for _, mid := range strings.Fields(a.Value)[1:] {
				bundled[mid] = true
			}
		}
	}

	o := &Offer{SDP: text}
	var audio, video, app int
	for i, m := range d.MediaDescriptions {
		o.lines = append(o.lines, lineOf(m))
		if m.MediaName.Port.Value == 0 {
			continue // rejected m-line
		}
		mid, _ := m.Attribute("mid")
		if mid == "" {
			return nil, fmt.Errorf("%w: m-line %d has no a=mid", ErrBadOffer, i)
		}
		if !validMid(mid) {
			return nil, fmt.Errorf("%w: a=mid:%q is not a token of at most %d characters", ErrBadOffer, mid, maxMid)
		}
		if len(d.MediaDescriptions) > 1 && !bundled[mid] {
			return nil, fmt.Errorf("%w: m-line %q is not in a BUNDLE group (max-bundle is required)", ErrBadOffer, mid)
		}
		ufrag, _ := m.Attribute("ice-ufrag")
		pwd, _ := m.Attribute("ice-pwd")
		if ufrag == "" && sessUfrag == "" || pwd == "" && sessPwd == "" {
			return nil, fmt.Errorf("%w: m-line %q has no ICE ufrag/pwd", ErrBadOffer, mid)
		}
		if _, ok := m.Attribute("fingerprint"); !ok && !sessFP {
			return nil, fmt.Errorf("%w: no DTLS fingerprint", ErrBadOffer)
		}
		if o.remote.Ufrag == "" {
			r, err := lite.ParseRemote(attr(m, "ice-ufrag"), attr(m, "ice-pwd"), attr(m, "fingerprint"), attr(m, "setup"))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadOffer, err)
			}
			for _, a := range m.Attributes {
				if a.Key == "candidate" && len(r.Candidates) < maxOfferCandidates {
					r.Candidates = append(r.Candidates, a.Value)
				}
			}
			o.remote = r
		}
		switch m.MediaName.Media {
		case "application":
			app++
			o.DataChannel = true
			continue
		case "audio":
			audio++
		case "video":
			video++
		default:
			return nil, fmt.Errorf("%w: unsupported media %q", ErrBadOffer, m.MediaName.Media)
		}
		if _, ok := m.Attribute("rtcp-mux"); !ok {
			return nil, fmt.Errorf("%w: m-line %q lacks rtcp-mux", ErrBadOffer, mid)
		}
		med, err := parseMedia(m, mid, role)
		if err != nil {
			return nil, err
		}
		o.Media = append(o.Media, med)
	}
	perKind := 1
	if role == RoleViewer {
		perKind = sfu.MaxBroadcasters // a slot per broadcaster of a Live Room
	}
	switch {
	case audio > perKind || video > perKind || app > 1:
		return nil, fmt.Errorf("%w: at most %d audio, %d video and one data channel m-line", ErrBadOffer, perKind, perKind)
	case audio+video == 0:
		return nil, fmt.Errorf("%w: no audio or video", ErrBadOffer)
	}
	return o, nil
}

// maxMid bounds a mid: the answer repeats it in a=group and a=mid.
const maxMid = 32

// validMid reports whether mid is an RFC 5888 identification-tag (an RFC
// 8866 token) short enough to echo.
func validMid(mid string) bool {
	if mid == "" || len(mid) > maxMid {
		return false
	}
	for i := range len(mid) {
		c := mid[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func parseMedia(m *sdp.MediaDescription, mid string, role Role) (Media, error) {
	med := Media{Kind: sfu.KindVideo, Mid: mid, Direction: "sendrecv"}
	if m.MediaName.Media == "audio" {
		med.Kind = sfu.KindAudio
	}
	for _, dir := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
		if _, ok := m.Attribute(dir); ok {
			med.Direction = dir
		}
	}
	switch {
	case role == RolePublisher && med.Direction != "sendonly" && med.Direction != "sendrecv":
		return med, fmt.Errorf("%w: a publisher's m-line %q must be sendonly, not %s", ErrBadOffer, mid, med.Direction)
	case role == RoleViewer && med.Direction != "recvonly" && med.Direction != "sendrecv":
		return med, fmt.Errorf("%w: a viewer's m-line %q must be recvonly, not %s", ErrBadOffer, mid, med.Direction)
	}
	rtpmap := map[uint8]sfu.Codec{}
	for _, a := range m.Attributes {
		switch a.Key {
		case "rtpmap":
			pt, c, ok := parseRtpmap(a.Value, m.MediaName.Media)
			if ok {
				c.Fmtp = rtpmap[pt].Fmtp
				rtpmap[pt] = c
			}
		case "rid":
			f := strings.Fields(a.Value)
			if len(f) >= 2 && f[1] == "send" {
				med.RIDs = append(med.RIDs, f[0])
			}
		}
	}
	for _, a := range m.Attributes {
		if a.Key != "fmtp" {
			continue
		}
		ptText, params, _ := strings.Cut(a.Value, " ")
		pt, err := strconv.ParseUint(ptText, 10, 8)
		if c, ok := rtpmap[uint8(pt)]; err == nil && ok {
			c.Fmtp = params
			rtpmap[uint8(pt)] = c
		}
	}
	seen := map[uint64]bool{}
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil || seen[pt] || len(med.Codecs) >= maxCodecs {
			continue // a payload type offered twice is answered once
		}
		seen[pt] = true
		if c, ok := rtpmap[uint8(pt)]; ok && supported(c) {
			med.Codecs = append(med.Codecs, c)
		}
	}
	if len(med.Codecs) == 0 {
		return med, fmt.Errorf("%w for %s (m-line %q)", ErrNoCodec, med.Kind, mid)
	}
	if role == RolePublisher && len(med.RIDs) > sfu.MaxLayers {
		return med, fmt.Errorf("%w: %d simulcast layers, at most %d", ErrBadOffer, len(med.RIDs), sfu.MaxLayers)
	}
	return med, nil
}

// parseRtpmap reads "96 VP8/90000[/2]" of an m-line of the given media.
func parseRtpmap(v, media string) (uint8, sfu.Codec, bool) {
	ptText, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, sfu.Codec{}, false
	}
	pt, err := strconv.ParseUint(ptText, 10, 8)
	if err != nil || pt > 127 {
		return 0, sfu.Codec{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 {
		return 0, sfu.Codec{}, false
	}
	rate, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, sfu.Codec{}, false
	}
	c := sfu.Codec{MimeType: media + "/" + parts[0], PayloadType: uint8(pt), ClockRate: uint32(rate)}
	if len(parts) > 2 {
		if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
			c.Channels = uint16(ch)
		}
	}
	return uint8(pt), c, true
}

// answerCodecs returns, per kind, the first codec of an answer: the one the
// offerer will send.
func answerCodecs(text string) []sfu.Codec {
	var d sdp.SessionDescription
	if d.UnmarshalString(text) != nil {
		return nil
	}
	var out []sfu.Codec
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 || (m.MediaName.Media != "audio" && m.MediaName.Media != "video") {
			continue
		}
		if med, err := parseMedia(m, "", 0); err == nil && len(med.Codecs) > 0 {
			out = append(out, med.Codecs[0])
		}
	}
	return out
}

// Slots returns how many broadcasters a viewer's offer can receive at
// once: its most m-lines of one kind.
func (o *Offer) Slots() int {
	return max(len(o.mediaList(sfu.KindAudio)), len(o.mediaList(sfu.KindVideo)))
}

// mediaList returns the offer's m-lines of kind k, in order.
func (o *Offer) mediaList(k sfu.Kind) []Media {
	var out []Media
	for _, m := range o.Media {
		if m.Kind == k {
			out = append(out, m)
		}
	}
	return out
}

// mediaOf returns the offer's m-line of kind k, if any.
func (o *Offer) mediaOf(k sfu.Kind) (Media, bool) {
	for _, m := range o.Media {
		if m.Kind == k {
			return m, true
		}
	}
	return Media{}, false
}
