package readmodel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
)

// RawTables loads every raw table in the catalog: what a model is built
// and re-aggregated from.
func RawTables(ctx context.Context, cat *lake.Catalog) ([]*table.Table, error) {
	ns := table.Identifier{cat.Config().Namespace}
	var out []*table.Table
	for ident, err := range cat.Iceberg().ListTables(ctx, ns) {
		if err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		tbl, err := cat.LoadTable(ctx, ident[len(ident)-1])
		if errors.Is(err, icecat.ErrNoSuchTable) {
			continue // dropped between listing and loading
		}
		if err != nil {
			return nil, err
		}
		if tbl.Properties()[lake.PropKind] == lake.KindRaw {
			out = append(out, tbl)
		}
	}
	return out, nil
}

// ColSeq numbers the rows of a derived table (user_sessions) in the
// order the hot tier committed them; 0 marks rows a re-aggregation
// rewrote, which every model over the table has counted.
const ColSeq = "seq"

// SeqTopic is the name under which a derived table's committed seq is
// stored among its offsets (and a model's over it, among the model's):
// partition 0 of a topic no Kafka topic can be named ('@' is not legal).
func SeqTopic(table string) string { return "@" + table }

// SourceTables loads the tables a model is built from: the raw tables,
// or the derived table it reads.
func SourceTables(ctx context.Context, cat *lake.Catalog, m *Model) ([]*table.Table, error) {
	if m.Table == "" {
		return RawTables(ctx, cat)
	}
	tbl, err := cat.LoadTable(ctx, m.Table)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []*table.Table{tbl}, nil
}

// Range bounds a scan by event time, [From, To) in microseconds; the zero
// Range is unbounded.
type Range struct{ From, To int64 }

func (r Range) bounded() bool { return r.From != 0 || r.To != 0 }

// Scan reads the events of the model's type from raw tables at their
// current snapshots and hands what each adds to fn: events with event
// time in r and, when below is set, an offset below below's for their
// partition (a partition below lacks is not counted). It returns the
// offsets the scanned snapshots cover, which hold exactly the events read
// (ingest commits rows and offsets together).
func (m *Model) Scan(ctx context.Context, tables []*table.Table, r Range, below lake.Offsets, fn func(Contribution)) (lake.Offsets, error) {
	covered := lake.Offsets{}
	for _, tbl := range tables {
		off, err := lake.StoredOffsets(tbl)
		if err != nil {
			return nil, err
		}
		if m.Table != "" {
			if tbl.Identifier()[len(tbl.Identifier())-1] != m.Table {
				continue
			}
			seq, _ := off.Get(SeqTopic(m.Table), 0)
			seq = max(seq, 1) // rows are numbered from 1; 0 is below every offset
			off = lake.Offsets{}
			off.Set(SeqTopic(m.Table), 0, seq)
		} else if !slices.Contains(lake.TypesOf(tbl.Properties()), m.Type) {
			covered = covered.Merge(off)
			continue
		}
		covered = covered.Merge(off)
		if tbl.CurrentSnapshot() == nil {
			continue
		}
		if err := m.scanTable(ctx, tbl, r, below, nil, func(_ int64, c Contribution) { fn(c) }); err != nil {
			return nil, fmt.Errorf("read model %s: scan %s: %w", m.Name, tbl.Identifier(), err)
		}
	}
	return covered, nil
}

