package sfu

import (
	"encoding/hex"
	"testing"
)

// Real bitstream headers, taken once from ffmpeg's encoders:
//
//	x264 -profile baseline 1280x720: SPS and PPS
//	libvpx-vp9 640x360: the start of a keyframe (uncompressed header)
//	libaom-av1 320x180: the sequence header OBU payload
const (
	h264SPS  = "6742c01fd9005005bb0110000003001000000303c0f1832480"
	h264PPS  = "68cb83cb20"
	vp9Key   = "a2498342e027f016760638241c184a1006507fd5fa3e8be7"
	av1SeqHd = "200000043cfeccdaf92021a004"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPayloadKeyframesAndSizes(t *testing.T) {
	sps, pps := unhex(t, h264SPS), unhex(t, h264PPS)
	stapA := append([]byte{0x18, 0, byte(len(sps))}, sps...)
	stapA = append(append(stapA, 0, byte(len(pps))), pps...)
	seq := unhex(t, av1SeqHd)
	for _, c := range []struct {
		name    string
		family  codecFamily
		payload []byte
		key     bool
		w, h    int
	}{
		{"VP8 keyframe", familyVP8, vp8Payload(true, 7, 640, 360, 20), true, 640, 360},
		{"VP8 delta", familyVP8, vp8Payload(false, 8, 0, 0, 20), false, 0, 0},
		{"VP8 keyframe continuation", familyVP8, append([]byte{0x80, 0x80, 0x80, 0x07}, make([]byte, 20)...), false, 0, 0},
		{"H.264 STAP-A with SPS", familyH264, stapA, true, 1280, 720},
		{"H.264 SPS alone", familyH264, sps, true, 1280, 720},
		{"H.264 FU-A IDR start", familyH264, []byte{0x7c, 0x85, 0x88}, true, 0, 0},
		{"H.264 FU-A IDR middle", familyH264, []byte{0x7c, 0x05, 0x88}, false, 0, 0},
		{"H.264 non-IDR slice", familyH264, []byte{0x41, 0x9a}, false, 0, 0},
		{"VP9 keyframe", familyVP9, append([]byte{0x8c, 0x80, 0x01}, unhex(t, vp9Key)...), true, 640, 360},
		{"VP9 keyframe with scalability structure", familyVP9, append([]byte{0x8e, 0x80, 0x01, 0x10, 0x05, 0x00, 0x02, 0xd0}, unhex(t, vp9Key)...), true, 1280, 720},
		{"VP9 inter frame", familyVP9, []byte{0xcc, 0x80, 0x02, 0x86}, false, 0, 0},
		{"AV1 new coded video sequence", familyAV1, append([]byte{0x18, 0x08}, seq...), true, 320, 180},
		{"AV1 inter frame", familyAV1, []byte{0x10, 0x32, 0x00}, false, 0, 0},
	} {
		p := &Packet{}
		p.size = uint16(copy(p.buf[:], c.payload))
		p.payloadOff, p.payloadEnd = 0, p.size
		inspect(c.family, p)
		if p.Keyframe != c.key {
			t.Errorf("%s: keyframe %v, want %v", c.name, p.Keyframe, c.key)
		}
		if c.w == 0 {
			continue
		}
		w, h, ok := keyframeSize(c.family, c.payload)
		if !ok || w != c.w || h != c.h {
			t.Errorf("%s: size %dx%d (%v), want %dx%d", c.name, w, h, ok, c.w, c.h)
		}
	}
}

func TestPictureIDsAreFound(t *testing.T) {
	p := &Packet{}
	b := vp8Payload(false, 0x1234, 0, 0, 4)
	p.size = uint16(copy(p.buf[:], b))
	p.payloadEnd = p.size
	inspect(familyVP8, p)
	if !p.picture.pidLong || p.picture.pid != 0x1234 || p.picture.pidOff != 2 {
		t.Fatalf("VP8 picture id %+v", p.picture)
	}
	// VP9 non-flexible with layer indices: I, L set; TL0PICIDX follows.
	b = []byte{0xa8, 0x81, 0x02, 0x00, 0x33, 0xaa}
	p.size = uint16(copy(p.buf[:], b))
	p.payloadEnd = p.size
	inspect(familyVP9, p)
	if p.picture.pid != 0x102 || p.picture.tl0Off != 4 || p.picture.tl0 != 0x33 || !p.Keyframe {
		t.Fatalf("VP9 picture %+v keyframe %v", p.picture, p.Keyframe)
	}
}
