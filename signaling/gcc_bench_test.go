package signaling_test

import (
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/glintlive/glint/sfu"
)

// pionGCC runs pion/interceptor's send-side GCC (delay- and loss-based,
// no probing) as a viewer's estimator, for BenchmarkLayerChanges to hold
// Glint's own against. GCC's pacer would own the send path; the core
// sends at once, so it gets the no-op pacer and sees each packet as it
// leaves.
type pionGCC struct {
	mu  sync.Mutex
	bwe *gcc.SendSideBWE
	w   interceptor.RTPWriter
	hdr rtp.Header
	buf [1500]byte
}

const gccTWCCID = 1

func newPionGCC() sfu.Estimator {
	cfg := sfu.DefaultConfig()
	bwe, err := gcc.NewSendSideBWE(gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		gcc.SendSideBWEInitialBitrate(int(cfg.InitialBitrate)),
		gcc.SendSideBWEMinBitrate(int(cfg.MinBitrate)),
		gcc.SendSideBWEMaxBitrate(int(cfg.MaxBitrate)))
	if err != nil {
		panic(err)
	}
	g := &pionGCC{bwe: bwe, hdr: rtp.Header{Version: 2, SSRC: 1}}
	g.w = bwe.AddStream(&interceptor.StreamInfo{SSRC: 1, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
		{URI: "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01", ID: gccTWCCID}}},
		interceptor.RTPWriterFunc(func(*rtp.Header, []byte, interceptor.Attributes) (int, error) { return 0, nil }))
	return g
}

func (g *pionGCC) Sent(seq uint16, size int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ext, _ := (&rtp.TransportCCExtension{TransportSequence: seq}).Marshal()
	_ = g.hdr.SetExtension(gccTWCCID, ext)
	g.hdr.SequenceNumber = seq
	_, _ = g.w.Write(&g.hdr, g.buf[:min(max(size-g.hdr.MarshalSize(), 0), len(g.buf))], nil)
}

func (g *pionGCC) Feedback(fb *rtcp.TransportLayerCC) {
	_ = g.bwe.WriteRTCP([]rtcp.Packet{fb}, nil)
}

func (g *pionGCC) Close() { _ = g.bwe.Close() }

func (g *pionGCC) Estimate() uint64 { return uint64(max(g.bwe.GetTargetBitrate(), 0)) }
