package chat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// dedupeWindow is how many recent post ids a memory stream remembers.
const dedupeWindow = 4096

// memWindow is how many recent events a memory stream keeps in memory;
// older ones are read back from its file when asked for.
const memWindow = 10_000

// syncEvery is how often appended events are fsynced: each event is one
// write(2), which a crash of this process cannot lose; an OS crash or
// power loss loses at most this much.
const syncEvery = time.Second

// Memory is the single-node backplane: each stream's recent events in
// memory, and every event appended to a file in dir (when dir is set), so
// a restart loses nothing and memory stays bounded however long the
// stream.
//
// The file is JSON lines. At load, a line that does not parse, or whose
// sequence number does not follow the ones before it, is moved to
// <stream>.jsonl.corrupt and logged; every good line is kept, numbering
// continues past every number the file may have held (a damaged line's
// included), and the file is rewritten without the damage, ending on a
// newline.
type Memory struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	streams map[string]*memStream
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

type memStream struct {
	head    uint64      // the last sequence number given
	recent  []*Envelope // the last memWindow events, oldest first
	disk    []diskRef   // every event in the file: seq and offset
	ids     map[string]uint64
	idOrder []string
	changed chan struct{} // closed and replaced on every append
	file    *os.File
	path    string
	size    int64
	dirty   bool // written since the last fsync
}

type diskRef struct {
	seq uint64
	off int64
}

// NewMemory returns a memory backplane; with dir set, logs persist there
// as one JSON line per event. log receives damage reports (nil: slog's
// default).
func NewMemory(dir string, log *slog.Logger) (*Memory, error) {
	if log == nil {
		log = slog.Default()
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	m := &Memory{dir: dir, log: log, streams: map[string]*memStream{}, stop: make(chan struct{}), done: make(chan struct{})}
	go m.syncLoop()
	return m, nil
}

// syncLoop fsyncs the files with new events once a second.
func (m *Memory) syncLoop() {
	defer close(m.done)
	t := time.NewTicker(syncEvery)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			for name, s := range m.streams {
				if s.dirty && s.file != nil {
					if err := s.file.Sync(); err != nil {
						m.log.Error("chat log fsync failed", "stream", name, "err", err)
					}
					s.dirty = false
				}
			}
			m.mu.Unlock()
		}
	}
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
		s.path = filepath.Join(m.dir, name+".jsonl")
		if err := m.load(name, s); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		s.file = f
	}
	m.streams[name] = s
	return s, nil
}

// maxSeq is the highest sequence number: the largest integer a
// JavaScript client reads exactly from JSON. A line numbered above it is
// damage.
const maxSeq = 1<<53 - 1

