package compactor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/lake"
)

// Summary keys of erasure snapshots.
const (
	// SummaryErasureID ties an erasure snapshot to its erasure_log rows.
	SummaryErasureID = "eventlake.erasure-id"
	// SummaryErasureMinutes lists the event-time minutes of the rows an
	// erasure removed from a raw table, so that a run that finds the rows
	// gone can still re-aggregate the read models of those minutes.
	SummaryErasureMinutes = "eventlake.erasure-minutes"
)

// ErrStale means a file the compactor meant to replace is no longer in
// the table's current snapshot (another maintenance run replaced it); the
// work is dropped and planned again from the current snapshot.
var ErrStale = errors.New("files to replace are no longer in the current snapshot")

// ErrCommitUnknown means a commit's outcome could not be determined; its
// new files are kept (orphan cleanup removes them if unreferenced).
var ErrCommitUnknown = lake.ErrCommitUnknown

// ErrBusy means a change lost the race to concurrent commits maxConflicts
// times in a row; nothing was committed and its files are removed. The
// next cycle tries again (smaller batches stage faster).
var ErrBusy = lake.ErrBusy

// maxConflicts bounds how often one change is staged again because ingest
// committed first. Ingest always wins: the compactor never makes it wait
// or fail, it stages the change again on the fresher table instead.
const maxConflicts = 50

// maxFailures bounds attempts that fail for other reasons (a catalog or
// storage outage) before a change is given up as of unknown outcome.
const maxFailures = 6

// replace commits one snapshot of table name that removes the data files
// remove and adds add, on top of whatever the table holds now, through
// the lake's commit protocol (offsets carried forward, conflicts staged
// again, unknown outcomes looked up). rewrite marks a change that keeps
// the table's rows (compaction, tiering: Iceberg operation "replace").
// A file to remove that is no longer live makes it ErrStale.
func (c *Compactor) replace(ctx context.Context, name, task string, remove, add []iceberg.DataFile, rewrite bool, extra iceberg.Properties) (*table.Table, error) {
	return c.com.Commit(ctx, lake.Change{
		Table: name, Task: task, Summary: extra, MaxConflicts: maxConflicts,
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			var err error
			if rewrite && len(remove) > 0 {
				rw := tx.NewRewrite(props)
				for _, f := range remove {
					rw.DeleteFile(f)
				}
				for _, f := range add {
					rw.AddDataFile(f)
				}
				err = rw.Commit(ctx)
			} else {
				err = tx.ReplaceDataFilesWithDataFiles(ctx, remove, add, props)
			}
			if err != nil && strings.Contains(err.Error(), "do not belong to the table") {
				return fmt.Errorf("%w: %s", ErrStale, name)
			}
			if err != nil {
				return fmt.Errorf("%d files out, %d in: %w", len(remove), len(add), err)
			}
			return nil
		},
	})
}
