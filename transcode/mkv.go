package transcode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// MKVTrack is one track of a live Matroska stream.
type MKVTrack struct {
	// Codec is the Matroska codec ID: V_VP8, V_VP9, V_AV1,
	// V_MPEG4/ISO/AVC or V_MPEGH/ISO/HEVC (blocks of length-prefixed NAL
	// units), A_OPUS or A_AAC (raw access units).
	Codec string
	// CodecPrivate is an H.264 or H.265 track's decoder configuration
	// (avcC, hvcC) or an AAC track's AudioSpecificConfig.
	CodecPrivate []byte
	// Width and Height are a video track's picture size.
	Width, Height int
	// Channels is an audio track's channel count; SampleRate its rate
	// (0: 48 kHz).
	Channels, SampleRate int
}

// MKV writes a live Matroska stream: a header, then clusters of unknown
// size, each opened by a video keyframe, holding the frames as simple
// blocks with millisecond timestamps. It is how the transcoder gives
// ffmpeg a publisher's frames: one pipe, one clock for video and audio, so
// they stay in sync through the encoder (no muxing library for Go writes
// Matroska live; this is the small part of the format ffmpeg needs).
type MKV struct {
	w       io.Writer
	tracks  []MKVTrack
	cluster int64 // timestamp of the open cluster
	open    bool
	buf     []byte
}

// Matroska element IDs (RFC 9559), with their length markers.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idSegment            = 0x18538067
	idInfo               = 0x1549A966
	idTimestampScale     = 0x2AD7B1
	idMuxingApp          = 0x4D80
	idWritingApp         = 0x5741
	idTracks             = 0x1654AE6B
	idTrackEntry         = 0xAE
	idTrackNumber        = 0xD7
	idTrackUID           = 0x73C5
	idTrackType          = 0x83
	idFlagLacing         = 0x9C
	idCodecID            = 0x86
	idCodecPrivate       = 0x63A2
	idVideo              = 0xE0
	idPixelWidth         = 0xB0
	idPixelHeight        = 0xBA
	idAudio              = 0xE1
	idSamplingFrequency  = 0xB5
	idChannels           = 0x9F
	idCluster            = 0x1F43B675
	idTimestamp          = 0xE7
	idSimpleBlock        = 0xA3
)

// unknownSize marks a master element whose end is where the next one of
// its level begins: a live stream's segment and clusters.
const unknownSize = "\x01\xff\xff\xff\xff\xff\xff\xff"

