package codec

import (
	"testing"
	"time"
)

func TestNTPTimeRoundTrips(t *testing.T) {
	for _, at := range []time.Time{time.Unix(0, 0), time.Unix(1_800_000_000, 123_456_789), time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC)} {
		v := NTPTime(at)
		if back := TimeOfNTP(v); back.Sub(at).Abs() > time.Nanosecond {
			t.Errorf("%v: NTP %#x reads back as %v", at, v, back)
		}
	}
	// 1970 is 2208988800 s after NTP's epoch: the seconds are in the top half.
	if v := NTPTime(time.Unix(1, int64(time.Second/2))); v != (2208988801<<32 | 1<<31) {
		t.Errorf("1970-01-01T00:00:01.5Z is %#x", v)
	}
}
