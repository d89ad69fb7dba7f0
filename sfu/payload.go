package sfu

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
)

// pictureInfo locates the picture id and TL0PICIDX of a VP8 or VP9 payload
// descriptor, so a forwarder can keep them continuous across layer switches.
type pictureInfo struct {
	pidOff  uint8 // payload offset of the picture id; 0 when absent
	pidLong bool  // 15-bit picture id (M bit)
	tl0Off  uint8 // payload offset of TL0PICIDX; 0 when absent
	pid     uint16
	tl0     uint8
}

// inspect reads the payload descriptor: whether the packet starts a keyframe,
// and where the picture id is. It never allocates and tolerates any input.
func inspect(f codecFamily, p *Packet) {
	b := p.Payload()
	switch f {
	case familyOpus, familyOther:
		p.Keyframe = p.payloadEnd > p.payloadOff
	case familyVP8:
		inspectVP8(b, p)
	case familyVP9:
		inspectVP9(b, p)
	case familyH264:
		p.Keyframe = h264Keyframe(b)
	case familyAV1:
		// Aggregation header Z|Y|W|N|-: N marks the first packet of a coded
		// video sequence, i.e. a keyframe (RTP payload format for AV1 §4.4).
		p.Keyframe = len(b) > 1 && b[0]&0x08 != 0 && b[0]&0x80 == 0
	}
}

// readPictureID reads a VP8 or VP9 picture id at b[i]: 7 bits, or 15 when
// the M bit is set. It returns the next offset, or -1 if b is too short.
func readPictureID(b []byte, i int, pic *pictureInfo) int {
	if len(b) < i+1 {
		return -1
	}
	pic.pidOff = uint8(i)
	if b[i]&0x80 == 0 {
		pic.pid = uint16(b[i] & 0x7f)
		return i + 1
	}
	if len(b) < i+2 {
		return -1
	}
	pic.pidLong = true
	pic.pid = binary.BigEndian.Uint16(b[i:]) & 0x7fff
	return i + 2
}

// vp8Descriptor parses an RFC 7741 §4.2 payload descriptor: its size and
// picture ids, or ok=false when b ends inside it.
func vp8Descriptor(b []byte) (size int, pic pictureInfo, ok bool) {
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
				return 0, pic, false
			}
		}
		if x&0x40 != 0 { // L
			if len(b) < i+1 {
				return 0, pic, false
			}
			pic.tl0Off, pic.tl0 = uint8(i), b[i]
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	return i, pic, i < len(b)
}

// inspectVP8 reads the descriptor and the VP8 payload header (RFC 6386
// §9.1): the start of partition 0 with the P bit clear is a key frame.
func inspectVP8(b []byte, p *Packet) {
	size, pic, ok := vp8Descriptor(b)
	if !ok {
		return
	}
	p.picture = pic
	p.Keyframe = b[0]&0x10 != 0 && b[0]&0x07 == 0 && b[size]&0x01 == 0
}

// vp9Descriptor parses an RFC 9628 §4.2 payload descriptor up to the
// scalability structure: the offset after it, the picture ids and the
// spatial layer id, or ok=false when b ends inside it.
func vp9Descriptor(b []byte) (size int, pic pictureInfo, sid uint8, ok bool) {
	if len(b) < 1 {
		return 0, pic, 0, false
	}
	h := b[0]
	i := 1
	if h&0x80 != 0 { // I
		if i = readPictureID(b, i, &pic); i < 0 {
			return 0, pic, 0, false
		}
	}
	flexible := h&0x10 != 0
	if h&0x20 != 0 { // L
		if len(b) < i+1 {
			return 0, pic, 0, false
		}
		sid = (b[i] >> 1) & 0x07
		i++
		if !flexible { // non-flexible mode carries TL0PICIDX
			if len(b) < i+1 {
				return 0, pic, 0, false
			}
			pic.tl0Off, pic.tl0 = uint8(i), b[i]
			i++
		}
	}
	if flexible && h&0x40 != 0 { // P_DIFF entries, N bit chains them
		for more := true; more; i++ {
			if i >= len(b) {
				return 0, pic, 0, false
			}
			more = b[i]&0x01 != 0
		}
	}
	return i, pic, sid, i < len(b)
}

// inspectVP9: B set and P clear on the base spatial layer is an intra frame.
func inspectVP9(b []byte, p *Packet) {
	_, pic, sid, ok := vp9Descriptor(b)
	if !ok {
		return
	}
	p.picture = pic
	p.Keyframe = b[0]&0x08 != 0 && b[0]&0x40 == 0 && sid == 0
}

// h264Keyframe reports whether an RFC 6184 payload starts an IDR access unit
// (an SPS, or an IDR slice, in a single NAL, STAP-A, or first FU-A).
func h264Keyframe(b []byte) bool {
	if len(b) < 1 {
		return false
	}
	switch t := b[0] & 0x1f; t {
	case 5, 7:
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(b); {
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				return false
			}
			if nt := b[i] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			i += n
		}
	case 28: // FU-A
		return len(b) > 1 && b[1]&0x80 != 0 && (b[1]&0x1f == 5 || b[1]&0x1f == 7)
	}
	return false
}

// keyframeSize returns the picture size carried by the first packet of a
// keyframe, when the codec puts it there. It is called once per keyframe, not
// per packet.
func keyframeSize(f codecFamily, b []byte) (w, h int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch f {
	case familyVP8:
		return vp8Size(b)
	case familyVP9:
		return vp9Size(b)
	case familyH264:
		return h264Size(b)
	case familyAV1:
		return av1Size(b)
	}
	return 0, 0, false
}

func vp8Size(b []byte) (int, int, bool) {
	i, _, ok := vp8Descriptor(b)
	// Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
	if !ok || len(b) < i+10 || b[i+3] != 0x9d || b[i+4] != 0x01 || b[i+5] != 0x2a {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(b[i+6:]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(b[i+8:]) & 0x3fff)
	return w, h, w > 0 && h > 0
}

func vp9Size(b []byte) (int, int, bool) {
	i, _, _, ok := vp9Descriptor(b)
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
	return hdr.Width(), hdr.Height(), true
}

func h264Size(b []byte) (int, int, bool) {
	var sps []byte
	switch b[0] & 0x1f {
	case 7:
		sps = b
	case 24:
		for i := 1; i+2 < len(b); {
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				break
			}
			if b[i]&0x1f == 7 {
				sps = b[i : i+n]
				break
			}
			i += n
		}
	}
	if sps == nil {
		return 0, 0, false
	}
	var s h264.SPS
	if s.Unmarshal(sps) != nil {
		return 0, 0, false
	}
	return s.Width(), s.Height(), true
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
			return sh.Width(), sh.Height(), true
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