// load reads a stream's file, keeping every good line and setting damage
// aside (see Memory).
func (m *Memory) load(name string, s *memStream) error {
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var good, bad bytes.Buffer
	var damaged int
	var lastGood uint64
	afterLast := 0 // damaged lines after the last good one
	for off := 0; off < len(raw); {
		end := bytes.IndexByte(raw[off:], '\n')
		line := raw[off:]
		if end >= 0 {
			line = raw[off : off+end]
		}
		next := off + len(line) + 1
		var e Envelope
		switch {
		case len(bytes.TrimSpace(line)) == 0:
		case json.Unmarshal(line, &e) != nil || e.Seq <= lastGood || e.Seq > maxSeq:
			damaged++
			afterLast++
			fmt.Fprintf(&bad, "%d\t%s\n", off, line)
		default:
			lastGood, afterLast = e.Seq, 0
			s.disk = append(s.disk, diskRef{seq: e.Seq, off: int64(good.Len())})
			good.Write(line)
			good.WriteByte('\n')
			s.keep(&e)
			s.remember(e.ID, e.Seq)
		}
		off = next
	}
	// A damaged line may have held the next number, and a client may have
	// seen it: numbering continues past it.
	s.head = lastGood + uint64(afterLast)
	s.size = int64(good.Len())
	if damaged == 0 && (len(raw) == 0 || raw[len(raw)-1] == '\n') {
		return nil
	}
	if damaged > 0 {
		m.log.Error("chat log damaged: kept every good line, moved the damaged ones aside",
			"stream", name, "kept", len(s.disk), "damaged", damaged, "quarantine", s.path+".corrupt", "next_seq", s.head+1)
		q, err := os.OpenFile(s.path+".corrupt", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		_, werr := q.Write(bad.Bytes())
		if err := errors.Join(werr, q.Sync(), q.Close()); err != nil {
			return fmt.Errorf("quarantining damaged chat lines: %w", err)
		}
	}
	return writeAtomic(s.path, good.Bytes())
}

// writeAtomic replaces path with b: a crash leaves the old file or the new.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".chat-*.jsonl")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// keep adds e to the in-memory window.
func (s *memStream) keep(e *Envelope) {
	s.recent = append(s.recent, e)
	if len(s.recent) > memWindow {
		s.recent = append(s.recent[:0:0], s.recent[len(s.recent)-memWindow/2:]...)
	}
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
	if s.head >= maxSeq {
		return 0, fmt.Errorf("%w: stream %q has used every sequence number", ErrUnavailable, stream)
	}
	c := *e
	c.Seq = s.head + 1
	if s.file != nil {
		line, err := json.Marshal(&c)
		if err != nil {
			return 0, err
		}
		// One write per event: the OS has it even if this process dies.
		if _, err := s.file.Write(append(line, '\n')); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		s.disk = append(s.disk, diskRef{seq: c.Seq, off: s.size})
		s.size += int64(len(line) + 1)
		s.dirty = true
	}
	s.head = c.Seq
	s.keep(&c)
	s.remember(c.ID, c.Seq)
	close(s.changed)
	s.changed = make(chan struct{})
	return c.Seq, nil
}

// Range implements Backplane: from memory when the window holds the
// events asked for, else from the file.
func (m *Memory) Range(_ context.Context, stream string, after uint64, limit int) ([]*Envelope, error) {
	m.mu.Lock()
	s, err := m.stream(stream)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	limit = max(limit, 0)
	if len(s.recent) > 0 && (after+1 >= s.recent[0].Seq || s.file == nil) {
		i := sort.Search(len(s.recent), func(i int) bool { return s.recent[i].Seq > after })
		out := append([]*Envelope(nil), s.recent[i:min(len(s.recent), i+limit)]...)
		m.mu.Unlock()
		return out, nil
	}
	i := sort.Search(len(s.disk), func(i int) bool { return s.disk[i].seq > after })
	if i == len(s.disk) || limit == 0 {
		m.mu.Unlock()
		return nil, nil
	}
	off, path := s.disk[i].off, s.path
	m.mu.Unlock()
	return readEvents(path, off, after, limit)
}

// readEvents reads up to limit events after sequence number after from a
// log file, starting at offset off.
func readEvents(path string, off int64, after uint64, limit int) ([]*Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), HardMaxFrame*2)
	var out []*Envelope
	for len(out) < limit && sc.Scan() {
		var e Envelope
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Seq > after {
			out = append(out, &e)
		}
	}
	return out, nil
}

// Head implements Backplane.
func (m *Memory) Head(_ context.Context, stream string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.stream(stream)
	if err != nil {
		return 0, err
	}
	return s.head, nil
}

// Tail implements Backplane.
func (m *Memory) Tail(ctx context.Context, stream string, after uint64, fn func(*Envelope)) error {
	for {
		batch, err := m.Range(ctx, stream, after, 1000)
		if err != nil {
			return err
		}
		for _, e := range batch {
			fn(e)
			after = e.Seq
		}
		if len(batch) > 0 {
			continue
		}
		m.mu.Lock()
		s, err := m.stream(stream)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		changed, head := s.changed, s.head
		more := len(s.recent) > 0 && s.recent[len(s.recent)-1].Seq > after
		m.mu.Unlock()
		switch {
		case more:
			continue // appended since the Range above
		case head > after:
			after = head // numbers skipped past damage: nothing to wait for
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
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	var errs []error
	for _, s := range m.streams {
		if s.file != nil {
			errs = append(errs, s.file.Sync(), s.file.Close())
		}
		close(s.changed)
		s.changed = make(chan struct{})
	}
	m.mu.Unlock()
	<-m.done
	return errors.Join(errs...)
}
