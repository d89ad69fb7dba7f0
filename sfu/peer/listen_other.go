//go:build !linux

package peer

import "net"

// listenUDP binds the media port on ip. Sender sockets per lane need
// Linux's reuseport programs; elsewhere every lane sends on the one socket.
func listenUDP(ip net.IP, port, _ int) (*net.UDPConn, []*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	return c, nil, err
}
