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
