package readmodel

import (
	"encoding/binary"
	"math"
	"slices"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/iceberg-go"
	"github.com/zeebo/xxh3"

	"github.com/eventlake/eventlake/internal/hll"
)

// sketchElementID is the field id of a sketch column's list element:
// the column's id plus this (ids of a model table's columns are small).
const sketchElementID = 1000

// sketchType is the Iceberg type of a distinct count's sketch column:
// the non-zero registers packed as index<<6 | rank (internal/hll), which
// DuckDB's hll_count and hll_merge merge in SQL.
func sketchType(fieldID int) iceberg.Type { return hll.IcebergType(sketchElementID + fieldID) }

// Acc is the state of one aggregate in one row.
type Acc struct {
	// N counts rows (count(*)), non-null values (count(col), avg).
	N int64
	// Set says a non-null value was seen (sum, min, max, avg, arg_max,
	// arg_min): without one the aggregate is NULL, as in SQL.
	Set bool
	I   int64          // int sums (into long), integer/string-less min, max and arg values
	F   float64        // float sums, min, max and arg values
	D   decimal128.Num // decimal sums (and long sums, widened), decimal min, max and arg values
	B   []byte         // string min, max and arg values (owned)
	Sk  *hll.Sketch    // approx_count_distinct
	// T is the event time (microseconds) arg_max's or arg_min's value
	// was taken at.
	T int64
}

// Row is one bucket and key of a model: what its table holds in one row.
type Row struct {
	// Key encodes the bucket and the key values: the row's identity.
	Key    string
	Bucket int64 // microseconds
	Keys   []Value
	Accs   []Acc
	// File is the data file a committed row was read from.
	File string
	// json caches the row as RowJSON writes every column: a change
	// through its state clears it, so the rows of the committed state,
	// which never change, are encoded once, not at every answer (a
	// fraction of what the row holds: its sketches alone are 4 KiB).
	json atomic.Pointer[[]byte]
}

// Contribution is what one event adds to a model: the row it falls in,
// its aggregates' inputs (one per aggregate; a distinct count's is the
// hash of its value, in I) and its event time (microseconds; arg_max and
// arg_min keep it beside their value).
type Contribution struct {
	Key string
	In  []Value
	Ts  int64
}

// sumKind is how sum and avg of an input add up.
type sumKind uint8

const (
	sumDecimal sumKind = iota // decimals, and longs widened to decimal(38, 0)
	sumInt                    // ints into a long
	sumFloat
)

func sumKindOf(t iceberg.Type) sumKind {
	switch t.(type) {
	case iceberg.DecimalType, iceberg.Int64Type:
		return sumDecimal
	case iceberg.Int32Type:
		return sumInt
	}
	return sumFloat
}

// Contribute evaluates the WHERE clause on an event's values (Inputs
// order) and returns what it adds, or false when it does not count.
// Bytes are copied: the contribution outlives vals.
func (m *Model) Contribute(vals []Value) (Contribution, bool) {
	if m.where != nil && m.where.eval(vals) != triTrue {
		return Contribution{}, false
	}
	if vals[0].Null {
		return Contribution{}, false
	}
	key := m.appendKey(nil, m.Bucket.Of(vals[0].I), vals)
	in := make([]Value, len(m.Aggs))
	for i, a := range m.Aggs {
		if m.aggIdx[i] < 0 {
			continue
		}
		v := vals[m.aggIdx[i]]
		switch {
		case v.Null:
			in[i] = Value{Null: true}
		case a.Kind == AggDistinct:
			in[i] = Value{I: int64(hashValue(m.Inputs[m.aggIdx[i]].Type, v))}
		case a.Kind == AggSum || a.Kind == AggAvg:
			if _, ok := a.Type.(iceberg.Int64Type); ok {
				v.D = decimal128.FromI64(v.I)
			}
			in[i] = v
		default:
			if v.B != nil {
				v.B = slices.Clone(v.B)
			}
			in[i] = v
		}
	}
	return Contribution{Key: string(key), In: in, Ts: vals[0].I}, true
}

// hashValue is the 64-bit hash a distinct count adds: xxh3 of a string's
// bytes (as the hot tier always hashed user ids), of the 8 little-endian
// bytes of an integer, of the 16 bytes of a decimal, of a float's bits.
func hashValue(t iceberg.Type, v Value) uint64 {
	k, _, _ := kindOf(t)
	var b [16]byte
	switch k {
	case kString:
		return xxh3.Hash(v.B)
	case kDecimal:
		binary.LittleEndian.PutUint64(b[:], v.D.LowBits())
		binary.LittleEndian.PutUint64(b[8:], uint64(v.D.HighBits()))
		return xxh3.Hash(b[:])
	case kFloat:
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v.F))
	default:
		binary.LittleEndian.PutUint64(b[:], uint64(v.I))
	}
	return xxh3.Hash(b[:8])
}