// scanTable hands fn what each row of tbl the scan selects adds, with its
// offset (a derived table's seq); extra, when set, narrows the rows.
func (m *Model) scanTable(ctx context.Context, tbl *table.Table, r Range, below lake.Offsets, extra iceberg.BooleanExpression,
	fn func(off int64, c Contribution)) error {
	var filter iceberg.BooleanExpression = iceberg.EqualTo(iceberg.Reference(lake.ColType), m.Type)
	fields := []string{lake.ColKafkaTopic, lake.ColKafkaPartition, lake.ColKafkaOffset}
	if m.Table != "" {
		filter, fields = iceberg.AlwaysTrue{}, []string{ColSeq}
		if m.rows != nil {
			filter = m.rows
		}
	}
	if r.bounded() {
		filter = iceberg.NewAnd(filter,
			iceberg.GreaterThanEqual(iceberg.Reference(lake.ColTs), iceberg.Timestamp(r.From)),
			iceberg.LessThan(iceberg.Reference(lake.ColTs), iceberg.Timestamp(r.To)))
	}
	if extra != nil {
		filter = iceberg.NewAnd(filter, extra)
	}
	sc := tbl.Schema()
	for _, in := range m.Inputs {
		if _, ok := sc.FindFieldByName(in.Input); ok && !slices.Contains(fields, in.Input) {
			fields = append(fields, in.Input)
		}
	}
	_, it, err := tbl.Scan(table.WithRowFilter(filter), table.WithSelectedFields(fields...)).ToArrowRecords(ctx)
	if err != nil {
		return err
	}
	vals := make([]Value, len(m.Inputs))
	for rec, err := range it {
		if err != nil {
			return err
		}
		err := m.scanRecord(rec, below, vals, fn)
		rec.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) scanRecord(rec arrow.RecordBatch, below lake.Offsets, vals []Value, fn func(int64, Contribution)) error {
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) == 0 {
			return nil
		}
		return rec.Column(idx[0])
	}
	topics, _ := col(lake.ColKafkaTopic).(*array.String)
	parts, _ := col(lake.ColKafkaPartition).(*array.Int32)
	offs, _ := col(lake.ColKafkaOffset).(*array.Int64)
	seqTopic := ""
	if m.Table != "" {
		seqTopic = SeqTopic(m.Table)
		offs, _ = col(ColSeq).(*array.Int64)
		if below != nil && offs == nil {
			return fmt.Errorf("table %s lacks its %s column", m.Table, ColSeq)
		}
	} else if below != nil && (topics == nil || parts == nil || offs == nil) {
		return errors.New("the raw table lacks its Kafka coordinates")
	}
	in, err := m.BindArrow(rec)
	if err != nil {
		return err
	}
	for i := range int(rec.NumRows()) {
		if below != nil {
			var (
				o  int64
				ok bool
			)
			if seqTopic != "" {
				o, ok = below.Get(seqTopic, 0)
			} else {
				o, ok = below.Get(topics.Value(i), parts.Value(i))
			}
			if !ok || offs.Value(i) >= o {
				continue
			}
		}
		if !in.Fill(i, vals) {
			continue
		}
		if c, ok := m.Contribute(vals); ok {
			off := int64(-1)
			if offs != nil {
				off = offs.Value(i)
			}
			fn(off, c)
		}
	}
	return nil
}

// BucketFilter selects the rows of the given buckets of the model's
// table (consecutive buckets as one range).
func (m *Model) BucketFilter(buckets []int64) iceberg.BooleanExpression {
	bs := slices.Clone(buckets)
	slices.Sort(bs)
	bs = slices.Compact(bs)
	w := m.Bucket.Width.Microseconds()
	var out iceberg.BooleanExpression
	for i := 0; i < len(bs); {
		j := i
		for j+1 < len(bs) && bs[j+1] == bs[j]+w {
			j++
		}
		r := m.RangeFilter(Range{From: bs[i], To: bs[j] + w})
		if out == nil {
			out = r
		} else {
			out = iceberg.NewOr(out, r)
		}
		i = j + 1
	}
	if out == nil {
		return iceberg.AlwaysFalse{}
	}
	return out
}

// RangeFilter selects the rows of buckets starting in r.
func (m *Model) RangeFilter(r Range) iceberg.BooleanExpression {
	ref := iceberg.Reference(m.Bucket.Name)
	return iceberg.NewAnd(iceberg.GreaterThanEqual(ref, iceberg.Timestamp(r.From)), iceberg.LessThan(ref, iceberg.Timestamp(r.To)))
}

