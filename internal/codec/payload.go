package codec

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
)

// Picture locates the picture id and TL0PICIDX of a VP8 or VP9 payload
// descriptor, so a forwarder can keep them continuous across layer
// switches. Offsets are from the start of the RTP payload; 0 means absent.
type Picture struct {
	PIDOffset uint8 // the picture id's offset; 0 when absent
	PIDLong   bool  // a 15-bit picture id (M bit)
	TL0Offset uint8 // TL0PICIDX's offset; 0 when absent
	PID       uint16
	TL0       uint8
}

// Inspect reads what a forwarder needs of one RTP payload: whether it
// starts a keyframe, and where the picture ids are. It never allocates and
// tolerates any input. Every Opus packet (and any packet of a codec it does
// not know) is its own keyframe.
func Inspect(k Kind, b []byte) (keyframe bool, pic Picture) {
	switch k {
	case VP8:
		size, pic, ok := VP8Descriptor(b)
		if !ok {
			return false, Picture{}
		}
		// S set and PID 0: the start of partition 0; P clear: a key frame
		// (RFC 6386 §9.1).
		return b[0]&0x10 != 0 && b[0]&0x07 == 0 && b[size]&0x01 == 0, pic
	case VP9:
		_, pic, sid, ok := VP9Descriptor(b)
		if !ok {
			return false, Picture{}
		}
		// B set and P clear on the base spatial layer: an intra frame.
		return b[0]&0x08 != 0 && b[0]&0x40 == 0 && sid == 0, pic
	case H264:
		return h264Keyframe(b), Picture{}
	case AV1:
		// Aggregation header Z|Y|W|N|-: N marks the first packet of a
		// coded video sequence, a keyframe (AV1 RTP payload format §4.4).
		return len(b) > 1 && b[0]&0x08 != 0 && b[0]&0x80 == 0, Picture{}
	}
	return len(b) > 0, Picture{}
}

// Keyframe reports whether an RTP payload starts a frame a decoder can
// start from.
func Keyframe(k Kind, b []byte) bool {
	key, _ := Inspect(k, b)
	return key
}

// readPictureID reads a VP8 or VP9 picture id at b[i]: 7 bits, or 15 when
// the M bit is set. It returns the next offset, or -1 if b is too short.
func readPictureID(b []byte, i int, pic *Picture) int {
	if len(b) < i+1 {
		return -1
	}
	pic.PIDOffset = uint8(i)
	if b[i]&0x80 == 0 {
		pic.PID = uint16(b[i] & 0x7f)
		return i + 1
	}
	if len(b) < i+2 {
		return -1
	}
	pic.PIDLong = true
	pic.PID = binary.BigEndian.Uint16(b[i:]) & 0x7fff
	return i + 2
}

