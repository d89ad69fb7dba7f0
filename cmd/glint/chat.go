package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glintlive/glint/chat"
	"github.com/glintlive/glint/sfu"
	"github.com/glintlive/glint/sfu/peer"
	"github.com/glintlive/glint/signaling"
)

// ChatConfig is chat's part of a node's configuration.
type ChatConfig struct {
	Chat          chat.Config
	Redis         string // redis://host:port/db; empty: one node, log in the data dir
	Secret        string // token signing secret; empty: generated (and shared through Redis)
	APIKey        string // guards POST /api/tokens; empty turns it off
	Payments      string // test or webhook
	CheckoutURL   string
	WebhookSecret string
	tiersGiven    int // badge-tier values given by the source being read
}

func defaultChatConfig() ChatConfig {
	return ChatConfig{Chat: chat.DefaultConfig(), Payments: "test"}
}

// Validate reports the first unusable chat setting.
func (c *ChatConfig) Validate() error {
	switch c.Payments {
	case "test":
	case "webhook":
		if !strings.HasPrefix(c.CheckoutURL, "https://") || !strings.Contains(c.CheckoutURL, "{order}") {
			return errors.New("payments webhook needs payments-checkout-url: an https URL with {order}")
		}
		if len(c.WebhookSecret) < 16 {
			return errors.New("payments webhook needs payments-webhook-secret of at least 16 characters")
		}
	default:
		return fmt.Errorf("payments %q: use test or webhook", c.Payments)
	}
	if c.tiersGiven != 0 && c.tiersGiven != len(c.Chat.Tiers) {
		return fmt.Errorf("badge-tier: give all %d tiers, cheapest first", len(c.Chat.Tiers))
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		return errors.New("chat-secret must be at least 32 characters")
	}
	if c.APIKey != "" && len(c.APIKey) < 16 {
		return errors.New("api-key must be at least 16 characters")
	}
	return c.Chat.Validate()
}

// chatSettings are chat's command-line settings.
func (c *ChatConfig) settings(str func(name, help string, p *string) *setting, num func(name, help string, p *int) *setting,
	boolean func(name, help string, p *bool) *setting) []*setting {
	return []*setting{
		str("redis", "Redis URL (redis://host:6379/0) nodes share for chat's order, bans and history; empty runs one node with chat kept in data-dir/chat", &c.Redis),
		str("chat-secret", "secret (32+ characters) that signs chat tokens; every node must have the same. Empty: generated once and kept in data-dir/chat-secret, or shared through Redis", &c.Secret),
		str("api-key", "key (16+ characters) your login system presents to POST /api/tokens to get tokens for its users; empty turns that endpoint off", &c.APIKey),
		boolean("chat-anonymous", "viewers without a token may read chat (never post)", &c.Chat.Anonymous),
		boolean("chat-guests", "the pages may get a viewer token by name alone (turn off when your site signs users in)", &c.Chat.Guests),
		num("chat-max-length", "longest chat message, in characters", &c.Chat.MaxLength),
		{name: "chat-rate", help: "messages per second each user may send, on average",
			set:  func(v string) (err error) { c.Chat.Rate, err = strconv.ParseFloat(v, 64); return err },
			show: func() string { return strconv.FormatFloat(c.Chat.Rate, 'g', -1, 64) }},
		num("chat-burst", "messages a user may send at once before chat-rate applies", &c.Chat.Burst),
		num("chat-send-queue", "events waiting for one chat client at most; a client further behind is dropped with a reason", &c.Chat.SendQueue),
		{name: "badge-tier", help: "NAME=CENTS for the badge tiers, cheapest first (give all three)",
			set: func(v string) error {
				name, cents, ok := strings.Cut(v, "=")
				n, err := strconv.Atoi(cents)
				if !ok || name == "" || err != nil || n < 1 {
					return fmt.Errorf("%q is not NAME=CENTS", v)
				}
				if c.tiersGiven == len(c.Chat.Tiers) {
					return fmt.Errorf("give exactly %d badge tiers", len(c.Chat.Tiers))
				}
				c.Chat.Tiers[c.tiersGiven] = chat.Tier{Name: name, Cents: n}
				c.tiersGiven++
				return nil
			},
			reset: func() { c.tiersGiven = 0 },
			show: func() string {
				var s []string
				for _, t := range c.Chat.Tiers {
					s = append(s, fmt.Sprintf("%s=%d", t.Name, t.Cents))
				}
				return strings.Join(s, ",")
			}},
		str("payments", "badge payments: test (a checkout page on this server; no money moves) or webhook (a processor's hosted checkout and HMAC-signed notifications to /api/payments/webhook)", &c.Payments),
		str("payments-checkout-url", "the processor's checkout URL, with {order}, {amount} (cents) and {tier} filled in (payments webhook)", &c.CheckoutURL),
		str("payments-webhook-secret", "the secret the processor signs notifications with (payments webhook)", &c.WebhookSecret),
	}
}

