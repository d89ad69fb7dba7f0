package chat

import (
	"errors"
	"time"
)

// Tier is a badge a viewer can buy.
type Tier struct {
	Name  string `json:"name"`
	Cents int    `json:"cents"`
}

// Config holds chat's settings.
type Config struct {
	// Anonymous lets viewers without a token read (never post).
	Anonymous bool
	// Guests lets the pages ask for a viewer token by name alone (single
	// node, no login system); operators with their own login turn it off
	// and issue tokens from their backend.
	Guests bool
	// MaxLength is the longest message, in characters.
	MaxLength int
	// Rate and Burst limit each user's messages (token bucket).
	Rate  float64
	Burst int
	// ReactionRate and ReactionBurst limit each user's reactions.
	ReactionRate  float64
	ReactionBurst int
	// DuplicateWindow refuses the same text from a user within it.
	DuplicateWindow time.Duration
	// SendQueue is the most frames waiting for one connection; a client
	// that falls further behind is dropped, never waited for.
	SendQueue int
	// Backlog is how many recent events a new connection gets; ResumeMax
	// how many missed events a returning one may get.
	Backlog, ResumeMax int
	// ReactionWindow is the length of a reaction burst.
	ReactionWindow time.Duration
	// Emoji are the reactions offered.
	Emoji []string
	// Tiers are the badges on sale.
	Tiers [3]Tier
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Anonymous: true, Guests: true, MaxLength: 500,
		Rate: 1, Burst: 5, ReactionRate: 10, ReactionBurst: 20,
		DuplicateWindow: 30 * time.Second, SendQueue: 256, Backlog: 50, ResumeMax: 500,
		ReactionWindow: 250 * time.Millisecond,
		Emoji:          []string{"❤️", "😂", "🔥", "👏", "😮", "🎉"},
		Tiers:          [3]Tier{{"Supporter", 199}, {"Super fan", 499}, {"Legend", 999}},
	}
}

// Validate reports the first unusable setting.
func (c *Config) Validate() error {
	switch {
	case c.MaxLength < 1 || c.MaxLength > 2000:
		return errors.New("chat max length must be 1..2000")
	case c.Rate <= 0 || c.Burst < 1 || c.ReactionRate <= 0 || c.ReactionBurst < 1:
		return errors.New("chat rates and bursts must be positive")
	case c.SendQueue < 16 || c.Backlog < 0 || c.ResumeMax < c.Backlog:
		return errors.New("chat queues: send queue ≥ 16, resume ≥ backlog ≥ 0")
	case c.ReactionWindow < 50*time.Millisecond:
		return errors.New("reaction window must be at least 50ms")
	case len(c.Emoji) == 0:
		return errors.New("at least one reaction emoji")
	}
	for _, t := range c.Tiers {
		if t.Name == "" || t.Cents < 1 {
			return errors.New("badge tiers need a name and a price")
		}
	}
	return nil
}
