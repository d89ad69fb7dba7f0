package chat

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/glintlive/glint/internal/httpx"
)

// API serves chat over HTTP: the WebSocket, history, tokens, moderation
// views and the badge checkout.
type API struct {
	hub     *Hub
	pay     Provider
	origins []string
	apiKey  string

	// Guest tokens per client address, and wrong keys (a host's stream
	// key, the operator's API key) per address.
	guests  httpx.Limiter
	guesses httpx.Backoff
}

// Token limits: guest tokens one address may mint (a household shares one
// address), and wrong keys before an address waits.
const (
	guestTokenRate  = 0.2 // a second: twelve a minute
	guestTokenBurst = 10
	keyFailures     = 5
)

// NewAPI returns chat's HTTP face. apiKey guards POST /api/tokens (the
// operator's login system calls it); empty turns that endpoint off.
func NewAPI(hub *Hub, pay Provider, origins []string, apiKey string) *API {
	return &API{hub: hub, pay: pay, origins: origins, apiKey: apiKey,
		guests:  httpx.Limiter{Rate: guestTokenRate, Burst: guestTokenBurst},
		guesses: httpx.Backoff{Free: keyFailures, Max: time.Minute}}
}

// maxAPIBody bounds chat API request bodies.
const maxAPIBody = 16 << 10

// tokenTTL is how long tokens the pages get live.
const tokenTTL = 12 * time.Hour

// Register adds chat's routes to m.
func (a *API) Register(m *http.ServeMux) {
	handle := func(pattern string, h http.HandlerFunc) { m.Handle(pattern, httpx.CORS(a.origins, h)) }
	handle("GET /api/streams/{stream}/chat", a.chat)
	handle("POST /api/streams/{stream}/chat/token", a.streamToken)
	handle("OPTIONS /api/streams/{stream}/chat/token", httpx.Preflight("OPTIONS, POST", nil))
	handle("GET /api/streams/{stream}/chat/audit", a.audit)
	handle("GET /api/streams/{stream}/supporters", a.supporters)
	handle("GET /api/streams/{stream}/badges", a.badges)
	handle("POST /api/streams/{stream}/badges/checkout", a.checkout)
	handle("OPTIONS /api/streams/{stream}/badges/checkout", httpx.Preflight("OPTIONS, POST", nil))
	handle("POST /api/tokens", a.issue)
	handle("POST /api/payments/webhook", a.webhook)
	if _, ok := a.pay.(TestProvider); ok {
		handle("GET /api/payments/test/{ref}", a.testCheckout)
		handle("POST /api/payments/test/{ref}", a.testPay)
	}
}

// status maps chat errors to HTTP.
func (a *API) status(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownStream):
		httpx.Problem(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenMalformed), errors.Is(err, ErrTokenSignature),
		errors.Is(err, ErrTokenStream), errors.Is(err, ErrReadOnly):
		httpx.Problem(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrNotLive):
		httpx.Problem(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrBadOrder), errors.Is(err, ErrWrongAmount):
		httpx.Problem(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrBadSignature):
		httpx.Problem(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		httpx.RetryLater(w, http.StatusServiceUnavailable, 2*time.Second, "chat is unavailable; try again")
	default:
		httpx.Problem(w, http.StatusBadRequest, err.Error())
	}
}

// chat is the WebSocket endpoint, and the history when not upgrading:
// ?from=&to= in stream-time milliseconds, ?after= to page.
func (a *API) chat(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !a.hub.streams.Known(stream) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
		return
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		a.serveWebSocket(w, r, stream)
		return
	}
	if !a.hub.cfg.Anonymous {
		if _, err := a.hub.signer.Verify(httpx.Bearer(r), stream); err != nil {
			a.status(w, err)
			return
		}
	}
	q := r.URL.Query()
	num := func(k string, def int64) (int64, bool) {
		if q.Get(k) == "" {
			return def, true
		}
		v, err := strconv.ParseInt(q.Get(k), 10, 64)
		return v, err == nil && v >= 0
	}
	from, ok1 := num("from", 0)
	to, ok2 := num("to", 1<<62)
	after, ok3 := num("after", 0)
	limit, ok4 := num("limit", 500)
	if !ok1 || !ok2 || !ok3 || !ok4 || from > to || limit < 1 || limit > 1000 {
		httpx.Problem(w, http.StatusBadRequest, "from, to, after: non-negative integers with from ≤ to; limit 1..1000")
		return
	}
	evs, next, err := a.hub.History(r.Context(), stream, from, to, uint64(after), int(limit))
	if err != nil {
		a.status(w, err)
		return
	}
	if evs == nil {
		evs = []*Envelope{}
	}
	httpx.JSON(w, http.StatusOK, struct {
		Events []*Envelope `json:"events"`
		Next   uint64      `json:"next,omitempty"`
	}{evs, next})
}

