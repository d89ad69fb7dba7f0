package codec

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzAssemble feeds an assembler of each codec packets built from
// arbitrary bytes: flags, a sequence step, a timestamp step and a payload
// per packet. It must never panic, never hand out more than maxFrame
// bytes, and every unit it hands out must be non-empty.
func FuzzAssemble(f *testing.F) {
	f.Add([]byte{0x01, 0x01, 0x00, 0x03, 0x65, 0x88, 0x84})
	f.Add([]byte{0x00, 0x01, 0x00, 0x05, 0x7c, 0x85, 1, 2, 3, 0x01, 0x01, 0x00, 0x04, 0x7c, 0x45, 4, 5})
	f.Add([]byte{0x01, 0x01, 0x00, 0x0b, 0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 0x00, 0x01})
	f.Add([]byte{0x01, 0x01, 0x00, 0x06, 0x90, 0x80, 0x80, 0x01, 0x10, 0x00})
	f.Add([]byte{0x01, 0x01, 0x00, 0x05, 0x9c, 0x80, 0x01, 0xaa, 0xbb})
	f.Add([]byte{0x01, 0x01, 0x00, 0x06, 0x18, 0x0a, 0x0b, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range []Kind{H264, VP8, VP9, AV1, Opus} {
			a := NewAssembler(k)
			var seq uint16
			var ts uint32
			for i := 0; i+4 <= len(b); {
				flags, step, tstep, n := b[i], b[i+1], b[i+2], int(b[i+3])
				i += 4
				n = min(n, len(b)-i)
				p := rtp.Packet{Header: rtp.Header{Version: 2, Marker: flags&1 != 0, SequenceNumber: seq, Timestamp: ts}, Payload: b[i : i+n]}
				i += n
				for _, au := range a.Push(&p) {
					size := len(au.Data)
					for _, nal := range au.NALUs {
						if len(nal) == 0 {
							t.Fatalf("%v: an empty NAL unit", k)
						}
						size += len(nal)
					}
					if size == 0 || size > maxFrame+1500 {
						t.Fatalf("%v: a unit of %d bytes", k, size)
					}
				}
				seq += uint16(step)
				ts += uint32(tstep) * 90
			}
		}
	})
}

// FuzzInspect: reading a payload's keyframe flag, picture ids and size
// never panics, and picture id offsets stay inside the payload.
func FuzzInspect(f *testing.F) {
	f.Add(byte(VP8), []byte{0x90, 0xe0, 0x80, 0x01, 0x05, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00})
	f.Add(byte(VP9), []byte{0xaa, 0x80, 0x01, 0x00, 0x18, 0x01, 0x40, 0x00, 0xb4, 0x01})
	f.Add(byte(H264), append([]byte{0x18, 0x00, byte(len(sps320x180))}, sps320x180...))
	f.Add(byte(AV1), []byte{0x18, 0x0a, 0x08, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08})
	f.Fuzz(func(t *testing.T, kind byte, b []byte) {
		k := Kind(kind % 6)
		_, pic := Inspect(k, b)
		if int(pic.PIDOffset) >= len(b)+1 || int(pic.TL0Offset) >= len(b)+1 {
			t.Fatalf("offsets %d/%d outside a %d-byte payload", pic.PIDOffset, pic.TL0Offset, len(b))
		}
		if pic.PIDLong && int(pic.PIDOffset)+2 > len(b) {
			t.Fatalf("a long picture id past the payload's end")
		}
		if w, h, ok := PictureSize(k, b); ok && (w <= 0 || h <= 0) {
			t.Fatalf("size %dx%d reported as known", w, h)
		}
		_ = binary.BigEndian
	})
}
