// Command glint is the Glint live streaming server: one binary, one node.
//
//	glint serve [flags]     run a node (glint serve --help lists every setting)
//	glint load [flags]      drive a WHIP/WHEP server and measure it
//
// It wires the media core (sfu), the WebRTC transport (sfu/peer), the WHIP
// and WHEP endpoints (signaling) and the embedded pages (examples/web), and
// shuts them down in two stages: stop accepting, then drain.
package main
