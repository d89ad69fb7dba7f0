package client

import (
	"encoding/binary"
	"time"

	"github.com/glintlive/glint/internal/codec"
)

// Synthetic media. Frames are not decodable pictures; they carry valid VP8
// payload descriptors and frame headers (so servers detect keyframes and
// sizes) and a marker a viewer reads back: which layer, which frame, when
// it was sent. That lets a viewer check continuity and latency even when a
// server rewrites SSRC, sequence numbers and timestamps.

// markerMagic starts the marker in the first packet of every frame.
var markerMagic = [4]byte{'G', 'L', 'N', 'T'} //nolint:gochecknoglobals // a constant array

// markerSize is the marker's length: magic, layer (the publisher's tag in
// its high four bits), frame number, send time.
const markerSize = 4 + 1 + 4 + 8

// Marker is what a synthetic frame says about itself.
type Marker struct {
	Layer int
	// Tag is the publisher's PublisherConfig.Tag, telling publishers apart.
	Tag   uint8
	Frame uint32
	Sent  time.Time
}

// maxPayload keeps packets well under the MTU.
const maxPayload = 1100

// vp8Frame returns the RTP payloads of one synthetic VP8 frame of size
// bytes.
func vp8Frame(key bool, pid uint16, w, h, size, layer int, frame uint32, now time.Time) [][]byte {
	first := []byte{0x90, 0x80, 0x80 | byte(pid>>8), byte(pid)}
	if key {
		// Frame tag (key, shown) and start code with the picture size (RFC 6386 §9.1).
		first = append(first, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(h), byte(h>>8))
	} else {
		first = append(first, 0x11, 0x02, 0x00)
	}
	first = appendMarker(first, layer, frame, now)
	var out [][]byte
	rest := max(size-len(first), 0)
	take := min(rest, maxPayload-len(first))
	out = append(out, append(first, make([]byte, take)...))
	rest -= take
	for rest > 0 {
		take = min(rest, maxPayload-4)
		out = append(out, append([]byte{0x80, 0x80, 0x80 | byte(pid>>8), byte(pid)}, make([]byte, take)...))
		rest -= take
	}
	return out
}

func appendMarker(b []byte, layer int, frame uint32, now time.Time) []byte {
	b = append(b, markerMagic[:]...)
	b = append(b, byte(layer))
	b = binary.BigEndian.AppendUint32(b, frame)
	return binary.BigEndian.AppendUint64(b, uint64(now.UnixNano()))
}

// ReadMarker finds a synthetic frame's marker in the first RTP payload of
// a frame, for either codec, whatever payload descriptor or packetization a
// server chose when it forwarded the frame.
func ReadMarker(mime string, payload []byte) (Marker, bool) {
	if isH264(mime) {
		return readH264Marker(payload)
	}
	i, _, ok := codec.VP8Descriptor(payload)
	if !ok {
		return Marker{}, false
	}
	for _, off := range []int{i + 10, i + 3} { // after a key or an inter frame header
		if m, ok := parseMarker(payload, off); ok {
			return m, true
		}
	}
	return Marker{}, false
}

func parseMarker(b []byte, off int) (Marker, bool) {
	if off < 0 || len(b) < off+markerSize || [4]byte(b[off:off+4]) != markerMagic {
		return Marker{}, false
	}
	m := b[off+4:]
	return Marker{
		Layer: int(m[0] & 0x0f),
		Tag:   m[0] >> 4,
		Frame: binary.BigEndian.Uint32(m[1:]),
		Sent:  time.Unix(0, int64(binary.BigEndian.Uint64(m[5:]))),
	}, true
}

// IsKeyframe reports whether a payload of the codec with MIME type mime
// starts a keyframe.
func IsKeyframe(mime string, p []byte) bool { return codec.Keyframe(codec.KindOf(mime), p) }

// opusFrame is a 20 ms Opus packet: a TOC byte for a 20 ms CELT frame and
// silence.
func opusFrame() []byte { return []byte{0xf8, 0xff, 0xfe} }
