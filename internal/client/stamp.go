//go:build linux

package client

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// stampConn is a client's own UDP socket that records when each RTP packet
// was handed to the kernel (publishers) or when the kernel received it
// (viewers, SO_TIMESTAMPNS), by the clear header before any decryption.
// The time a packet took from one socket to another is then apart from how
// long this process took to get to it.
type stampConn struct {
	*net.UDPConn
	mu    sync.Mutex
	times map[uint32]*[stampRing]stamp // per SSRC, by sequence number
	oob   []byte
}

type stamp struct {
	seq uint16
	at  int64
}

// stampRing is how many packets back an arrival is remembered per SSRC;
// maxStreams bounds the SSRCs remembered.
const (
	stampRing  = 1024
	maxStreams = 8
)

func newStampConn(ip net.IP) (*stampConn, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		_ = c.Close()
		if err == nil {
			err = serr
		}
		return nil, err
	}
	return &stampConn{UDPConn: c, oob: make([]byte, 128), times: map[uint32]*[stampRing]stamp{}}, nil
}

// ReadFromAddrPort reads one datagram and notes an RTP packet's arrival.
// pion's UDP mux calls it from one goroutine.
func (c *stampConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, oobn, _, from, err := c.ReadMsgUDPAddrPort(b, c.oob)
	if err != nil {
		return n, from, err
	}
	if isRTP(b[:n]) {
		if at, ok := kernelTime(c.oob[:oobn]); ok {
			c.note(b, at)
		}
	}
	return n, from, nil
}

// WriteToAddrPort sends one datagram and notes when an RTP packet was
// handed to the kernel.
func (c *stampConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	if isRTP(b) {
		c.note(b, time.Now().UnixNano())
	}
	return c.WriteToUDPAddrPort(b, to)
}

// isRTP tells RTP from RTCP, STUN and DTLS (RFC 7983, RFC 5761 §4).
func isRTP(b []byte) bool {
	return len(b) >= 12 && b[0] >= 128 && b[0] < 192 && (b[1] < 192 || b[1] > 223)
}

// note remembers at as the time of RTP packet b.
func (c *stampConn) note(b []byte, at int64) {
	seq, ssrc := binary.BigEndian.Uint16(b[2:]), binary.BigEndian.Uint32(b[8:])
	c.mu.Lock()
	ring := c.times[ssrc]
	if ring == nil && len(c.times) < maxStreams {
		ring = new([stampRing]stamp)
		c.times[ssrc] = ring
	}
	if ring != nil {
		ring[seq%stampRing] = stamp{seq: seq, at: at}
	}
	c.mu.Unlock()
}

func (c *stampConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// arrival returns when packet (ssrc, seq) reached the socket, or was
// handed to it.
func (c *stampConn) arrival(ssrc uint32, seq uint16) (time.Time, bool) {
	c.mu.Lock()
	var s stamp
	if ring := c.times[ssrc]; ring != nil {
		s = ring[seq%stampRing]
	}
	c.mu.Unlock()
	if s.at == 0 || s.seq != seq {
		return time.Time{}, false
	}
	return time.Unix(0, s.at), true
}

// kernelTime finds SCM_TIMESTAMPNS in a control message (64-bit Linux
// layout: a 16-byte cmsghdr, then a timespec of two int64s).
func kernelTime(oob []byte) (int64, bool) {
	for len(oob) >= 16 {
		l := int(binary.NativeEndian.Uint64(oob))
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < 16 || l > len(oob) {
			return 0, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= 32 {
			sec := int64(binary.NativeEndian.Uint64(oob[16:]))
			nsec := int64(binary.NativeEndian.Uint64(oob[24:]))
			return sec*int64(time.Second) + nsec, true
		}
		oob = oob[(l+7)&^7:]
	}
	return 0, false
}
