package readmodel

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/lake"
)

// Widths are the bucket widths a model may declare.
var Widths = []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour}

// Bucket is a model's event-time bucket: ts floored to Width (UTC), under
// the output column Name.
type Bucket struct {
	Name  string
	Width time.Duration
}

// Of is the start of the bucket holding ts (microseconds since the Unix
// epoch), in microseconds.
func (b Bucket) Of(ts int64) int64 {
	w := b.Width.Microseconds()
	q := ts / w
	if ts%w < 0 {
		q--
	}
	return q * w
}

// Column is a source column a model reads: a group-by key, an aggregate's
// input or a column of the WHERE clause.
type Column struct {
	// Name is the output column (a key's alias, or the input's name).
	Name string
	// Input is the source column, Type its Iceberg type.
	Input string
	Type  iceberg.Type
}

// AggKind is an aggregate function of the form.
type AggKind uint8

// The aggregates of the form: each has a state that merges.
const (
	AggCount    AggKind = iota // count(*)
	AggCountCol                // count(col): rows where col is not null
	AggSum                     // sum(col), exact and widened (see SumType)
	AggMin                     // min(col)
	AggMax                     // max(col)
	AggAvg                     // avg(col), kept as sum and count
	AggDistinct                // approx_count_distinct(col), a HyperLogLog sketch
	AggArgMax                  // arg_max(col, ts): col at the latest event time, kept with that time
	AggArgMin                  // arg_min(col, ts): col at the earliest event time, kept with that time
)

var aggNames = map[AggKind]string{
	AggCount: "count(*)", AggCountCol: "count", AggSum: "sum", AggMin: "min", AggMax: "max",
	AggAvg: "avg", AggDistinct: "approx_count_distinct", AggArgMax: "arg_max", AggArgMin: "arg_min",
}

func (k AggKind) String() string { return aggNames[k] }

// Aggregate is one aggregate column of a model.
type Aggregate struct {
	Name string
	Kind AggKind
	// Input is the aggregated source column ("" for count(*)), Type its
	// Iceberg type.
	Input string
	Type  iceberg.Type
}

// Suffixes of the state columns of avg, approx_count_distinct, arg_max
// and arg_min.
const (
	SuffixSum    = "_sum"
	SuffixCount  = "_count"
	SuffixSketch = "_sketch"
	SuffixTs     = "_ts"
)

// Model is a parsed declaration; see the package comment.
type Model struct {
	Name string
	// SQL is the declaration as written; Canonical is its parse tree
	// without positions, which says whether two declarations are the same
	// model.
	SQL       string
	Canonical string
	// Source is the FROM name as written; Type is the event type it
	// stands for.
	Source, Type string
	// Table is set for a model over a derived table (Source.Table): it
	// is fed that table's rows, not events, in the order of their seq
	// column, whose committed position is its offset of SeqTopic.
	Table  string
	rows   iceberg.BooleanExpression
	Bucket Bucket
	Keys   []Column
	Aggs   []Aggregate
	// Inputs are every source column the model reads, ts first; the
	// evaluator's values come in this order.
	Inputs []Column
	where  *expr
	keyIdx []int // Inputs index of each key
	aggIdx []int // Inputs index of each aggregate's input (-1: count(*))
}

// Table property keys of model tables.
const (
	PropModelSQL       = "eventlake.model.sql"
	PropModelCanonical = "eventlake.model.canonical"
)

// SumType is the state type of sum over t: decimals keep their scale at
// precision 38, int widens to long and long to decimal(38, 0) (a sum of
// longs can pass 2^63), float and double sum in double.
func SumType(t iceberg.Type) iceberg.Type {
	switch tt := t.(type) {
	case iceberg.DecimalType:
		return iceberg.DecimalTypeOf(38, tt.Scale())
	case iceberg.Int32Type:
		return iceberg.PrimitiveTypes.Int64
	case iceberg.Int64Type:
		return iceberg.DecimalTypeOf(38, 0)
	default:
		return iceberg.PrimitiveTypes.Float64
	}
}

// Field is one column of a model's table.
type Field struct {
	Name string
	Type iceberg.Type
	// Agg is the aggregate the column holds state of (-1: the bucket or
	// a key).
	Agg int
	// Part says which part of the aggregate's state: "" (the value),
	// SuffixSum, SuffixCount, SuffixSketch or SuffixTs.
	Part string
}

// Fields are the columns of the model's table, in order: the bucket, the
// keys, then each aggregate's state (avg: name_sum and name_count;
// approx_count_distinct: name, the bucket's own estimate, and
// name_sketch; arg_max and arg_min: name, the value, and name_ts, the
// event time it was taken at).
func (m *Model) Fields() []Field {
	out := []Field{{Name: m.Bucket.Name, Type: iceberg.PrimitiveTypes.TimestampTz, Agg: -1}}
	for _, k := range m.Keys {
		out = append(out, Field{Name: k.Name, Type: k.Type, Agg: -1})
	}
	for i, a := range m.Aggs {
		switch a.Kind {
		case AggCount, AggCountCol:
			out = append(out, Field{Name: a.Name, Type: iceberg.PrimitiveTypes.Int64, Agg: i})
		case AggSum:
			out = append(out, Field{Name: a.Name, Type: SumType(a.Type), Agg: i})
		case AggMin, AggMax:
			out = append(out, Field{Name: a.Name, Type: a.Type, Agg: i})
		case AggAvg:
			out = append(out, Field{Name: a.Name + SuffixSum, Type: SumType(a.Type), Agg: i, Part: SuffixSum},
				Field{Name: a.Name + SuffixCount, Type: iceberg.PrimitiveTypes.Int64, Agg: i, Part: SuffixCount})
		case AggDistinct:
			out = append(out, Field{Name: a.Name, Type: iceberg.PrimitiveTypes.Int64, Agg: i},
				Field{Name: a.Name + SuffixSketch, Type: sketchType(len(out) + 2), Agg: i, Part: SuffixSketch})
		case AggArgMax, AggArgMin:
			out = append(out, Field{Name: a.Name, Type: a.Type, Agg: i},
				Field{Name: a.Name + SuffixTs, Type: iceberg.PrimitiveTypes.TimestampTz, Agg: i, Part: SuffixTs})
		}
	}
	return out
}

