package client

import (
	"net"
	"testing"
	"time"
)

func TestLinkDropsDelaysAndQueues(t *testing.T) {
	l := &Link{}
	l.SetLoss(0.5)
	l.SetJitter(20 * time.Millisecond)
	c, err := l.listen(net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, err := net.DialUDP("udp4", nil, c.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const n = 200
	for i := range n {
		if _, err := src.Write([]byte{byte(i >> 8), byte(i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // within the socket's buffer
	}
	got, reordered, last := 0, false, -1
	buf := make([]byte, 1500)
	for got+l.Drops() < n {
		k, _, err := c.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d datagrams and %d drops: %v", got, l.Drops(), err)
		}
		i := int(buf[0])<<8 | int(buf[1])
		if k != 2 || i >= n {
			t.Fatalf("datagram %d of %d bytes", i, k)
		}
		reordered = reordered || i < last
		last = max(last, i)
		got++
	}
	if got < n/4 || got > 3*n/4 {
		t.Fatalf("%d of %d through at 50%% loss", got, n)
	}
	if !reordered {
		t.Fatal("20 ms of jitter reordered nothing")
	}

	// A bottleneck: 10 kbit/s holds a 200 ms queue of about 250 bytes.
	q := &Link{}
	q.SetRate(10_000)
	at := time.Now()
	var out []time.Time
	for range 10 {
		if t, ok := q.admit(100, at); ok {
			out = append(out, t)
		}
	}
	if len(out) < 2 || len(out) > 4 || q.Drops() != 10-len(out) {
		t.Fatalf("%d of 10 let through a 10 kbit/s link at once, %d dropped", len(out), q.Drops())
	}
	if gap := out[1].Sub(out[0]); gap < 100*time.Millisecond || gap > 110*time.Millisecond {
		t.Fatalf("128-byte datagrams 10 kbit/s apart by %v, want ~102 ms", gap)
	}
}
