package ingest

import (
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// countingAllocator is the allocator of a batch's Arrow builders (and,
// through files, of its Parquet writers): it counts the bytes they hold, which ingest keeps
// within Config.BatchMemory whatever the fan-out of the batch. Safe for
// concurrent use (the encoder's workers allocate too).
//
// It also recycles the builders' large buffers. A partition's chunks are built one
// after another with about the same sizes, and the encoder frees each
// chunk's buffers once it is written: the next chunk's builders take
// them back instead of the Go heap allocating (and the collector later
// scanning and sweeping) a few MiB per chunk again. The buffers kept for
// reuse are bounded (maxFree bytes) and are not counted as held.
type countingAllocator struct {
	base memory.GoAllocator // Go-managed memory: a buffer dropped from the pool needs no release
	held atomic.Int64

	mu        sync.Mutex
	free      [][]byte // freed buffers of at least minRecycled bytes
	freeBytes int64
	maxFree   int64
}

// minRecycled is the smallest buffer kept for reuse: below it the Go
// allocator is cheap enough (small size classes, no large span).
const minRecycled = 64 << 10

// newCountingAllocator returns an allocator that keeps at most maxFree
// bytes of freed buffers for reuse (0: none).
func newCountingAllocator(maxFree int64) *countingAllocator {
	return &countingAllocator{maxFree: maxFree}
}

// Allocate returns size bytes, zeroed like memory from the Go allocator
// (readers of a fresh buffer may rely on it).
func (a *countingAllocator) Allocate(size int) []byte {
	if b := a.reuse(size); b != nil {
		a.held.Add(int64(cap(b)))
		return b
	}
	b := a.base.Allocate(size)
	a.held.Add(int64(cap(b)))
	return b
}

// reuse takes the smallest kept buffer that holds size bytes and wastes
// at most a quarter of it, or returns nil.
func (a *countingAllocator) reuse(size int) []byte {
	if size < minRecycled || a.maxFree == 0 {
		return nil
	}
	a.mu.Lock()
	best := -1
	for i, b := range a.free {
		if c := cap(b); c >= size && c-c/4 <= size && (best < 0 || c < cap(a.free[best])) {
			best = i
		}
	}
	if best < 0 {
		a.mu.Unlock()
		return nil
	}
	b := a.free[best]
	last := len(a.free) - 1
	a.free[best], a.free[last] = a.free[last], nil
	a.free = a.free[:last]
	a.freeBytes -= int64(cap(b))
	a.mu.Unlock()
	b = b[:cap(b)]
	clear(b)
	return b[:size]
}

func (a *countingAllocator) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		return b[:size] // as the Go allocator does: the spare capacity is still zero
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

func (a *countingAllocator) Free(b []byte) {
	c := cap(b)
	a.held.Add(-int64(c))
	if c < minRecycled || a.maxFree == 0 {
		return
	}
	a.mu.Lock()
	if a.freeBytes+int64(c) <= a.maxFree {
		a.free = append(a.free, b)
		a.freeBytes += int64(c)
	}
	a.mu.Unlock()
}

// files is the allocator of the batch's Parquet writers: counted with
// the builders, never recycled. Only the builders' buffers are known to
// be unused once freed (the encoder releases a chunk after writing it);
// a writer that freed a buffer it still reads would go unnoticed with the
// Go allocator and corrupt a file with recycling.
func (a *countingAllocator) files() memory.Allocator { return (*countedOnly)(a) }

type countedOnly countingAllocator

func (a *countedOnly) Allocate(size int) []byte {
	b := a.base.Allocate(size)
	a.held.Add(int64(cap(b)))
	return b
}

func (a *countedOnly) Reallocate(size int, b []byte) []byte {
	nb := a.base.Reallocate(size, b)
	a.held.Add(int64(cap(nb) - cap(b)))
	return nb
}

func (a *countedOnly) Free(b []byte) { a.held.Add(-int64(cap(b))) }

// Held is the number of bytes allocated and not freed.
func (a *countingAllocator) Held() int64 { return a.held.Load() }

// memoryCheckEvery is how many records ingest adds between two looks at
// the batch's memory.
const memoryCheckEvery = 256

// keepWithinBudget closes the batch's open files early when its builders
// and writers hold more than the budget, and waits for the encoder to
// write and free them: reading pauses meanwhile. Called with mu held.
func (ing *Ingester) keepWithinBudget() {
	held := ing.alloc.Held()
	if held <= ing.cfg.BatchMemory() {
		return
	}
	n := ing.dlq.closeOpen()
	for _, ts := range ing.topics {
		n += ts.w.closeOpen()
	}
	ing.enc.drain()
	ing.m.filesEarly.Add(float64(n))
	ing.log.Debug("batch memory budget reached: open files closed early", "held_bytes", held, "files", n,
		"budget_bytes", ing.cfg.BatchMemory(), "now_bytes", ing.alloc.Held())
}
