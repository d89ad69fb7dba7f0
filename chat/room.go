package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Room is one stream's chat on this node: the state derived from the log,
// the connected clients, and recent events for joins and resumes.
type Room struct {
	hub  *Hub
	name string

	mu      sync.Mutex
	state   roomState
	conns   []*Conn // copied on change: fan-out reads a snapshot
	recent  []recentEvent
	ready   chan struct{}
	readyAt uint64

	limMu     sync.Mutex
	limits    map[string]*userLimits
	addrPosts map[netip.Addr]*bucket // posts per client address, all users

	reactMu   sync.Mutex
	reactions map[string]int
	flushing  bool
}

type recentEvent struct {
	seq   uint64
	typ   string
	frame []byte
}

type userLimits struct {
	post, react bucket
	texts       recentTexts
	seen        time.Time
}

// appendTimeout bounds one append to the backplane.
const appendTimeout = 3 * time.Second

// deliver applies an event from the log and hands it, encoded once, to
// every connection. It runs on the room's tail goroutine, in log order.
func (r *Room) deliver(e *Envelope) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.state.apply(e)
	r.recent = append(r.recent, recentEvent{seq: e.Seq, typ: e.Type, frame: b})
	if over := len(r.recent) - r.hub.cfg.ResumeMax; over > 0 {
		r.recent = slices.Delete(r.recent, 0, over)
	}
	if r.ready != nil && e.Seq >= r.readyAt {
		close(r.ready)
		r.ready = nil
	}
	conns := r.conns
	r.mu.Unlock()
	for _, c := range conns {
		c.enqueue(b)
	}
}

