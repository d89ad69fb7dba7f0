package chat

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// Claims are what a chat token says about its holder.
type Claims struct {
	Sub    string `json:"sub"`    // user id
	Name   string `json:"name"`   // display name
	Role   Role   `json:"role"`   // host, moderator or viewer
	Stream string `json:"stream"` // the stream it is for; "*" for any
	Exp    int64  `json:"exp"`    // expiry, seconds since 1970
}

// Errors from Verify.
var (
	ErrTokenMalformed = errors.New("malformed token")
	ErrTokenSignature = errors.New("bad token signature")
	ErrTokenExpired   = errors.New("token expired")
	ErrTokenStream    = errors.New("token is for another stream")
)

// Signer issues and checks tokens: base64url(JSON claims) "." base64url
// (HMAC-SHA256 of the first part). Every node sharing a secret accepts the
// others' tokens.
type Signer struct {
	key []byte
	now func() time.Time
}

// NewSigner returns a signer for a secret of at least 32 bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 32 {
		return nil, errors.New("chat secret must be at least 32 bytes")
	}
	return &Signer{key: secret, now: time.Now}, nil
}

// MaxTokenTTL bounds how long a token lives.
const MaxTokenTTL = 24 * time.Hour

// Issue signs claims valid for ttl.
func (s *Signer) Issue(c Claims, ttl time.Duration) (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", errors.New("token lifetime must be within 24h")
	}
	c.Exp = s.now().Add(ttl).Unix()
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p)), nil
}

func (c *Claims) check() error {
	switch {
	case c.Sub == "" || len(c.Sub) > 64:
		return errors.New("user id must be 1-64 characters")
	case c.Name == "" || utf8.RuneCountInString(c.Name) > 32 || strings.ContainsAny(c.Name, "\n\r\t"):
		return errors.New("name must be 1-32 characters on one line")
	case c.Role != RoleViewer && c.Role != RoleModerator && c.Role != RoleHost:
		return errors.New("role must be host, moderator or viewer")
	case c.Stream == "":
		return errors.New("a token names its stream, or * for any")
	}
	return nil
}

func (s *Signer) mac(p string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(p))
	return m.Sum(nil)
}

// Verify checks a token's signature and expiry and that it is valid for
// stream.
func (s *Signer) Verify(token, stream string) (Claims, error) {
	var c Claims
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 2048 {
		return c, ErrTokenMalformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, ErrTokenMalformed
	}
	if !hmac.Equal(got, s.mac(p)) {
		return c, ErrTokenSignature
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.check() != nil {
		return Claims{}, ErrTokenMalformed
	}
	if s.now().Unix() >= c.Exp {
		return Claims{}, ErrTokenExpired
	}
	if c.Stream != "*" && c.Stream != stream {
		return Claims{}, ErrTokenStream
	}
	return c, nil
}
