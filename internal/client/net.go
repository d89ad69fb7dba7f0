package client

import (
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
}

// stampedEngine gives se the client's own stamping socket, when asked.
func (o Options) stampedEngine(se *webrtc.SettingEngine) (*stampConn, ice.UDPMux, error) {
	if !o.Stamp {
		return nil, nil, nil
	}
	c, err := newStampConn(net.IPv4(127, 0, 0, 1))
	if err != nil {
		return nil, nil, err
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c})
	se.SetICEUDPMux(mux)
	return c, mux, nil
}

func (o Options) settingEngine() webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
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
