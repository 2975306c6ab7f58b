package readmodel

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/hll"
)

// ArrowSchema is the Arrow schema of the model's table.
func (m *Model) ArrowSchema() (*arrow.Schema, error) {
	return table.SchemaToArrowSchema(m.TableDef().Schema, nil, true, false)
}

// Record builds the rows as a record of the model's table schema sc.
func (m *Model) Record(rows []*Row, sc *arrow.Schema, mem memory.Allocator) (arrow.RecordBatch, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	fields := m.Fields()
	if len(fields) != len(sc.Fields()) {
		return nil, fmt.Errorf("read model %s: its table has %d columns, the model %d", m.Name, len(sc.Fields()), len(fields))
	}
	for _, r := range rows {
		b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(r.Bucket))
		for i, k := range m.Keys {
			if err := appendArrow(b.Field(1+i), k.Type, r.Keys[i]); err != nil {
				return nil, err
			}
		}
		col := 1 + len(m.Keys)
		for i, a := range m.Aggs {
			acc := r.Accs[i]
			switch a.Kind {
			case AggCount, AggCountCol:
				b.Field(col).(*array.Int64Builder).Append(acc.N)
				col++
			case AggSum:
				appendSum(b.Field(col), a.Type, acc)
				col++
			case AggAvg:
				appendSum(b.Field(col), a.Type, acc)
				b.Field(col + 1).(*array.Int64Builder).Append(acc.N)
				col += 2
			case AggMin, AggMax:
				if !acc.Set {
					b.Field(col).AppendNull()
				} else if err := appendArrow(b.Field(col), a.Type, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B}); err != nil {
					return nil, err
				}
				col++
			case AggArgMax, AggArgMin:
				if !acc.Set {
					b.Field(col).AppendNull()
					b.Field(col + 1).AppendNull()
				} else {
					if err := appendArrow(b.Field(col), a.Type, Value{I: acc.I, F: acc.F, D: acc.D, B: acc.B}); err != nil {
						return nil, err
					}
					b.Field(col + 1).(*array.TimestampBuilder).Append(arrow.Timestamp(acc.T))
				}
				col += 2
			case AggDistinct:
				sk := acc.Sk
				if sk == nil {
					sk = hll.New()
				}
				b.Field(col).(*array.Int64Builder).Append(int64(sk.Estimate()))
				lb, ok := b.Field(col + 1).(*array.ListBuilder)
				if !ok {
					return nil, fmt.Errorf("read model %s: column %s%s is not a list", m.Name, a.Name, SuffixSketch)
				}
				if err := sk.AppendArrow(lb); err != nil {
					return nil, err
				}
				col += 2
			}
		}
	}
	return b.NewRecordBatch(), nil
}

func appendSum(b array.Builder, t iceberg.Type, acc Acc) {
	if !acc.Set {
		b.AppendNull()
		return
	}
	switch sumKindOf(t) {
	case sumDecimal:
		b.(*array.Decimal128Builder).Append(acc.D)
	case sumInt:
		b.(*array.Int64Builder).Append(acc.I)
	default:
		b.(*array.Float64Builder).Append(acc.F)
	}
}

// appendArrow appends a value of Iceberg type t.
func appendArrow(b array.Builder, t iceberg.Type, v Value) error {
	if v.Null {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.StringBuilder:
		bb.BinaryBuilder.Append(v.B)
	case *array.Int32Builder:
		bb.Append(int32(v.I))
	case *array.Int64Builder:
		bb.Append(v.I)
	case *array.Date32Builder:
		bb.Append(arrow.Date32(v.I))
	case *array.TimestampBuilder:
		bb.Append(arrow.Timestamp(v.I))
	case *array.Decimal128Builder:
		bb.Append(v.D)
	case *array.BooleanBuilder:
		bb.Append(v.I != 0)
	case *array.Float32Builder:
		bb.Append(float32(v.F))
	case *array.Float64Builder:
		bb.Append(v.F)
	default:
		return fmt.Errorf("a read-model column of type %s cannot be written", t)
	}
	return nil
}

