package lite

import "errors"

var (
	// ErrClosed is returned for operations on a closed transport.
	ErrClosed = errors.New("lite: transport closed")
	// ErrNotConnected is returned by writes before keys are agreed and a
	// path has answered Glint's own check.
	ErrNotConnected = errors.New("lite: not connected")
	// ErrTooLarge is returned for a packet larger than the send buffer.
	ErrTooLarge = errors.New("lite: packet larger than the send buffer")
	// ErrConsentExpired ends a transport whose selected path stopped
	// answering consent checks (RFC 7675 §5.1).
	ErrConsentExpired = errors.New("lite: consent expired")
	// ErrBadCandidate is returned for a trickled candidate that cannot be
	// read.
	ErrBadCandidate = errors.New("lite: bad candidate")
	// errTCPFull drops a packet for an ICE-TCP path whose queue is full.
	errTCPFull = errors.New("lite: ICE-TCP send queue full")
)