// VP8Descriptor parses an RFC 7741 §4.2 payload descriptor: its size and
// picture ids, or ok=false when b ends inside it or holds nothing after it.
func VP8Descriptor(b []byte) (size int, pic Picture, ok bool) {
	if len(b) < 1 {
		return 0, pic, false
	}
	i := 1
	if b[0]&0x80 != 0 { // X
		if len(b) < 2 {
			return 0, pic, false
		}
		x := b[1]
		i = 2
		if x&0x80 != 0 { // I
			if i = readPictureID(b, i, &pic); i < 0 {
				return 0, Picture{}, false
			}
		}
		if x&0x40 != 0 { // L
			if len(b) < i+1 {
				return 0, Picture{}, false
			}
			pic.TL0Offset, pic.TL0 = uint8(i), b[i]
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	return i, pic, i < len(b)
}

// VP9Descriptor parses an RFC 9628 §4.2 payload descriptor up to the
// scalability structure: the offset after it, the picture ids and the
// spatial layer id, or ok=false when b ends inside it.
func VP9Descriptor(b []byte) (size int, pic Picture, spatial uint8, ok bool) {
	if len(b) < 1 {
		return 0, pic, 0, false
	}
	h := b[0]
	i := 1
	if h&0x80 != 0 { // I
		if i = readPictureID(b, i, &pic); i < 0 {
			return 0, Picture{}, 0, false
		}
	}
	flexible := h&0x10 != 0
	if h&0x20 != 0 { // L
		if len(b) < i+1 {
			return 0, Picture{}, 0, false
		}
		spatial = (b[i] >> 1) & 0x07
		i++
		if !flexible { // non-flexible mode carries TL0PICIDX
			if len(b) < i+1 {
				return 0, Picture{}, 0, false
			}
			pic.TL0Offset, pic.TL0 = uint8(i), b[i]
			i++
		}
	}
	if flexible && h&0x40 != 0 { // P_DIFF entries, N bit chains them
		for more := true; more; i++ {
			if i >= len(b) {
				return 0, Picture{}, 0, false
			}
			more = b[i]&0x01 != 0
		}
	}
	return i, pic, spatial, i < len(b)
}

// h264Keyframe reports whether an RFC 6184 payload starts an IDR access
// unit: an SPS or an IDR slice as a single NAL unit, inside a STAP-A, or at
// the start of an FU-A. Encoders send the SPS first, in any of the three.
func h264Keyframe(b []byte) bool {
	if len(b) < 1 {
		return false
	}
	switch t := b[0] & 0x1f; t {
	case h264NALIDR, h264NALSPS:
		return true
	case h264STAPA:
		for i := 1; i+2 < len(b); {
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				return false
			}
			if nt := b[i] & 0x1f; nt == h264NALIDR || nt == h264NALSPS {
				return true
			}
			i += n
		}
	case h264FUA:
		return len(b) > 1 && b[1]&0x80 != 0 && (b[1]&0x1f == h264NALIDR || b[1]&0x1f == h264NALSPS)
	}
	return false
}

// H.264 NAL unit and RTP packet types (RFC 6184 §5.2).
const (
	h264NALIDR = 5
	h264NALSPS = 7
	h264STAPA  = 24
	h264FUA    = 28
)

// PictureSize returns the picture size carried by the first packet of a
// keyframe, when the codec puts it there. Call it once per keyframe, not
// per packet: it may allocate.
func PictureSize(k Kind, b []byte) (w, h int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch k {
	case VP8:
		return vp8Size(b)
	case VP9:
		return vp9Size(b)
	case H264:
		return h264Size(b)
	case AV1:
		return av1Size(b)
	}
	return 0, 0, false
}

func vp8Size(b []byte) (int, int, bool) {
	i, _, ok := VP8Descriptor(b)
	// Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
	if !ok || len(b) < i+10 || b[i+3] != 0x9d || b[i+4] != 0x01 || b[i+5] != 0x2a {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(b[i+6:]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(b[i+8:]) & 0x3fff)
	return w, h, w > 0 && h > 0
}

func vp9Size(b []byte) (int, int, bool) {
	i, _, _, ok := VP9Descriptor(b)
	if !ok {
		return 0, 0, false
	}
	if b[0]&0x02 != 0 { // V: scalability structure; with Y it carries sizes
		ss := b[i]
		ns := int(ss>>5) + 1
		if ss&0x10 == 0 || i+1+4*ns > len(b) {
			return 0, 0, false
		}
		// The last spatial layer is the largest; for simulcast there is one.
		end := i + 1 + 4*ns
		w := int(binary.BigEndian.Uint16(b[end-4:]))
		h := int(binary.BigEndian.Uint16(b[end-2:]))
		return w, h, w > 0 && h > 0
	}
	var hdr vp9.Header
	if hdr.Unmarshal(b[i:]) != nil || hdr.FrameSize == nil {
		return 0, 0, false
	}
	return hdr.Width(), hdr.Height(), hdr.Width() > 0 && hdr.Height() > 0
}

// h264Size reads the SPS of a keyframe's first packet: a single NAL unit,
// inside a STAP-A, or the start of an FU-A when the whole SPS fits in it.
func h264Size(b []byte) (int, int, bool) {
	var sps []byte
	switch b[0] & 0x1f {
	case h264NALSPS:
		sps = b
	case h264STAPA:
		for i := 1; i+2 < len(b); {
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				break
			}
			if b[i]&0x1f == h264NALSPS {
				sps = b[i : i+n]
				break
			}
			i += n
		}
	case h264FUA:
		if len(b) > 2 && b[1]&0x80 != 0 && b[1]&0x1f == h264NALSPS {
			// Rebuild the NAL header from the FU indicator and header.
			sps = append([]byte{b[0]&0xe0 | h264NALSPS}, b[2:]...)
		}
	}
	if sps == nil {
		return 0, 0, false
	}
	var s h264.SPS
	if s.Unmarshal(sps) != nil {
		return 0, 0, false
	}
	return s.Width(), s.Height(), s.Width() > 0 && s.Height() > 0
}

func av1Size(b []byte) (int, int, bool) {
	if len(b) < 2 {
		return 0, 0, false
	}
	w := int(b[0]>>4) & 0x03
	i := 1
	for n := 1; i < len(b); n++ {
		size := len(b) - i
		if w == 0 || n < w {
			v, l := leb128(b[i:])
			if l == 0 {
				return 0, 0, false
			}
			i += l
			size = int(v)
		}
		if size <= 0 || i+size > len(b) {
			return 0, 0, false
		}
		obu := b[i : i+size]
		if av1.OBUType((obu[0]>>3)&0x0f) == av1.OBUTypeSequenceHeader {
			var sh av1.SequenceHeader
			if sh.Unmarshal(obu) != nil {
				return 0, 0, false
			}
			return sh.Width(), sh.Height(), sh.Width() > 0 && sh.Height() > 0
		}
		i += size
		if w != 0 && n >= w {
			break
		}
	}
	return 0, 0, false
}

// leb128 decodes an unsigned LEB128 value; l is 0 on malformed input.
func leb128(b []byte) (v uint64, l int) {
	for i := 0; i < len(b) && i < 8; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
