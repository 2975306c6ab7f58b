package streamer

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

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
