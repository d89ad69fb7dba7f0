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

// inspectVP8 parses the RFC 7741 §4.2 payload descriptor.
func inspectVP8(b []byte, p *Packet) {
	if len(b) < 1 {
		return
	}
	start := b[0]&0x10 != 0
	pidx := b[0] & 0x07
	i := 1
	if b[0]&0x80 != 0 { // X
		if len(b) < 2 {
			return
		}
		x := b[1]
		i = 2
		if x&0x80 != 0 { // I
			if len(b) < i+1 {
				return
			}
			p.picture.pidOff = uint8(i)
			if b[i]&0x80 != 0 {
				if len(b) < i+2 {
					return
				}
				p.picture.pidLong = true
				p.picture.pid = binary.BigEndian.Uint16(b[i:]) & 0x7fff
				i += 2
			} else {
				p.picture.pid = uint16(b[i] & 0x7f)
				i++
			}
		}
		if x&0x40 != 0 { // L
			if len(b) < i+1 {
				return
			}
			p.picture.tl0Off = uint8(i)
			p.picture.tl0 = b[i]
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if i >= len(b) {
		return
	}
	// VP8 payload header (RFC 6386 §9.1): P bit clear means a key frame.
	p.Keyframe = start && pidx == 0 && b[i]&0x01 == 0
}

// inspectVP9 parses the RFC 9628 §4.2 payload descriptor.
func inspectVP9(b []byte, p *Packet) {
	if len(b) < 1 {
		return
	}
	h := b[0]
	i := 1
	if h&0x80 != 0 { // I
		if len(b) < i+1 {
			return
		}
		p.picture.pidOff = uint8(i)
		if b[i]&0x80 != 0 {
			if len(b) < i+2 {
				return
			}
			p.picture.pidLong = true
			p.picture.pid = binary.BigEndian.Uint16(b[i:]) & 0x7fff
			i += 2
		} else {
			p.picture.pid = uint16(b[i] & 0x7f)
			i++
		}
	}
	sid := uint8(0)
	if h&0x20 != 0 { // L
		if len(b) < i+1 {
			return
		}
		sid = (b[i] >> 1) & 0x07
		i++
		if h&0x10 == 0 { // non-flexible mode carries TL0PICIDX
			if len(b) < i+1 {
				return
			}
			p.picture.tl0Off = uint8(i)
			p.picture.tl0 = b[i]
		}
	}
	// B set and P clear on the base spatial layer: an intra frame.
	p.Keyframe = h&0x08 != 0 && h&0x40 == 0 && sid == 0
}

// h264Keyframe reports whether an RFC 6184 payload starts an IDR access unit
// (an SPS, or an IDR slice, in a single NAL, STAP-A, or first FU-A).
func h264Keyframe(b []byte) bool {
	if len(b) < 1 {
		return false
	}
	switch t := b[0] & 0x1f; {
	case t == 5 || t == 7:
		return true
	case t == 24: // STAP-A
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
	case t == 28: // FU-A
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
	i := 1
	if b[0]&0x80 != 0 && len(b) > 1 {
		x := b[1]
		i = 2
		if x&0x80 != 0 {
			if i < len(b) && b[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 {
			i++
		}
		if x&0x30 != 0 {
			i++
		}
	}
	// Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
	if len(b) < i+10 || b[i+3] != 0x9d || b[i+4] != 0x01 || b[i+5] != 0x2a {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(b[i+6:]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(b[i+8:]) & 0x3fff)
	return w, h, w > 0 && h > 0
}

func vp9Size(b []byte) (int, int, bool) {
	h := b[0]
	i := 1
	if h&0x80 != 0 {
		if i < len(b) && b[i]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	flexible := h&0x10 != 0
	if h&0x20 != 0 {
		i++
		if !flexible {
			i++
		}
	}
	if flexible && h&0x40 != 0 {
		for i < len(b) {
			n := b[i]&0x01 != 0
			i++
			if !n {
				break
			}
		}
	}
	if i >= len(b) {
		return 0, 0, false
	}
	if h&0x02 != 0 { // V: scalability structure with resolutions (Y bit)
		ss := b[i]
		if ss&0x10 != 0 && i+5 <= len(b) {
			w := int(binary.BigEndian.Uint16(b[i+1:]))
			ht := int(binary.BigEndian.Uint16(b[i+3:]))
			// The last spatial layer is the largest; for simulcast there is one.
			ns := int(ss>>5) + 1
			if end := i + 1 + 4*ns; end <= len(b) {
				w = int(binary.BigEndian.Uint16(b[end-4:]))
				ht = int(binary.BigEndian.Uint16(b[end-2:]))
			}
			return w, ht, w > 0 && ht > 0
		}
		return 0, 0, false
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
