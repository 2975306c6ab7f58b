package compactor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/catalog"
	"github.com/eventlake/eventlake/internal/logkey"
)

// Snapshot summary keys the compactor writes beside the ones it carries
// forward.
const (
	// SummaryOperation names the maintenance task that made a snapshot:
	// compact, tier, retention or erase.
	SummaryOperation = "eventlake.maintenance"
	// SummaryErasureID ties an erasure snapshot to its erasure_log rows.
	SummaryErasureID = "eventlake.erasure-id"
)

// ErrStale means a file the compactor meant to replace is no longer in
// the table's current snapshot (another maintenance run replaced it); the
// work is dropped and planned again from the current snapshot.
var ErrStale = errors.New("files to replace are no longer in the current snapshot")

// ErrCommitUnknown means a commit's outcome could not be determined; its
// new files are kept (orphan cleanup removes them if unreferenced).
var ErrCommitUnknown = errors.New("commit outcome unknown")

// ErrBusy means a change lost the race to concurrent commits maxConflicts
// times in a row; nothing was committed and its files are removed. The
// next cycle tries again (smaller batches stage faster).
var ErrBusy = errors.New("table too busy: every attempt lost to a concurrent commit")

// maxConflicts bounds how often one change is rebuilt because ingest
// committed first. Ingest always wins: the compactor never makes it wait
// or fail, it rebuilds on the fresher table instead.
const maxConflicts = 50

// commitAttemptTimeout bounds one catalog commit (a REST catalog or S3
// that stops answering).
const commitAttemptTimeout = 30 * time.Second

// replace commits one snapshot of table name that removes the data files
// remove and adds add, on top of whatever the table holds now. The
// summary carries forward the Kafka offsets of the snapshot it is built
// on, so that expiring older snapshots never loses them, and ingest's
// offset fence sees exactly what it committed. rewrite marks a change that keeps the table's rows
// (compaction, tiering: Iceberg operation "replace").
//
// A conflict (ingest or anyone committed in between) is resolved by
// reloading the table and rebuilding the same change, after checking that
// every file to remove is still live (ErrStale otherwise). A commit whose
// outcome is unknown is looked up by its commit id before any retry.
func (c *Compactor) replace(ctx context.Context, name, task string, remove, add []iceberg.DataFile, rewrite bool, extra iceberg.Properties) (*table.Table, error) {
	commitID := uuid.NewString()
	backoff := 50 * time.Millisecond
	var (
		lastErr error
		unknown int
	)
	for attempt := 1; ; attempt++ {
		tbl, err := c.deps.Catalog.LoadTable(ctx, name)
		if err != nil {
			return nil, err
		}
		if _, ok := catalog.FindCommit(tbl, commitID); ok {
			return tbl, nil
		}
		props := carried(tbl)
		props[catalog.SummaryCommitID] = commitID
		props[catalog.SummaryWriter] = c.writer
		props[SummaryOperation] = task
		for k, v := range extra {
			props[k] = v
		}
		tx := tbl.NewTransaction()
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
		if err != nil {
			if strings.Contains(err.Error(), "do not belong to the table") {
				return nil, fmt.Errorf("%w: %s", ErrStale, name)
			}
			return nil, fmt.Errorf("stage %s of %s (%d files out, %d in): %w", task, name, len(remove), len(add), err)
		}
		// An answer that never comes is an unknown outcome, resolved by
		// looking the commit up on the next attempt.
		cctx, cancel := context.WithTimeout(ctx, commitAttemptTimeout)
		newTbl, cerr := tx.Commit(cctx)
		cancel()
		if cerr == nil {
			c.m.commits.WithLabelValues(name, task).Inc()
			return newTbl, nil
		}
		lastErr = cerr
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %s of %s: %v", ErrCommitUnknown, task, name, cerr)
		}
		if isConflict(cerr) {
			// Rebuild at once: right after a concurrent commit is when the
			// next one is furthest away.
			c.m.conflicts.WithLabelValues(name).Inc()
			if attempt >= maxConflicts {
				return nil, fmt.Errorf("%s of %s: %w (%d attempts, last: %v)", task, name, ErrBusy, attempt, cerr)
			}
			c.log.Debug("commit conflict, rebuilding on the refreshed table", logkey.Table, name, logkey.Attempt, attempt)
			continue
		}
		if unknown++; unknown > 5 {
			return nil, fmt.Errorf("%w: %s of %s after %d attempts: %v", ErrCommitUnknown, task, name, attempt, lastErr)
		}
		c.log.Warn("commit failed, retrying", logkey.Table, name, logkey.Attempt, attempt, logkey.Err, cerr)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s of %s: %v", ErrCommitUnknown, task, name, cerr)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// carried returns the summary properties a maintenance snapshot must
// carry forward: the Kafka offsets (catalog.SummaryOffsets) of the newest
// snapshot among the current one and its ancestors that has them, exactly
// as catalog.StoredOffsets would read them. Other eventlake.* keys are
// not carried: they describe one commit (commit id, writer) or one run of
// a tool that looks for them in the history (the streamer's backfill
// resumes after the newest snapshot with its id; carrying that forward
// would make a later run with the same arguments a no-op).
func carried(tbl *table.Table) iceberg.Properties {
	out := iceberg.Properties{}
	md := tbl.Metadata()
	s := md.CurrentSnapshot()
	for seen := 0; s != nil && seen <= len(md.Snapshots()); seen++ {
		if s.Summary != nil {
			if v, ok := s.Summary.Properties[catalog.SummaryOffsets]; ok {
				out[catalog.SummaryOffsets] = v
				return out
			}
		}
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return out
}

// isConflict reports whether err says the table moved underneath us.
func isConflict(err error) bool {
	if errors.Is(err, table.ErrCommitFailed) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "requirement failed") || strings.Contains(s, "has changed") || strings.Contains(s, "moved underneath")
}
