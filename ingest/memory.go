package ingest

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// countingAllocator is the allocator of a batch's Arrow builders and
// Parquet writers: it counts the bytes they hold, which ingest keeps
// within Config.BatchMemory whatever the fan-out of the batch. Safe for
// concurrent use (the encoder's workers allocate too).
type countingAllocator struct {
	memory.Allocator
	held atomic.Int64
}

func newCountingAllocator(a memory.Allocator) *countingAllocator {
	return &countingAllocator{Allocator: a}
}

func (a *countingAllocator) Allocate(size int) []byte {
	a.held.Add(int64(size))
	return a.Allocator.Allocate(size)
}

func (a *countingAllocator) Reallocate(size int, b []byte) []byte {
	a.held.Add(int64(size - len(b)))
	return a.Allocator.Reallocate(size, b)
}

func (a *countingAllocator) Free(b []byte) {
	a.held.Add(-int64(len(b)))
	a.Allocator.Free(b)
}

// Held is the number of bytes allocated and not freed.
func (a *countingAllocator) Held() int64 { return a.held.Load() }

// memoryCheckEvery is how many records ingest adds between two looks at
// the batch's memory.
const memoryCheckEvery = 256

// batchHeld is what the batch's builders and writers hold: what they
// allocated through the counting allocator, and the encoder's estimate of
// what its open Parquet writers hold outside it (encoder.charge).
func (ing *Ingester) batchHeld() int64 { return ing.alloc.Held() + ing.enc.held.Load() }

// keepWithinBudget closes the batch's open files early when its builders
// and writers hold more than the budget, and waits for the encoder to
// write and free them: reading pauses meanwhile. Called with mu held.
func (ing *Ingester) keepWithinBudget() {
	held := ing.batchHeld()
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
		"budget_bytes", ing.cfg.BatchMemory(), "now_bytes", ing.batchHeld())
}
