package sfu

import (
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

var fuzzCodecs = []Codec{
	vp8Codec,
	{MimeType: "video/VP9", ClockRate: 90000, PayloadType: 98},
	{MimeType: "video/H264", ClockRate: 90000, PayloadType: 102, Fmtp: "packetization-mode=1"},
	{MimeType: "video/AV1", ClockRate: 90000, PayloadType: 45},
	opusCodec,
}

// FuzzIngest feeds arbitrary packets from a publisher through parsing,
// payload inspection, keyframe size reading and forwarding to a viewer.
func FuzzIngest(f *testing.F) {
	f.Add(uint8(0), marshal(f, rtp.Header{PayloadType: 96, SequenceNumber: 1}, vp8Payload(true, 1, 640, 360, 10)))
	f.Add(uint8(1), marshal(f, rtp.Header{PayloadType: 98, SequenceNumber: 1}, []byte{0x8a, 0x80, 0x01, 0x02, 0x18, 0x02, 0x80, 0x01, 0x68}))
	f.Add(uint8(2), marshal(f, rtp.Header{PayloadType: 102}, []byte{0x18, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f, 0x00, 0x02, 0x68, 0xce}))
	f.Add(uint8(2), marshal(f, rtp.Header{PayloadType: 102}, []byte{0x7c, 0x85, 0x88, 0x84}))
	f.Add(uint8(3), marshal(f, rtp.Header{PayloadType: 45}, []byte{0x18, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9f, 0xff, 0xe4}))
	h := rtp.Header{PayloadType: 111, Padding: true, PaddingSize: 4}
	_ = h.SetExtension(1, []byte{0x10})
	f.Add(uint8(4), marshal(f, h, []byte{0xf8}))
	cfg := DefaultConfig()
	cfg.VideoCache, cfg.AudioCache = 64, 16
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		reg := NewRegistry(cfg)
		stream := reg.Stream("fuzz")
		codec := fuzzCodecs[int(which)%len(fuzzCodecs)]
		pub := stream.StartPublication(HostID, &testSource{}, second)
		l, err := pub.AddLayer("", codec, ExtIDs{AbsCaptureTime: 3, AudioLevel: 1}, second)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := stream.Subscribe("v")
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		dt := sub.DownTracks()[1]
		if codec.Kind() == KindAudio {
			dt = sub.DownTracks()[0]
		}
		if _, err := dt.Bind(rec, 9, []Codec{codec}, ExtIDs{TransportCC: 2, AbsCaptureTime: 3}); err != nil {
			t.Fatal(err)
		}
		sub.Start(second)
		if err := l.Ingest(b, second); err != nil {
			return
		}
		p := &l.ring.slots[0]
		for i := range l.ring.slots {
			if l.ring.valid[i] {
				p = &l.ring.slots[i]
			}
		}
		if p.payloadOff > p.payloadEnd || int(p.payloadEnd) > int(p.size) {
			t.Fatalf("payload bounds %d..%d of %d", p.payloadOff, p.payloadEnd, p.size)
		}
		for _, s := range rec.all() {
			if int(s.h.PaddingSize) > 0 && !s.h.Padding {
				t.Fatal("padding size without the padding bit")
			}
		}
	})
}

// FuzzFeedback feeds arbitrary RTCP from a viewer to the handlers peer
// dispatches it to: NACK, PLI, transport-wide feedback, REMB, receiver
// reports.
func FuzzFeedback(f *testing.F) {
	for _, p := range []rtcp.Packet{
		&rtcp.TransportLayerNack{MediaSSRC: 9, Nacks: []rtcp.NackPair{{PacketID: 1, LostPackets: 0xffff}}},
		&rtcp.PictureLossIndication{MediaSSRC: 9},
		&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 1e6, SSRCs: []uint32{9}},
		&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: 9, FractionLost: 40}}},
		feedback(1, 0, []int64{1000, -1, 3000}),
	} {
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		fan := newFanout(t, 1)
		for range 20 {
			fan.next(2 * second)
		}
		sub := fan.layer.track.stream.Subscribers()[0]
		dt := sub.DownTracks()[1]
		for _, pkt := range pkts {
			switch p := pkt.(type) {
			case *rtcp.TransportLayerNack:
				dt.OnNACK(p.Nacks, 2*second)
			case *rtcp.PictureLossIndication:
				dt.OnPictureLoss(2 * second)
			case *rtcp.TransportLayerCC:
				sub.OnTransportCC(p, 2*second)
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				sub.OnREMB(p.Bitrate, 2*second)
			case *rtcp.ReceiverReport:
				for _, r := range p.Reports {
					sub.OnReceiverReport(r.FractionLost, 2*second)
				}
			}
		}
		if e := sub.Estimate(); e < DefaultConfig().MinBitrate || e > DefaultConfig().MaxBitrate {
			t.Fatalf("estimate %d left its bounds", e)
		}
	})
}