// appendKey encodes a bucket and the key values of vals.
func (m *Model) appendKey(dst []byte, bucket int64, vals []Value) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(bucket))
	for i, k := range m.Keys {
		v := vals[m.keyIdx[i]]
		dst = appendValue(dst, k.Type, v)
	}
	return dst
}

func appendValue(dst []byte, t iceberg.Type, v Value) []byte {
	if v.Null {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	k, _, _ := kindOf(t)
	switch k {
	case kString:
		dst = binary.AppendUvarint(dst, uint64(len(v.B)))
		return append(dst, v.B...)
	case kDecimal:
		dst = binary.BigEndian.AppendUint64(dst, uint64(v.D.HighBits()))
		return binary.BigEndian.AppendUint64(dst, v.D.LowBits())
	default:
		return binary.BigEndian.AppendUint64(dst, uint64(v.I))
	}
}

// decodeKey is appendKey's inverse.
func (m *Model) decodeKey(key string) (int64, []Value) {
	b := []byte(key)
	bucket := int64(binary.BigEndian.Uint64(b))
	b = b[8:]
	keys := make([]Value, len(m.Keys))
	for i, k := range m.Keys {
		if b[0] == 0 {
			keys[i] = Value{Null: true}
			b = b[1:]
			continue
		}
		b = b[1:]
		kd, _, _ := kindOf(k.Type)
		switch kd {
		case kString:
			n, w := binary.Uvarint(b)
			keys[i] = Value{B: slices.Clone(b[w : w+int(n)])}
			b = b[w+int(n):]
		case kDecimal:
			keys[i] = Value{D: decimal128.New(int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint64(b[8:]))}
			b = b[16:]
		default:
			keys[i] = Value{I: int64(binary.BigEndian.Uint64(b))}
			b = b[8:]
		}
	}
	return bucket, keys
}

// State holds a model's rows: the committed table's, the events after
// its offsets', or a delta to commit.
type State struct {
	m       *Model
	rows    map[string]*Row
	buckets map[int64]map[string]*Row // the rows of each bucket
}

// NewState returns an empty state of m.
func (m *Model) NewState() *State {
	return &State{m: m, rows: map[string]*Row{}, buckets: map[int64]map[string]*Row{}}
}

// Model is the state's model.
func (s *State) Model() *Model { return s.m }

// Len is the number of rows.
func (s *State) Len() int { return len(s.rows) }

// Get returns the row of key, or nil.
func (s *State) Get(key string) *Row { return s.rows[key] }

// Each calls fn for every row, in no order.
func (s *State) Each(fn func(*Row)) {
	for _, r := range s.rows {
		fn(r)
	}
}

// Delete removes the row of key.
func (s *State) Delete(key string) {
	r := s.rows[key]
	if r == nil {
		return
	}
	delete(s.rows, key)
	if b := s.buckets[r.Bucket]; b != nil {
		delete(b, key)
		if len(b) == 0 {
			delete(s.buckets, r.Bucket)
		}
	}
}

// InBucket calls fn for every row of bucket b, in no order.
func (s *State) InBucket(b int64, fn func(*Row)) {
	for _, r := range s.buckets[b] {
		fn(r)
	}
}

// Buckets lists the buckets that have rows, in no order.
func (s *State) Buckets() []int64 {
	out := make([]int64, 0, len(s.buckets))
	for b := range s.buckets {
		out = append(out, b)
	}
	return out
}

// row returns the row of key, created empty if needed.
func (s *State) row(key string) *Row {
	r := s.rows[key]
	if r == nil {
		b, keys := s.m.decodeKey(key)
		r = &Row{Key: key, Bucket: b, Keys: keys, Accs: make([]Acc, len(s.m.Aggs))}
		s.rows[key] = r
		bm := s.buckets[b]
		if bm == nil {
			bm = map[string]*Row{}
			s.buckets[b] = bm
		}
		bm[key] = r
	}
	return r
}

// Apply adds a contribution and returns its row.
func (s *State) Apply(c Contribution) *Row {
	r := s.row(c.Key)
	r.json.Store(nil)
	for i, a := range s.m.Aggs {
		acc := &r.Accs[i]
		v := c.In[i]
		switch a.Kind {
		case AggCount:
			acc.N++
		case AggCountCol:
			if !v.Null {
				acc.N++
			}
		case AggSum, AggAvg:
			if v.Null {
				continue
			}
			acc.Set = true
			if a.Kind == AggAvg {
				acc.N++
			}
			switch sumKindOf(a.Type) {
			case sumDecimal:
				acc.D = acc.D.Add(v.D)
			case sumInt:
				acc.I += v.I
			default:
				acc.F += v.F
			}
		case AggMin, AggMax:
			if v.Null {
				continue
			}
			s.m.minMax(i, acc, Acc{Set: true, I: v.I, F: v.F, D: v.D, B: v.B})
		case AggDistinct:
			if v.Null {
				continue
			}
			if acc.Sk == nil {
				acc.Sk = hll.New()
			}
			acc.Sk.Add(uint64(v.I))
		case AggArgMax, AggArgMin:
			if v.Null {
				continue // as DuckDB's arg_max: rows whose value is NULL are left out
			}
			s.m.argPick(i, acc, Acc{Set: true, I: v.I, F: v.F, D: v.D, B: v.B, T: c.Ts})
		}
	}
	return r
}

// argPick folds o into acc for arg_max or arg_min aggregate i: arg_max
// keeps the value of the later event time, arg_min of the earlier; at
// equal times arg_max keeps the larger value and arg_min the smaller, so
// that any order of merging gives the same answer (arg_max is the value
// of the largest (ts, value) pair, arg_min of the smallest).
func (m *Model) argPick(i int, acc *Acc, o Acc) {
	if !o.Set {
		return
	}
	take := !acc.Set
	if !take {
		a := m.Aggs[i]
		c := 0
		switch {
		case o.T > acc.T:
			c = 1
		case o.T < acc.T:
			c = -1
		default:
			k, _, _ := kindOf(a.Type)
			c = compare(k, Value{I: o.I, F: o.F, D: o.D, B: o.B}, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B})
		}
		take = a.Kind == AggArgMax && c > 0 || a.Kind == AggArgMin && c < 0
	}
	if take {
		acc.Set, acc.I, acc.F, acc.D, acc.T = true, o.I, o.F, o.D, o.T
		acc.B = slices.Clone(o.B)
	}
}

