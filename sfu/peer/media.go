package peer

import (
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// Header extension URIs Glint negotiates.
const (
	extTransportCC    = sdp.TransportCCURI
	extAbsCaptureTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
	extAudioLevel     = sdp.AudioLevelURI
	extMid            = sdp.SDESMidURI
	extRID            = sdp.SDESRTPStreamIDURI
	extRepairedRID    = sdp.SDESRepairRTPStreamIDURI
)

// videoCodecs are the video codecs Glint forwards, in preference order. Each
// has an RTX payload type (used only towards publishers).
var videoCodecs = []struct { //nolint:gochecknoglobals // static table
	mime string
	fmtp string
	pt   uint8
	rtx  uint8
}{
	{webrtc.MimeTypeVP8, "", 96, 97},
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102, 103},
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 104, 105},
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f", 106, 107},
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f", 108, 109},
	{webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f", 127, 125},
	{webrtc.MimeTypeVP9, "profile-id=0", 98, 99},
	{webrtc.MimeTypeVP9, "profile-id=2", 100, 101},
	{webrtc.MimeTypeAV1, "", 45, 46},
}

func videoFeedback() []webrtc.RTCPFeedback {
	return []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBGoogREMB},
		{Type: webrtc.TypeRTCPFBTransportCC},
	}
}

// newMediaEngine registers, for publishers, Opus and the video codecs with
// RTX payload types (towards viewers Glint retransmits on the media SSRC
// from its own cache).
func newMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine:  "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	for _, c := range videoCodecs {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 90000, SDPFmtpLine: c.fmtp, RTCPFeedback: videoFeedback()},
			PayloadType:        webrtc.PayloadType(c.pt),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=" + itoa(c.pt)},
			PayloadType:        webrtc.PayloadType(c.rtx),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	type ext struct {
		uri   string
		kinds []webrtc.RTPCodecType
	}
	both := []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo}
	exts := []ext{
		{extTransportCC, both}, {extAbsCaptureTime, both},
		{extAudioLevel, []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}},
		{extMid, both},
		{extRID, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}},
		{extRepairedRID, []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo}},
	}
	for _, e := range exts {
		for _, k := range e.kinds {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: e.uri}, k); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func itoa(v uint8) string {
	if v >= 100 {
		return string([]byte{'0' + v/100, '0' + v/10%10, '0' + v%10})
	}
	if v >= 10 {
		return string([]byte{'0' + v/10, '0' + v%10})
	}
	return string([]byte{'0' + v})
}

// supported reports whether Glint can forward codec c.
func supported(c sfu.Codec) bool {
	if c.Kind() == sfu.KindAudio {
		return c.Compatible(sfu.Codec{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}) > 0
	}
	for _, v := range videoCodecs {
		if c.Compatible(sfu.Codec{MimeType: v.mime, ClockRate: 90000, Fmtp: v.fmtp}) > 0 {
			return true
		}
	}
	return false
}

// codecOf converts pion's codec parameters.
func codecOf(p webrtc.RTPCodecParameters) sfu.Codec {
	return sfu.Codec{
		MimeType:    p.MimeType,
		ClockRate:   p.ClockRate,
		Channels:    p.Channels,
		Fmtp:        p.SDPFmtpLine,
		PayloadType: uint8(p.PayloadType),
	}
}

// extIDs picks the ids of the extensions the core uses.
func extIDs(hs []webrtc.RTPHeaderExtensionParameter) sfu.ExtIDs {
	var ids sfu.ExtIDs
	for _, h := range hs {
		if h.ID <= 0 || h.ID > 14 {
			continue // the core writes one-byte extensions only
		}
		id := uint8(h.ID)
		switch h.URI {
		case extTransportCC:
			ids.TransportCC = id
		case extAbsCaptureTime:
			ids.AbsCaptureTime = id
		case extAudioLevel:
			ids.AudioLevel = id
		}
	}
	return ids
}