// tokenAnswer is what token endpoints return.
type tokenAnswer struct {
	Token   string `json:"token"`
	User    User   `json:"user"`
	Expires int64  `json:"expires"`
}

// streamToken gives the pages a token: the host's for the stream key in
// Authorization, otherwise a guest viewer's by name, when guests may chat.
func (a *API) streamToken(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !a.hub.streams.Known(stream) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
		return
	}
	raw, ok := httpx.ReadBody(w, r, maxAPIBody)
	if !ok {
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if len(raw) > 0 && json.Unmarshal(raw, &req) != nil {
		httpx.Problem(w, http.StatusBadRequest, "body: {\"name\": \"…\"}")
		return
	}
	c := Claims{Name: strings.TrimSpace(req.Name), Stream: stream, Role: RoleViewer}
	addr, now := httpx.ClientIP(r), time.Now()
	if key := httpx.Bearer(r); key != "" {
		if blocked, wait := a.guesses.Blocked(addr, now); blocked {
			httpx.RetryLater(w, http.StatusTooManyRequests, wait.Round(time.Second)+time.Second, "too many wrong keys from this address")
			return
		}
		if err := a.hub.streams.CheckKey(stream, key); err != nil {
			a.guesses.Fail(addr, now)
			httpx.Problem(w, http.StatusForbidden, "wrong stream key")
			return
		}
		a.guesses.Succeed(addr)
		c.Sub, c.Role = "host:"+stream, RoleHost
		if c.Name == "" {
			c.Name = "Host"
		}
	} else {
		if !a.hub.cfg.Guests {
			httpx.Problem(w, http.StatusForbidden, "guest chat is off: sign in through the site")
			return
		}
		if ok, wait := a.guests.Allow(addr, now); !ok {
			httpx.RetryLater(w, http.StatusTooManyRequests, max(wait.Round(time.Second), time.Second), "too many guest tokens from this address")
			return
		}
		c.Sub = "guest:" + randomID()
	}
	a.answerToken(w, c, tokenTTL)
}

