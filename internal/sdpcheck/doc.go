// Package sdpcheck checks SDP text against the grammar of RFC 8866 and of
// the attributes WebRTC uses (RFC 8122 fingerprints, RFC 8839 ICE, RFC 8841
// SCTP, RFC 8830 msid, RFC 5576 ssrc, RFC 4585 rtcp-fb, RFC 8285 extmap), as
// strictly as Firefox's parser does. Tests run every answer Glint writes
// through it, so a browser that parses strictly never meets one it refuses.
package sdpcheck
