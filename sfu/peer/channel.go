package peer

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"

	"github.com/glintlive/glint/sfu/peer/lite"
)

// ChannelLabel is the data channel Glint serves on WHIP and WHEP sessions:
// chat, reactions and moderation. Other labels are closed.
const ChannelLabel = "glint"

// Channel bounds: a peer that stops reading holds at most maxBuffered
// bytes of ours before Send waits, and Send gives up after sendWait.
const (
	maxBuffered = 1 << 20
	lowBuffered = 256 << 10
	sendWait    = 10 * time.Second
)

// ErrChannelStalled is returned by Send when the peer has stopped reading.
var ErrChannelStalled = errors.New("data channel: the peer stopped reading")

// Channel is the "glint" data channel of a session, once open.
type Channel struct {
	dc     channelConn
	low    chan struct{}
	sendMu sync.Mutex // chat and room announcements share the channel
}

// channelConn is a data channel as pion's PeerConnection (publishers) or
// Glint's own viewer transport (viewers) provides it.
type channelConn interface {
	SetBufferedAmountLowThreshold(uint64)
	OnBufferedAmountLow(func())
	BufferedAmount() uint64
	SendText(string) error
	OnMessage(func([]byte))
	OnClose(func())
	Close() error
}

func newChannel(dc channelConn) *Channel {
	c := &Channel{dc: dc, low: make(chan struct{}, 1)}
	dc.SetBufferedAmountLowThreshold(lowBuffered)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	return c
}

// Send queues a text message. It waits while more than 1 MB is queued for
// the peer, and fails with ErrChannelStalled after 10 s of that. Sends
// from several goroutines go out one at a time.
func (c *Channel) Send(b []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.dc.BufferedAmount() > maxBuffered {
		t := time.NewTimer(sendWait)
		defer t.Stop()
		for c.dc.BufferedAmount() > maxBuffered {
			select {
			case <-c.low:
			case <-t.C:
				return ErrChannelStalled
			}
		}
	}
	return c.dc.SendText(string(b))
}

// OnMessage sets the handler for messages from the peer. It runs on the
// channel's own reader goroutine.
func (c *Channel) OnMessage(fn func([]byte)) { c.dc.OnMessage(fn) }

// OnClose sets the handler for the channel's end.
func (c *Channel) OnClose(fn func()) { c.dc.OnClose(fn) }

// Close closes the channel.
func (c *Channel) Close() error { return c.dc.Close() }

// channels hands a session's data channel to whoever registers for it,
// whether it opens before or after they do.
type channels struct {
	mu      sync.Mutex
	fn      func(*Channel)
	pending []*Channel
	open    *Channel // the session's channel once open, for the node's own messages
	opened  func()   // called once it is open
}

// OnChannel registers fn for the session's "glint" data channel, when the
// offer carried one and the peer opens it.
func (s *base) OnChannel(fn func(*Channel)) {
	s.ch.mu.Lock()
	s.ch.fn = fn
	pending := s.ch.pending
	s.ch.pending = nil
	s.ch.mu.Unlock()
	for _, c := range pending {
		fn(c)
	}
}

// watchChannels accepts the peer's "glint" channel; one per session.
func (s *session) watchChannels() {
	var once sync.Once
	s.pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		accepted := false
		if dc.Label() == ChannelLabel {
			once.Do(func() { accepted = true })
		}
		if !accepted {
			_ = dc.Close()
			return
		}
		dc.OnOpen(func() { s.deliverChannel(newChannel(pionChannel{dc})) })
	})
}

// deliverChannel hands an open channel to the registered handler, or keeps
// it until one registers.
func (s *base) deliverChannel(c *Channel) {
	s.ch.mu.Lock()
	s.ch.open = c
	if opened := s.ch.opened; opened != nil {
		defer opened()
	}
	fn := s.ch.fn
	if fn == nil {
		s.ch.pending = append(s.ch.pending, c)
	}
	s.ch.mu.Unlock()
	if fn != nil {
		fn(c)
	}
}

// channel returns the session's open channel, or nil.
func (s *base) channel() *Channel {
	s.ch.mu.Lock()
	defer s.ch.mu.Unlock()
	return s.ch.open
}

// pionChannel adapts pion's DataChannel.
type pionChannel struct{ *webrtc.DataChannel }

func (c pionChannel) OnMessage(fn func([]byte)) {
	c.DataChannel.OnMessage(func(m webrtc.DataChannelMessage) { fn(m.Data) })
}

// rawChannel adapts a data channel of Glint's viewer transport. It is read
// from when OnMessage is set: until then messages wait in SCTP's buffer.
type rawChannel struct {
	*datachannel.DataChannel
	mu      sync.Mutex
	onClose func()
	reading bool
}

func (c *rawChannel) SendText(s string) error {
	_, err := c.WriteDataChannel([]byte(s), true)
	return err
}

func (c *rawChannel) OnClose(fn func()) {
	c.mu.Lock()
	c.onClose = fn
	c.mu.Unlock()
}

func (c *rawChannel) OnMessage(fn func([]byte)) {
	c.mu.Lock()
	start := !c.reading
	c.reading = true
	c.mu.Unlock()
	if !start {
		return
	}
	go func() {
		buf := make([]byte, lite.MaxMessage)
		for {
			n, _, err := c.ReadDataChannel(buf)
			if err != nil {
				c.mu.Lock()
				fn := c.onClose
				c.mu.Unlock()
				if fn != nil {
					fn()
				}
				return
			}
			fn(append([]byte(nil), buf[:n]...))
		}
	}()
}
