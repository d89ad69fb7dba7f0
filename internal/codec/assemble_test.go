package codec

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// frame is one access unit a test sends: its bytes as an encoder gives
// them to a payloader, and what the assembler should give back.
type frame struct {
	key   bool
	input []byte   // what the payloader takes
	nalus [][]byte // H.264: the NAL units expected
	data  []byte   // the others: the frame expected
}

// sps320x180 is an H.264 SPS (constrained baseline, 320x180).
var sps320x180 = []byte{0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0x9f, 0x9f, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80}

func h264Frame(key bool, size int, r *rand.Rand) frame {
	var nalus [][]byte
	if key {
		nalus = append(nalus, sps320x180, []byte{0x68, 0xcb, 0x83, 0xcb, 0x20})
	}
	slice := make([]byte, size)
	for i := range slice {
		slice[i] = byte(r.IntN(255) + 1)
	}
	slice[0] = 0x41
	if key {
		slice[0] = 0x65
	}
	nalus = append(nalus, slice)
	var annexB []byte
	for _, n := range nalus {
		annexB = append(annexB, 0, 0, 0, 1)
		annexB = append(annexB, n...)
	}
	return frame{key: key, input: annexB, nalus: nalus}
}

func vp8Frame(key bool, size int, r *rand.Rand) frame {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[0] = b[0]&^1 | map[bool]byte{true: 0, false: 1}[key] // P bit: 0 on key frames
	return frame{key: key, input: b, data: b}
}

// av1Frame is a temporal unit: a sequence header on keyframes, then a
// frame OBU, each with its size field.
func av1Frame(key bool, size int, r *rand.Rand) frame {
	obu := func(typ byte, body []byte) []byte {
		out := []byte{typ<<3 | 0x02} // obu_has_size_field
		for n := len(body); ; {
			if n < 0x80 {
				out = append(out, byte(n))
				break
			}
			out = append(out, byte(n&0x7f|0x80))
			n >>= 7
		}
		return append(out, body...)
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(r.IntN(256))
	}
	var tu []byte
	if key {
		tu = append(tu, obu(1, []byte{0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08})...)
	}
	tu = append(tu, obu(6, body)...)
	return frame{key: key, input: tu, data: tu}
}

type sent struct {
	pkt   rtp.Packet
	frame int
}

// packetize turns frames into RTP packets at 30 fps with payloader pl.
func packetize(t *testing.T, pl rtp.Payloader, frames []frame, mtu uint16) []sent {
	t.Helper()
	var out []sent
	seq := uint16(65500) // wraps on the way
	for i, f := range frames {
		payloads := pl.Payload(mtu, f.input)
		if len(payloads) == 0 {
			t.Fatalf("frame %d: no payloads", i)
		}
		for j, p := range payloads {
			out = append(out, sent{pkt: rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i) * 3000,
				Marker: j == len(payloads)-1}, Payload: p}, frame: i})
			seq++
		}
	}
	return out
}

func check(t *testing.T, k Kind, got []AccessUnit, frames []frame, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%v: %d access units, want frames %v", k, len(got), want)
	}
	for i, au := range got {
		f := frames[want[i]]
		if au.Timestamp != uint32(want[i])*3000 || au.Keyframe != f.key {
			t.Fatalf("%v: unit %d: ts %d key %v, want frame %d (key %v)", k, i, au.Timestamp, au.Keyframe, want[i], f.key)
		}
		if k == H264 {
			if len(au.NALUs) != len(f.nalus) {
				t.Fatalf("%v: unit %d: %d NAL units, want %d", k, i, len(au.NALUs), len(f.nalus))
			}
			for j := range au.NALUs {
				if !bytes.Equal(au.NALUs[j], f.nalus[j]) {
					t.Fatalf("%v: unit %d NAL %d differs", k, i, j)
				}
			}
		} else if !bytes.Equal(au.Data, f.data) {
			t.Fatalf("%v: unit %d: %d bytes, want %d, differing", k, i, len(au.Data), len(f.data))
		}
	}
}

func gopFrames(k Kind, n int) []frame {
	r := rand.New(rand.NewPCG(1, uint64(k)))
	var fs []frame
	for i := range n {
		key := i%5 == 0
		size := 400 + r.IntN(900) // more than one packet at the tests' MTU
		switch k {
		case H264:
			fs = append(fs, h264Frame(key, size, r))
		case VP8:
			fs = append(fs, vp8Frame(key, size, r))
		case AV1:
			fs = append(fs, av1Frame(key, size, r))
		}
	}
	return fs
}

func payloader(k Kind) rtp.Payloader {
	switch k {
	case H264:
		return &codecs.H264Payloader{}
	case VP8:
		return &codecs.VP8Payloader{EnablePictureID: true}
	case AV1:
		return &codecs.AV1Payloader{}
	}
	return nil
}

