package signaling

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestInviteLifecycle(t *testing.T) {
	v := newInvites(time.Hour)
	now := time.Now()
	nobody := func(string) bool { return false }
	iv, tok, err := v.create("demo", "Ann", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.claim("other", tok, nobody, now); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("another stream: %v", err)
	}
	if _, _, err := v.claim("demo", tok, nobody, now.Add(time.Hour+time.Second)); !errors.Is(err, ErrInviteExpired) {
		t.Fatalf("past its expiry: %v", err)
	}
	got, release, err := v.claim("demo", tok, nobody, now)
	if err != nil || got.ID != iv.ID {
		t.Fatalf("claim: %v", err)
	}
	if _, _, err := v.claim("demo", tok, nobody, now); !errors.Is(err, ErrInviteUsed) {
		t.Fatalf("used twice: %v", err)
	}
	// Back in the room within its grace, the same guest is let in again.
	inRoom := func(id string) bool { return id == iv.participant() }
	if _, _, err := v.claim("demo", tok, inRoom, now); err != nil {
		t.Fatalf("the guest returning: %v", err)
	}
	release() // the guest never got in: the invite is pending again
	if _, _, err := v.claim("demo", tok, nobody, now); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if !v.revoke("demo", iv.ID) {
		t.Fatal("revoke found nothing")
	}
	if _, _, err := v.claim("demo", tok, inRoom, now); !errors.Is(err, ErrInviteRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	// Tokens forged from another's pieces do not pass.
	_, tok2, _ := v.create("demo", "", now)
	f1, f2 := strings.Split(tok, "."), strings.Split(tok2, ".")
	if _, _, err := v.claim("demo", strings.Join([]string{f1[0], f2[1], f1[2], f1[3]}, "."), nobody, now); !errors.Is(err, ErrBadInvite) {
		t.Fatalf("a spliced token: %v", err)
	}
	for range maxInvites {
		_, _, _ = v.create("demo", "", now)
	}
	if _, _, err := v.create("demo", "", now); err == nil {
		t.Fatal("no bound on a stream's invites")
	}
	if _, _, err := v.create("demo", "", now.Add(2*time.Hour)); err != nil {
		t.Fatalf("expired invites were not forgotten: %v", err)
	}
	// A guest on stage past its invite's expiry still returns with it.
	w := newInvites(time.Hour)
	iv2, tok3, _ := w.create("demo", "", now)
	if _, _, err := w.claim("demo", tok3, nobody, now); err != nil {
		t.Fatal(err)
	}
	late := now.Add(3 * time.Hour)
	if _, _, err := w.claim("demo", tok3, func(id string) bool { return id == iv2.participant() }, late); err != nil {
		t.Fatalf("a guest on stage for 3 h returning: %v", err)
	}
	if _, _, err := w.claim("demo", tok3, nobody, late); !errors.Is(err, ErrInviteExpired) {
		t.Fatalf("an expired invite of a guest who left: %v", err)
	}
}

func TestGuestNames(t *testing.T) {
	for name, ok := range map[string]bool{"": true, "Ann": true, "Zoë 🎤": true, "a\nb": false, strings.Repeat("x", maxNameLength+1): false, "\xff": false} {
		if validName(name) != ok {
			t.Errorf("validName(%q) = %v", name, !ok)
		}
	}
}

// FuzzInviteToken feeds claim whatever a WHIP bearer token may hold: it
// must refuse without panicking, and never accept a token it did not make.
func FuzzInviteToken(f *testing.F) {
	v := newInvites(time.Hour)
	now := time.Now()
	_, tok, _ := v.create("demo", "", now)
	f.Add(tok)
	f.Add(invitePrefix + "..")
	f.Add(invitePrefix + "00.zz.AAAA")
	f.Add("gi1.0123456789abcdef.-1.x")
	f.Fuzz(func(t *testing.T, s string) {
		iv, _, err := v.claim("demo", s, func(string) bool { return true }, now)
		if err == nil && s != tok {
			t.Fatalf("accepted %q, which it did not make", s)
		}
		if err == nil && iv == nil {
			t.Fatal("no invite and no error")
		}
	})
}
