// Package hll is a HyperLogLog distinct counter (Flajolet et al. 2007 with
// linear counting for small cardinalities and a 64-bit hash, so no
// large-range correction is needed). Precision 12: 4096 one-byte
// registers, standard error 1.04/sqrt(4096) = 1.625%; estimates are within
// ±4.9% (3 sigma) of the true count with 99.7% probability. Sketches merge
// losslessly (register max), which is how per-minute sketches of many
// commits and of the hot tier combine.
//
// Registers is the storage form any reader can merge (a list<int> column
// of packed registers); DuckDBMacros merge and estimate it in SQL to the
// same integers as Merge and Estimate. MarshalBinary is Go's own compact
// encoding.
package hll

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

const (
	// Precision is the number of index bits.
	Precision = 12
	m         = 1 << Precision
	// MaxRank is the highest rank a register holds: 64-Precision leading
	// zeros of the remaining bits, plus one (Add's guard bit).
	MaxRank = 64 - Precision + 1
	// StdError is the relative standard error of Estimate.
	StdError = 1.04 / 64.0
)

// Sketch counts distinct 64-bit hashes. The zero value is not usable; use
// New.
type Sketch struct {
	reg []uint8
	// est caches Estimate plus one (0: not computed since the last
	// change); atomic, as readers holding a read lock share a sketch.
	est atomic.Uint64
}

// New returns an empty sketch.
func New() *Sketch { return &Sketch{reg: make([]uint8, m)} }

// Add adds a 64-bit hash (use a good hash of the item, e.g. xxh3).
func (s *Sketch) Add(h uint64) {
	idx := h >> (64 - Precision)
	w := h<<Precision | 1<<(Precision-1) // guard bit bounds the rank
	rank := uint8(bits.LeadingZeros64(w) + 1)
	if rank > s.reg[idx] {
		s.reg[idx] = rank
		s.est.Store(0)
	}
}

// Merge adds every item of o to s: the larger of each register, eight
// registers at a time (a day's distinct count merges 1,440 sketches).
func (s *Sketch) Merge(o *Sketch) {
	a, b := s.reg[:m], o.reg[:m]
	for i := 0; i < m; i += 8 {
		x, y := binary.LittleEndian.Uint64(a[i:]), binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(a[i:], maxBytes(x, y))
	}
	s.est.Store(0)
}

// maxBytes is the larger of each byte of x and y, whose bytes are all
// below 0x80 (ranks are at most MaxRank, which every way in checks):
// (x|0x80) - y cannot borrow from the next byte, and its top bit is set
// where x's byte is not below y's.
func maxBytes(x, y uint64) uint64 {
	const top = 0x8080808080808080
	ge := ((x | top) - y) & top
	mask := (ge >> 7) * 0xff // 0xff in the bytes where x >= y
	return x&mask | y&^mask
}

// Clone returns an independent copy.
func (s *Sketch) Clone() *Sketch {
	c := New()
	copy(c.reg, s.reg)
	return c
}

// Estimate returns the estimated number of distinct items.
//
// The harmonic sum is taken over the number of registers of each rank, in
// a fixed order (see estimate), so that the DuckDB macros compute exactly
// the same float64 operations and the same integer (DuckDBMacros).
func (s *Sketch) Estimate() uint64 {
	if e := s.est.Load(); e != 0 {
		return e - 1
	}
	var counts [MaxRank + 1]int
	for _, r := range s.reg {
		counts[r]++
	}
	e := estimate(&counts)
	s.est.Store(e + 1)
	return e
}

// alphaMM is alpha*m*m of the raw estimate, alpha = 0.7213/(1+1.079/m).
const alphaMM = 0.7213 / (1 + 1.079/m) * m * m

// estimate is the estimate of a sketch with counts[k] registers of rank k:
// raw = alpha*m*m / sum(counts[k] * 2^-k), with linear counting
// m*ln(m/zeros) when raw <= 2.5m and a register is zero, rounded half up.
//
// Each term counts[k]*2^-k is exact in a float64 (a count below 2^13 times
// a power of two), and the terms are added from k = MaxRank down to 0:
// the macros' list_reduce does the same additions in the same order, so
// both round identically. (Summing 2^-reg per register, in register order,
// is mathematically the same but rounds differently from a sum in any
// other order.)
func estimate(counts *[MaxRank + 1]int) uint64 {
	var sum float64
	for k := MaxRank; k >= 0; k-- {
		sum += float64(counts[k]) / float64(uint64(1)<<k)
	}
	est := alphaMM / sum
	if zeros := counts[0]; est <= 2.5*m && zeros > 0 {
		est = m * math.Log(float64(m)/float64(zeros)) // linear counting
	}
	return uint64(est + 0.5)
}

// Encoding formats.
const (
	formatSparse = 1 // count, then (uint16 index, uint8 rank) pairs
	formatDense  = 2 // all registers
)

// MarshalBinary encodes the sketch compactly: sparse while few registers
// are set (a minute of a small shop), dense otherwise.
func (s *Sketch) MarshalBinary() ([]byte, error) {
	n := 0
	for _, r := range s.reg {
		if r != 0 {
			n++
		}
	}
	if 3*n+3 < m {
		out := make([]byte, 3, 3+3*n)
		out[0] = formatSparse
		binary.LittleEndian.PutUint16(out[1:], uint16(n))
		for i, r := range s.reg {
			if r != 0 {
				out = binary.LittleEndian.AppendUint16(out, uint16(i))
				out = append(out, r)
			}
		}
		return out, nil
	}
	out := make([]byte, 1+m)
	out[0] = formatDense
	copy(out[1:], s.reg)
	return out, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (s *Sketch) UnmarshalBinary(b []byte) error {
	if s.reg == nil {
		s.reg = make([]uint8, m)
	}
	clear(s.reg)
	s.est.Store(0)
	if len(b) == 0 {
		return errors.New("hll: empty encoding")
	}
	switch b[0] {
	case formatSparse:
		if len(b) < 3 {
			return errors.New("hll: truncated sparse sketch")
		}
		n := int(binary.LittleEndian.Uint16(b[1:]))
		if len(b) != 3+3*n {
			return errors.New("hll: sparse sketch length mismatch")
		}
		for i := 0; i < n; i++ {
			p := b[3+3*i:]
			idx := binary.LittleEndian.Uint16(p)
			if int(idx) >= m || p[2] > MaxRank {
				return errors.New("hll: sparse entry out of range")
			}
			s.reg[idx] = p[2]
		}
	case formatDense:
		if len(b) != 1+m {
			return errors.New("hll: dense sketch length mismatch")
		}
		for i, r := range b[1:] {
			if r > MaxRank {
				return fmt.Errorf("hll: dense register %d has rank %d, above %d", i, r, MaxRank)
			}
		}
		copy(s.reg, b[1:])
	default:
		return errors.New("hll: unknown encoding")
	}
	return nil
}

// Equal reports whether two sketches hold the same registers.
func (s *Sketch) Equal(o *Sketch) bool { return string(s.reg) == string(o.reg) }
