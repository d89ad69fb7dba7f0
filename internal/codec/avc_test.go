package codec

import (
	"bytes"
	"testing"
)

func TestLengthPrefixed(t *testing.T) {
	got := LengthPrefixed([][]byte{{0x67, 1, 2}, {0x68}})
	want := []byte{0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 1, 0x68}
	if !bytes.Equal(got, want) {
		t.Fatalf("LengthPrefixed = %x, want %x", got, want)
	}
	if cap(got) != len(want) {
		t.Fatalf("LengthPrefixed allocated %d bytes for %d", cap(got), len(want))
	}
}

func TestAVCDecoderConfig(t *testing.T) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1f, 0xda}
	pps := []byte{0x68, 0xce}
	got := AVCDecoderConfig(sps, pps)
	want := []byte{1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1f, 0xda, 1, 0, 2, 0x68, 0xce}
	if !bytes.Equal(got, want) {
		t.Fatalf("AVCDecoderConfig = %x, want %x", got, want)
	}
}
