package client

import (
	"bytes"
	"testing"
	"time"
)

func TestMarkerSEIRoundTrip(t *testing.T) {
	// Frame 0x00000100 and a send time with zero bytes need emulation
	// prevention inside the SEI.
	at := time.Unix(0, 0x0000000300000001)
	sei := markerSEI(2, 0x100, at)
	if bytes.Contains(sei[1:], []byte{0, 0, 0}) || bytes.Contains(sei[1:], []byte{0, 0, 1}) {
		t.Fatalf("SEI holds a start-code prefix: %x", sei)
	}
	m, ok := readSEIMarker(sei)
	if !ok || m.Layer != 2 || m.Frame != 0x100 || !m.Sent.Equal(at) {
		t.Fatalf("round trip: %+v %v", m, ok)
	}
}

func TestAccessUnitPacketization(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name string
		nals [][]byte
		key  bool
	}{
		{"keyframe with parameter sets", syntheticH264(true, 2, 5000), true},
		{"small delta frame", syntheticH264(false, 0, 300), false},
		{"large delta frame", syntheticH264(false, 2, 9000), false},
	} {
		pkts := h264AccessUnit(c.nals, 2, 7, now)
		m, ok := ReadMarker("video/H264", pkts[0])
		if !ok || m.Frame != 7 {
			t.Errorf("%s: no marker in the first packet", c.name)
		}
		if IsKeyframe("video/H264", pkts[0]) != c.key && (!c.key || !IsKeyframe("video/H264", pkts[1])) {
			t.Errorf("%s: keyframe not at the start", c.name)
		}
		total := 0
		for _, p := range pkts {
			if len(p) > maxPayload {
				t.Errorf("%s: %d-byte payload", c.name, len(p))
			}
			total += len(p)
		}
		want := 0
		for _, n := range c.nals {
			want += len(n)
		}
		if total < want {
			t.Errorf("%s: %d payload bytes for %d NAL bytes", c.name, total, want)
		}
	}
}
