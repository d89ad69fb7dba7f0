package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/glintlive/glint/internal/redisx"
)

// Redis is the backplane for nodes that share a Redis: each stream's log
// is a Redis stream whose entry ids are the sequence numbers, appended by a
// script that numbers and stores in one step, so every node reads one
// order.
type Redis struct {
	c      *redis.Client
	prefix string

	mu   sync.Mutex
	seen map[string]uint64 // highest sequence number this node saw per stream
}

// NewRedis connects to the Redis at url (redis://host:port/db).
func NewRedis(ctx context.Context, url string) (*Redis, error) {
	c, err := redisx.Dial(ctx, url, 2*time.Second, 3*time.Second)
	if err != nil {
		return nil, err
	}
	return &Redis{c: c, prefix: "glint:chat:", seen: map[string]uint64{}}, nil
}

// keys are one stream's keys, in one hash slot.
func (r *Redis) keys(stream string) (seq, log, ids string) {
	base := r.prefix + "{" + stream + "}:"
	return base + "seq", base + "log", base + "id:"
}

// appendScript numbers and stores an event in one step. A known post id
// returns its sequence number; a counter behind what nodes have seen (a
// Redis that lost data) is raised first.
//
//nolint:gochecknoglobals // a compiled script, read-only
var appendScript = redis.NewScript(`
if ARGV[2] ~= "" then
  local prev = redis.call('GET', KEYS[3] .. ARGV[2])
  if prev then return {tonumber(prev), 1} end
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[3]) then redis.call('SET', KEYS[1], ARGV[3]) end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], seq .. '-0', 'e', ARGV[1])
if ARGV[2] ~= "" then redis.call('SET', KEYS[3] .. ARGV[2], seq, 'EX', 3600) end
return {seq, 0}
`)

// Append implements Backplane.
func (r *Redis) Append(ctx context.Context, stream string, e *Envelope) (uint64, error) {
	c := *e
	c.Seq = 0
	raw, err := json.Marshal(&c)
	if err != nil {
		return 0, err
	}
	seqKey, logKey, idPrefix := r.keys(stream)
	r.mu.Lock()
	floor := r.seen[stream]
	r.mu.Unlock()
	res, err := appendScript.Run(ctx, r.c, []string{seqKey, logKey, idPrefix}, raw, e.ID, floor).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.note(stream, uint64(res[0]))
	return uint64(res[0]), nil
}

func (r *Redis) note(stream string, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.seen[stream] {
		r.seen[stream] = seq
	}
}

func decode(m redis.XMessage) (*Envelope, error) {
	ms, _, _ := strings.Cut(m.ID, "-")
	seq, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return nil, err
	}
	raw, _ := m.Values["e"].(string)
	var e Envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return nil, err
	}
	e.Seq = seq
	return &e, nil
}

// Range implements Backplane.
func (r *Redis) Range(ctx context.Context, stream string, after uint64, limit int) ([]*Envelope, error) {
	_, logKey, _ := r.keys(stream)
	msgs, err := r.c.XRangeN(ctx, logKey, "("+strconv.FormatUint(after, 10)+"-0", "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := make([]*Envelope, 0, len(msgs))
	for _, m := range msgs {
		e, err := decode(m)
		if err != nil {
			continue // not ours
		}
		out = append(out, e)
	}
	return out, nil
}

// Head implements Backplane.
func (r *Redis) Head(ctx context.Context, stream string) (uint64, error) {
	seqKey, _, _ := r.keys(stream)
	n, err := r.c.Get(ctx, seqKey).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n, nil
}

// tailRetry is the least wait before reading again after a failure.
const tailRetry = 200 * time.Millisecond

// Tail implements Backplane: a blocking read from the last delivered
// entry, retried with backoff while Redis is away.
func (r *Redis) Tail(ctx context.Context, stream string, after uint64, fn func(*Envelope)) error {
	_, logKey, _ := r.keys(stream)
	last := strconv.FormatUint(after, 10) + "-0"
	wait := tailRetry
	for ctx.Err() == nil {
		res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{logKey, last}, Count: 512, Block: 2 * time.Second}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
			continue
		}
		wait = tailRetry
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				e, err := decode(m)
				if err != nil {
					continue
				}
				r.note(stream, e.Seq)
				fn(e)
			}
		}
	}
	return nil
}

// Close implements Backplane.
func (r *Redis) Close() error { return r.c.Close() }

// SharedSecret returns the token secret every node on this Redis uses:
// the first node to ask stores candidate, the rest read it. (A Redis that
// loses its data gets a new one from the next node to start; operators
// who run many nodes set one explicitly.)
func (r *Redis) SharedSecret(ctx context.Context, candidate []byte) ([]byte, error) {
	key := r.prefix + "secret"
	if err := r.c.SetNX(ctx, key, candidate, 0).Err(); err != nil {
		return nil, err
	}
	return r.c.Get(ctx, key).Bytes()
}
