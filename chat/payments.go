package chat

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Order is a badge purchase in progress. It travels as a signed reference,
// so any node can check a provider's report of it without shared state.
type Order struct {
	ID     string `json:"id"`
	Stream string `json:"stream"`
	Buyer  Claims `json:"buyer"`
	Tier   int    `json:"tier"` // 1..3
	Amount int    `json:"amount_cents"`
	At     int64  `json:"at"` // created, seconds since 1970
}

// Provider is a payment processor. Card details go from the buyer to the
// processor only; Glint sends the buyer to Checkout's URL and learns the
// result from an authenticated notification.
type Provider interface {
	// Name names the provider in the pages.
	Name() string
	// Checkout returns where to send the buyer to pay for order ref.
	Checkout(ctx context.Context, o Order, ref string) (string, error)
	// Notification authenticates a provider's report and returns the
	// order reference it pays and the amount paid, in cents.
	Notification(r *http.Request, body []byte) (ref string, amount int, err error)
}

// Errors of the payment flow.
var (
	ErrBadOrder     = errors.New("unknown or forged order")
	ErrNotLive      = errors.New("badges are on sale only while the stream is live")
	ErrBadSignature = errors.New("notification signature does not verify")
	ErrWrongAmount  = errors.New("paid amount does not match the order")
)

// orderTTL bounds how long a checkout may take.
const orderTTL = 2 * time.Hour

// sealOrder signs an order into a reference.
func (s *Signer) sealOrder(o Order) string {
	raw, _ := json.Marshal(o)
	p := base64.RawURLEncoding.EncodeToString(raw)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac("order:"+p))
}

// openOrder checks an order reference.
func (s *Signer) openOrder(ref string) (Order, error) {
	var o Order
	p, sig, ok := strings.Cut(ref, ".")
	if !ok || len(ref) > 4096 {
		return o, ErrBadOrder
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac("order:"+p)) {
		return o, ErrBadOrder
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(raw, &o) != nil {
		return o, ErrBadOrder
	}
	if s.now().Unix()-o.At > int64(orderTTL/time.Second) {
		return o, fmt.Errorf("%w: expired", ErrBadOrder)
	}
	return o, nil
}

// TestProvider is the built-in processor for development and tests: its
// checkout is a page on this server with a Pay button; no money moves.
type TestProvider struct{}

// Name implements Provider.
func (TestProvider) Name() string { return "test" }

// Checkout implements Provider.
func (TestProvider) Checkout(_ context.Context, _ Order, ref string) (string, error) {
	return "/api/payments/test/" + url.PathEscape(ref), nil
}

// Notification implements Provider: the test provider reports through
// its own page's button, not through a notification.
func (TestProvider) Notification(*http.Request, []byte) (string, int, error) {
	return "", 0, errors.New("the test provider sends no notifications")
}

// WebhookProvider sends buyers to a processor's hosted checkout and takes
// its signed notifications: a JSON body {"order", "status", "amount"}
// with header Glint-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" with the shared secret>.
type WebhookProvider struct {
	// CheckoutURL is the processor's checkout with {order}, {amount} and
	// {tier} placeholders.
	CheckoutURL string
	Secret      []byte
	// Tolerance bounds the notification's age (replays).
	Tolerance time.Duration
	Now       func() time.Time
}

// Name implements Provider.
func (p *WebhookProvider) Name() string { return "webhook" }

// Checkout implements Provider.
func (p *WebhookProvider) Checkout(_ context.Context, o Order, ref string) (string, error) {
	r := strings.NewReplacer("{order}", url.QueryEscape(ref), "{amount}", strconv.Itoa(o.Amount), "{tier}", strconv.Itoa(o.Tier))
	return r.Replace(p.CheckoutURL), nil
}

// Notification implements Provider.
func (p *WebhookProvider) Notification(r *http.Request, body []byte) (string, int, error) {
	var t int64
	var sig []byte
	for _, part := range strings.Split(r.Header.Get("Glint-Signature"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			t, _ = strconv.ParseInt(v, 10, 64)
		case "v1":
			sig, _ = hex.DecodeString(v)
		}
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if t == 0 || sig == nil {
		return "", 0, ErrBadSignature
	}
	if d := now().Sub(time.Unix(t, 0)); d > p.Tolerance || d < -p.Tolerance {
		return "", 0, fmt.Errorf("%w: timestamp outside %v", ErrBadSignature, p.Tolerance)
	}
	m := hmac.New(sha256.New, p.Secret)
	fmt.Fprintf(m, "%d.", t)
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return "", 0, ErrBadSignature
	}
	var n struct {
		Order  string `json:"order"`
		Status string `json:"status"`
		Amount int    `json:"amount"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return "", 0, fmt.Errorf("notification body: %w", err)
	}
	if n.Status != "paid" {
		return "", 0, fmt.Errorf("status %q: nothing to record", n.Status)
	}
	return n.Order, n.Amount, nil
}

// SignWebhook computes the Glint-Signature header value for a body, as a
// processor (or a test) does.
func SignWebhook(secret []byte, t time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d.", t.Unix())
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(m.Sum(nil)))
}

// StartCheckout creates an order for a viewer buying a tier and returns
// where to pay.
func (h *Hub) StartCheckout(ctx context.Context, p Provider, stream string, buyer Claims, tier int) (string, error) {
	if tier < 1 || tier > len(h.cfg.Tiers) {
		return "", fmt.Errorf("tier %d: choose 1 to %d", tier, len(h.cfg.Tiers))
	}
	if _, live := h.streams.StreamTime(stream); !live {
		return "", ErrNotLive
	}
	o := Order{ID: randomID(), Stream: stream, Buyer: buyer, Tier: tier, Amount: h.cfg.Tiers[tier-1].Cents, At: h.signer.now().Unix()}
	return p.Checkout(ctx, o, h.signer.sealOrder(o))
}

// CompleteOrder records a paid order reference once; amount must match.
func (h *Hub) CompleteOrder(ctx context.Context, ref string, amount int) (Order, error) {
	o, err := h.signer.openOrder(ref)
	if err != nil {
		return o, err
	}
	if amount != o.Amount {
		return o, ErrWrongAmount
	}
	return o, h.RecordPurchase(ctx, o.Stream, o.Buyer, o.Tier, o.Amount, o.ID)
}
