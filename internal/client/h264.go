package client

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// Baseline-profile parameter sets from x264 (ffmpeg -c:v libx264 -profile:v
// baseline) for the three simulcast sizes, used by the synthetic source.
var h264Params = [3][2][]byte{ //nolint:gochecknoglobals // constant test media
	{mustHex("6742c00dd901419f9f0110000003001000000303c0f142a480"), mustHex("68cb83cb20")}, // 320x180
	{mustHex("6742c01ed900a02ff970110000030001000003003c0f162e48"), mustHex("68cb83cb20")}, // 640x360
	{mustHex("6742c01fd9005005bb0110000003001000000303c0f1832480"), mustHex("68cb83cb20")}, // 1280x720
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func isH264(mime string) bool { return strings.EqualFold(mime, "video/H264") }

// markerUUID identifies Glint's marker in an H.264 SEI "user data
// unregistered" message (ITU-T H.264 D.1.7).
var markerUUID = [16]byte{ //nolint:gochecknoglobals // a constant array
	'g', 'l', 'i', 'n', 't', '-', 'l', 'o', 'a', 'd', '-', 'm', 'a', 'r', 'k', 1}

// markerSEI returns an SEI NAL unit carrying a frame's marker. Decoders
// ignore it and servers forward it with the access unit.
func markerSEI(layer int, frame uint32, now time.Time) []byte {
	payload := appendMarker(markerUUID[:], layer, frame, now)
	rbsp := append([]byte{5, byte(len(payload))}, payload...) // payloadType 5, payloadSize
	rbsp = append(rbsp, 0x80)                                 // rbsp_trailing_bits
	return append([]byte{0x06}, emulationPrevent(rbsp)...)
}

// emulationPrevent inserts 0x03 after two zero bytes followed by a byte ≤ 3
// (ITU-T H.264 7.4.1).
func emulationPrevent(b []byte) []byte {
	out := make([]byte, 0, len(b)+4)
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

func emulationRemove(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// readSEIMarker reads the marker from an SEI NAL unit.
func readSEIMarker(nal []byte) (Marker, bool) {
	if len(nal) < 3 || nal[0]&0x1f != 6 {
		return Marker{}, false
	}
	rbsp := emulationRemove(nal[1:])
	if len(rbsp) < 2+16+markerSize || rbsp[0] != 5 || !bytes.Equal(rbsp[2:18], markerUUID[:]) {
		return Marker{}, false
	}
	return parseMarker(rbsp, 2+len(markerUUID))
}

// h264AccessUnit returns the RTP payloads (RFC 6184, packetization mode 1)
// of an access unit, with the frame's marker SEI first: small NAL units are
// aggregated in STAP-A, large ones fragmented in FU-A.
func h264AccessUnit(nals [][]byte, layer int, frame uint32, now time.Time) [][]byte {
	all := append([][]byte{markerSEI(layer, frame, now)}, nals...)
	var out [][]byte
	var stap [][]byte
	flush := func() {
		switch len(stap) {
		case 0:
		case 1:
			out = append(out, stap[0])
		default:
			p := []byte{0x18}
			for _, n := range stap {
				p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
				p = append(p, n...)
			}
			out = append(out, p)
		}
		stap = stap[:0]
	}
	size := 1
	for _, nal := range all {
		if len(nal) > maxPayload-3 {
			flush()
			size = 1
			out = append(out, fragment(nal)...)
			continue
		}
		if size+2+len(nal) > maxPayload {
			flush()
			size = 1
		}
		stap = append(stap, nal)
		size += 2 + len(nal)
	}
	flush()
	return out
}

// fragment splits a NAL unit into FU-A payloads (RFC 6184 §5.8).
func fragment(nal []byte) [][]byte {
	header := nal[0]
	body := nal[1:]
	var out [][]byte
	for i := 0; len(body) > 0; i++ {
		take := min(len(body), maxPayload-2)
		fu := []byte{header&0xe0 | 28, header & 0x1f}
		if i == 0 {
			fu[1] |= 0x80
		}
		if take == len(body) {
			fu[1] |= 0x40
		}
		out = append(out, append(fu, body[:take]...))
		body = body[take:]
	}
	return out
}

// syntheticH264 returns the NAL units of a synthetic access unit of about
// size bytes: parameter sets and an IDR slice for a keyframe, else a
// non-IDR slice. The slices are filler: forwarders pass them, decoders and
// servers that parse slice headers do not accept them (use a real clip).
func syntheticH264(key bool, layer, size int) [][]byte {
	header := byte(0x41)
	var nals [][]byte
	if key {
		nals = append(nals, h264Params[layer][0], h264Params[layer][1])
		header = 0x65
	}
	slice := make([]byte, max(size, 16))
	slice[0] = header
	return append(nals, slice)
}

// readH264Marker finds the marker SEI in a frame's first RTP payload: a
// single NAL unit, or one inside a STAP-A.
func readH264Marker(b []byte) (Marker, bool) {
	if len(b) < 2 {
		return Marker{}, false
	}
	switch b[0] & 0x1f {
	case 6:
		return readSEIMarker(b)
	case 24:
		for i := 1; i+2 < len(b); {
			n := int(binary.BigEndian.Uint16(b[i:]))
			i += 2
			if n == 0 || i+n > len(b) {
				break
			}
			if m, ok := readSEIMarker(b[i : i+n]); ok {
				return m, true
			}
			i += n
		}
	}
	return Marker{}, false
}
