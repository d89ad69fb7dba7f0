package sfu

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the media core's settings.
type Config struct {
	// ReconnectGrace is how long viewers stay connected after the publisher's
	// connection drops, waiting for it to come back.
	ReconnectGrace time.Duration
	// GuestGrace is how long a Live Room guest's slot waits for the
	// guest's dropped connection to return; 0 means ReconnectGrace.
	GuestGrace time.Duration
	// KeyframeInterval is the least time between two keyframe requests sent
	// upstream for one layer; requests in between are coalesced.
	KeyframeInterval time.Duration
	// KeyframeCache is the oldest cached keyframe a new viewer starts from
	// (replayed with what followed it) instead of asking the publisher for
	// a new one. A replay adds up to this much latency at the start; 0 turns
	// it off.
	KeyframeCache time.Duration
	// InitialBitrate, MinBitrate and MaxBitrate bound each viewer's bandwidth
	// estimate, in bits per second.
	InitialBitrate, MinBitrate, MaxBitrate uint64
	// VideoCache and AudioCache are the packet cache sizes per layer (rounded
	// up to a power of two).
	VideoCache, AudioCache int
	// RetransmitsPerNACK bounds the packets one NACK gets resent.
	RetransmitsPerNACK int
	// RetransmitShare and RetransmitFloor bound what a viewer can have
	// resent: RetransmitShare of its bandwidth estimate, and never less
	// than RetransmitFloor bits per second, with a quarter second of
	// that as a burst. A viewer that NACKs more gets no more.
	RetransmitShare float64
	RetransmitFloor uint64
	// Workers is how many fan-out lanes deliver packets to viewers, each on
	// a goroutine of its own with its share of every stream's viewers;
	// GOMAXPROCS is a good number. 0 delivers on each layer's ingest
	// goroutine (the core's own tests do).
	Workers int
	// NewEstimator, when set, makes each viewer's bandwidth estimator in
	// place of the core's own (an experiment; see Estimator).
	NewEstimator func() Estimator
}

// DefaultConfig returns the settings used when nothing is configured.
func DefaultConfig() Config {
	return Config{
		ReconnectGrace:   60 * time.Second,
		GuestGrace:       20 * time.Second,
		KeyframeInterval: 500 * time.Millisecond,
		KeyframeCache:    250 * time.Millisecond,
		InitialBitrate:   2_500_000,
		MinBitrate:       100_000,
		MaxBitrate:       20_000_000,
		VideoCache:       512,
		AudioCache:       128,

		RetransmitsPerNACK: 64,
		RetransmitShare:    0.5,
		RetransmitFloor:    500_000,
	}
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.ReconnectGrace < 0 || c.GuestGrace < 0:
		return errors.New("reconnect and guest grace must not be negative")
	case c.KeyframeInterval < 10*time.Millisecond:
		return fmt.Errorf("keyframe interval %v is below 10ms", c.KeyframeInterval)
	case c.KeyframeCache < 0 || c.KeyframeCache > 5*time.Second:
		return fmt.Errorf("keyframe cache %v: use 0 (off) to 5s", c.KeyframeCache)
	case c.MinBitrate == 0 || c.MinBitrate > c.MaxBitrate:
		return fmt.Errorf("bitrate bounds %d..%d are not a range", c.MinBitrate, c.MaxBitrate)
	case c.InitialBitrate < c.MinBitrate || c.InitialBitrate > c.MaxBitrate:
		return fmt.Errorf("initial bitrate %d is outside %d..%d", c.InitialBitrate, c.MinBitrate, c.MaxBitrate)
	case c.VideoCache < 64 || c.VideoCache > 1<<15 || c.AudioCache < 16 || c.AudioCache > 1<<15:
		return errors.New("packet caches must hold 64..32768 video and 16..32768 audio packets")
	case c.RetransmitsPerNACK < 1 || c.RetransmitsPerNACK > 1024:
		return fmt.Errorf("retransmits per NACK %d: use 1..1024", c.RetransmitsPerNACK)
	case c.RetransmitShare < 0 || c.RetransmitShare > 4 || c.RetransmitFloor > 1e9:
		return errors.New("retransmit budget: share 0..4 of the estimate, floor up to 1 Gbit/s")
	case c.Workers < 0 || c.Workers > 256:
		return fmt.Errorf("fan-out workers %d: use 0 to 256", c.Workers)
	}
	return nil
}
