//go:build !linux

package client

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// stampConn needs Linux's SO_TIMESTAMPNS; elsewhere Stamp fails.
type stampConn struct{ *net.UDPConn }

func newStampConn(net.IP) (*stampConn, error) {
	return nil, errors.New("kernel receive timestamps need Linux")
}

func (c *stampConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ReadFromUDPAddrPort(b)
}

func (c *stampConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, to)
}

func (c *stampConn) arrival(uint32, uint16) (time.Time, bool) { return time.Time{}, false }