func (a *API) answerToken(w http.ResponseWriter, c Claims, ttl time.Duration) {
	tok, err := a.hub.signer.Issue(c, ttl)
	if err != nil {
		httpx.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	httpx.JSON(w, http.StatusCreated, tokenAnswer{Token: tok, User: User{ID: c.Sub, Name: c.Name, Role: c.Role}, Expires: time.Now().Add(ttl).Unix()})
}

// issue is for the operator's own login system: any user, any role.
func (a *API) issue(w http.ResponseWriter, r *http.Request) {
	if a.apiKey == "" {
		httpx.Problem(w, http.StatusNotFound, "token issuing is off (no --api-key)")
		return
	}
	if subtle.ConstantTimeCompare([]byte(httpx.Bearer(r)), []byte(a.apiKey)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="glint"`)
		httpx.Problem(w, http.StatusUnauthorized, "Authorization: Bearer <api key> is required")
		return
	}
	raw, ok := httpx.ReadBody(w, r, maxAPIBody)
	if !ok {
		return
	}
	var req struct {
		UserID string `json:"user_id"`
		Name   string `json:"name"`
		Role   Role   `json:"role"`
		Stream string `json:"stream"`
		TTL    int    `json:"ttl_seconds"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		httpx.Problem(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if req.TTL == 0 {
		req.TTL = int(tokenTTL / time.Second)
	}
	a.answerToken(w, Claims{Sub: req.UserID, Name: req.Name, Role: req.Role, Stream: req.Stream}, time.Duration(req.TTL)*time.Second)
}

// moderator checks that a request's token moderates the stream.
func (a *API) moderator(w http.ResponseWriter, r *http.Request) (string, bool) {
	stream := r.PathValue("stream")
	c, err := a.hub.signer.Verify(httpx.Bearer(r), stream)
	if err != nil {
		a.status(w, err)
		return "", false
	}
	role, err := a.hub.Role(r.Context(), stream, c)
	if err != nil {
		a.status(w, err)
		return "", false
	}
	if !role.canModerate() {
		httpx.Problem(w, http.StatusForbidden, "for the host and moderators")
		return "", false
	}
	return stream, true
}

func (a *API) audit(w http.ResponseWriter, r *http.Request) {
	stream, ok := a.moderator(w, r)
	if !ok {
		return
	}
	evs, err := a.hub.Audit(r.Context(), stream)
	if err != nil {
		a.status(w, err)
		return
	}
	if evs == nil {
		evs = []*Envelope{}
	}
	httpx.JSON(w, http.StatusOK, struct {
		Actions []*Envelope `json:"actions"`
	}{evs})
}

func (a *API) supporters(w http.ResponseWriter, r *http.Request) {
	stream, ok := a.moderator(w, r)
	if !ok {
		return
	}
	list, err := a.hub.Supporters(r.Context(), stream)
	if err != nil {
		a.status(w, err)
		return
	}
	total := 0
	for _, s := range list {
		total += s.Total
	}
	httpx.JSON(w, http.StatusOK, struct {
		Supporters []Supporter `json:"supporters"`
		Total      int         `json:"total_cents"`
	}{list, total})
}

func (a *API) badges(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if !a.hub.streams.Known(stream) {
		httpx.Problem(w, http.StatusNotFound, "no stream called "+stream)
		return
	}
	_, live := a.hub.streams.StreamTime(stream)
	httpx.JSON(w, http.StatusOK, struct {
		Tiers    [3]Tier `json:"tiers"`
		Provider string  `json:"provider"`
		OnSale   bool    `json:"on_sale"`
	}{a.hub.cfg.Tiers, a.pay.Name(), live})
}

func (a *API) checkout(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	c, err := a.hub.signer.Verify(httpx.Bearer(r), stream)
	if err != nil {
		a.status(w, err)
		return
	}
	raw, ok := httpx.ReadBody(w, r, maxAPIBody)
	if !ok {
		return
	}
	var req struct {
		Tier int `json:"tier"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		httpx.Problem(w, http.StatusBadRequest, "body: {\"tier\": 1|2|3}")
		return
	}
	url, err := a.hub.StartCheckout(r.Context(), a.pay, stream, c, req.Tier)
	if err != nil {
		a.status(w, err)
		return
	}
	httpx.JSON(w, http.StatusCreated, struct {
		URL string `json:"url"`
	}{url})
}

func (a *API) webhook(w http.ResponseWriter, r *http.Request) {
	raw, ok := httpx.ReadBody(w, r, 64<<10)
	if !ok {
		return
	}
	ref, amount, err := a.pay.Notification(r, raw)
	if err != nil {
		if errors.Is(err, ErrBadSignature) {
			a.status(w, err)
			return
		}
		httpx.Problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := a.hub.CompleteOrder(r.Context(), ref, amount); err != nil {
		a.status(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

//nolint:gochecknoglobals // a parsed template, read-only
var testCheckoutPage = template.Must(template.New("pay").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test checkout · Glint</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main><h1>Test checkout</h1>
<p>{{.Tier.Name}} badge on <b>{{.Stream}}</b> for <b>{{.Buyer}}</b>: <b>{{.Price}}</b>.</p>
<p class="muted">This is Glint's test payment provider: no money moves and no card is asked for.</p>
<form method="post"><button id="pay" type="submit">Pay {{.Price}}</button></form>
</main></body></html>`))

func (a *API) testCheckout(w http.ResponseWriter, r *http.Request) {
	o, err := a.hub.signer.openOrder(r.PathValue("ref"))
	if err != nil {
		a.status(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = testCheckoutPage.Execute(w, map[string]any{
		"Tier": a.hub.cfg.Tiers[o.Tier-1], "Stream": o.Stream, "Buyer": o.Buyer.Name,
		"Price": fmt.Sprintf("$%d.%02d", o.Amount/100, o.Amount%100),
	})
}

func (a *API) testPay(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	o, err := a.hub.signer.openOrder(ref)
	if err != nil {
		a.status(w, err)
		return
	}
	if _, err := a.hub.CompleteOrder(r.Context(), ref, o.Amount); err != nil {
		a.status(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/watch/"+o.Stream+"?paid="+strconv.Itoa(o.Tier), http.StatusSeeOther)
}
