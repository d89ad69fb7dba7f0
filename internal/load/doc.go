// Package load drives a WHIP/WHEP server with one synthetic publisher and
// N viewers and measures what they get: join times, delivered packets,
// loss after repair, per-frame publisher-to-viewer latency, and — given the
// server's pid — its CPU time per forwarded packet and memory per viewer.
// It speaks only WHIP and WHEP, so it measures any server. `glint load` is
// its command line.
package load
