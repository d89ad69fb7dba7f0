package chat

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// dedupeWindow is how many recent post ids a memory stream remembers.
const dedupeWindow = 4096

// Memory is the single-node backplane: each stream's log in memory,
// appended to a file in dir (when dir is set) so a restart loses nothing.
type Memory struct {
	dir string

	mu      sync.Mutex
	streams map[string]*memStream
	closed  bool
}

type memStream struct {
	log     []*Envelope
	ids     map[string]uint64
	idOrder []string
	changed chan struct{} // closed and replaced on every append
	file    *os.File
}

// NewMemory returns a memory backplane; with dir set, logs persist there
// as one JSON line per event.
func NewMemory(dir string) (*Memory, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return &Memory{dir: dir, streams: map[string]*memStream{}}, nil
}

// stream returns a stream's state, loading its file on first use.
func (m *Memory) stream(name string) (*memStream, error) {
	if m.closed {
		return nil, fmt.Errorf("%w: closed", ErrUnavailable)
	}
	if s := m.streams[name]; s != nil {
		return s, nil
	}
	s := &memStream{ids: map[string]uint64{}, changed: make(chan struct{})}
	if m.dir != "" {
		path := filepath.Join(m.dir, name+".jsonl")
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), HardMaxFrame*2)
			for sc.Scan() {
				var e Envelope
				if json.Unmarshal(sc.Bytes(), &e) != nil || e.Seq != uint64(len(s.log))+1 {
					break // a torn last line after a crash ends the log
				}
				s.log = append(s.log, &e)
				s.remember(e.ID, e.Seq)
			}
			_ = f.Close()
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		s.file = f
	}
	m.streams[name] = s
	return s, nil
}

func (s *memStream) remember(id string, seq uint64) {
	if id == "" {
		return
	}
	s.ids[id] = seq
	s.idOrder = append(s.idOrder, id)
	if len(s.idOrder) > dedupeWindow {
		delete(s.ids, s.idOrder[0])
		s.idOrder = s.idOrder[1:]
	}
}

// Append implements Backplane.
func (m *Memory) Append(_ context.Context, stream string, e *Envelope) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.stream(stream)
	if err != nil {
		return 0, err
	}
	if seq, ok := s.ids[e.ID]; ok && e.ID != "" {
		return seq, nil
	}
	c := *e
	c.Seq = uint64(len(s.log)) + 1
	if s.file != nil {
		line, err := json.Marshal(&c)
		if err != nil {
			return 0, err
		}
		// One write per event: the OS has it even if this process dies.
		if _, err := s.file.Write(append(line, '\n')); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	s.log = append(s.log, &c)
	s.remember(c.ID, c.Seq)
	close(s.changed)
	s.changed = make(chan struct{})
	return c.Seq, nil
}

// Range implements Backplane.
func (m *Memory) Range(_ context.Context, stream string, after uint64, limit int) ([]*Envelope, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.stream(stream)
	if err != nil {
		return nil, err
	}
	if after >= uint64(len(s.log)) {
		return nil, nil
	}
	end := min(uint64(len(s.log)), after+uint64(max(limit, 0)))
	return append([]*Envelope(nil), s.log[after:end]...), nil
}

// Head implements Backplane.
func (m *Memory) Head(_ context.Context, stream string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.stream(stream)
	if err != nil {
		return 0, err
	}
	return uint64(len(s.log)), nil
}

// Tail implements Backplane.
func (m *Memory) Tail(ctx context.Context, stream string, after uint64, fn func(*Envelope)) error {
	for {
		m.mu.Lock()
		s, err := m.stream(stream)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		var batch []*Envelope
		if after < uint64(len(s.log)) {
			batch = append(batch, s.log[after:]...)
		}
		changed := s.changed
		m.mu.Unlock()
		for _, e := range batch {
			fn(e)
			after = e.Seq
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Close implements Backplane: files are synced and closed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	var errs []error
	for _, s := range m.streams {
		if s.file != nil {
			errs = append(errs, s.file.Sync(), s.file.Close())
		}
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return errors.Join(errs...)
}
