package sfu

// Elementary is a Source that receives an encoder's own stream (RTMP,
// SRT) besides the layers it publishes: the HLS bridge packages that
// stream as it comes, B-frames, H.265 and AAC included, instead of the
// layers made for WebRTC viewers.
type Elementary interface {
	Source
	// ElementaryFormat says what the stream is; ok is false when it is
	// not one to package as it comes (video other than H.264 or H.265,
	// audio other than AAC).
	ElementaryFormat() (f ElementaryFormat, ok bool)
	// SubscribeElementary gives sink the stream's frames until
	// unsubscribe is called.
	SubscribeElementary(sink ElementarySink) (unsubscribe func())
}

// ElementaryFormat is an encoder's stream: H.264 (or H.265) with its
// parameter sets, and the AAC configuration of its audio.
type ElementaryFormat struct {
	H265          bool
	VPS, SPS, PPS []byte // VPS for H.265 only
	// AAC is the audio's AudioSpecificConfig (ISO/IEC 14496-3); nil when
	// the stream has no audio.
	AAC []byte
}

// ElementarySink takes an Elementary stream's frames, on the source's
// reader goroutine: it must not block. Timestamps are on the stream clock
// in 90 kHz units. It may keep what it is given.
type ElementarySink interface {
	// ElementaryVideo is one access unit's NAL units; a keyframe carries
	// its parameter sets (the source puts them there when the encoder
	// sends them apart, as RTMP does).
	ElementaryVideo(pts, dts int64, au [][]byte, key bool)
	// ElementaryAudio is one AAC access unit.
	ElementaryAudio(pts int64, au []byte)
}

// Source returns what publishes the layer.
func (l *Layer) Source() Source { return l.pub.src }
