package codec

import "strings"

// Kind is a codec the package can read.
type Kind uint8

// Codecs.
const (
	Other Kind = iota
	Opus
	VP8
	VP9
	H264
	AV1
)

func (k Kind) String() string {
	switch k {
	case Opus:
		return "opus"
	case VP8:
		return "VP8"
	case VP9:
		return "VP9"
	case H264:
		return "H264"
	case AV1:
		return "AV1"
	}
	return "other"
}

// KindOf returns the codec of a MIME type such as "video/H264", compared
// case-insensitively.
func KindOf(mime string) Kind {
	switch {
	case strings.EqualFold(mime, "audio/opus"):
		return Opus
	case strings.EqualFold(mime, "video/VP8"):
		return VP8
	case strings.EqualFold(mime, "video/VP9"):
		return VP9
	case strings.EqualFold(mime, "video/H264"):
		return H264
	case strings.EqualFold(mime, "video/AV1"):
		return AV1
	}
	return Other
}

// Video reports whether k is a video codec.
func (k Kind) Video() bool { return k == VP8 || k == VP9 || k == H264 || k == AV1 }
