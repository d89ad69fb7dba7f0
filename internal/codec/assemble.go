package codec

import (
	"encoding/binary"
	"errors"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// AccessUnit is one frame as the encoder made it (one Opus packet for
// audio). Its slices are the caller's: the Assembler does not reuse them.
type AccessUnit struct {
	Timestamp uint32 // RTP timestamp
	Keyframe  bool   // a decoder can start here
	// NALUs are an H.264 access unit's NAL units, without start codes.
	NALUs [][]byte
	// Data is the frame of the other codecs: VP8 and VP9 frames, AV1 OBUs
	// with size fields (the low-overhead format MP4 carries), an Opus packet.
	Data []byte
	// Packets is how many RTP packets carried it.
	Packets int
}

// AssemblerStats count what an Assembler could not turn into access units.
type AssemblerStats struct {
	// Lost is packets never received (gaps the reorder window gave up on).
	Lost uint64
	// Late is packets that came after their place was passed.
	Late uint64
	// Dropped is frames left out: incomplete, malformed, or after a loss
	// before the next keyframe (no decoder could use them).
	Dropped uint64
	// Malformed is packets whose payload could not be read.
	Malformed uint64
}

// reorderWindow is how far ahead of a missing packet the assembler
// buffers before it gives the missing one up for lost: at 30 fps and a few
// Mbit/s, a few frames, time for a NACK to be answered.
const reorderWindow = 128

// maxFrame bounds one access unit, so a stream of packets that never ends
// a frame cannot grow memory without limit.
const maxFrame = 4 << 20

var errMalformed = errors.New("codec: malformed payload")

// Assembler turns one RTP stream (a layer of one codec) back into access
// units. It puts packets back in order within a window, gives a missing
// packet up for lost when the window fills, leaves out any frame that lost
// a packet and, after a loss, every frame until the next keyframe.
type Assembler struct {
	kind Kind

	// Reorder buffer, indexed by sequence number.
	slots   [reorderWindow]slot
	next    uint16 // the sequence number to process next
	started bool

	// The frame being assembled.
	cur     AccessUnit
	have    bool // cur holds a packet
	broken  bool // cur lost a packet or could not be read
	waitKey bool // a loss happened: leave frames out until a keyframe
	nal     []byte
	inFU    bool
	buf     []byte   // backing store for cur's bytes
	nalus   [][]byte // backing store for cur.NALUs
	spans   [][2]int // NAL unit spans within buf
	av1     codecs.AV1Depacketizer
	out     []AccessUnit

	stats AssemblerStats
}

type slot struct {
	set     bool
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
}

// NewAssembler returns an assembler for packets of codec k. For video, it
// starts at the first keyframe, as a decoder must.
func NewAssembler(k Kind) *Assembler {
	return &Assembler{kind: k, waitKey: k.Video()}
}

// Stats returns what the assembler could not use so far.
func (a *Assembler) Stats() AssemblerStats { return a.stats }

// Push takes one packet (the caller may reuse it afterwards) and returns
// the access units it completed, in order: usually none or one, more when
// it filled a gap.
func (a *Assembler) Push(p *rtp.Packet) []AccessUnit {
	a.out = a.out[:0]
	seq := p.SequenceNumber
	if !a.started {
		a.started, a.next = true, seq
	}
	d := int16(seq - a.next)
	switch {
	case d < 0 && d > -4*reorderWindow:
		a.stats.Late++
		return nil
	case d < 0:
		// Far behind what was processed: the sender started over (a new
		// sequence space). Forget the buffer and follow it.
		a.resync(seq)
	case int(d) >= reorderWindow:
		// Too far ahead: everything before it is given up for lost.
		a.skipTo(seq - reorderWindow + 1)
	}
	s := &a.slots[seq%reorderWindow]
	if s.set && s.seq == seq {
		return a.out // a duplicate
	}
	s.set, s.seq, s.ts, s.marker = true, seq, p.Timestamp, p.Marker
	s.payload = append(s.payload[:0], p.Payload...)
	a.drain()
	return a.out
}

// resync drops everything buffered and continues from seq.
func (a *Assembler) resync(seq uint16) {
	for i := range a.slots {
		a.slots[i].set = false
	}
	a.lose()
	a.have = false
	a.next = seq
}

// skipTo gives up every packet before seq that has not arrived, processing
// those that have, in order.
func (a *Assembler) skipTo(seq uint16) {
	for int16(seq-a.next) > 0 {
		s := &a.slots[a.next%reorderWindow]
		if s.set && s.seq == a.next {
			a.process(s)
		} else {
			a.stats.Lost++
			a.lose()
		}
		s.set = false
		a.next++
	}
}

// drain processes buffered packets from next on, while they are there.
func (a *Assembler) drain() {
	for {
		s := &a.slots[a.next%reorderWindow]
		if !s.set || s.seq != a.next {
			return
		}
		a.process(s)
		s.set = false
		a.next++
	}
}

// lose marks the frame in progress as broken: a packet is missing.
func (a *Assembler) lose() {
	if a.have {
		a.broken = true
	}
	if a.kind.Video() {
		a.waitKey = true
	}
	a.av1 = codecs.AV1Depacketizer{} // a fragment it holds is incomplete now
}

// process adds one in-order packet to the frame in progress. A packet
// with no payload (padding a sender probes with) only fills its place.
func (a *Assembler) process(s *slot) {
	if len(s.payload) == 0 {
		return
	}
	if a.have && s.ts != a.cur.Timestamp {
		// A new timestamp starts a new frame: the previous one ended
		// without a marker (the marker packet was lost, or never set).
		a.finish()
	}
	if !a.have {
		a.start(s)
	}
	a.cur.Packets++
	if !a.broken {
		if err := a.depacketize(s.payload); err != nil || len(a.buf) > maxFrame {
			a.stats.Malformed++
			a.broken = true
		}
	}
	if s.marker || !a.kind.Video() {
		a.finish()
	}
}

func (a *Assembler) start(s *slot) {
	a.have, a.broken, a.inFU = true, false, false
	a.cur = AccessUnit{Timestamp: s.ts, Keyframe: Keyframe(a.kind, s.payload)}
	a.buf, a.spans, a.nal = a.buf[:0], a.spans[:0], a.nal[:0]
	if a.kind == VP8 && !vp8Starts(s.payload) || a.kind == VP9 && !vp9Starts(s.payload) {
		a.broken = true // the frame's first packet is missing
	}
	if a.kind == AV1 && len(s.payload) > 0 && s.payload[0]&0x80 != 0 {
		a.broken = true // Z: continues an OBU from a packet that is missing
	}
}

// finish emits the frame in progress, unless it is broken or a loss left
// the decoder without a reference.
func (a *Assembler) finish() {
	if !a.have {
		return
	}
	a.have = false
	if a.kind == H264 && a.inFU {
		a.broken = true // an FU-A that never ended
	}
	if a.kind == H264 && !a.broken {
		a.nalus = a.nalus[:0]
		for _, sp := range a.spans {
			a.nalus = append(a.nalus, a.buf[sp[0]:sp[1]])
			if a.buf[sp[0]]&0x1f == h264NALIDR {
				a.cur.Keyframe = true
			}
		}
		a.cur.NALUs = a.nalus
		a.broken = len(a.nalus) == 0
	} else {
		a.cur.Data = a.buf
		a.broken = a.broken || len(a.buf) == 0 // an AV1 fragment that never ended
	}
	switch {
	case a.broken:
		a.stats.Dropped++
		if a.kind.Video() {
			a.waitKey = true
		}
		return
	case a.waitKey && !a.cur.Keyframe:
		a.stats.Dropped++
		return
	}
	a.waitKey = false
	a.out = append(a.out, a.cur)
	// The next frame must not write over this one's bytes before the caller
	// has them: give it fresh backing arrays when this one is handed out.
	a.buf, a.nalus, a.spans = nil, nil, nil
}

// depacketize appends one packet's share of the frame.
func (a *Assembler) depacketize(b []byte) error {
	switch a.kind {
	case H264:
		return a.h264(b)
	case VP8:
		size, _, ok := VP8Descriptor(b)
		if !ok {
			return errMalformed
		}
		a.buf = append(a.buf, b[size:]...)
	case VP9:
		var p codecs.VP9Packet
		data, err := p.Unmarshal(b)
		if err != nil {
			return err
		}
		a.buf = append(a.buf, data...)
	case AV1:
		data, err := a.av1.Unmarshal(b)
		if err != nil {
			return err
		}
		a.buf = append(a.buf, data...)
	default:
		a.buf = append(a.buf, b...)
	}
	return nil
}

// h264 reads an RFC 6184 payload: a single NAL unit, a STAP-A, or a piece
// of an FU-A.
func (a *Assembler) h264(b []byte) error {
	if len(b) < 1 {
		return errMalformed
	}
	switch t := b[0] & 0x1f; {
	case t >= 1 && t <= 23:
		if a.inFU {
			return errMalformed
		}
		a.addNAL(b)
	case t == h264STAPA:
		if a.inFU {
			return errMalformed
		}
		for i := 1; i < len(b); {
			if i+2 > len(b) {
				return errMalformed
			}
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				return errMalformed
			}
			a.addNAL(b[i : i+n])
			i += n
		}
	case t == h264FUA:
		if len(b) < 3 {
			return errMalformed
		}
		start, end := b[1]&0x80 != 0, b[1]&0x40 != 0
		switch {
		case start && a.inFU, !start && !a.inFU:
			return errMalformed
		case start:
			a.inFU = true
			a.nal = append(a.nal[:0], b[0]&0xe0|b[1]&0x1f)
		}
		a.nal = append(a.nal, b[2:]...)
		if end {
			a.inFU = false
			a.addNAL(a.nal)
		}
	default:
		return errMalformed // STAP-B, MTAP, FU-B: not in WebRTC
	}
	return nil
}

func (a *Assembler) addNAL(n []byte) {
	start := len(a.buf)
	a.buf = append(a.buf, n...)
	a.spans = append(a.spans, [2]int{start, len(a.buf)})
}

// vp8Starts reports whether a VP8 payload starts a frame: S set, PID 0.
func vp8Starts(b []byte) bool { return len(b) > 0 && b[0]&0x10 != 0 && b[0]&0x07 == 0 }

// vp9Starts reports whether a VP9 payload starts a frame: B set.
func vp9Starts(b []byte) bool { return len(b) > 0 && b[0]&0x08 != 0 }
