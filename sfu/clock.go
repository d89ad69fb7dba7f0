package sfu

import "time"

// epoch anchors Now; time.Since reads the monotonic clock.
var clockOrigin = time.Now() //nolint:gochecknoglobals // process-wide monotonic origin

// Now returns monotonic nanoseconds since process start. All times handed to
// the core are in this unit; tests may pass any consistent values instead.
func Now() int64 { return int64(time.Since(clockOrigin)) }

const (
	millisecond = int64(time.Millisecond)
	second      = int64(time.Second)
)
