package ingest

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/catalog"
	"github.com/eventlake/eventlake/internal/logkey"
)

// warmDedupe loads the event ids of the most recently ingested rows of the
// topic's table into the dedupe window, so that a producer retry that
// arrives just after a restart is still recognized.
func (ing *Ingester) warmDedupe(ctx context.Context, ts *topicState) error {
	if ts.dd == nil || ts.w.tbl.CurrentSnapshot() == nil {
		return nil
	}
	tbl := ts.w.tbl
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return fmt.Errorf("plan files of %s: %w", ts.cfg.Table, err)
	}
	field, ok := tbl.Schema().FindFieldByName(catalog.ColIngestedAt)
	if !ok {
		return nil
	}
	type cand struct {
		df     iceberg.DataFile
		newest int64
	}
	var cands []cand
	for _, t := range tasks {
		var hi int64
		if b, ok := t.File.UpperBoundValues()[field.ID]; ok && len(b) == 8 {
			hi = int64(binary.LittleEndian.Uint64(b))
		}
		cands = append(cands, cand{t.File, hi})
	}
	slices.SortFunc(cands, func(a, b cand) int { return -cmpInt(a.newest, b.newest) })
	var pick []cand
	var total int64
	for _, c := range cands {
		if total >= int64(ing.cfg.DedupeWindow) {
			break
		}
		pick = append(pick, c)
		total += c.df.Count()
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return err
	}
	loaded := 0
	for i := len(pick) - 1; i >= 0; i-- { // oldest first: the newest stay in the ring
		if err := func() error {
			f, err := fs.Open(pick[i].df.FilePath())
			if err != nil {
				return err
			}
			defer f.Close()
			pr, err := file.NewParquetReader(f)
			if err != nil {
				return err
			}
			defer pr.Close()
			fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
			if err != nil {
				return err
			}
			col := fr.ParquetReader().MetaData().Schema.ColumnIndexByName(catalog.ColEventID)
			if col < 0 {
				return nil
			}
			cr, err := fr.GetColumn(ctx, col)
			if err != nil {
				return err
			}
			chunked, err := cr.NextBatch(pr.NumRows())
			if err != nil {
				return err
			}
			defer chunked.Release()
			for _, arr := range chunked.Chunks() {
				sa, ok := arr.(*array.String)
				if !ok {
					continue
				}
				for j := 0; j < sa.Len(); j++ {
					ts.dd.preload([]byte(sa.Value(j)))
					loaded++
				}
			}
			return nil
		}(); err != nil {
			return fmt.Errorf("read event ids from %s: %w", pick[i].df.FilePath(), err)
		}
	}
	ing.log.Info("dedupe window loaded from the lake", logkey.Table, ts.cfg.Table, logkey.Rows, loaded, logkey.Files, len(pick))
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