// NewMKV writes the stream's header for tracks (numbered from 1 in order)
// to w and returns the writer of its frames.
func NewMKV(w io.Writer, tracks ...MKVTrack) (*MKV, error) {
	if len(tracks) == 0 || len(tracks) > 126 {
		return nil, fmt.Errorf("mkv: %d tracks", len(tracks))
	}
	var entries []byte
	for i, t := range tracks {
		var e []byte
		e = appendUint(e, idTrackNumber, uint64(i+1))
		e = appendUint(e, idTrackUID, uint64(i+1))
		e = appendUint(e, idFlagLacing, 0)
		e = appendElem(e, idCodecID, []byte(t.Codec))
		switch t.Codec {
		case "V_VP8", "V_VP9", "V_AV1", "V_MPEG4/ISO/AVC", "V_MPEGH/ISO/HEVC":
			if t.Width <= 0 || t.Height <= 0 {
				return nil, fmt.Errorf("mkv: %s track without a picture size", t.Codec)
			}
			e = appendUint(e, idTrackType, 1)
			if len(t.CodecPrivate) > 0 {
				e = appendElem(e, idCodecPrivate, t.CodecPrivate)
			}
			var v []byte
			v = appendUint(v, idPixelWidth, uint64(t.Width))
			v = appendUint(v, idPixelHeight, uint64(t.Height))
			e = appendElem(e, idVideo, v)
		case "A_OPUS", "A_AAC":
			ch := max(t.Channels, 1)
			rate := t.SampleRate
			if rate <= 0 {
				rate = 48000
			}
			e = appendUint(e, idTrackType, 2)
			switch {
			case t.Codec == "A_OPUS":
				e = appendElem(e, idCodecPrivate, opusHead(ch))
			case len(t.CodecPrivate) == 0:
				return nil, errors.New("mkv: an AAC track without its AudioSpecificConfig")
			default:
				e = appendElem(e, idCodecPrivate, t.CodecPrivate)
			}
			var a []byte
			a = appendElem(a, idSamplingFrequency, binary.BigEndian.AppendUint64(nil, math.Float64bits(float64(rate))))
			a = appendUint(a, idChannels, uint64(ch))
			e = appendElem(e, idAudio, a)
		default:
			return nil, fmt.Errorf("mkv: codec %q", t.Codec)
		}
		entries = appendElem(entries, idTrackEntry, e)
	}
	var h []byte
	var ebml []byte
	ebml = appendUint(ebml, idEBMLVersion, 1)
	ebml = appendUint(ebml, idEBMLReadVersion, 1)
	ebml = appendUint(ebml, idEBMLMaxIDLength, 4)
	ebml = appendUint(ebml, idEBMLMaxSizeLength, 8)
	ebml = appendElem(ebml, idDocType, []byte("matroska"))
	ebml = appendUint(ebml, idDocTypeVersion, 4)
	ebml = appendUint(ebml, idDocTypeReadVersion, 2)
	h = appendElem(h, idEBML, ebml)
	h = append(appendID(h, idSegment), unknownSize...)
	var info []byte
	info = appendUint(info, idTimestampScale, 1_000_000) // milliseconds
	info = appendElem(info, idMuxingApp, []byte("glint"))
	info = appendElem(info, idWritingApp, []byte("glint"))
	h = appendElem(h, idInfo, info)
	h = appendElem(h, idTracks, entries)
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	return &MKV{w: w, tracks: tracks}, nil
}

// opusHead is the Opus identification header Matroska carries as the
// track's codec private data (RFC 7845 §5.1): no pre-skip, no gain,
// mapping family 0.
func opusHead(channels int) []byte {
	b := []byte("OpusHead")
	b = append(b, 1, byte(channels))
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 48000)
	b = binary.LittleEndian.AppendUint16(b, 0)
	return append(b, 0)
}

// ErrMKVTrack is a frame for a track the stream does not have.
var ErrMKVTrack = errors.New("mkv: no such track")

// Write writes one frame of track (0-based, as given to NewMKV) at ms
// milliseconds. A video keyframe opens a cluster, as does a frame too far
// from the open one's timestamp for a block's 16-bit offset.
func (m *MKV) Write(track int, ms int64, key bool, frame []byte) error {
	if track < 0 || track >= len(m.tracks) {
		return ErrMKVTrack
	}
	video := m.tracks[track].Codec[0] == 'V'
	ms = max(ms, 0) // timestamps are unsigned in Matroska
	rel := ms - m.cluster
	b := m.buf[:0]
	if !m.open || (video && key) || rel < math.MinInt16 || rel > math.MaxInt16 {
		m.open, m.cluster, rel = true, ms, 0
		b = append(appendID(b, idCluster), unknownSize...)
		b = appendUint(b, idTimestamp, uint64(ms))
	}
	flags := byte(0)
	if key || !video {
		flags = 0x80
	}
	b = appendID(b, idSimpleBlock)
	b = appendSize(b, uint64(4+len(frame)))
	b = append(b, 0x80|byte(track+1))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(rel)))
	b = append(b, flags)
	m.buf = b
	if _, err := m.w.Write(b); err != nil {
		return err
	}
	_, err := m.w.Write(frame)
	return err
}

// appendID appends an element ID: its bytes without leading zeros (the
// ID carries its own length marker).
func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends n as an EBML variable-length integer of the fewest
// bytes that hold it (a value of all ones is reserved at each length).
func appendSize(b []byte, n uint64) []byte {
	l := 1
	for l < 8 && n >= 1<<(7*l)-1 {
		l++
	}
	v := n | 1<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func appendElem(b []byte, id uint32, payload []byte) []byte {
	b = appendSize(appendID(b, id), uint64(len(payload)))
	return append(b, payload...)
}

func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	b = appendSize(appendID(b, id), uint64(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}
