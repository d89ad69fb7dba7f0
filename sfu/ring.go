package sfu

import (
	"encoding/binary"
	"sync"

	"github.com/glintlive/glint/internal/codec"
)

// ring is a layer's packet cache: a power-of-two array of fixed slots indexed
// by sequence number, each packet stored once. Only the layer's ingest
// goroutine writes; it reads its own slots without the lock. Other goroutines
// (NACK answers) copy a slot out under the lock.
type ring struct {
	mu    sync.Mutex
	slots []Packet
	mask  uint16
	valid []bool
}

func newRing(size int) ring {
	n := 1
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return ring{slots: make([]Packet, n), valid: make([]bool, n), mask: uint16(n - 1)}
}

// put stores b in the slot for its sequence number, parses it and inspects
// its payload. It returns nil without error for a duplicate.
func (r *ring) put(b []byte, ids *ExtIDs, k codec.Kind, now int64) (*Packet, error) {
	if len(b) < 12 {
		return nil, ErrMalformedRTP
	}
	seq := binary.BigEndian.Uint16(b[2:])
	i := seq & r.mask
	p := &r.slots[i]
	if r.valid[i] && p.SequenceNumber == seq && p.size == uint16(len(b)) {
		return nil, nil
	}
	r.mu.Lock()
	err := p.load(b, ids)
	if err == nil {
		p.Arrival = now
		inspect(k, p)
	}
	r.valid[i] = err == nil
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// copyOut copies the packet with sequence number seq into dst, if the ring
// still holds it.
func (r *ring) copyOut(seq uint16, dst *Packet) bool {
	i := seq & r.mask
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.valid[i] || r.slots[i].SequenceNumber != seq {
		return false
	}
	*dst = r.slots[i]
	return true
}
