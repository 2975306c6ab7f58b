package hll

import (
	"fmt"
	"math"
	"testing"

	"github.com/zeebo/xxh3"
)

func hashOf(i int) uint64 { return xxh3.HashString(fmt.Sprint("user-", i)) }

// TestWithinStatedError checks estimates against the stated 3-sigma bound
// over many cardinalities and seeds.
func TestWithinStatedError(t *testing.T) {
	for _, n := range []int{1, 10, 100, 1000, 5000, 20000, 100000, 1000000} {
		for seed := 0; seed < 3; seed++ {
			s := New()
			for i := 0; i < n; i++ {
				s.Add(hashOf(seed*10_000_000 + i))
				if i%3 == 0 { // duplicates must not count
					s.Add(hashOf(seed*10_000_000 + i))
				}
			}
			est := float64(s.Estimate())
			if rel := math.Abs(est-float64(n)) / float64(n); rel > 3*StdError {
				t.Errorf("n=%d seed=%d: estimate %.0f is %.2f%% off, beyond 3 sigma (%.2f%%)", n, seed, est, 100*rel, 300*StdError)
			}
		}
	}
}

func TestMergeAndEncoding(t *testing.T) {
	a, b, all := New(), New(), New()
	for i := 0; i < 30000; i++ {
		h := hashOf(i)
		all.Add(h)
		if i < 20000 {
			a.Add(h)
		}
		if i >= 10000 {
			b.Add(h)
		}
	}
	a.Merge(b)
	if a.Estimate() != all.Estimate() {
		t.Fatalf("merge of overlapping sketches %d != sketch of the union %d", a.Estimate(), all.Estimate())
	}
	for _, n := range []int{0, 5, 500, 30000} {
		s := New()
		for i := 0; i < n; i++ {
			s.Add(hashOf(i))
		}
		enc, _ := s.MarshalBinary()
		var d Sketch
		if err := d.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
		if d.Estimate() != s.Estimate() {
			t.Fatalf("n=%d: decoded estimate %d != %d", n, d.Estimate(), s.Estimate())
		}
		if n <= 500 && len(enc) > 3+3*n {
			t.Fatalf("n=%d: small sketch not sparse (%d bytes)", n, len(enc))
		}
	}
	var d Sketch
	rank54 := make([]byte, 1+m)
	rank54[0], rank54[100] = formatDense, MaxRank+1
	for _, bad := range [][]byte{nil, {9}, {formatDense, 1}, {formatSparse, 1, 0}, {formatSparse, 1, 0, 1, 0, MaxRank + 1}, rank54} {
		if d.UnmarshalBinary(bad) == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// TestMergeBytes: merging eight registers at a time keeps the larger of
// each, for every pair of ranks.
func TestMergeBytes(t *testing.T) {
	for x := range MaxRank + 1 {
		for y := range MaxRank + 1 {
			a, b := New(), New()
			for i := range m {
				a.reg[i], b.reg[i] = uint8((x+i)%(MaxRank+1)), uint8((y+3*i)%(MaxRank+1))
			}
			want := make([]uint8, m)
			for i := range want {
				want[i] = max(a.reg[i], b.reg[i])
			}
			a.Merge(b)
			if string(a.reg) != string(want) {
				t.Fatalf("ranks from %d and %d: merged registers differ", x, y)
			}
		}
	}
}
