// Package hlsbridge turns live streams into LL-HLS for audiences beyond
// WebRTC fan-out. It follows the core's stream events and subscribes to a
// live stream like any viewer, through a sink that copies packets into a
// bounded queue and never waits (a full queue drops, counted), so it
// cannot slow the forwarding path. H.264 simulcast layers become the
// renditions of one multivariant playlist without transcoding; Opus audio
// rides along. Packaging is gohlslib's low-latency fMP4 muxer, one per
// rendition, behind a multivariant playlist of the bridge's own.
package hlsbridge
