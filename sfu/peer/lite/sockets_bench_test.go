package lite

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkParallelWrites asks whether fan-out lanes writing to viewers
// should share the one media socket or each have a socket of its own on
// the same port (SO_REUSEPORT): Go serialises writes on one socket (its
// fd's write lock), so lanes on one socket take turns in sendto. Each
// writer sends 1,200-byte packets round-robin to 50 loopback receivers
// that drain them, as a lane writes to its viewers.
func BenchmarkParallelWrites(b *testing.B) {
	writers := runtime.GOMAXPROCS(0)
	for _, mode := range []string{"shared", "reuseport"} {
		b.Run(mode, func(b *testing.B) {
			socks := writerSockets(b, mode, writers)
			dst, stop := receivers(b, 50)
			defer stop()
			pkt := make([]byte, 1200)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / writers
			for w := range writers {
				wg.Add(1)
				go func(c *net.UDPConn, w int) {
					defer wg.Done()
					for i := range per {
						_, _ = c.WriteToUDPAddrPort(pkt, dst[(i+w)%len(dst)])
					}
				}(socks[w], w)
			}
			wg.Wait()
		})
	}
}

// writerSockets returns one socket per writer: the same socket for all
// (shared), or sockets bound to one port with SO_REUSEPORT.
func writerSockets(b *testing.B, mode string, n int) []*net.UDPConn {
	b.Helper()
	lc := net.ListenConfig{}
	if mode == "reuseport" {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	first, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = first.Close() })
	socks := []*net.UDPConn{first.(*net.UDPConn)}
	for len(socks) < n {
		if mode == "shared" {
			socks = append(socks, socks[0])
			continue
		}
		c, err := lc.ListenPacket(context.Background(), "udp4", first.LocalAddr().String())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		socks = append(socks, c.(*net.UDPConn))
	}
	return socks
}

// receivers starts n loopback sockets that read and discard.
func receivers(b *testing.B, n int) ([]netip.AddrPort, func()) {
	b.Helper()
	var addrs []netip.AddrPort
	var conns []*net.UDPConn
	var wg sync.WaitGroup
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		addrs = append(addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
			}
		}()
	}
	return addrs, func() {
		for _, c := range conns {
			_ = c.Close()
		}
		wg.Wait()
	}
}
