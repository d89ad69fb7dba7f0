package sfu

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
)

// sendWriter does what pion does per packet, roughly: marshal the header,
// seal with AES-GCM, send to the viewer's address. It measures how fan-out
// shapes real write costs without a WebRTC stack.
type sendWriter struct {
	conn *net.UDPConn
	to   netip.AddrPort
	aead cipher.AEAD
	buf  [1600]byte
	sent int
}

func (w *sendWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := h.MarshalTo(w.buf[:])
	if err != nil {
		return 0, err
	}
	var nonce [12]byte
	out := w.aead.Seal(w.buf[:n], nonce[:], payload, w.buf[:n])
	w.sent++
	return w.conn.WriteToUDPAddrPort(out, w.to)
}

// BenchmarkForwardAndSend is the hot path with realistic writes (AES-GCM
// and a loopback send per viewer, as through pion): ns/op is the time until
// the last viewer's packet is sent.
//
// A pool of writer goroutines sharing each packet's fan-out was measured
// here and removed: every viewer's packets leave through one UDP socket,
// whose writes serialize, so on two cores the pool was 10-35% slower than
// one goroutine at every N from 4 to 200 (docs/performance.md).
func BenchmarkForwardAndSend(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	{
		for _, n := range []int{1, 10, 100, 200} {
			b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
				f := newFanout(b, 0)
				conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				var writers []*sendWriter
				for range n {
					sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					defer sink.Close()
					stream := f.layer.track.stream
					sub, err := stream.Subscribe("v")
					if err != nil {
						b.Fatal(err)
					}
					w := &sendWriter{conn: conn, to: sink.LocalAddr().(*net.UDPAddr).AddrPort(), aead: aead}
					writers = append(writers, w)
					if _, err := sub.DownTracks()[1].Bind(w, 1, []Codec{vp8Codec}, ExtIDs{TransportCC: 5}); err != nil {
						b.Fatal(err)
					}
					sub.Start(second)
				}
				f.seq++
				f.ts += 3000
				key := marshal(b, rtp.Header{PayloadType: 96, SequenceNumber: f.seq, Timestamp: f.ts, SSRC: 7, Marker: true}, vp8Payload(true, 1, 1280, 720, 1000))
				_ = f.layer.Ingest(key, second)
				now := 2 * second
				b.ResetTimer()
				for range b.N {
					now += 100_000
					f.next(now)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/forwarded")
				for i, w := range writers {
					if w.sent != b.N+1 {
						b.Fatalf("viewer %d sent %d packets, want %d", i, w.sent, b.N+1)
					}
				}
			})
		}
	}
}
