package chat

import (
	"context"
	"errors"
)

// Backplane is the one source of truth for a stream's order: it numbers
// events, keeps them, and delivers them to every node in that order. The
// memory backplane serves one node; the Redis backplane many.
type Backplane interface {
	// Append gives e the stream's next sequence number, keeps it and
	// publishes it. An event whose ID was appended before (a retried post)
	// is not appended again: the earlier sequence number comes back.
	Append(ctx context.Context, stream string, e *Envelope) (uint64, error)
	// Range returns up to limit events after sequence number after, oldest
	// first.
	Range(ctx context.Context, stream string, after uint64, limit int) ([]*Envelope, error)
	// Head returns the stream's last sequence number.
	Head(ctx context.Context, stream string) (uint64, error)
	// Tail calls fn with every event after sequence number after, in order,
	// as they are appended on any node, until ctx ends. It rides out
	// outages of the backplane without gaps or duplicates.
	Tail(ctx context.Context, stream string, after uint64, fn func(*Envelope)) error
	// Close releases the backplane.
	Close() error
}

// ErrUnavailable wraps backplane failures a client may retry.
var ErrUnavailable = errors.New("chat backplane unavailable")
