package hll

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/apache/iceberg-go"
)

// The storage form of a sketch, which any reader can merge: a list of
// 32-bit integers, one per non-zero register, packed as index<<6 | rank
// (index 0..4095, rank 1..53), ascending. In Parquet and Iceberg it is a
// list<int> column; the merge of several sketches is, per index, the
// highest packed value (max(p) grouped by p >> 6), and DuckDB estimates it
// with DuckDBMacros to the integer Estimate gives in Go.
//
// Chosen by measurement (BenchmarkStorage: a day of 1440 minute sketches,
// Parquet with zstd level 1 as the lake writes it, DuckDB on one thread):
//
//	bytes per sketch at 20 / 300 / 5,000 users per minute:
//	  list<int>, DELTA_BINARY_PACKED elements   52 / 506 / 2400
//	  list<int>, the writer's default (plain)   62 / 676 / 5527
//	  list<int> of all 4096 ranks (dense)       57 / 515 / 1799
//	  BLOB of MarshalBinary                     48 / 645 / 1650
//	SQL merge + estimate of 1 / 60 / 1440 buckets of 5,000 users:
//	  list<int>        30-80 / 65-90 / 340-370 ms (about 100-140 ms
//	                   for 1440 with unnest and GROUP BY written out)
//	  dense list       140-160 / 100-120 / 660-1000 ms
//	  BLOB             30-45 / 57-60 / 1120-1460 ms (dense blobs only:
//	                   its sparse form has no practical SQL decoder)
//	1440 buckets of 20 or 300 users: list 25-50 ms, dense 300-670 ms.
//
// The list costs SQL work in proportion to the users a bucket saw (the
// buckets of a group key are often small) and merges natively; the dense list
// always holds 4096 entries, and a BLOB has to be cut apart with string
// functions. With delta-encoded elements the list is at most 1.5 times
// the size of the BLOB, and the same size or smaller for small buckets.

const (
	// RankBits is the number of low bits of a packed register that hold
	// its rank.
	RankBits = 6
	// maxPacked bounds packed registers: the last index with rank 63.
	maxPacked = m<<RankBits - 1
)

// ErrRegister is returned for a packed register that no sketch of
// precision 12 holds.
var ErrRegister = errors.New("register out of range")

// Registers returns the non-zero registers, each packed as
// index<<RankBits | rank, in ascending order (of index): the storage form
// of the sketch. An empty sketch has none.
func (s *Sketch) Registers() []int32 {
	n := 0
	for _, r := range s.reg {
		if r != 0 {
			n++
		}
	}
	out := make([]int32, 0, n)
	for i, r := range s.reg {
		if r != 0 {
			out = append(out, int32(i<<RankBits|int(r)))
		}
	}
	return out
}

// FromRegisters returns the sketch of packed registers. They may come in
// any order and repeat an index (the highest rank wins, as in Merge), so
// the concatenated registers of several sketches give their merge. An
// entry whose index is not below 4096, or whose rank is not within
// 1..MaxRank, is refused with an error wrapping ErrRegister.
func FromRegisters(regs []int32) (*Sketch, error) {
	s := New()
	for i, p := range regs {
		if err := s.addPacked(p); err != nil {
			return nil, fmt.Errorf("hll: entry %d: %w", i, err)
		}
	}
	return s, nil
}

func (s *Sketch) addPacked(p int32) error {
	if p < 0 || p > maxPacked {
		return fmt.Errorf("%w: %d is not index<<6 | rank with an index below %d", ErrRegister, p, m)
	}
	idx, r := p>>RankBits, uint8(p&(1<<RankBits-1))
	if r == 0 || r > MaxRank {
		return fmt.Errorf("%w: %d (index %d) has rank %d, outside 1..%d", ErrRegister, p, idx, r, MaxRank)
	}
	if r > s.reg[idx] {
		s.reg[idx] = r
		s.est.Store(0)
	}
	return nil
}

// IcebergType is the Iceberg type of a sketch column, list<int> of
// required elements; elementID is the field id of the list's element.
// Write the elements with DELTA_BINARY_PACKED and no dictionary (Parquet
// column path <column>.list.element): a sketch of 5,000 users takes 2.3
// times less space than with the default plain encoding.
func IcebergType(elementID int) *iceberg.ListType {
	return &iceberg.ListType{ElementID: elementID, Element: iceberg.PrimitiveTypes.Int32, ElementRequired: true}
}

// ArrowType is the Arrow type of a sketch column. A schema derived from
// IcebergType has the same layout (with the element's field id in its
// metadata); AppendArrow and FromArrow take either.
func ArrowType() arrow.DataType { return arrow.ListOfNonNullable(arrow.PrimitiveTypes.Int32) }

// AppendArrow appends the sketch's registers as one value of b, whose
// values must be 32-bit integers.
func (s *Sketch) AppendArrow(b *array.ListBuilder) error {
	vb, ok := b.ValueBuilder().(*array.Int32Builder)
	if !ok {
		return fmt.Errorf("hll: a sketch column holds list<int32>, not list<%s>", b.ValueBuilder().Type())
	}
	b.Append(true)
	vb.AppendValues(s.Registers(), nil)
	return nil
}

// FromArrow returns the sketch in row of a list<int32> column. A null
// value is an empty sketch.
func FromArrow(l *array.List, row int) (*Sketch, error) {
	vals, ok := l.ListValues().(*array.Int32)
	if !ok {
		return nil, fmt.Errorf("hll: a sketch column holds list<int32>, not %s", l.DataType())
	}
	if l.IsNull(row) {
		return New(), nil
	}
	start, end := l.ValueOffsets(row)
	s := New()
	for i := start; i < end; i++ {
		if vals.IsNull(int(i)) {
			return nil, fmt.Errorf("hll: row %d, entry %d: %w: null", row, i-start, ErrRegister)
		}
		if err := s.addPacked(vals.Value(int(i))); err != nil {
			return nil, fmt.Errorf("hll: row %d, entry %d: %w", row, i-start, err)
		}
	}
	return s, nil
}
