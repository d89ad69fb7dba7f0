// Package ingest takes streams from encoders that do not speak WebRTC:
// RTMP (OBS, hardware encoders, Instagram-style "server URL and key") and,
// later, SRT. A source's frames go through the transcoder (ffmpeg) into
// what WebRTC viewers decode — H.264 without B-frames in up to three
// simulcast layers, and Opus — and become an sfu publication like a WHIP
// publisher's, on the stream clock.
package ingest
