package client

import (
	"errors"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// Options shape the client's PeerConnection.
type Options struct {
	// Loopback keeps the client on 127.0.0.1 (tests never touch other
	// addresses).
	Loopback bool
	// TCP makes the client use ICE-TCP only.
	TCP bool
	// Interceptors are added before the client's own, nearest the network:
	// a viewer test's dropper runs before feedback is generated, a
	// publisher test's before the NACK responder stores what it sent.
	Interceptors []interceptor.Factory
	// NACKRetries caps how often the viewer asks again for one lost packet
	// (pion retries without limit by default). 0 means 5.
	NACKRetries uint16
	// Stamp gives the client its own UDP socket on 127.0.0.1 that notes
	// when each RTP packet was sent or received (Publisher.FrameSent,
	// Viewer.Arrival); UDP only.
	Stamp bool
	// Link puts the client's own UDP socket on 127.0.0.1 behind an
	// emulated link (not with Stamp).
	Link *Link
}

// stampedEngine gives se the client's own socket, stamping or behind a
// link, when asked.
func (o Options) stampedEngine(se *webrtc.SettingEngine) (*stampConn, ice.UDPMux, error) {
	var conn net.PacketConn
	var stamp *stampConn
	var err error
	switch {
	case o.Stamp && o.Link != nil:
		return nil, nil, errors.New("client: Stamp and Link do not go together")
	case o.Stamp:
		stamp, err = newStampConn(net.IPv4(127, 0, 0, 1))
		conn = stamp
	case o.Link != nil:
		conn, err = o.Link.listen(net.IPv4(127, 0, 0, 1))
	default:
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: conn})
	se.SetICEUDPMux(mux)
	return stamp, mux, nil
}

func (o Options) settingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// As a browser does (pion keeps 64 packets): a retransmission arrives
	// a round trip and more after its loss, past a small window.
	se.SetSRTPReplayProtectionWindow(1024)
	if o.Loopback {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
		se.SetIncludeLoopbackCandidate(true)
	}
	if o.TCP {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	return se
}
