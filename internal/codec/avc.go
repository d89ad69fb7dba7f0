package codec

import "encoding/binary"

// LengthPrefixed writes NAL units each after its 4-byte big-endian length,
// as MP4 samples and Matroska's H.264 and H.265 blocks hold them.
func LengthPrefixed(nalus [][]byte) []byte {
	n := 0
	for _, u := range nalus {
		n += 4 + len(u)
	}
	b := make([]byte, 0, n)
	for _, u := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(u)))
		b = append(b, u...)
	}
	return b
}

// AVCDecoderConfig is the H.264 decoder configuration record (ISO/IEC
// 14496-15) of one SPS and one PPS, without the high-profile trailer. The
// SPS must hold at least 4 bytes.
func AVCDecoderConfig(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}
