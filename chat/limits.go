package chat

import (
	"strings"
	"time"
	"unicode"
)

// bucket is a token bucket: rate tokens a second, up to burst.
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time, rate float64, burst int) bool {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// recentTexts remembers a user's last few messages to refuse repeats.
type recentTexts struct {
	texts [4]string
	ids   [4]string
	at    [4]time.Time
	next  int
}

// repeats reports whether text was sent within window under another post
// id: the same id is a retry of that post, which the log deduplicates.
func (r *recentTexts) repeats(text, id string, now time.Time, window time.Duration) bool {
	norm := normalize(text)
	for i, t := range r.texts {
		if t == norm && now.Sub(r.at[i]) < window && (id == "" || r.ids[i] != id) {
			return true
		}
	}
	return false
}

// remember notes a message that made it into the log.
func (r *recentTexts) remember(text, id string, now time.Time) {
	r.texts[r.next], r.ids[r.next], r.at[r.next] = normalize(text), id, now
	r.next = (r.next + 1) % len(r.texts)
}

// normalize folds case and runs of space, so "HI  there" repeats "hi there".
func normalize(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// words splits text into lower-case words of letters and digits.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// blockedWord returns the first blocked word in text.
func blockedWord(text string, blocked map[string]bool) (string, bool) {
	if len(blocked) == 0 {
		return "", false
	}
	for _, w := range words(text) {
		if blocked[w] {
			return w, true
		}
	}
	return "", false
}

// cleanWord validates an entry of the blocked-words list.
func cleanWord(w string) (string, bool) {
	ws := words(w)
	if len(ws) != 1 || len(ws[0]) > 32 {
		return "", false
	}
	return ws[0], true
}
