package peer

import (
	"errors"

	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
)

// localTrack is the pion TrackLocal behind a viewer's down track. Unlike
// pion's static tracks it writes a header built per viewer around a payload
// shared by all viewers, straight into the SRTP writer.
type localTrack struct {
	dt       *sfu.DownTrack
	streamID string
}

var errNoPayloadType = errors.New("bound codec has no payload type")

func (t *localTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	params := ctx.CodecParameters()
	codecs := make([]sfu.Codec, 0, len(params))
	for _, p := range params {
		if p.MimeType != webrtc.MimeTypeRTX {
			codecs = append(codecs, codecOf(p))
		}
	}
	c, err := t.dt.Bind(ctx.WriteStream(), uint32(ctx.SSRC()), codecs, extIDs(ctx.HeaderExtensions()))
	if err != nil {
		return webrtc.RTPCodecParameters{}, err
	}
	for _, p := range params {
		if uint8(p.PayloadType) == c.PayloadType {
			return p, nil
		}
	}
	return webrtc.RTPCodecParameters{}, errNoPayloadType
}

func (t *localTrack) Unbind(webrtc.TrackLocalContext) error { return nil }

func (t *localTrack) ID() string { return t.dt.Track().ID() }

func (t *localTrack) RID() string { return "" }

func (t *localTrack) StreamID() string { return t.streamID }

func (t *localTrack) Kind() webrtc.RTPCodecType {
	if t.dt.Kind() == sfu.KindAudio {
		return webrtc.RTPCodecTypeAudio
	}
	return webrtc.RTPCodecTypeVideo
}