// Frames cut into packets by pion's payloaders come back whole, in order,
// however the packets were reordered within the window; duplicates are
// ignored.
func TestAssemblerRoundTrip(t *testing.T) {
	for _, k := range []Kind{H264, VP8, AV1} {
		frames := gopFrames(k, 20)
		pkts := packetize(t, payloader(k), frames, 300)
		r := rand.New(rand.NewPCG(7, 7))
		// Shuffle within blocks of 8 (the first packet stays first: the
		// assembler starts where the stream does) and send some twice.
		for i := 1; i+8 <= len(pkts); i += 8 {
			r.Shuffle(8, func(a, b int) { pkts[i+a], pkts[i+b] = pkts[i+b], pkts[i+a] })
		}
		a := NewAssembler(k)
		var got []AccessUnit
		for i, s := range pkts {
			got = append(got, a.Push(&s.pkt)...)
			if i%11 == 0 {
				got = append(got, a.Push(&s.pkt)...)
			}
		}
		// The last frame ends with its marker; all 20 come back.
		want := make([]int, 20)
		for i := range want {
			want[i] = i
		}
		check(t, k, got, frames, want)
		if st := a.Stats(); st.Lost != 0 || st.Dropped != 0 || st.Malformed != 0 {
			t.Fatalf("%v: stats %+v after a clean run", k, st)
		}
	}
}

// A lost packet costs its frame and every frame up to the next keyframe,
// which a decoder needs to start again; nothing after that is lost.
func TestAssemblerDropsUntilKeyframeAfterLoss(t *testing.T) {
	for _, k := range []Kind{H264, VP8, AV1} {
		frames := gopFrames(k, 12) // keyframes at 0, 5, 10
		pkts := packetize(t, payloader(k), frames, 300)
		a := NewAssembler(k)
		var got []AccessUnit
		inFrame2 := 0
		for _, s := range pkts {
			if s.frame == 2 {
				if inFrame2++; inFrame2 == 2 {
					continue // frame 2's second packet never arrives
				}
			}
			got = append(got, a.Push(&s.pkt)...)
		}
		// Flush the window: a packet far ahead gives the gap up (and the
		// one sequence number between the last packet and it).
		tail := pkts[len(pkts)-1].pkt
		tail.SequenceNumber += reorderWindow + 1
		tail.Timestamp += 3000
		got = append(got, a.Push(&tail)...)
		check(t, k, got, frames, []int{0, 1, 5, 6, 7, 8, 9, 10, 11})
		if st := a.Stats(); st.Lost != 2 || st.Dropped != 3 {
			t.Fatalf("%v: stats %+v, want 2 lost packets and 3 dropped frames", k, st)
		}
	}
}

// Opus: every packet is an access unit, loss costs only that packet.
func TestAssemblerOpus(t *testing.T) {
	a := NewAssembler(Opus)
	var got []AccessUnit
	for i := range 10 {
		if i == 4 {
			continue
		}
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i) * 960}, Payload: []byte{0xfc, byte(i)}}
		got = append(got, a.Push(&p)...)
	}
	if len(got) != 4 { // 0..3; 5.. wait behind the gap
		t.Fatalf("%d units before the gap is given up", len(got))
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 4 + reorderWindow, Timestamp: 99 * 960}, Payload: []byte{0xfc, 99}}
	got = append(got, a.Push(&p)...)
	if len(got) != 9 || got[4].Data[1] != 5 || a.Stats().Lost != 1 || a.Stats().Dropped != 0 {
		t.Fatalf("%d units, stats %+v", len(got), a.Stats())
	}
}

// A packet older than what was processed is late and ignored; a sender
// that starts a new sequence space far away is followed.
func TestAssemblerLateAndRestart(t *testing.T) {
	frames := gopFrames(VP8, 6)
	pkts := packetize(t, payloader(VP8), frames, 1200)
	a := NewAssembler(VP8)
	for _, s := range pkts {
		a.Push(&s.pkt)
	}
	old := pkts[0].pkt
	if got := a.Push(&old); len(got) != 0 || a.Stats().Late != 1 {
		t.Fatalf("a late packet: %d units, stats %+v", len(got), a.Stats())
	}
	restart := pkts[0].pkt
	restart.SequenceNumber -= 20000
	restart.Timestamp = 900000
	restart.Marker = true
	if got := a.Push(&restart); len(got) != 1 || !got[0].Keyframe {
		t.Fatalf("after a restart: %d units", len(got))
	}
}

// The H.264 keyframe test and the assembler agree on what FU-A carrying an
// SPS is: the two copies that used to exist did not.
func TestH264KeyframeInFUA(t *testing.T) {
	sps := sps320x180
	fuStart := []byte{0x7c, 0x80 | 7}
	fuStart = append(fuStart, sps[1:]...)
	if !Keyframe(H264, fuStart) {
		t.Fatal("an FU-A starting an SPS is not a keyframe start")
	}
	if w, h, ok := PictureSize(H264, fuStart); !ok || w != 320 || h != 180 {
		t.Fatalf("size from an FU-A SPS: %dx%d %v", w, h, ok)
	}
	idrStart := []byte{0x7c, 0x80 | 5, 1, 2, 3}
	if !Keyframe(H264, idrStart) || Keyframe(H264, []byte{0x7c, 5, 1}) || Keyframe(H264, []byte{0x7c, 0x80 | 1, 1}) {
		t.Fatal("FU-A keyframe detection")
	}
}
