package signaling

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Invite errors; each is answered 403.
var (
	ErrBadInvite     = errors.New("not a valid invite for this stream")
	ErrInviteExpired = errors.New("the invite has expired")
	ErrInviteUsed    = errors.New("the invite was already used")
	ErrInviteRevoked = errors.New("the invite was revoked")
)

// Invite states.
const (
	invitePending = "pending"
	inviteUsed    = "used"
	inviteRevoked = "revoked"
	inviteExpired = "expired"
)

// invitePrefix starts every invite token, so a WHIP bearer token is told
// apart from a stream key without a lookup.
const invitePrefix = "gi1."

// maxInvites bounds the invites a stream holds at once (pending, used or
// revoked, until they expire).
const maxInvites = 32

// maxNameLength bounds a guest's display name, in characters.
const maxNameLength = 40

// invite is one guest invite of a stream.
type invite struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	State   string    `json:"state"`
	stream  string
}

// participant is the guest id an invite's holder publishes as: the same
// on every reconnect.
func (iv *invite) participant() string { return "g" + iv.ID }

// invites holds every stream's guest invites, in memory: a token is
// signed for one stream and expiry, and its state (used, revoked) lives
// here. A restart forgets them; the host makes new ones.
type invites struct {
	secret []byte
	ttl    time.Duration

	mu  sync.Mutex
	all map[string]*invite // by id
}

func newInvites(ttl time.Duration) *invites {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &invites{secret: secret, ttl: ttl, all: map[string]*invite{}}
}

// sign returns the MAC binding an invite id and expiry to a stream.
func (v *invites) sign(stream, id string, exp int64) []byte {
	m := hmac.New(sha256.New, v.secret)
	m.Write([]byte(stream + "\n" + id + "\n" + strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

// create makes an invite for stream and returns it with its token.
func (v *invites) create(stream, name string, now time.Time) (*invite, string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pruneLocked(now)
	n := 0
	for _, iv := range v.all {
		if iv.stream == stream {
			n++
		}
	}
	if n >= maxInvites {
		return nil, "", errTooManyInvites
	}
	iv := &invite{ID: randomHex(8), Name: name, Created: now, Expires: now.Add(v.ttl), State: invitePending, stream: stream}
	v.all[iv.ID] = iv
	exp := iv.Expires.Unix()
	token := invitePrefix + iv.ID + "." + strconv.FormatInt(exp, 36) + "." + base64.RawURLEncoding.EncodeToString(v.sign(stream, iv.ID, exp))
	return iv, token, nil
}

var errTooManyInvites = errors.New("too many invites")

// pruneLocked forgets invites past their expiry; a used one a day later,
// so a guest on stage for long can still return within its grace.
func (v *invites) pruneLocked(now time.Time) {
	for id, iv := range v.all {
		end := iv.Expires
		if iv.State == inviteUsed {
			end = end.Add(24 * time.Hour)
		}
		if now.After(end) {
			delete(v.all, id)
		}
	}
}

// revokeGuest revokes the invite guest participant id came in with, so a
// removed guest cannot come back with it.
func (v *invites) revokeGuest(stream, participant string) {
	if id, ok := strings.CutPrefix(participant, "g"); ok {
		v.revoke(stream, id)
	}
}

// revoked reports whether invite id was revoked.
func (v *invites) revoked(id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	iv := v.all[id]
	return iv != nil && iv.State == inviteRevoked
}

// claim checks token for stream in constant time and takes its invite:
// a pending one becomes used (release puts it back if the guest does not
// get in), a used one is let in again only while its guest is still in
// the room (returning within its grace).
func (v *invites) claim(stream, token string, inRoom func(participant string) bool, now time.Time) (iv *invite, release func(), err error) {
	rest, ok := strings.CutPrefix(token, invitePrefix)
	f := strings.Split(rest, ".")
	if !ok || len(f) != 3 {
		return nil, nil, ErrBadInvite
	}
	exp, err := strconv.ParseInt(f[1], 36, 64)
	mac, err2 := base64.RawURLEncoding.DecodeString(f[2])
	if err != nil || err2 != nil || !hmac.Equal(mac, v.sign(stream, f[0], exp)) {
		return nil, nil, ErrBadInvite
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	iv = v.all[f[0]]
	switch {
	case iv == nil && now.Unix() > exp:
		return nil, nil, ErrInviteExpired
	case iv == nil:
		return nil, nil, ErrBadInvite // forgotten by a restart
	case iv.State == inviteRevoked:
		return nil, nil, ErrInviteRevoked
	case iv.State == inviteUsed && inRoom(iv.participant()):
		// Its guest returning within its grace, however long it has
		// been on stage.
		return iv, func() {}, nil
	case now.Unix() > exp:
		return nil, nil, ErrInviteExpired
	case iv.State == inviteUsed:
		return nil, nil, ErrInviteUsed
	}
	iv.State = inviteUsed
	return iv, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if iv.State == inviteUsed {
			iv.State = invitePending
		}
	}, nil
}

// list returns stream's invites, oldest first.
func (v *invites) list(stream string, now time.Time) []invite {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []invite
	for _, iv := range v.all {
		if iv.stream != stream {
			continue
		}
		c := *iv
		if c.State == invitePending && now.After(c.Expires) {
			c.State = inviteExpired
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b invite) int { return a.Created.Compare(b.Created) })
	return out
}

// revoke revokes stream's invite id; it reports whether there was one.
func (v *invites) revoke(stream, id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	iv := v.all[id]
	if iv == nil || iv.stream != stream {
		return false
	}
	iv.State = inviteRevoked
	return true
}

// validName reports whether a guest's display name is short and printable.
func validName(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameLength {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// tokenHash is what a guest session keeps of its invite token, to check
// the bearer of its later requests.
func tokenHash(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// tokenHashOf is tokenHash as a slice, for comparing.
func tokenHashOf(token string) []byte {
	h := tokenHash(token)
	return h[:]
}
