package dedupe

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestWindowRule(t *testing.T) {
	s := New(3)
	k := Key{"t", 0}
	for _, tc := range []struct {
		off  int64
		id   string
		want bool
	}{
		{0, "a", false},
		{1, "b", false},
		{2, "a", true},  // a at 0 is within 3 offsets
		{3, "a", true},  // still (0 >= 3-3)
		{4, "a", false}, // 0 < 4-3: fell out; remembered again at 4
		{5, "b", false}, // b at 1 < 5-3
		{7, "a", true},  // a at 4 >= 7-3
	} {
		if got := s.Seen(k, tc.off, []byte(tc.id)); got != tc.want {
			t.Fatalf("offset %d id %s: duplicate=%v want %v", tc.off, tc.id, got, tc.want)
		}
	}
	// Partitions are independent.
	if s.Seen(Key{"t", 1}, 8, []byte("a")) {
		t.Fatal("an id seen in partition 0 was a duplicate in partition 1")
	}
	var nilSet *Set
	if nilSet.Seen(k, 1, []byte("x")) || New(0).Seen(k, 1, []byte("x")) {
		t.Fatal("disabled dedupe dropped an event")
	}
}

// TestDeterministicFromWarmStart is the property readers rely on: a reader
// that starts Window offsets before position P reaches the same decisions
// from P on as one that read from the beginning.
func TestDeterministicFromWarmStart(t *testing.T) {
	const window = 50
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 2000)
	for i := range ids {
		if i > 0 && rng.IntN(10) == 0 { // 10% retries of a recent event
			ids[i] = ids[max(0, i-1-rng.IntN(80))]
		} else {
			ids[i] = fmt.Sprint("e", i)
		}
	}
	full := New(window)
	want := make([]bool, len(ids))
	for i, id := range ids {
		want[i] = full.Seen(Key{"t", 0}, int64(i), []byte(id))
	}
	for _, p := range []int{0, 1, 49, 50, 51, 500, 1999} {
		warm := New(window)
		for i := max(0, p-window); i < len(ids); i++ {
			got := warm.Seen(Key{"t", 0}, int64(i), []byte(ids[i]))
			if i >= p && got != want[i] {
				t.Fatalf("start %d: offset %d decision %v, full reader %v", p, i, got, want[i])
			}
		}
	}
}

func TestRingGrowsAndForgets(t *testing.T) {
	s := New(5000)
	k := Key{"t", 0}
	for i := range 20000 {
		if s.Seen(k, int64(i), []byte(fmt.Sprint(i))) {
			t.Fatalf("unique id %d reported as duplicate", i)
		}
	}
	if n := s.Len(k); n != 5001 {
		t.Fatalf("remembered %d ids, want the window (5001)", n)
	}
	s.Reset(k)
	if s.Len(k) != 0 {
		t.Fatal("reset kept ids")
	}
}

// TestAgainstReference checks Seen against the rule written plainly (a
// map of the offsets each id was remembered at), with enough ids for the
// table to grow, wrap around and shift members back on deletion.
func TestAgainstReference(t *testing.T) {
	for _, window := range []int64{1, 7, 1000, 5000} {
		rng := rand.New(rand.NewPCG(uint64(window), 3))
		s := New(window)
		remembered := map[string][]int64{}
		for off := int64(0); off < 40000; off++ {
			id := fmt.Sprint("e", off)
			if off > 0 && rng.IntN(4) == 0 { // a retry of an event up to 2 windows back
				id = fmt.Sprint("e", max(0, off-1-rng.Int64N(2*window+1)))
			}
			want := false
			for _, o := range remembered[id] {
				if o >= off-window {
					want = true
				}
			}
			if !want {
				remembered[id] = append(remembered[id], off)
			}
			if got := s.Seen(Key{"t", 0}, off, []byte(id)); got != want {
				t.Fatalf("window %d offset %d id %s: duplicate=%v, want %v", window, off, id, got, want)
			}
		}
	}
}

func BenchmarkSeen(b *testing.B) {
	const parts = 8
	s := New(100_000)
	ids := make([][]byte, 1<<16)
	for i := range ids {
		ids[i] = fmt.Appendf(nil, "01JDQ8Y7ZK3M9V6T4W%08d", i)
	}
	off := int64(0)
	for b.Loop() {
		// Records come a partition at a time, in batches.
		p := int32(off/500) % parts
		id := ids[off&(1<<16-1)]
		id[0] = byte(off >> 16) // unique ids
		s.Seen(Key{"t", p}, off, id)
		off++
	}
}
