package sfu

import "encoding/binary"

// MaxPacketSize is the largest RTP packet the core stores or forwards.
const MaxPacketSize = 1500

// ExtIDs are the negotiated ids of the RTP header extensions the core reads
// (on ingest) or writes (towards a viewer). Zero means "not negotiated".
type ExtIDs struct {
	TransportCC    uint8 // draft-holmer-rmcat-transport-wide-cc-extensions-01
	AbsCaptureTime uint8 // http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time
	AudioLevel     uint8 // RFC 6464
	PlayoutDelay   uint8 // http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
}

// Packet is one RTP packet as received from a publisher, stored once in its
// layer's cache. Subscribers get a *Packet that is valid only for the duration
// of the call that hands it to them; they keep nothing but header fields.
type Packet struct {
	buf [MaxPacketSize]byte

	size       uint16 // bytes in buf
	payloadOff uint16 // first payload byte
	payloadEnd uint16 // one past the last payload byte (padding excluded)

	SequenceNumber uint16
	Timestamp      uint32
	SSRC           uint32
	PayloadType    uint8
	Marker         bool
	PaddingSize    uint8

	// Keyframe is set on the first packet of a frame a decoder can start from.
	Keyframe bool
	// Arrival is when the packet was received, in Now() units.
	Arrival int64

	absCaptureOff uint16 // offset of the abs-capture-time value in buf, 0 if absent
	absCaptureLen uint8
	audioLevel    uint8 // RFC 6464 level byte + 1; 0 if absent

	// picture is the codec's picture id state for payload rewriting.
	picture pictureInfo
}

// Payload returns the RTP payload without header or padding.
func (p *Packet) Payload() []byte { return p.buf[p.payloadOff:p.payloadEnd] }

// Bytes returns the whole packet as received.
func (p *Packet) Bytes() []byte { return p.buf[:p.size] }

// AbsCaptureTime returns the raw abs-capture-time extension value, if present.
func (p *Packet) AbsCaptureTime() []byte {
	if p.absCaptureOff == 0 {
		return nil
	}
	return p.buf[p.absCaptureOff : p.absCaptureOff+uint16(p.absCaptureLen)]
}

// AudioLevel returns the RFC 6464 audio level (0 loudest … 127 silence) and
// whether the packet carried one.
func (p *Packet) AudioLevel() (level uint8, ok bool) {
	if p.audioLevel == 0 {
		return 0, false
	}
	return (p.audioLevel - 1) & 0x7f, true
}

// load copies b into the packet and parses its header. It never allocates.
func (p *Packet) load(b []byte, ids *ExtIDs) error {
	if len(b) > MaxPacketSize {
		return ErrPacketTooLarge
	}
	p.size = uint16(copy(p.buf[:], b))
	return p.parse(ids)
}

// parse fills the header fields from buf, validating every length against
// the packet size (RFC 3550 §5.1, RFC 8285 for extensions).
func (p *Packet) parse(ids *ExtIDs) error {
	b := p.buf[:p.size]
	if len(b) < 12 || b[0]>>6 != 2 {
		return ErrMalformedRTP
	}
	hasPadding := b[0]&0x20 != 0
	hasExt := b[0]&0x10 != 0
	cc := int(b[0] & 0x0f)
	p.Marker = b[1]&0x80 != 0
	p.PayloadType = b[1] & 0x7f
	p.SequenceNumber = binary.BigEndian.Uint16(b[2:])
	p.Timestamp = binary.BigEndian.Uint32(b[4:])
	p.SSRC = binary.BigEndian.Uint32(b[8:])
	p.absCaptureOff, p.absCaptureLen, p.audioLevel = 0, 0, 0
	p.Keyframe = false
	p.picture = pictureInfo{}

	off := 12 + 4*cc
	if off > len(b) {
		return ErrMalformedRTP
	}
	if hasExt {
		if off+4 > len(b) {
			return ErrMalformedRTP
		}
		profile := binary.BigEndian.Uint16(b[off:])
		extLen := 4 * int(binary.BigEndian.Uint16(b[off+2:]))
		start := off + 4
		off = start + extLen
		if off > len(b) {
			return ErrMalformedRTP
		}
		if ids != nil {
			p.parseExtensions(b[:off], start, profile, ids)
		}
	}
	end := len(b)
	p.PaddingSize = 0
	if hasPadding {
		if end <= off {
			return ErrMalformedRTP
		}
		pad := int(b[end-1])
		if pad == 0 || end-pad < off {
			return ErrMalformedRTP
		}
		p.PaddingSize = uint8(pad)
		end -= pad
	}
	p.payloadOff, p.payloadEnd = uint16(off), uint16(end)
	return nil
}

// parseExtensions records where the extensions the core cares about are.
// Malformed extension blocks are ignored rather than rejected: the payload is
// still good.
func (p *Packet) parseExtensions(b []byte, i int, profile uint16, ids *ExtIDs) {
	switch {
	case profile == 0xBEDE: // one-byte header, RFC 8285 §4.2
		for i < len(b) {
			if b[i] == 0 { // padding
				i++
				continue
			}
			id, l := b[i]>>4, int(b[i]&0x0f)+1
			if id == 15 {
				return
			}
			i++
			if i+l > len(b) {
				return
			}
			p.noteExtension(id, i, l, ids)
			i += l
		}
	case profile&0xfff0 == 0x1000: // two-byte header, RFC 8285 §4.3
		for i < len(b) {
			if b[i] == 0 {
				i++
				continue
			}
			if i+2 > len(b) {
				return
			}
			id, l := b[i], int(b[i+1])
			i += 2
			if i+l > len(b) {
				return
			}
			p.noteExtension(id, i, l, ids)
			i += l
		}
	}
}

func (p *Packet) noteExtension(id uint8, off, l int, ids *ExtIDs) {
	switch id {
	case 0:
	case ids.AbsCaptureTime:
		if l == 8 || l == 16 {
			p.absCaptureOff, p.absCaptureLen = uint16(off), uint8(l)
		}
	case ids.AudioLevel:
		if l >= 1 {
			p.audioLevel = p.buf[off]&0x7f + 1
		}
	}
}
