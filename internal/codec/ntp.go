package codec

import "time"

// ntpEpochOffset is the seconds from 1900 (NTP's era 0) to 1970.
const ntpEpochOffset = 2208988800

// NTPTime is t as a 64-bit NTP timestamp (RFC 5905): seconds since 1900
// and their fraction in 1/2^32, as RTCP sender reports and the
// abs-capture-time header extension carry it.
func NTPTime(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) * (1 << 32) / uint64(time.Second)
	return secs<<32 | frac
}

// TimeOfNTP is the wall-clock time of a 64-bit NTP timestamp.
func TimeOfNTP(v uint64) time.Time {
	secs := int64(v>>32) - ntpEpochOffset
	nanos := (v & 0xffffffff) * uint64(time.Second) >> 32
	return time.Unix(secs, int64(nanos))
}
