package readmodel

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// Envelope inputs in an EventBinding.
const (
	srcEventID = -2 - iota
	srcSource
	srcType
	srcTs
)

// EventBinding reads a model's inputs from decoded events of one schema
// version (the hot tier).
type EventBinding struct {
	m    *Model
	cols []evCol
	// Err says why events of the version are not counted (nil: they are).
	Err error
}

type evCol struct {
	src        int // the version's column, an envelope src*, or -1: absent (null)
	k          kind
	have, want int32 // decimal scales: the version's and the model's
}

// BindEvent binds the model's inputs to the columns of schema version v.
// A column the version lacks reads as null; one it types differently
// makes its events not count (Err says why).
func (m *Model) BindEvent(v *schema.TypeVersion) *EventBinding {
	b := &EventBinding{m: m, cols: make([]evCol, len(m.Inputs))}
	for i, in := range m.Inputs {
		k, want, _ := kindOf(in.Type)
		c := evCol{src: -1, k: k, want: want}
		switch in.Input {
		case lake.ColEventID:
			c.src = srcEventID
		case lake.ColSource:
			c.src = srcSource
		case lake.ColType:
			c.src = srcType
		case lake.ColTs:
			c.src = srcTs
		default:
			if v == nil {
				break
			}
			idx := v.Column(in.Input)
			if idx < 0 {
				break
			}
			have, hs, ok := kindOf(v.Columns[idx].Type)
			if !ok || have != k && !(have == kInt && k == kFloat) {
				b.Err = fmt.Errorf("read model %s: %s's column %s is %s, the model reads it as %s", m.Name, v, in.Input, v.Columns[idx].Type, in.Type)
			}
			if have == kInt && k == kFloat {
				c.k = kInt // widened on read
			}
			c.src, c.have = idx, hs
		}
		b.cols[i] = c
	}
	return b
}

// Fill reads the inputs of ev into vals (len(Model.Inputs)). It returns
// false when the event cannot be counted: its version is bound with Err,
// or a decimal has more places than the model's column.
func (b *EventBinding) Fill(ev *schema.Event, vals []Value) bool {
	if b.Err != nil {
		return false
	}
	for i, c := range b.cols {
		var (
			v  Value
			ok bool
		)
		switch c.src {
		case -1:
		case srcEventID:
			v.B, ok = ev.EventID, true
		case srcSource:
			v.B, ok = ev.Source, true
		case srcType:
			v.B, ok = ev.Type, true
		case srcTs:
			v.I, ok = ev.TsMicros, true
		default:
			switch c.k {
			case kString:
				v.B, ok = ev.String(c.src)
			case kInt, kBool:
				v.I, ok = ev.Int(c.src)
				if ok && b.m.Inputs[i].Type.Equals(iceberg.PrimitiveTypes.Float64) {
					v.F = float64(v.I)
				}
			case kDecimal:
				v.D, ok = ev.Decimal(c.src)
				if ok {
					if v.D, ok = rescale(v.D, c.have, c.want); !ok {
						return false
					}
				}
			case kFloat:
				v.F, ok = ev.Float(c.src)
			}
		}
		v.Null = !ok
		vals[i] = v
	}
	return true
}

// ArrowInputs reads a model's inputs from records of a raw table
// (backfill and re-aggregation), by column name.
type ArrowInputs struct {
	m       *Model
	readers []func(int) Value
}

// BindArrow binds the model's inputs to the columns of rec. A column rec
// lacks reads as null.
func (m *Model) BindArrow(rec arrow.RecordBatch) (*ArrowInputs, error) {
	a := &ArrowInputs{m: m, readers: make([]func(int) Value, len(m.Inputs))}
	sc := rec.Schema()
	for i, in := range m.Inputs {
		idx := sc.FieldIndices(in.Input)
		if len(idx) == 0 {
			a.readers[i] = func(int) Value { return Value{Null: true} }
			continue
		}
		_, want, _ := kindOf(in.Type)
		r, err := arrowReader(rec.Column(idx[0]), in.Type, want)
		if err != nil {
			return nil, fmt.Errorf("read model %s: column %s: %w", m.Name, in.Input, err)
		}
		a.readers[i] = r
	}
	return a, nil
}

// Fill reads row i into vals; false when a decimal has more places than
// the model's column (the event is not counted, as in the hot tier).
func (a *ArrowInputs) Fill(i int, vals []Value) bool {
	for j, r := range a.readers {
		v := r(i)
		if v.Null && v.I == lossy {
			return false
		}
		vals[j] = v
	}
	return true
}