// TableDef is the layout of the model's table: one row per bucket and
// key, partitioned by day(bucket).
func (m *Model) TableDef() lake.TableDef {
	fs := m.Fields()
	nf := make([]iceberg.NestedField, len(fs))
	for i, f := range fs {
		nf[i] = iceberg.NestedField{ID: i + 1, Name: f.Name, Type: f.Type, Required: i == 0}
		switch {
		case i == 0:
			nf[i].Doc = "event-time bucket start (" + widthName(m.Bucket.Width) + ", UTC)"
		case f.Part == SuffixSketch:
			nf[i].Doc = "HyperLogLog sketch of " + m.Aggs[f.Agg].Input + " (registers as index<<6 | rank): hll_count(" + f.Name + ") merges buckets in SQL"
		case f.Agg >= 0 && m.Aggs[f.Agg].Kind == AggDistinct:
			nf[i].Doc = "estimated distinct " + m.Aggs[f.Agg].Input + " in this bucket alone"
		case f.Part == SuffixTs:
			nf[i].Doc = "event time of " + m.Aggs[f.Agg].Name + ": rows merge by keeping the value of the " +
				map[AggKind]string{AggArgMax: "latest", AggArgMin: "earliest"}[m.Aggs[f.Agg].Kind] + " one"
		}
	}
	props := lake.ReadModelProperties(m.Name)
	props[PropModelSQL] = m.SQL
	props[PropModelCanonical] = m.Canonical
	return lake.TableDef{
		Name:   m.Name,
		Schema: iceberg.NewSchema(0, nf...),
		Spec: iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{1}, FieldID: 1000, Name: m.Bucket.Name + "_day", Transform: iceberg.DayTransform{},
		}),
		Properties: props,
	}
}

// Compatible reports why an existing table cannot hold the model (nil:
// it can): its declaration changed, or it is not a model table of this
// layout.
func (m *Model) Compatible(props iceberg.Properties, sc *iceberg.Schema) error {
	if c, ok := props[PropModelCanonical]; ok && c != m.Canonical {
		return fmt.Errorf("read model %s: its declaration changed since its table was built (was: %s); "+
			"drop the table with `eventlake models drop %s` to rebuild it from the lake, or declare the new SQL under a new name",
			m.Name, props[PropModelSQL], m.Name)
	}
	for _, f := range m.Fields() {
		got, ok := sc.FindFieldByName(f.Name)
		if !ok {
			return fmt.Errorf("read model %s: its table lacks column %s; drop it with `eventlake models drop %s` to rebuild it", m.Name, f.Name, m.Name)
		}
		if gl, ok := got.Type.(*iceberg.ListType); ok {
			if fl, ok := f.Type.(*iceberg.ListType); ok && gl.Element.Equals(fl.Element) {
				continue // list element ids are the catalog's
			}
		}
		if !got.Type.Equals(f.Type) {
			return fmt.Errorf("read model %s: its table's column %s is %s, the declaration makes it %s; drop it with `eventlake models drop %s` to rebuild it",
				m.Name, f.Name, got.Type, f.Type, m.Name)
		}
	}
	return nil
}

// Width names a bucket width as the SQL interval ("1 minute").
func widthName(w time.Duration) string {
	switch w {
	case time.Minute:
		return "1 minute"
	case 5 * time.Minute:
		return "5 minutes"
	case time.Hour:
		return "1 hour"
	case 24 * time.Hour:
		return "1 day"
	}
	return w.String()
}

// WidthName names the model's bucket width ("1 minute").
func (m *Model) WidthName() string { return widthName(m.Bucket.Width) }

// ColumnsRead lists the source columns the model reads (lineage).
func (m *Model) ColumnsRead() []string {
	out := make([]string, 0, len(m.Inputs))
	for _, c := range m.Inputs {
		out = append(out, c.Input)
	}
	return out
}

func (m *Model) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s of %s", m.Name, widthName(m.Bucket.Width), m.Source)
	if len(m.Keys) > 0 {
		b.WriteString(" by ")
		for i, k := range m.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k.Name)
		}
	}
	return b.String()
}

// AggIndex is the index of the aggregate named name, or -1.
func (m *Model) AggIndex(name string) int {
	for i, a := range m.Aggs {
		if a.Name == name {
			return i
		}
	}
	return -1
}

// EmptyRow is the row of key with no event counted.
func (m *Model) EmptyRow(key string) *Row {
	b, keys := m.decodeKey(key)
	return &Row{Key: key, Bucket: b, Keys: keys, Accs: make([]Acc, len(m.Aggs))}
}
