package sfu

import "errors"

var (
	// ErrMalformedRTP is returned for an RTP packet that cannot be parsed:
	// wrong version, truncated header, extension or padding.
	ErrMalformedRTP = errors.New("sfu: malformed RTP packet")

	// ErrPacketTooLarge is returned for an RTP packet larger than MaxPacketSize.
	ErrPacketTooLarge = errors.New("sfu: RTP packet too large")

	// ErrNotLive is returned when subscribing to a stream nobody publishes to.
	ErrNotLive = errors.New("sfu: nobody is publishing")

	// ErrNoCodec is returned when a subscriber shares no codec with the track.
	ErrNoCodec = errors.New("sfu: no common codec")

	// ErrTooManyLayers is returned when a track is given more simulcast layers
	// than MaxLayers.
	ErrTooManyLayers = errors.New("sfu: too many simulcast layers")

	// ErrPublicationEnded is returned when adding a layer to an ended publication.
	ErrPublicationEnded = errors.New("sfu: publication ended")

	// ErrRoomFull is returned when a guest would be one broadcaster more
	// than MaxBroadcasters.
	ErrRoomFull = errors.New("sfu: the room is full")

	// ErrNoParticipant is returned for a participant that is not
	// broadcasting.
	ErrNoParticipant = errors.New("sfu: no such broadcaster")

	// ErrBadParticipant is returned for a guest id that is empty or the
	// host's.
	ErrBadParticipant = errors.New("sfu: invalid guest id")
)