// RowsOf reads the rows of a record of the model's table (file names
// where they come from).
func (m *Model) RowsOf(rec arrow.RecordBatch, file string, fn func(*Row)) error {
	sc := rec.Schema()
	fields := m.Fields()
	cols := make([]arrow.Array, len(fields))
	for i, f := range fields {
		idx := sc.FieldIndices(f.Name)
		if len(idx) == 0 {
			return fmt.Errorf("read model %s: %s lacks column %s", m.Name, file, f.Name)
		}
		cols[i] = rec.Column(idx[0])
	}
	readers := make([]func(int) Value, len(fields))
	for i, f := range fields {
		t := f.Type
		if f.Part == SuffixSketch {
			continue
		}
		r, err := arrowReader(cols[i], t, -1)
		if err != nil {
			return fmt.Errorf("read model %s: column %s of %s: %w", m.Name, f.Name, file, err)
		}
		readers[i] = r
	}
	n := int(rec.NumRows())
	for j := range n {
		bucket := readers[0](j)
		if bucket.Null {
			return fmt.Errorf("read model %s: %s holds a row without %s", m.Name, file, m.Bucket.Name)
		}
		vals := make([]Value, len(m.Inputs)) // keys at their input positions
		keys := make([]Value, len(m.Keys))
		for i := range m.Keys {
			keys[i] = readers[1+i](j)
			vals[m.keyIdx[i]] = keys[i]
		}
		key := string(m.appendKey(nil, bucket.I, vals))
		b, owned := m.decodeKey(key)
		r := &Row{Key: key, Bucket: b, Keys: owned, Accs: make([]Acc, len(m.Aggs)), File: file}
		col := 1 + len(m.Keys)
		for i, a := range m.Aggs {
			acc := &r.Accs[i]
			switch a.Kind {
			case AggCount, AggCountCol:
				acc.N = readers[col](j).I
				col++
			case AggSum, AggAvg:
				v := readers[col](j)
				if !v.Null {
					acc.Set, acc.I, acc.F, acc.D = true, v.I, v.F, v.D
				}
				if a.Kind == AggAvg {
					acc.N = readers[col+1](j).I
					col++
				}
				col++
			case AggMin, AggMax:
				v := readers[col](j)
				if !v.Null {
					acc.Set, acc.I, acc.F, acc.D = true, v.I, v.F, v.D
					acc.B = append([]byte(nil), v.B...)
				}
				col++
			case AggArgMax, AggArgMin:
				v, ts := readers[col](j), readers[col+1](j)
				if !v.Null && !ts.Null {
					acc.Set, acc.I, acc.F, acc.D, acc.T = true, v.I, v.F, v.D, ts.I
					acc.B = append([]byte(nil), v.B...)
				}
				col += 2
			case AggDistinct:
				l, ok := cols[col+1].(*array.List)
				if !ok {
					return fmt.Errorf("read model %s: column %s%s of %s is not a list", m.Name, a.Name, SuffixSketch, file)
				}
				if !l.IsNull(j) {
					sk, err := hll.FromArrow(l, j)
					if err != nil {
						return fmt.Errorf("read model %s: sketch of %s in %s: %w", m.Name, a.Name, file, err)
					}
					acc.Sk = sk
				}
				col += 2
			}
		}
		fn(r)
	}
	return nil
}

// arrowReader returns a reader of column arr's values as Values of the
// Iceberg type t. scale >= 0 rescales decimals to it (-1: keep the
// column's scale, which must be t's).
func arrowReader(arr arrow.Array, t iceberg.Type, scale int32) (func(int) Value, error) {
	null := func(i int) bool { return arr.IsNull(i) }
	k, want, ok := kindOf(t)
	if !ok {
		// Sum states of longs are decimals; the caller passes their type.
		return nil, fmt.Errorf("type %s is not read", t)
	}
	if scale >= 0 {
		want = scale
	}
	switch a := arr.(type) {
	case *array.String:
		if k != kString {
			break
		}
		offs, data := a.ValueOffsets(), a.ValueBytes()
		return func(i int) Value {
			if null(i) {
				return Value{Null: true}
			}
			return Value{B: data[offs[i]-offs[0] : offs[i+1]-offs[0]]}
		}, nil
	case *array.LargeString:
		if k != kString {
			break
		}
		return func(i int) Value {
			if null(i) {
				return Value{Null: true}
			}
			return Value{B: []byte(a.Value(i))}
		}, nil
	case *array.Int32:
		switch k {
		case kInt:
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{I: int64(a.Value(i))}
			}, nil
		case kFloat:
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{F: float64(a.Value(i))}
			}, nil
		}
	case *array.Int64:
		switch k {
		case kInt:
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{I: a.Value(i)}
			}, nil
		case kFloat:
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{F: float64(a.Value(i))}
			}, nil
		}
	case *array.Date32:
		if k == kInt {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{I: int64(a.Value(i))}
			}, nil
		}
	case *array.Timestamp:
		unit := a.DataType().(*arrow.TimestampType).Unit
		if k == kInt {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{I: toMicros(int64(a.Value(i)), unit)}
			}, nil
		}
	case *array.Boolean:
		if k == kBool {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				if a.Value(i) {
					return Value{I: 1}
				}
				return Value{}
			}, nil
		}
	case *array.Float32:
		if k == kFloat {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{F: float64(a.Value(i))}
			}, nil
		}
	case *array.Float64:
		if k == kFloat {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{F: a.Value(i)}
			}, nil
		}
	case *array.Decimal128:
		have := a.DataType().(*arrow.Decimal128Type).Scale
		if k == kDecimal {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				d, ok := rescale(a.Value(i), have, want)
				if !ok {
					return Value{Null: true, I: lossy}
				}
				return Value{D: d}
			}, nil
		}
		if k == kFloat {
			return func(i int) Value {
				if null(i) {
					return Value{Null: true}
				}
				return Value{F: a.Value(i).ToFloat64(have)}
			}, nil
		}
	}
	return nil, fmt.Errorf("an Arrow %s column cannot be read as %s", arr.DataType(), t)
}

// lossy marks (in I) a null Value that stands for a decimal the model's
// scale cannot hold: the event is not counted.
const lossy = math.MinInt64

// rescale moves an unscaled decimal from scale have to want, exactly.
func rescale(d decimal128.Num, have, want int32) (decimal128.Num, bool) {
	switch {
	case have == want:
		return d, true
	case have < want:
		return d.IncreaseScaleBy(want - have), true
	}
	out, err := d.Rescale(have, want)
	return out, err == nil
}

func toMicros(v int64, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return v * 1e6
	case arrow.Millisecond:
		return v * 1e3
	case arrow.Nanosecond:
		return v / 1e3
	}
	return v
}

// Rescale moves unscaled decimal d from scale have to want; false when
// that would drop digits.
func Rescale(d decimal128.Num, have, want int32) (decimal128.Num, bool) {
	return rescale(d, have, want)
}
