package sfu

import (
	"strings"

	"github.com/glintlive/glint/internal/codec"
)

// Kind is the media kind of a track.
type Kind uint8

// Media kinds.
const (
	KindAudio Kind = iota + 1
	KindVideo
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	}
	return "unknown"
}

// Codec describes the codec a publisher sends on a layer.
type Codec struct {
	MimeType    string // e.g. "video/VP8", compared case-insensitively
	ClockRate   uint32
	Channels    uint16
	Fmtp        string
	PayloadType uint8 // the publisher's payload type
}

// Kind returns the codec's media kind from its MIME type.
func (c Codec) Kind() Kind {
	if strings.HasPrefix(strings.ToLower(c.MimeType), "audio/") {
		return KindAudio
	}
	return KindVideo
}

// Name returns the codec name without the kind prefix, e.g. "VP8".
func (c Codec) Name() string {
	if i := strings.IndexByte(c.MimeType, '/'); i >= 0 {
		return c.MimeType[i+1:]
	}
	return c.MimeType
}

// FmtpParam returns one key of the codec's fmtp line.
func (c Codec) FmtpParam(key string) (string, bool) {
	return fmtpParam(c.Fmtp, key)
}

func fmtpParam(fmtp, key string) (string, bool) {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// Compatible reports how well a codec negotiated with a viewer can carry
// packets of c: 0 not at all, higher is better. H.264 must agree on
// packetization mode, and prefers the same profile; VP9 and AV1 prefer the
// same profile.
func (c Codec) Compatible(o Codec) int {
	if !strings.EqualFold(c.MimeType, o.MimeType) || c.ClockRate != o.ClockRate {
		return 0
	}
	switch codec.KindOf(c.MimeType) {
	case codec.H264:
		pm := func(x Codec) string {
			v, _ := x.FmtpParam("packetization-mode")
			if v == "" {
				return "0"
			}
			return v
		}
		if pm(c) != pm(o) {
			return 0
		}
		pa, _ := c.FmtpParam("profile-level-id")
		pb, _ := o.FmtpParam("profile-level-id")
		if len(pa) >= 4 && len(pb) >= 4 && strings.EqualFold(pa[:4], pb[:4]) {
			return 3
		}
		if len(pa) >= 2 && len(pb) >= 2 && strings.EqualFold(pa[:2], pb[:2]) {
			return 2
		}
		return 1
	case codec.VP9:
		return sameParam(c, o, "profile-id", "0")
	case codec.AV1:
		return sameParam(c, o, "profile", "0")
	}
	return 3
}

func sameParam(a, b Codec, key, def string) int {
	va, ok := a.FmtpParam(key)
	if !ok {
		va = def
	}
	vb, ok := b.FmtpParam(key)
	if !ok {
		vb = def
	}
	if va == vb {
		return 3
	}
	return 0
}
