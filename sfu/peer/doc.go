// Package peer connects WebRTC peers to the media core: a WHIP publisher's
// PeerConnection becomes an sfu.Publication, a WHEP viewer's becomes an
// sfu.Subscriber. It is the only part of Glint that touches pion/webrtc; it
// owns the one UDP/TCP port all media shares.
package peer
