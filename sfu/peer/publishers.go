package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer/lite"
)

// Publishers are WHIP sessions on pion PeerConnections (publisher.go),
// sharing the port through pion's UDP and ICE-TCP muxes.

// newAPI prepares pion's stack for publishers.
func (n *Endpoint) newAPI() (*webrtc.API, error) {
	m, err := newMediaEngine()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	// Losses from the publisher are recovered once, for every viewer.
	gen, err := nack.NewGeneratorInterceptor(nack.GeneratorMaxNacksPerPacket(5))
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	// Transport-wide feedback lets the publisher's encoder ramp up.
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(tw)

	se := webrtc.SettingEngine{LoggerFactory: lite.Logs(n.log)}
	// A retransmission arrives a round trip and more after its loss:
	// pion's 64-packet replay window would refuse it behind a slow link.
	// Browsers keep 1024.
	se.SetSRTPReplayProtectionWindow(srtpReplayWindow)
	se.SetICEUDPMux(n.port.udp)
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if n.port.tcp != nil {
		se.SetICETCPMux(n.port.tcp)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(n.cfg.ICEDisconnectedTimeout, n.cfg.ICEFailedTimeout, n.cfg.ICEKeepalive)
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	se.DisableActiveTCP(true)
	if len(n.cfg.IPs) > 0 {
		allowed := n.cfg.IPs
		se.SetIPFilter(func(ip net.IP) bool {
			return slices.ContainsFunc(allowed, func(a string) bool { return net.ParseIP(a).Equal(ip) })
		})
		for _, a := range allowed {
			if net.ParseIP(a).IsLoopback() {
				se.SetIncludeLoopbackCandidate(true)
			}
		}
	}
	if len(n.cfg.PublicIPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: n.cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// newPC creates a PeerConnection for a session.
func (n *Endpoint) newPC(api *webrtc.API) (*webrtc.PeerConnection, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
}

// answer applies an offer and returns the complete answer, with every
// candidate gathered (WHIP and WHEP servers do not trickle).
func (n *Endpoint) answer(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		if errors.Is(err, sfu.ErrNoCodec) {
			return "", fmt.Errorf("%w: %w", ErrNoCodec, err)
		}
		return "", fmt.Errorf("%w: %w", ErrBadOffer, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.GatherTimeout)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

// srtpReplayWindow is how many packets back a publisher's SRTP replay
// protection remembers (libwebrtc's size).
const srtpReplayWindow = 1024
