package sfu

import "testing"

func TestCodecCompatibility(t *testing.T) {
	h264 := func(profile, mode string) Codec {
		return Codec{MimeType: "video/H264", ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + profile}
	}
	for _, c := range []struct {
		name    string
		a, b    Codec
		atLeast int
		none    bool
	}{
		{"high and constrained high", h264("64001f", "1"), h264("640c1f", "1"), 2, false},
		{"same profile and constraints", h264("640c1f", "1"), h264("640c34", "1"), 3, false},
		{"constrained baseline to baseline", h264("42e01f", "1"), h264("42001f", "1"), 2, false},
		{"high to baseline decoder entry", h264("64001f", "1"), h264("42e01f", "1"), 1, false},
		{"packetization modes differ", h264("42e01f", "1"), h264("42e01f", "0"), 0, true},
		{"mime case", Codec{MimeType: "video/vp8", ClockRate: 90000}, Codec{MimeType: "video/VP8", ClockRate: 90000}, 3, false},
		{"VP9 profiles differ", Codec{MimeType: "video/VP9", ClockRate: 90000, Fmtp: "profile-id=2"}, Codec{MimeType: "video/VP9", ClockRate: 90000}, 0, true},
		{"AV1 default profile", Codec{MimeType: "video/AV1", ClockRate: 90000}, Codec{MimeType: "video/AV1", ClockRate: 90000, Fmtp: "profile=0"}, 3, false},
		{"different codecs", vp8Codec, h264("42e01f", "1"), 0, true},
	} {
		got := c.a.Compatible(c.b)
		if c.none && got != 0 || !c.none && got < c.atLeast {
			t.Errorf("%s: score %d", c.name, got)
		}
	}
	// A viewer offering several H.264 profiles is bound to the publisher's.
	reg := NewRegistry(DefaultConfig())
	pub := reg.Stream("r").StartPublication(HostID, &testSource{}, second)
	pub.Announce(h264("640c1f", "1"))
	sub, err := reg.Stream("r").Subscribe("v")
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := h264("42e01f", "1"), h264("640c1f", "1")
	b1.PayloadType, b2.PayloadType = 102, 108
	got, err := sub.DownTracks()[1].Bind(&nullWriter{}, 1, []Codec{b1, b2}, ExtIDs{})
	if err != nil || got.PayloadType != 108 {
		t.Fatalf("bound %v (%v), want the high-profile payload type 108", got, err)
	}
}
