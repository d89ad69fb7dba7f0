// Package sfu is Glint's media core: streams, tracks, simulcast layers, the
// per-layer packet cache, per-viewer forwarders, keyframe coalescing and
// bandwidth-driven layer allocation.
//
// It does no I/O. Packets, RTCP feedback and a clock come in through method
// calls; rewritten packets leave through the small RTPWriter interface and
// keyframe requests through the Source interface. The pion/webrtc glue lives
// in sfu/peer, the HTTP endpoints in signaling.
package sfu
