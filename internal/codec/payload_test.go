package codec

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
		kind    Kind
		payload []byte
		key     bool
		w, h    int
	}{
		{"VP8 keyframe", VP8, vp8Payload(true, 7, 640, 360, 20), true, 640, 360},
		{"VP8 delta", VP8, vp8Payload(false, 8, 0, 0, 20), false, 0, 0},
		{"VP8 keyframe continuation", VP8, append([]byte{0x80, 0x80, 0x80, 0x07}, make([]byte, 20)...), false, 0, 0},
		{"H.264 STAP-A with SPS", H264, stapA, true, 1280, 720},
		{"H.264 SPS alone", H264, sps, true, 1280, 720},
		{"H.264 FU-A IDR start", H264, []byte{0x7c, 0x85, 0x88}, true, 0, 0},
		{"H.264 FU-A IDR middle", H264, []byte{0x7c, 0x05, 0x88}, false, 0, 0},
		{"H.264 non-IDR slice", H264, []byte{0x41, 0x9a}, false, 0, 0},
		{"VP9 keyframe", VP9, append([]byte{0x8c, 0x80, 0x01}, unhex(t, vp9Key)...), true, 640, 360},
		{"VP9 keyframe with scalability structure", VP9, append([]byte{0x8e, 0x80, 0x01, 0x10, 0x05, 0x00, 0x02, 0xd0}, unhex(t, vp9Key)...), true, 1280, 720},
		{"VP9 inter frame", VP9, []byte{0xcc, 0x80, 0x02, 0x86}, false, 0, 0},
		{"AV1 new coded video sequence", AV1, append([]byte{0x18, 0x08}, seq...), true, 320, 180},
		{"AV1 inter frame", AV1, []byte{0x10, 0x32, 0x00}, false, 0, 0},
	} {
		if key := Keyframe(c.kind, c.payload); key != c.key {
			t.Errorf("%s: keyframe %v, want %v", c.name, key, c.key)
		}
		if c.w == 0 {
			continue
		}
		w, h, ok := PictureSize(c.kind, c.payload)
		if !ok || w != c.w || h != c.h {
			t.Errorf("%s: size %dx%d (%v), want %dx%d", c.name, w, h, ok, c.w, c.h)
		}
	}
}

func TestPictureIDsAreFound(t *testing.T) {
	_, pic := Inspect(VP8, vp8Payload(false, 0x1234, 0, 0, 4))
	if !pic.PIDLong || pic.PID != 0x1234 || pic.PIDOffset != 2 {
		t.Fatalf("VP8 picture id %+v", pic)
	}
	// VP9 non-flexible with layer indices: I, L set; TL0PICIDX follows.
	key, pic := Inspect(VP9, []byte{0xa8, 0x81, 0x02, 0x00, 0x33, 0xaa})
	if pic.PID != 0x102 || pic.TL0Offset != 4 || pic.TL0 != 0x33 || !key {
		t.Fatalf("VP9 picture %+v keyframe %v", pic, key)
	}
}

// vp8Payload returns a VP8 payload with a 15-bit picture id; keyframes carry
// a frame header with the given size.
func vp8Payload(key bool, pid uint16, w, h int, extra int) []byte {
	b := []byte{0x90, 0x80, 0x80 | byte(pid>>8), byte(pid)}
	if key {
		b = append(b, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(h), byte(h>>8))
	} else {
		b = append(b, 0x01, 0x00, 0x00)
	}
	return append(b, make([]byte, extra)...)
}
