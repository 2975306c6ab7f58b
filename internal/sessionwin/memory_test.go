package sessionwin

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// userKey is shaped like the demo's user ids: 21 bytes.
func userKey(i int) string { return fmt.Sprintf("user-%016x", i) }

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryPerOpenSession measures the heap an open session costs, its
// 21-byte key included (24 bytes of it: Go's size class), after garbage
// collection: the engine's record, heap entry and map entry, with the
// slices' and the map's spare capacity.
func TestMemoryPerOpenSession(t *testing.T) {
	const n = 100_000
	before := heapInUse()
	e := mustNew(t, Config{Gap: 30 * time.Minute, Lateness: time.Minute, MaxOpen: n}, nil)
	c := Contribution{Orders: 1, Revenue: decimal128.FromI64(1250)}
	for i := range n {
		e.Add(nil, userKey(i), int64(i), c)
	}
	per := float64(heapInUse()-before) / n
	runtime.KeepAlive(e)
	t.Logf("%.0f bytes per open session (%d sessions, 24 bytes of it the 21-byte key)", per, n)
	if per > 200 {
		t.Fatalf("%.0f bytes per open session, want at most 200", per)
	}
}

// TestMillionKeysBounded: a million distinct keys through an engine of
// MaxOpen 100,000 never hold more than 100,000 sessions, and the heap
// stays at the size of a full engine rather than growing with the keys.
func TestMillionKeysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a million events")
	}
	const (
		keys    = 1_000_000
		maxOpen = 100_000
	)
	before := heapInUse()
	e := mustNew(t, Config{Gap: 30 * time.Minute, Lateness: time.Minute, MaxOpen: maxOpen}, nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	var out []Session
	var evicted, emitted int
	var heaps []uint64 // after every 100,000 keys
	for i := range keys {
		// A millisecond apart: the million span 17 minutes, less than the
		// gap, so only eviction closes sessions.
		out, _ = e.Add(out[:0], userKey(i), base+int64(i)*1000, Contribution{Orders: 1})
		for _, s := range out {
			emitted++
			if s.Evicted {
				evicted++
			}
		}
		if e.Len() > maxOpen {
			t.Fatalf("after %d keys: %d open sessions, max_open %d", i+1, e.Len(), maxOpen)
		}
		if (i+1)%100_000 == 0 {
			out = e.Advance(out[:0], time.Time{})
			emitted += len(out)
			heaps = append(heaps, heapInUse()-before)
		}
	}
	if evicted != keys-maxOpen || emitted != evicted {
		t.Fatalf("%d evicted, %d emitted, want %d evicted and nothing else", evicted, emitted, keys-maxOpen)
	}
	// The first evictions leave tombstones in the key map, which grows
	// once; after that the heap stays put however many keys pass.
	full, churned, peak := heaps[0], heaps[1], slices.Max(heaps)
	t.Logf("heap when full %d bytes (%.0f per open session), after evictions %d (%.0f), peak %d through %d keys",
		full, float64(full)/maxOpen, churned, float64(churned)/maxOpen, peak, keys)
	if peak > churned+churned/20 {
		t.Fatalf("heap grew with the keys: %d bytes after 200,000 keys, %d at the peak", churned, peak)
	}
	if per := float64(peak) / maxOpen; per > 250 {
		t.Fatalf("%.0f bytes per open session at the peak, want at most 250", per)
	}
	runtime.KeepAlive(e)
}