// chatStreams is what chat learns about streams from the media side.
type chatStreams struct {
	keys *signaling.KeyFile
	reg  *sfu.Registry
}

func (s chatStreams) Known(stream string) bool { return s.keys.Known(stream) }

func (s chatStreams) StreamTime(stream string) (int64, bool) {
	r := s.reg.Lookup(stream)
	if r == nil {
		return 0, false
	}
	return r.StreamTime(sfu.Now())
}

func (s chatStreams) CheckKey(stream, key string) error { return s.keys.Check(stream, key) }

// channelTransport carries chat over a session's data channel.
type channelTransport struct {
	ch   *peer.Channel
	addr netip.Addr
}

func (t channelTransport) Write(frame []byte) error { return t.ch.Send(frame) }
func (t channelTransport) Close(string) error       { return t.ch.Close() }
func (t channelTransport) Addr() netip.Addr         { return t.addr }

// newChat builds the node's chat: its log, its token signer, its hub and
// its HTTP API.
func newChat(ctx context.Context, cfg ChatConfig, dataDir string, origins []string, keys *signaling.KeyFile, reg *sfu.Registry, log *slog.Logger) (*chat.Hub, *chat.API, error) {
	var bp chat.Backplane
	var secret []byte
	if cfg.Secret != "" {
		secret = []byte(cfg.Secret)
	}
	if cfg.Redis != "" {
		r, err := chat.NewRedis(ctx, cfg.Redis)
		if err != nil {
			return nil, nil, err
		}
		bp = r
		if secret == nil {
			c := make([]byte, 32)
			_, _ = rand.Read(c)
			if secret, err = r.SharedSecret(ctx, []byte(hex.EncodeToString(c))); err != nil {
				_ = r.Close()
				return nil, nil, fmt.Errorf("chat secret from redis: %w", err)
			}
		}
	} else {
		m, err := chat.NewMemory(filepath.Join(dataDir, "chat"), log)
		if err != nil {
			return nil, nil, err
		}
		bp = m
		if secret == nil {
			if secret, err = localSecret(filepath.Join(dataDir, "chat-secret")); err != nil {
				_ = m.Close()
				return nil, nil, err
			}
		}
	}
	signer, err := chat.NewSigner(secret)
	if err == nil {
		var hub *chat.Hub
		if hub, err = chat.NewHub(cfg.Chat, bp, signer, chatStreams{keys, reg}, log.With("part", "chat")); err == nil {
			var pay chat.Provider = chat.TestProvider{}
			if cfg.Payments == "webhook" {
				pay = &chat.WebhookProvider{CheckoutURL: cfg.CheckoutURL, Secret: []byte(cfg.WebhookSecret), Tolerance: 5 * time.Minute}
			}
			return hub, chat.NewAPI(hub, pay, origins, cfg.APIKey), nil
		}
	}
	_ = bp.Close()
	return nil, nil, err
}

// localSecret reads a node's token secret, creating it on first start.
func localSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	s := hex.EncodeToString(raw)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(s), os.Rename(tmp, path)
}

// attachChannels serves chat on every session's "glint" data channel.
func attachChannels(srv *signaling.Server, hub *chat.Hub) {
	srv.OnChannel(func(stream string, addr netip.Addr, ch *peer.Channel) {
		// Handlers first, so a frame the client sends on open is not lost
		// while the room is joined.
		ready := make(chan *chat.Attached, 1)
		wait := sync.OnceValue(func() *chat.Attached { return <-ready })
		ch.OnMessage(func(b []byte) { wait().Receive(b) })
		ch.OnClose(func() {
			go func() { wait().Close() }()
		})
		ready <- hub.Attach(stream, channelTransport{ch: ch, addr: addr})
	})
}
