// Package client is a Go WHIP and WHEP client built on pion: a publisher
// that sends synthetic VP8 simulcast and Opus and answers keyframe requests,
// and a viewer that checks what it receives. The end-to-end tests and the
// load tool use it against Glint or any other WHIP/WHEP server.
package client
