// Package redisx opens the Redis connections nodes share (chat's log and
// the mesh directory): one place for the URL, the timeouts and the check
// that the server answers.
package redisx

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dial connects to the Redis at url (redis://host:port/db) with a dial
// timeout and a read/write timeout per command, and fails unless it
// answers a PING within 5 s.
func Dial(ctx context.Context, url string, dial, rw time.Duration) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = dial, rw, rw
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return c, nil
}
