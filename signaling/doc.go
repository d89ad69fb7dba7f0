// Package signaling serves Glint's HTTP face: the WHIP (RFC 9725) and WHEP
// endpoints, their session resources (trickle, ICE restart, delete), the
// WHEP server-sent-events and layer-selection extensions, stream keys, and
// the read-only REST API. It turns requests into sfu and sfu/peer calls and
// answers every bad request with the status the specs name.
package signaling
