package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// errNoSenders: the port is bound, but without sockets per lane.
var errNoSenders = errors.New("no sender sockets")

// listenUDP binds the media port on ip and, when senders > 1, that many
// more sockets on the same address and port for the fan-out lanes to send
// from (SO_REUSEPORT). A reuseport program steers every packet arriving on
// the port to the first socket, the only one read, so routing stays where
// it was. Senders that cannot be made are left out, with the reason.
func listenUDP(ip net.IP, port, senders int) (*net.UDPConn, []*net.UDPConn, error) {
	addr := &net.UDPAddr{IP: ip, Port: port}
	if senders < 2 {
		c, err := net.ListenUDP("udp", addr)
		return c, nil, err
	}
	if port != 0 {
		// SO_REUSEPORT would let a second node on the same port join this
		// one's group silently: a plain bind first keeps "address in use".
		probe, err := net.ListenUDP("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		_ = probe.Close()
	}
	lc := net.ListenConfig{Control: reusePort}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
	if err != nil {
		return nil, nil, err
	}
	c := pc.(*net.UDPConn) //nolint:forcetypeassert // a UDP listener
	if err := steerToFirst(c); err != nil {
		return c, nil, fmt.Errorf("%w: %w", errNoSenders, err)
	}
	out := make([]*net.UDPConn, 0, senders)
	for range senders {
		s, err := lc.ListenPacket(context.Background(), "udp", c.LocalAddr().String())
		if err != nil {
			for _, s := range out {
				_ = s.Close()
			}
			return c, nil, fmt.Errorf("%w: %w", errNoSenders, err)
		}
		out = append(out, s.(*net.UDPConn)) //nolint:forcetypeassert // a UDP listener
	}
	return c, out, nil
}

func reusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// steerToFirst attaches to c's reuseport group a classic BPF program that
// returns 0 for every packet: the group's first socket, c, receives them
// all (the kernel's own hash would spread flows over the senders, which
// nobody reads).
func steerToFirst(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	return serr
}