// minMax folds o into acc for min or max aggregate i.
func (m *Model) minMax(i int, acc *Acc, o Acc) {
	if !o.Set {
		return
	}
	if !acc.Set {
		acc.Set, acc.I, acc.F, acc.D = true, o.I, o.F, o.D
		acc.B = slices.Clone(o.B)
		return
	}
	a := m.Aggs[i]
	k, _, _ := kindOf(a.Type)
	c := compare(k, Value{I: o.I, F: o.F, D: o.D, B: o.B}, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B})
	if a.Kind == AggMin && c < 0 || a.Kind == AggMax && c > 0 {
		acc.I, acc.F, acc.D = o.I, o.F, o.D
		acc.B = slices.Clone(o.B)
	}
}

// Merge folds row o (of the same model) into s.
func (s *State) Merge(o *Row) *Row {
	r := s.row(o.Key)
	r.json.Store(nil)
	s.m.mergeAccs(r.Accs, o.Accs)
	return r
}

// Set puts a copy of row o in s, replacing the row of its key.
func (s *State) Set(o *Row) *Row {
	s.Delete(o.Key)
	r := s.row(o.Key)
	s.m.mergeAccs(r.Accs, o.Accs)
	r.File = o.File
	return r
}

func (m *Model) mergeAccs(dst, src []Acc) {
	for i, a := range m.Aggs {
		d, o := &dst[i], src[i]
		switch a.Kind {
		case AggCount, AggCountCol:
			d.N += o.N
		case AggSum, AggAvg:
			if !o.Set {
				continue
			}
			d.Set = true
			d.N += o.N
			d.I += o.I
			d.F += o.F
			d.D = d.D.Add(o.D)
		case AggMin, AggMax:
			m.minMax(i, d, o)
		case AggArgMax, AggArgMin:
			m.argPick(i, d, o)
		case AggDistinct:
			if o.Sk == nil {
				continue
			}
			if d.Sk == nil {
				d.Sk = hll.New()
			}
			d.Sk.Merge(o.Sk)
		}
	}
}

// Clone returns a copy of the row that shares nothing that can change
// (keys are never changed in place).
func (r *Row) Clone() *Row {
	c := &Row{Key: r.Key, Bucket: r.Bucket, Keys: r.Keys, File: r.File, Accs: make([]Acc, len(r.Accs))}
	for i, a := range r.Accs {
		c.Accs[i] = a
		c.Accs[i].B = slices.Clone(a.B)
		if a.Sk != nil {
			c.Accs[i].Sk = a.Sk.Clone()
		}
	}
	return c
}

// Total returns the rows of key in every state merged (nil when none has
// it). When one state alone holds the key, its row itself is returned:
// callers only read the result. No state changes.
func Total(key string, states ...*State) *Row {
	var (
		first *Row
		out   *Row
	)
	for _, s := range states {
		r := s.Get(key)
		switch {
		case r == nil:
			continue
		case first == nil:
			first = r
			continue
		case out == nil:
			out = &Row{Key: key, Bucket: first.Bucket, Keys: first.Keys, Accs: make([]Acc, len(first.Accs))}
			s.m.mergeAccs(out.Accs, first.Accs)
		}
		s.m.mergeAccs(out.Accs, r.Accs)
	}
	if out == nil {
		return first
	}
	return out
}
