package client

import (
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// sendTrack is a TrackLocal that writes the mid and rid header extensions
// on every packet. pion's static tracks negotiate them but do not write
// them, so without this a server cannot tell simulcast layers apart.
type sendTrack struct {
	id, streamID, rid string
	kind              webrtc.RTPCodecType
	codec             webrtc.RTPCodecCapability

	mu     sync.Mutex
	mid    string
	w      webrtc.TrackLocalWriter
	ssrc   uint32
	pt     uint8
	midID  uint8
	ridID  uint8
	lvlID  uint8 // RFC 6464 audio level, when negotiated
	level  uint8 // the level to write, set by the sending goroutine
	hdrBuf rtp.Header
}

func (t *sendTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range ctx.CodecParameters() {
		if c.MimeType != t.codec.MimeType {
			continue
		}
		t.w, t.ssrc, t.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(c.PayloadType)
		for _, h := range ctx.HeaderExtensions() {
			switch h.URI {
			case sdp.SDESMidURI:
				t.midID = uint8(h.ID)
			case sdp.SDESRTPStreamIDURI:
				t.ridID = uint8(h.ID)
			case sdp.AudioLevelURI:
				t.lvlID = uint8(h.ID)
			}
		}
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *sendTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.w = nil
	return nil
}

func (t *sendTrack) ID() string                { return t.id }
func (t *sendTrack) RID() string               { return t.rid }
func (t *sendTrack) StreamID() string          { return t.streamID }
func (t *sendTrack) Kind() webrtc.RTPCodecType { return t.kind }

// write sends one packet with the track's SSRC and payload type.
func (t *sendTrack) write(seq uint16, ts uint32, marker bool, payload []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.w == nil {
		return nil
	}
	h := &t.hdrBuf
	*h = rtp.Header{Version: 2, Marker: marker, PayloadType: t.pt, SequenceNumber: seq, Timestamp: ts, SSRC: t.ssrc}
	if t.midID != 0 && t.mid != "" {
		_ = h.SetExtension(t.midID, []byte(t.mid))
	}
	if t.ridID != 0 && t.rid != "" {
		_ = h.SetExtension(t.ridID, []byte(t.rid))
	}
	if t.lvlID != 0 && t.kind == webrtc.RTPCodecTypeAudio {
		_ = h.SetExtension(t.lvlID, []byte{0x80 | t.level}) // voice activity set
	}
	_, err := t.w.WriteRTP(h, payload)
	return err
}
