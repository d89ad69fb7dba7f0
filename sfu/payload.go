package sfu

import "github.com/glintlive/glint/internal/codec"

// pictureInfo locates the picture id and TL0PICIDX of a VP8 or VP9
// payload descriptor; the codec package reads it.
type pictureInfo = codec.Picture

// inspect reads the payload: whether the packet starts a keyframe, and
// where the picture id is. It never allocates and tolerates any input.
func inspect(k codec.Kind, p *Packet) {
	p.Keyframe, p.picture = codec.Inspect(k, p.Payload())
}
