// Package dedupe decides which events are producer retries: an event is a
// duplicate when the same event_id occurred at a lower offset of the same
// Kafka partition within the previous Window offsets.
//
// The rule depends only on the partition's own record sequence, so every
// reader of the partition (ingest writing the lake, the hot tier serving
// fresh rows, a replay after a crash) reaches the same decision for the
// same record, provided it has seen the Window records before it; readers
// get there by starting Window offsets before the point where they begin
// to emit rows. A retry keeps its key and so lands in the same partition;
// duplicates across partitions are not this package's business.
package dedupe

import (
	"math/rand/v2"

	"github.com/zeebo/xxh3"
)

// Key identifies a partition.
type Key struct {
	Topic     string
	Partition int32
}

// Set tracks the windows of many partitions. It is not safe for concurrent
// use.
type Set struct {
	window int64
	seed   uint64
	parts  map[Key]*part
	// The partition of the last call: consecutive calls are nearly
	// always for the same one (records come a partition at a time).
	lastKey  Key
	lastPart *part
}

// New returns a Set with a window of the given number of offsets; a window
// of 0 disables deduplication.
func New(window int64) *Set {
	return &Set{window: window, seed: rand.Uint64(), parts: map[Key]*part{}}
}

// Window is the number of offsets looked back.
func (s *Set) Window() int64 {
	if s == nil {
		return 0
	}
	return s.window
}

// entry is one remembered id: ids are kept as 128-bit seeded xxh3 hashes
// (a false "duplicate" would silently drop a real event, so collisions must
// be negligible: ~1e-27 at a million ids; the random seed keeps crafted ids
// from colliding on purpose).
type entry struct {
	off int64
	h   [2]uint64
}

type part struct {
	ring       []entry // offset order, oldest at head
	head, size int
	last       map[[2]uint64]int64 // id -> offset it was last remembered at
}

// Seen reports whether id at offset is a duplicate in its partition, and
// remembers it if not. Offsets must be presented in increasing order per
// partition (as Kafka delivers them).
func (s *Set) Seen(k Key, offset int64, id []byte) bool {
	if s == nil || s.window <= 0 {
		return false
	}
	p := s.lastPart
	if p == nil || k != s.lastKey {
		if p = s.parts[k]; p == nil {
			p = &part{ring: make([]entry, 1024), last: map[[2]uint64]int64{}}
			s.parts[k] = p
		}
		s.lastKey, s.lastPart = k, p
	}
	// Forget ids that fell out of the window. The map holds the evicted
	// entry's own offset: the id could not be remembered again while the
	// entry was in the window (it would have been a duplicate).
	mask := len(p.ring) - 1 // a power of two
	for p.size > 0 {
		e := &p.ring[p.head]
		if e.off >= offset-s.window {
			break
		}
		delete(p.last, e.h)
		p.head = (p.head + 1) & mask
		p.size--
	}
	hv := xxh3.Hash128Seed(id, s.seed)
	h := [2]uint64{hv.Hi, hv.Lo}
	if _, dup := p.last[h]; dup {
		return true
	}
	if p.size == len(p.ring) {
		p.grow()
		mask = len(p.ring) - 1
	}
	p.ring[(p.head+p.size)&mask] = entry{off: offset, h: h}
	p.size++
	p.last[h] = offset
	return false
}

func (p *part) grow() {
	n := make([]entry, 2*len(p.ring))
	for i := 0; i < p.size; i++ {
		n[i] = p.ring[(p.head+i)&(len(p.ring)-1)]
	}
	p.ring, p.head = n, 0
}

// Reset forgets a partition (after it was revoked, or before re-reading it).
func (s *Set) Reset(k Key) {
	if s != nil {
		delete(s.parts, k)
		if s.lastKey == k {
			s.lastKey, s.lastPart = Key{}, nil
		}
	}
}

// Len is the number of ids remembered for a partition.
func (s *Set) Len(k Key) int {
	if s == nil || s.parts[k] == nil {
		return 0
	}
	return s.parts[k].size
}
