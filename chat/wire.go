package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the envelope version. Clients send it; the server answers
// with it and rejects envelopes from a newer major version.
const Version = 1

// Envelope is every frame on a chat connection, in both directions: a
// versioned JSON object. Server events carry Seq (their place in the
// stream's log) and ST (the stream time, in milliseconds, they belong to).
type Envelope struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	Seq  uint64          `json:"seq,omitempty"`
	ST   *int64          `json:"st,omitempty"` // stream time, ms; clients send what they were watching
	TS   int64           `json:"ts,omitempty"` // server wall clock, ms since 1970
	From *User           `json:"from,omitempty"`
	ID   string          `json:"id,omitempty"`  // client-chosen id of a post, echoed (and deduplicated)
	Ref  string          `json:"ref,omitempty"` // correlates an error or ack with the request
	Body json.RawMessage `json:"body,omitempty"`
}

// User is who sent something, as chat shows it.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Role  Role   `json:"role"`
	Badge int    `json:"badge,omitempty"` // badge tier bought for this stream, 0 for none
}

// Role is a chatter's standing in a stream.
type Role string

// Roles.
const (
	RoleViewer    Role = "viewer"
	RoleModerator Role = "moderator"
	RoleHost      Role = "host"
)

func (r Role) canModerate() bool { return r == RoleModerator || r == RoleHost }

// Event types the server sends.
const (
	TypeHello      = "hello"      // once, after connecting: who you are, the stream's settings
	TypeMessage    = "message"    // a chat message
	TypeReactions  = "reactions"  // a burst: counts per emoji over a window
	TypeDelete     = "delete"     // a message was removed
	TypeModeration = "moderation" // a ban, timeout, role change or settings change
	TypeBadge      = "badge"      // a badge was bought
	TypeError      = "error"      // a request failed; the connection stays up
	TypeAck        = "ack"        // a post was accepted, with its sequence number
	TypeClosed     = "closed"     // the server is dropping this connection, with a reason
	TypePong       = "pong"
)

// Request types a client sends.
const (
	TypeAuth     = "auth"     // {token}
	TypeResume   = "resume"   // {after}: what was missed since sequence number after
	TypeReaction = "reaction" // {emoji}
	TypeTimeout  = "timeout"  // {user, seconds}
	TypeBan      = "ban"      // {user}
	TypeUnban    = "unban"    // {user}
	TypeMod      = "mod"      // {user, grant}: the host appoints or removes a moderator
	TypeSlow     = "slow"     // {seconds}: least time between a viewer's messages, 0 off
	TypeComments = "comments" // {on}
	TypeWords    = "words"    // {add, remove}: the blocked-words list
	TypePing     = "ping"
	// TypeMessage and TypeDelete are requests too: {text} and {seq}.
)

// Bodies.
type (
	// MessageBody is a chat message.
	MessageBody struct {
		Text string `json:"text"`
	}
	// ReactionBody is one reaction a client sends.
	ReactionBody struct {
		Emoji string `json:"emoji"`
	}
	// ReactionsBody is a burst of reactions.
	ReactionsBody struct {
		Counts map[string]int `json:"counts"`
		Window int            `json:"window_ms"`
	}
	// DeleteBody names the message removed.
	DeleteBody struct {
		Seq uint64 `json:"seq"`
	}
	// ModerationBody is a moderation action as everyone sees it.
	ModerationBody struct {
		Action   string   `json:"action"` // ban, unban, timeout, mod, unmod, slow, comments, words
		User     string   `json:"user,omitempty"`
		Seconds  int      `json:"seconds,omitempty"`
		On       *bool    `json:"on,omitempty"`
		Add      []string `json:"add,omitempty"`
		Remove   []string `json:"remove,omitempty"`
		Until    int64    `json:"until,omitempty"` // ms since 1970, for a timeout
		Settings Settings `json:"settings"`        // the stream's settings after the action
	}
	// BadgeBody is a purchase.
	BadgeBody struct {
		User   User   `json:"user"`
		Tier   int    `json:"tier"`
		Amount int    `json:"amount_cents"`
		Total  int    `json:"total_cents"` // the buyer's total for this stream
		Order  string `json:"order"`
	}
	// ErrorBody says what went wrong.
	ErrorBody struct {
		Code   string `json:"code"`
		Reason string `json:"reason"`
	}
	// HelloBody greets a connection.
	HelloBody struct {
		Stream   string   `json:"stream"`
		You      *User    `json:"you,omitempty"` // nil: read-only
		Settings Settings `json:"settings"`
		Last     uint64   `json:"last_seq"`
		Emoji    []string `json:"emoji"`
	}
	// AuthBody signs a connection in with a token.
	AuthBody struct {
		Token string `json:"token"`
	}
	// ResumeBody asks for the events after a sequence number; it and the
	// bodies below are requests.
	ResumeBody struct {
		After uint64 `json:"after"`
	}
	// TargetBody names a user for a moderation request.
	TargetBody struct {
		User    string `json:"user"`
		Seconds int    `json:"seconds,omitempty"`
		Grant   bool   `json:"grant,omitempty"`
	}
	// SlowBody sets slow mode.
	SlowBody struct {
		Seconds int `json:"seconds"`
	}
	// CommentsBody turns comments on or off.
	CommentsBody struct {
		On bool `json:"on"`
	}
	// WordsBody adds and removes blocked words.
	WordsBody struct {
		Add    []string `json:"add,omitempty"`
		Remove []string `json:"remove,omitempty"`
	}
)

