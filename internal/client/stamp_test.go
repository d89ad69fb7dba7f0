//go:build linux

package client

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// TestStampsSendAndKernelReceipt sends an RTP-looking packet between two
// stamping sockets on loopback: the sender notes its hand-off, the
// receiver the kernel's receipt, and the receipt is not before the send.
func TestStampsSendAndKernelReceipt(t *testing.T) {
	a, err := newStampConn(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := newStampConn(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pkt := make([]byte, 100)
	pkt[0], pkt[1] = 0x80, 96
	binary.BigEndian.PutUint16(pkt[2:], 4242)
	binary.BigEndian.PutUint32(pkt[8:], 0xdecafbad)
	rtcp := []byte{0x80, 200, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}
	to := b.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := a.WriteToAddrPort(rtcp, to); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteToAddrPort(pkt, to); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for range 2 {
		if _, _, err := b.ReadFromAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	sent, ok := a.arrival(0xdecafbad, 4242)
	if !ok {
		t.Fatal("the send was not noted")
	}
	got, ok := b.arrival(0xdecafbad, 4242)
	if !ok {
		t.Fatal("the kernel's receipt was not noted")
	}
	if d := got.Sub(sent); d < 0 || d > time.Second {
		t.Fatalf("receipt %v after the send", d)
	}
	if _, ok := b.arrival(0xdecafbad, 4243); ok {
		t.Fatal("a packet never sent has an arrival")
	}
	if len(b.times) != 1 {
		t.Fatalf("RTCP was noted as RTP: %d streams", len(b.times))
	}
}
