package chat

import "slices"

// roomState is what a stream's log says about it, as of a sequence
// number. Every node derives the same state by applying the same log in
// the same order: that is how a ban issued on one node holds on all.
type roomState struct {
	last     uint64
	settings Settings
	words    map[string]bool
	mods     map[string]bool
	hosts    map[string]bool  // users whose host tokens have acted in the log
	bans     map[string]int64 // user id → until (ms since 1970), 0 for good
	badges   map[string]*Supporter
	orders   map[string]bool // payment orders already counted
	deleted  map[uint64]bool
	lastPost map[string]int64 // user id → server time of their last message, ms
}

// Supporter is a buyer's standing in a stream.
type Supporter struct {
	User  User `json:"user"`
	Tier  int  `json:"tier"`
	Total int  `json:"total_cents"`
	Count int  `json:"purchases"`
}

func newRoomState() roomState {
	return roomState{
		settings: Settings{Comments: true},
		words:    map[string]bool{}, mods: map[string]bool{}, hosts: map[string]bool{}, bans: map[string]int64{},
		badges: map[string]*Supporter{}, orders: map[string]bool{}, deleted: map[uint64]bool{},
		lastPost: map[string]int64{},
	}
}

// apply folds one event of the log into the state.
func (s *roomState) apply(e *Envelope) {
	s.last = e.Seq
	if e.From != nil && e.From.Role == RoleHost {
		s.hosts[e.From.ID] = true
	}
	switch e.Type {
	case TypeMessage:
		if e.From != nil {
			s.lastPost[e.From.ID] = e.TS
		}
	case TypeDelete:
		if b, err := body[DeleteBody](e); err == nil {
			s.deleted[b.Seq] = true
		}
	case TypeBadge:
		b, err := body[BadgeBody](e)
		if err != nil || s.orders[b.Order] {
			return
		}
		s.orders[b.Order] = true
		sp := s.badges[b.User.ID]
		if sp == nil {
			sp = &Supporter{User: b.User}
			s.badges[b.User.ID] = sp
		}
		sp.User.Name = b.User.Name
		sp.Tier = max(sp.Tier, b.Tier)
		sp.Total += b.Amount
		sp.Count++
	case TypeModeration:
		b, err := body[ModerationBody](e)
		if err != nil {
			return
		}
		switch b.Action {
		case "ban":
			s.bans[b.User] = 0
		case "timeout":
			s.bans[b.User] = b.Until
		case "unban":
			delete(s.bans, b.User)
		case "mod":
			s.mods[b.User] = true
		case "unmod":
			delete(s.mods, b.User)
		case "slow":
			s.settings.Slow = b.Seconds
		case "comments":
			if b.On != nil {
				s.settings.Comments = *b.On
			}
		case "words":
			for _, w := range b.Add {
				s.words[w] = true
			}
			for _, w := range b.Remove {
				delete(s.words, w)
			}
			s.settings.Words = len(s.words)
		}
	}
}

// banned reports whether a user may not post at time now (ms), and until
// when (0 for good).
func (s *roomState) banned(user string, now int64) (bool, int64) {
	until, ok := s.bans[user]
	if !ok || (until != 0 && until <= now) {
		return false, 0
	}
	return true, until
}

// role is a user's effective role: a token's host stays host; the host's
// appointment makes a viewer a moderator.
func (s *roomState) role(c Claims) Role {
	switch {
	case c.Role == RoleHost || s.hosts[c.Sub]:
		return RoleHost
	case c.Role == RoleModerator || s.mods[c.Sub]:
		return RoleModerator
	}
	return RoleViewer
}

// supporters lists buyers, biggest total first.
func (s *roomState) supporters() []Supporter {
	out := make([]Supporter, 0, len(s.badges))
	for _, sp := range s.badges {
		out = append(out, *sp)
	}
	slices.SortFunc(out, func(a, b Supporter) int {
		if a.Total != b.Total {
			return b.Total - a.Total
		}
		if a.User.ID < b.User.ID {
			return -1
		}
		return 1
	})
	return out
}