// Settings are a stream's chat settings; every node holds the same.
type Settings struct {
	Slow     int  `json:"slow_seconds"`
	Comments bool `json:"comments"`
	Words    int  `json:"blocked_words"` // how many; the words are not broadcast
}

// Error codes in error events.
const (
	CodeBadFrame    = "bad_frame"   // not a JSON envelope, or too large
	CodeBadType     = "bad_type"    // unknown type
	CodeBadVersion  = "bad_version" // a newer envelope version
	CodeAuth        = "auth"        // no or bad token
	CodeForbidden   = "forbidden"   // the role cannot do that
	CodeRate        = "rate"        // too fast
	CodeDuplicate   = "duplicate"   // the same text again
	CodeTooLong     = "too_long"
	CodeBlocked     = "blocked" // a blocked word
	CodeBanned      = "banned"
	CodeClosed      = "comments_off"
	CodeUnavailable = "unavailable" // the backplane is down; retry
	CodeNotFound    = "not_found"
)

// reqError is a failed request: it becomes an error event.
type reqError struct {
	code, reason string
}

func (e *reqError) Error() string { return e.code + ": " + e.reason }

// problem is the event telling a client why something failed: an error
// (typ TypeError) or the end of its connection (TypeClosed).
func problem(typ, code, reason, ref string) *Envelope {
	return &Envelope{V: Version, Type: typ, Ref: ref, TS: time.Now().UnixMilli(), Body: mustJSON(ErrorBody{Code: code, Reason: reason})}
}

func fail(code, format string, a ...any) error {
	return &reqError{code: code, reason: fmt.Sprintf(format, a...)}
}

// MaxFrame is the largest frame a client may send; larger ones get an
// error event. Transports refuse frames beyond HardMaxFrame outright.
const (
	MaxFrame     = 4 << 10
	HardMaxFrame = 64 << 10
)

// ParseEnvelope decodes a client frame, checking size and version.
func ParseEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxFrame {
		return nil, fail(CodeBadFrame, "frame of %d bytes, at most %d", len(b), MaxFrame)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fail(CodeBadFrame, "not JSON: %v", err)
		}
		return nil, fail(CodeBadFrame, "not an envelope: %v", err)
	}
	if e.V > Version {
		return nil, fail(CodeBadVersion, "envelope version %d, this server speaks %d", e.V, Version)
	}
	if e.Type == "" {
		return nil, fail(CodeBadType, "no type")
	}
	if len(e.Ref) > 64 || len(e.ID) > 64 {
		return nil, fail(CodeBadFrame, "ref and id are at most 64 characters")
	}
	return &e, nil
}

// body decodes an envelope's body into v.
func body[T any](e *Envelope) (T, error) {
	var v T
	if len(e.Body) == 0 {
		return v, fail(CodeBadFrame, "%s needs a body", e.Type)
	}
	if err := json.Unmarshal(e.Body, &v); err != nil {
		return v, fail(CodeBadFrame, "%s body: %v", e.Type, err)
	}
	return v, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are marshalled
	}
	return b
}
