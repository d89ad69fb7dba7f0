// Package lite is Glint's own WebRTC transport for peers that only
// receive: the viewers. It is what a PeerConnection would be, cut to what a
// viewer needs and built from pion's parts: a controlled ICE agent on a
// socket shared with pion's own sessions (it checks the viewer's
// candidates itself, and sends media only on a path that answered its
// checks, with RFC 7675 consent freshness), DTLS for the SRTP keys and the
// data channel, one SRTP context that encrypts each packet straight into
// the socket write, and RTCP handed to the caller's goroutine rather than
// handled on the shared socket's reader.
//
// A Mux sits in front of pion's UDP and ICE-TCP muxes and takes the
// packets of its transports off the shared sockets; the rest pass through.
package lite
