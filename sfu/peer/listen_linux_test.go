package peer

import (
	"net"
	"testing"
	"time"
)

// With sender sockets per lane on the media port, every packet still
// arrives on the one socket that is read, whatever flow it belongs to, and
// a second node on the same port still gets "address in use".
func TestSendersDoNotTakeThePortsPackets(t *testing.T) {
	ip := net.IPv4(127, 0, 0, 1)
	c, senders, err := listenUDP(ip, 0, 2)
	if err != nil {
		t.Fatalf("listen with senders: %v", err)
	}
	defer c.Close()
	if len(senders) != 2 {
		t.Fatalf("%d senders, want 2", len(senders))
	}
	for _, s := range senders {
		defer s.Close()
		if s.LocalAddr().String() != c.LocalAddr().String() {
			t.Fatalf("a sender on %v, the port on %v", s.LocalAddr(), c.LocalAddr())
		}
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if c2, _, err := listenUDP(ip, port, 2); err == nil {
		c2.Close()
		t.Fatal("a second node bound the same media port")
	}
	// 64 flows: the kernel's hash alone would send about two thirds of them
	// to the senders.
	const flows = 64
	for i := range flows {
		f, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte{0x80, byte(i)}); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	buf := make([]byte, 16)
	for got := range flows {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			t.Fatalf("%d of %d flows reached the port's reader: %v", got, flows, err)
		}
	}
	for i, s := range senders {
		_ = s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := s.ReadFromUDP(buf); err == nil {
			t.Fatalf("sender %d received a packet meant for the port", i)
		}
	}
}
