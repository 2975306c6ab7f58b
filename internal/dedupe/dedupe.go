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
	ids        idSet // the hashes in ring
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
			p = &part{ring: make([]entry, 1024)}
			p.ids.init(len(p.ring))
			s.parts[k] = p
		}
		s.lastKey, s.lastPart = k, p
	}
	// Forget ids that fell out of the window. The entry's id is in the set
	// once: it could not be remembered again while the entry was in the
	// window (it would have been a duplicate).
	mask := len(p.ring) - 1 // a power of two
	for p.size > 0 {
		e := &p.ring[p.head]
		if e.off >= offset-s.window {
			break
		}
		p.ids.remove(e.h)
		p.head = (p.head + 1) & mask
		p.size--
	}
	if p.size == len(p.ring) {
		p.grow()
	}
	hv := xxh3.Hash128Seed(id, s.seed)
	h := [2]uint64{hv.Hi, hv.Lo}
	if !p.ids.add(h) {
		return true
	}
	p.ring[(p.head+p.size)&(len(p.ring)-1)] = entry{off: offset, h: h}
	p.size++
	return false
}

func (p *part) grow() {
	n := make([]entry, 2*len(p.ring))
	for i := 0; i < p.size; i++ {
		n[i] = p.ring[(p.head+i)&(len(p.ring)-1)]
	}
	p.ring, p.head = n, 0
	p.ids.init(len(n))
	for _, e := range n[:p.size] {
		p.ids.add(e.h)
	}
}

// idSet is a set of id hashes: open addressing with linear probing in a
// table at most half full, and backward-shift deletion (no tombstones).
// The hashes are uniform already, so the first word picks the slot; the
// zero hash marks an empty slot, and an id that hashes to it is stored as
// {0, 1} (a collision of 2^-128).
//
// A window of offsets is mostly evictions and insertions of ids never
// seen; one probe answers "seen before?" and finds the free slot, where a
// Go map would hash the key again for its lookup, insertion and deletion.
type idSet struct {
	slots [][2]uint64
	mask  uint64
}

func (t *idSet) init(capacity int) {
	n := 1
	for n < 2*capacity {
		n *= 2
	}
	t.slots, t.mask = make([][2]uint64, n), uint64(n-1)
}

func canonical(h [2]uint64) [2]uint64 {
	if h == ([2]uint64{}) {
		h[1] = 1
	}
	return h
}

// add inserts h and reports whether it was absent. The caller keeps the
// table at most half full (init with twice the entries it may hold).
func (t *idSet) add(h [2]uint64) bool {
	h = canonical(h)
	for i := h[0] & t.mask; ; i = (i + 1) & t.mask {
		switch t.slots[i] {
		case h:
			return false
		case [2]uint64{}:
			t.slots[i] = h
			return true
		}
	}
}

// remove deletes h and moves later members of its probe run back so that
// every member stays reachable from its slot.
func (t *idSet) remove(h [2]uint64) {
	h = canonical(h)
	i := h[0] & t.mask
	for t.slots[i] != h {
		if t.slots[i] == ([2]uint64{}) {
			return // not a member
		}
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.slots[j] != ([2]uint64{}); j = (j + 1) & t.mask {
		// The member at j may move to the hole at i unless its home slot
		// lies cyclically in (i, j].
		if home := t.slots[j][0] & t.mask; (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = [2]uint64{}
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
