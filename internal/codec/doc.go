// Package codec reads the RTP payloads of the codecs Glint forwards (H.264,
// VP8, VP9, AV1 and Opus): which packet starts a keyframe, the picture
// size a keyframe carries, VP8/VP9 picture ids, and an Assembler that
// turns a layer's packets back into whole access units. It is the one copy
// of this parsing: the media core, the load tool and the HLS bridge share
// it. It depends on no other Glint package.
package codec