// join adds a connection and sends it the hello and its backlog, under the
// same lock that delivery takes: nothing is missed or sent twice. With
// resume, the backlog is what came after that sequence number (bounded);
// otherwise the last messages.
func (r *Room) join(ctx context.Context, c *Conn, resume bool, after uint64) {
	var fetched []*Envelope
	if resume {
		r.mu.Lock()
		oldest := uint64(0)
		if len(r.recent) > 0 {
			oldest = r.recent[0].seq
		}
		r.mu.Unlock()
		if after+1 < oldest {
			from := max(after, oldest-1-min(oldest-1, uint64(r.hub.cfg.ResumeMax)))
			fetched, _ = r.hub.bp.Range(ctx, r.name, from, r.hub.cfg.ResumeMax)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The backlog goes to the writer before anything queued: a resume of
	// hundreds of events does not count against the send queue.
	if hello, err := json.Marshal(r.helloLocked(c)); err == nil {
		c.backlog = append(c.backlog, hello)
	}
	if resume {
		var frames [][]byte
		last := after
		for _, e := range fetched {
			if e.Type == TypeReactions {
				continue
			}
			if b, err := json.Marshal(e); err == nil {
				frames = append(frames, b)
			}
			last = e.Seq
		}
		for _, ev := range r.recent {
			if ev.seq > last && ev.typ != TypeReactions {
				frames = append(frames, ev.frame)
			}
		}
		if over := len(frames) - r.hub.cfg.ResumeMax; over > 0 {
			frames = frames[over:]
		}
		c.backlog = append(c.backlog, frames...)
	} else {
		var frames [][]byte
		for i := len(r.recent) - 1; i >= 0 && len(frames) < r.hub.cfg.Backlog; i-- {
			ev := r.recent[i]
			if (ev.typ == TypeMessage && !r.state.deleted[ev.seq]) || ev.typ == TypeBadge {
				frames = append(frames, ev.frame)
			}
		}
		slices.Reverse(frames)
		c.backlog = append(c.backlog, frames...)
	}
	r.conns = append(slices.Clip(r.conns), c)
}

func (r *Room) leave(c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := slices.Index(r.conns, c); i >= 0 {
		r.conns = slices.Delete(slices.Clone(r.conns), i, i+1)
	}
}

// Connections returns how many clients this node has in the room.
func (r *Room) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

func (r *Room) helloLocked(c *Conn) *Envelope {
	h := HelloBody{Stream: r.name, Settings: r.state.settings, Last: r.state.last, Emoji: r.hub.cfg.Emoji}
	if cl := c.identity(); cl != nil {
		u := r.userLocked(*cl)
		h.You = &u
	}
	return &Envelope{V: Version, Type: TypeHello, Seq: r.state.last, TS: time.Now().UnixMilli(), Body: mustJSON(h)}
}

func (r *Room) userLocked(c Claims) User {
	u := User{ID: c.Sub, Name: c.Name, Role: r.state.role(c)}
	if sp := r.state.badges[c.Sub]; sp != nil {
		u.Badge = sp.Tier
	}
	return u
}

// addrShare is how many users' worth of posts one client address may make:
// a household or an office behind one address, not a token farm.
const addrShare = 4

// addrAllowLocked takes a post from the client address's bucket; an
// unknown address is not limited here.
func (r *Room) addrAllowLocked(a netip.Addr, now time.Time) bool {
	if !a.IsValid() {
		return true
	}
	if r.addrPosts == nil {
		r.addrPosts = map[netip.Addr]*bucket{}
	}
	b := r.addrPosts[a]
	if b == nil {
		if len(r.addrPosts) > 10000 {
			for x, o := range r.addrPosts {
				if now.Sub(o.last) > time.Minute {
					delete(r.addrPosts, x)
				}
			}
		}
		b = &bucket{}
		r.addrPosts[a] = b
	}
	return b.allow(now, r.hub.cfg.Rate*addrShare, r.hub.cfg.Burst*addrShare)
}

// limitsFor returns a user's rate state on this node.
func (r *Room) limitsFor(user string, now time.Time) *userLimits {
	r.limMu.Lock()
	defer r.limMu.Unlock()
	l := r.limits[user]
	if l == nil {
		if len(r.limits) > 10000 {
			for id, o := range r.limits {
				if now.Sub(o.seen) > time.Minute {
					delete(r.limits, id)
				}
			}
		}
		l = &userLimits{}
		r.limits[user] = l
	}
	l.seen = now
	return l
}

// streamTime clamps what a client says it was watching to a sane window
// around the stream clock: at most two minutes behind, two seconds ahead.
func (r *Room) streamTime(client *int64) *int64 {
	now, ok := r.hub.streams.StreamTime(r.name)
	if !ok {
		return nil
	}
	st := now
	if client != nil {
		st = min(max(*client, now-120_000, 0), now+2_000)
	}
	return &st
}

// handle serves one request from a client.
func (r *Room) handle(c *Conn, frame []byte) error {
	e, err := ParseEnvelope(frame)
	if err != nil {
		return err
	}
	switch e.Type {
	case TypePing:
		c.send(&Envelope{V: Version, Type: TypePong, Ref: e.Ref, TS: time.Now().UnixMilli()})
		return nil
	case TypeAuth:
		return r.auth(c, e)
	case TypeResume:
		return r.resume(c, e)
	case TypeMessage:
		return r.post(c, e)
	case TypeReaction:
		return r.react(c, e)
	}
	if isModeration(e.Type) {
		return r.moderate(c, e)
	}
	return fail(CodeBadType, "unknown type %q", e.Type)
}

func (r *Room) auth(c *Conn, e *Envelope) error {
	b, err := body[AuthBody](e)
	if err != nil {
		return err
	}
	cl, err := r.hub.signer.Verify(b.Token, r.name)
	if err != nil {
		return fail(CodeAuth, "%v", err)
	}
	c.mu.Lock()
	c.claims = &cl
	c.mu.Unlock()
	r.mu.Lock()
	hello := r.helloLocked(c)
	r.mu.Unlock()
	hello.Ref = e.Ref
	c.send(hello)
	return nil
}

func (r *Room) resume(c *Conn, e *Envelope) error {
	b, err := body[ResumeBody](e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	// At most half a send queue per request: a client wanting more asks
	// again after the last sequence number it got.
	evs, err := r.hub.bp.Range(ctx, r.name, b.After, r.hub.cfg.SendQueue/2)
	if err != nil {
		return fail(CodeUnavailable, "history is unavailable; try again")
	}
	for _, ev := range evs {
		if ev.Type != TypeReactions {
			c.send(ev)
		}
	}
	return nil
}

// requireUser returns the poster's claims and live standing.
func (r *Room) requireUser(c *Conn) (Claims, User, error) {
	cl := c.identity()
	if cl == nil {
		return Claims{}, User{}, fail(CodeAuth, "sign in to chat")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return *cl, r.userLocked(*cl), nil
}

func (r *Room) post(c *Conn, e *Envelope) error {
	cl, user, err := r.requireUser(c)
	if err != nil {
		return err
	}
	b, err := body[MessageBody](e)
	if err != nil {
		return err
	}
	text := strings.TrimSpace(b.Text)
	switch {
	case text == "":
		return fail(CodeBadFrame, "empty message")
	case utf8.RuneCountInString(text) > r.hub.cfg.MaxLength:
		return fail(CodeTooLong, "messages are at most %d characters", r.hub.cfg.MaxLength)
	case !utf8.ValidString(text):
		return fail(CodeBadFrame, "not UTF-8")
	}
	now := time.Now()
	r.mu.Lock()
	banned, until := r.state.banned(cl.Sub, now.UnixMilli())
	settings := r.state.settings
	last := r.state.lastPost[cl.Sub]
	word, blocked := blockedWord(text, r.state.words)
	r.mu.Unlock()
	mod := user.Role.canModerate()
	switch {
	case banned && user.Role == RoleHost:
		// The host is never silenced in their own stream.
	case banned && until == 0:
		return fail(CodeBanned, "you are banned from this chat")
	case banned:
		return fail(CodeBanned, "you are timed out for %ds more", (until-now.UnixMilli()+999)/1000)
	case !settings.Comments && !mod:
		return fail(CodeClosed, "comments are off")
	case settings.Slow > 0 && !mod && now.UnixMilli()-last < int64(settings.Slow)*1000:
		return fail(CodeRate, "slow mode: one message every %ds", settings.Slow)
	case blocked:
		return fail(CodeBlocked, "%q is not allowed here", word)
	}
	lim := r.limitsFor(cl.Sub, now)
	r.limMu.Lock()
	ok := lim.post.allow(now, r.hub.cfg.Rate, r.hub.cfg.Burst) && r.addrAllowLocked(c.addr, now)
	dup := ok && lim.texts.repeats(text, e.ID, now, r.hub.cfg.DuplicateWindow)
	r.limMu.Unlock()
	if !ok {
		return fail(CodeRate, "too many messages; slow down")
	}
	if dup {
		return fail(CodeDuplicate, "you just sent that")
	}
	id := e.ID
	if id == "" {
		id = randomID()
	}
	ev := &Envelope{V: Version, Type: TypeMessage, TS: now.UnixMilli(), From: &user, ID: cl.Sub + ":" + id,
		ST: r.streamTime(e.ST), Body: mustJSON(MessageBody{Text: text})}
	if err := r.appendAndAck(c, e, ev); err != nil {
		return err // not remembered: a retry is not a repeat
	}
	r.limMu.Lock()
	lim.texts.remember(text, e.ID, now)
	r.limMu.Unlock()
	return nil
}

func (r *Room) appendAndAck(c *Conn, req, ev *Envelope) error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	seq, err := r.hub.bp.Append(ctx, r.name, ev)
	if err != nil {
		return fail(CodeUnavailable, "chat is unavailable; try again")
	}
	if isModeration(req.Type) {
		r.awaitApplied(ctx, seq)
	}
	c.send(&Envelope{V: Version, Type: TypeAck, Seq: seq, Ref: req.Ref, ID: req.ID, TS: time.Now().UnixMilli()})
	return nil
}

// isModeration reports whether a request changes what others may do.
func isModeration(typ string) bool {
	switch typ {
	case TypeDelete, TypeTimeout, TypeBan, TypeUnban, TypeMod, TypeSlow, TypeComments, TypeWords:
		return true
	}
	return false
}

// awaitApplied waits (up to ctx) until the room's state holds event seq:
// the room applies its log on its own follower, after the append returns,
// and a moderator's acknowledged timeout or ban must hold for the very
// next post. Moderation is rare; a short poll keeps delivery untouched.
func (r *Room) awaitApplied(ctx context.Context, seq uint64) {
	for {
		r.mu.Lock()
		last := r.state.last
		r.mu.Unlock()
		if last >= seq || ctx.Err() != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (r *Room) react(c *Conn, e *Envelope) error {
	cl, _, err := r.requireUser(c)
	if err != nil {
		return err
	}
	b, err := body[ReactionBody](e)
	if err != nil {
		return err
	}
	if !slices.Contains(r.hub.cfg.Emoji, b.Emoji) {
		return fail(CodeBadFrame, "reactions are %s", strings.Join(r.hub.cfg.Emoji, " "))
	}
	now := time.Now()
	lim := r.limitsFor(cl.Sub, now)
	r.limMu.Lock()
	ok := lim.react.allow(now, r.hub.cfg.ReactionRate, r.hub.cfg.ReactionBurst)
	r.limMu.Unlock()
	if !ok {
		return fail(CodeRate, "too many reactions")
	}
	r.reactMu.Lock()
	defer r.reactMu.Unlock()
	r.reactions[b.Emoji]++
	if !r.flushing {
		r.flushing = true
		time.AfterFunc(r.hub.cfg.ReactionWindow, r.flushReactions)
	}
	return nil
}

// flushReactions appends one burst: counts per emoji over the window. A
// million hearts cost one event.
func (r *Room) flushReactions() {
	r.reactMu.Lock()
	counts := r.reactions
	r.reactions = map[string]int{}
	r.flushing = false
	r.reactMu.Unlock()
	if len(counts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	_, _ = r.hub.bp.Append(ctx, r.name, &Envelope{V: Version, Type: TypeReactions, TS: time.Now().UnixMilli(), ST: r.streamTime(nil),
		Body: mustJSON(ReactionsBody{Counts: counts, Window: int(r.hub.cfg.ReactionWindow / time.Millisecond)})})
}

// moderate serves the moderators' and the host's requests; each becomes an
// event in the log, which is also the audit trail: who (from), when (ts).
func (r *Room) moderate(c *Conn, e *Envelope) error {
	cl, user, err := r.requireUser(c)
	if err != nil {
		return err
	}
	if !user.Role.canModerate() {
		return fail(CodeForbidden, "only moderators can do that")
	}
	now := time.Now()
	ev := &Envelope{V: Version, Type: TypeModeration, TS: now.UnixMilli(), From: &user, ST: r.streamTime(nil)}
	r.mu.Lock()
	settings := r.state.settings
	state := &r.state
	r.mu.Unlock()
	targetRole := func(id string) Role {
		if strings.HasPrefix(id, "host:") {
			return RoleHost
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return state.role(Claims{Sub: id, Role: RoleViewer})
	}
	mb := ModerationBody{Settings: settings}
	switch e.Type {
	case TypeDelete:
		b, err := body[DeleteBody](e)
		if err != nil {
			return err
		}
		ev.Type, ev.Body = TypeDelete, mustJSON(b)
		return r.appendAndAck(c, e, ev)
	case TypeTimeout, TypeBan, TypeUnban:
		b, err := body[TargetBody](e)
		if err != nil {
			return err
		}
		if b.User == "" || b.User == cl.Sub {
			return fail(CodeBadFrame, "name another user")
		}
		switch targetRole(b.User) {
		case RoleHost:
			return fail(CodeForbidden, "nobody can act on the host")
		case RoleModerator:
			if user.Role != RoleHost {
				return fail(CodeForbidden, "only the host can act on a moderator")
			}
		}
		mb.Action, mb.User = e.Type, b.User
		if e.Type == TypeTimeout {
			if b.Seconds < 1 || b.Seconds > 7*24*3600 {
				return fail(CodeBadFrame, "a timeout lasts 1s to 7 days")
			}
			mb.Seconds, mb.Until = b.Seconds, now.Add(time.Duration(b.Seconds)*time.Second).UnixMilli()
		}
	case TypeMod:
		if user.Role != RoleHost {
			return fail(CodeForbidden, "only the host appoints moderators")
		}
		b, err := body[TargetBody](e)
		if err != nil {
			return err
		}
		if b.User == "" || b.User == cl.Sub {
			return fail(CodeBadFrame, "name another user")
		}
		mb.Action, mb.User = "unmod", b.User
		if b.Grant {
			mb.Action = "mod"
		}
	case TypeSlow:
		b, err := body[SlowBody](e)
		if err != nil {
			return err
		}
		if b.Seconds < 0 || b.Seconds > 600 {
			return fail(CodeBadFrame, "slow mode is 0 (off) to 600 seconds")
		}
		mb.Action, mb.Seconds = "slow", b.Seconds
		mb.Settings.Slow = b.Seconds
	case TypeComments:
		b, err := body[CommentsBody](e)
		if err != nil {
			return err
		}
		mb.Action, mb.On = "comments", &b.On
		mb.Settings.Comments = b.On
	case TypeWords:
		b, err := body[WordsBody](e)
		if err != nil {
			return err
		}
		if len(b.Add)+len(b.Remove) == 0 || len(b.Add)+len(b.Remove) > 100 {
			return fail(CodeBadFrame, "add or remove 1 to 100 words")
		}
		for _, list := range []struct {
			in  []string
			out *[]string
		}{{b.Add, &mb.Add}, {b.Remove, &mb.Remove}} {
			for _, w := range list.in {
				cw, ok := cleanWord(w)
				if !ok {
					return fail(CodeBadFrame, "%q is not one word of at most 32 letters", w)
				}
				*list.out = append(*list.out, cw)
			}
		}
		r.mu.Lock()
		total := len(r.state.words) + len(mb.Add)
		r.mu.Unlock()
		if total > 1000 {
			return fail(CodeBadFrame, "at most 1000 blocked words")
		}
		mb.Action = "words"
		mb.Settings.Words = total - len(mb.Remove)
	}
	ev.Body = mustJSON(mb)
	return r.appendAndAck(c, e, ev)
}

func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