// ReplaceStage is the stage of a commit that replaces the model's rows
// matched by del (nil: none) with rows: one row per bucket and key in the
// table afterwards, as long as rows hold every bucket and key del
// removes.
func (m *Model) ReplaceStage(rows []*Row, del iceberg.BooleanExpression) lake.Stage {
	return lake.Replace(m.Name, del, func(sc *arrow.Schema) (arrow.RecordBatch, error) {
		if len(rows) == 0 {
			return nil, nil
		}
		return m.Record(rows, sc, nil)
	})
}

// ReadTable reads every row of the model's table at tbl's snapshot, file
// by file (with the file each row is in).
func (m *Model) ReadTable(ctx context.Context, tbl *table.Table, files []string, fn func(*Row)) error {
	for _, f := range files {
		at, err := lake.ReadFile(ctx, tbl, f)
		if err != nil {
			return fmt.Errorf("read model %s: read %s: %w", m.Name, f, err)
		}
		tr := array.NewTableReader(at, 0)
		for tr.Next() {
			if err := m.RowsOf(tr.RecordBatch(), f, fn); err != nil {
				tr.Release()
				at.Release()
				return err
			}
		}
		tr.Release()
		at.Release()
	}
	return nil
}

// ReadRange reads the model's rows of buckets starting in r from its
// table at tbl's snapshot.
func (m *Model) ReadRange(ctx context.Context, tbl *table.Table, r Range) (*State, error) {
	st := m.NewState()
	if tbl.CurrentSnapshot() == nil {
		return st, nil
	}
	_, it, err := tbl.Scan(table.WithRowFilter(m.RangeFilter(r))).ToArrowRecords(ctx)
	if err != nil {
		return nil, err
	}
	for rec, err := range it {
		if err != nil {
			return nil, err
		}
		err := m.RowsOf(rec, "", func(row *Row) { st.Merge(row) })
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}

// Same reports whether two states hold the same rows with the same
// figures.
func Same(a, b *State) bool {
	if a.Len() != b.Len() {
		return false
	}
	for k, r := range a.rows {
		if !EqualRows(r, b.rows[k]) {
			return false
		}
	}
	return true
}

// EqualRows reports whether two rows of a model hold the same figures
// (nil only equals nil).
func EqualRows(a, b *Row) bool {
	if a == nil || b == nil {
		return a == b
	}
	for i := range a.Accs {
		x, y := a.Accs[i], b.Accs[i]
		if x.N != y.N || x.Set != y.Set || x.T != y.T || x.I != y.I || x.F != y.F || x.D != y.D || string(x.B) != string(y.B) {
			return false
		}
		if (x.Sk == nil) != (y.Sk == nil) || x.Sk != nil && !x.Sk.Equal(y.Sk) {
			return false
		}
	}
	return true
}

// Tail reads the final rows of the derived table tbl numbered from seq
// from on and hands each to fn with its number, in order: what the hot
// tier feeds a model over the table after a restart that lost them.
func (m *Model) Tail(ctx context.Context, tbl *table.Table, from int64, fn func(seq int64, c Contribution)) error {
	if m.Table == "" || tbl.CurrentSnapshot() == nil {
		return nil
	}
	type seqC struct {
		seq int64
		c   Contribution
	}
	var out []seqC
	err := m.scanTable(ctx, tbl, Range{}, nil, iceberg.GreaterThanEqual(iceberg.Reference(ColSeq), from),
		func(seq int64, c Contribution) { out = append(out, seqC{seq, c}) })
	if err != nil {
		return err
	}
	slices.SortFunc(out, func(a, b seqC) int { return cmp.Compare(a.seq, b.seq) })
	for _, o := range out {
		fn(o.seq, o.c)
	}
	return nil
}

// ContributeFrom is Contribute over the inputs get returns by column
// name: a row the hot tier derived (a session) rather than an event.
func (m *Model) ContributeFrom(get func(col string) Value) (Contribution, bool) {
	vals := make([]Value, len(m.Inputs))
	for i, in := range m.Inputs {
		vals[i] = get(in.Input)
	}
	return m.Contribute(vals)
}
