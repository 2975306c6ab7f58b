package ingest

import (
	"math/rand/v2"

	"github.com/zeebo/xxh3"
)

// dedupe remembers the most recent event ids of one table in a fixed-size
// ring, to drop producer retries that carry an event_id already seen.
//
// Ids are kept as 128-bit seeded xxh3 hashes (a false "duplicate" would
// silently drop a real event, so the collision odds must be negligible:
// ~1e-27 at a million ids; the random seed keeps crafted ids from
// colliding on purpose). Additions since the last commit are pending:
// if a batch is abandoned they are rolled back, so re-reading the same
// records does not mistake them for duplicates of themselves.
type dedupe struct {
	seed    uint64
	set     map[[2]uint64]struct{}
	ring    [][2]uint64
	next    int // ring slot of the next addition
	size    int
	pending int
}

func newDedupe(capacity int) *dedupe {
	if capacity <= 0 {
		return nil
	}
	return &dedupe{
		seed: rand.Uint64(),
		set:  make(map[[2]uint64]struct{}, capacity),
		ring: make([][2]uint64, capacity),
	}
}

func (d *dedupe) key(id []byte) [2]uint64 {
	h := xxh3.Hash128Seed(id, d.seed)
	return [2]uint64{h.Hi, h.Lo}
}

// seen reports whether id was seen; if not, it is added as pending.
func (d *dedupe) seen(id []byte) bool {
	if d == nil {
		return false
	}
	k := d.key(id)
	if _, ok := d.set[k]; ok {
		return true
	}
	d.add(k)
	if d.pending < len(d.ring) {
		d.pending++
	}
	return false
}

// preload adds committed ids (read back from the table at start).
func (d *dedupe) preload(id []byte) {
	if d == nil {
		return
	}
	k := d.key(id)
	if _, ok := d.set[k]; !ok {
		d.add(k)
	}
}

func (d *dedupe) add(k [2]uint64) {
	if d.size == len(d.ring) {
		delete(d.set, d.ring[d.next])
	} else {
		d.size++
	}
	d.ring[d.next] = k
	d.set[k] = struct{}{}
	d.next = (d.next + 1) % len(d.ring)
}

// commit makes pending ids permanent.
func (d *dedupe) commit() {
	if d != nil {
		d.pending = 0
	}
}

// rollback forgets the ids added since the last commit. Older ids that
// pending ones evicted from a full ring are not restored; the window is
// best-effort at its far edge by design.
func (d *dedupe) rollback() {
	if d == nil {
		return
	}
	for ; d.pending > 0; d.pending-- {
		d.next = (d.next - 1 + len(d.ring)) % len(d.ring)
		delete(d.set, d.ring[d.next])
		d.ring[d.next] = [2]uint64{}
		d.size--
	}
}

func (d *dedupe) len() int {
	if d == nil {
		return 0
	}
	return d.size
}
