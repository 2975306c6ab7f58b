package streamer

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/lake"
)

// coldTable is what this process knows of one read-model table: the
// snapshot, the offsets it covers and the data files already loaded.
type coldTable struct {
	name     string
	tbl      *table.Table
	snapshot int64
	hasSnap  bool
	offsets  lake.Offsets
	files    map[string]bool
}

// snapshotOf loads a read-model table's current state: its snapshot,
// offsets and the data files it holds.
type tableView struct {
	tbl      *table.Table
	snapshot int64
	hasSnap  bool
	offsets  lake.Offsets
	files    []iceberg.DataFile
}

func loadView(ctx context.Context, cat *lake.Catalog, name string) (*tableView, error) {
	tbl, err := cat.LoadTable(ctx, name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		return &tableView{offsets: lake.Offsets{}}, nil
	}
	if err != nil {
		return nil, err
	}
	v := &tableView{tbl: tbl, offsets: lake.Offsets{}}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return v, nil
	}
	v.snapshot, v.hasSnap = snap.SnapshotID, true
	if v.offsets, err = lake.StoredOffsets(tbl); err != nil {
		return nil, err
	}
	tasks, err := tbl.Scan(table.WithSnapshotID(snap.SnapshotID)).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan files of %s: %w", name, err)
	}
	seen := map[string]bool{}
	for _, t := range tasks {
		if len(t.DeleteFiles) > 0 || len(t.EqualityDeleteFiles) > 0 || len(t.DeletionVectorFiles) > 0 {
			return nil, fmt.Errorf("read model %s has row-level delete files, which the hot tier does not apply", name)
		}
		if !seen[t.File.FilePath()] {
			seen[t.File.FilePath()] = true
			v.files = append(v.files, t.File)
		}
	}
	return v, nil
}

// readFile reads a whole (small) read-model data file.
func readFile(ctx context.Context, tbl *table.Table, path string) (arrow.Table, error) {
	return lake.ReadFile(ctx, tbl, path)
}

func colByName(t arrow.Table, name string) (*arrow.Chunked, bool) {
	idx := t.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, false
	}
	return t.Column(idx[0]).Data(), true
}

// inventoryRows reads (product, stock, updated_at, warehouse) rows.
func inventoryRows(ctx context.Context, tbl *table.Table, path string, fn func(product string, stock, updated int64, warehouse string)) error {
	at, err := readFile(ctx, tbl, path)
	if err != nil {
		return err
	}
	defer at.Release()
	pc, ok1 := colByName(at, lake.ColProductID)
	sc, ok2 := colByName(at, lake.ColStock)
	uc, ok3 := colByName(at, lake.ColUpdatedAt)
	wc, ok4 := colByName(at, lake.ColWarehouse)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return fmt.Errorf("%s lacks inventory columns", path)
	}
	for i := range pc.Chunks() {
		ps := pc.Chunk(i).(*array.String)
		ss := sc.Chunk(i).(*array.Int64)
		us := uc.Chunk(i).(*array.Timestamp)
		ws := wc.Chunk(i).(*array.String)
		for j := 0; j < ps.Len(); j++ {
			fn(ps.Value(j), ss.Value(j), int64(us.Value(j)), ws.Value(j))
		}
	}
	return nil
}

// writeDeltaFiles writes rows into one data file per partition value and
// returns the data files. build appends the rows of one partition key to
// the record builder.
func writeDeltaFiles(ctx context.Context, tbl *table.Table, keys []int64, partitioned bool,
	build func(key int64, b *array.RecordBuilder)) ([]iceberg.DataFile, error) {
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return nil, err
	}
	lp, err := tbl.LocationProvider()
	if err != nil {
		return nil, err
	}
	spec := tbl.Spec()
	var out []iceberg.DataFile
	for _, k := range keys {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		build(k, b)
		rec := b.NewRecordBatch()
		b.Release()
		dir := "data"
		var part map[int]any
		if partitioned {
			d := iceberg.Date(k)
			dir = "minute_day=" + iceberg.DayTransform{}.ToHumanStr(d)
			part = map[int]any{spec.Field(0).FieldID: d}
		}
		loc := lp.NewDataLocation(dir + "/" + uuid.NewString() + ".parquet")
		w, err := lake.CreateFile(ctx, tbl, loc, sc, part, lake.FileOptions{}, memory.DefaultAllocator)
		if err != nil {
			rec.Release()
			return nil, err
		}
		werr := w.Write(rec)
		rec.Release()
		if werr != nil {
			_ = w.Abort(ctx, tbl)
			return nil, werr
		}
		df, err := w.Close(tbl)
		if err != nil {
			return nil, err
		}
		out = append(out, df)
	}
	return out, nil
}

type invState struct {
	stock     int64
	updated   int64 // micros
	warehouse string
}

// inventoryDeltaFile writes the latest stock per product (one file).
func inventoryDeltaFile(ctx context.Context, tbl *table.Table, delta map[string]invState) ([]iceberg.DataFile, error) {
	ps := make([]string, 0, len(delta))
	for p := range delta {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return writeDeltaFiles(ctx, tbl, []int64{0}, false, func(_ int64, b *array.RecordBuilder) {
		for _, p := range ps {
			s := delta[p]
			b.Field(0).(*array.StringBuilder).Append(p)
			b.Field(1).(*array.Int64Builder).Append(s.stock)
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(s.updated))
			if s.warehouse == "" {
				b.Field(3).AppendNull()
			} else {
				b.Field(3).(*array.StringBuilder).Append(s.warehouse)
			}
		}
	})
}
