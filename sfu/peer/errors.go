package peer

import "errors"

var (
	// ErrBadOffer is returned for an SDP offer that cannot be parsed or used;
	// the wrapped text says why.
	ErrBadOffer = errors.New("unusable offer")

	// ErrNoCodec is returned when an offer has no codec Glint can use (or,
	// for a viewer, none that carries the stream's codec).
	ErrNoCodec = errors.New("no supported codec offered")

	// ErrClosed is returned for operations on a closed session or node.
	ErrClosed = errors.New("session closed")

	// ErrRestartFailed is returned when an ICE restart could not be applied;
	// the session keeps its previous ICE state.
	ErrRestartFailed = errors.New("ICE restart failed")
)
