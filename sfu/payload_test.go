package sfu

import (
	"testing"

	"github.com/glintlive/glint/internal/codec"
)

// A packet stored in a layer's cache knows its keyframe flag and picture
// ids, read by the codec package.
func TestPacketsKnowKeyframesAndPictureIDs(t *testing.T) {
	p := &Packet{}
	b := vp8Payload(true, 0x1234, 640, 360, 4)
	p.size = uint16(copy(p.buf[:], b))
	p.payloadEnd = p.size
	inspect(codec.VP8, p)
	if !p.Keyframe || !p.picture.PIDLong || p.picture.PID != 0x1234 || p.picture.PIDOffset != 2 {
		t.Fatalf("VP8 keyframe %v, picture id %+v", p.Keyframe, p.picture)
	}
}
