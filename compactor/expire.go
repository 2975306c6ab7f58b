package compactor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// retainCount is how many snapshots of the main branch, newest first,
// expiry must keep at time now:
//
//   - every snapshot that stopped being current less than keep ago (a
//     snapshot stops being current when its child is committed; the
//     current one has not), so a reader that picked it up within the
//     reader contract still finds its files;
//   - at least retainLast snapshots;
//   - everything down to the newest snapshot that carries Kafka offsets
//     (lake.SummaryOffsets), so that offsets are never lost even if a
//     snapshot written by another tool does not carry them forward.
func retainCount(tbl *table.Table, now time.Time, keep time.Duration, retainLast int) int {
	md := tbl.Metadata()
	var chain []snapInfo
	s := md.CurrentSnapshot()
	for i := 0; s != nil && i <= len(md.Snapshots()); i++ {
		info := snapInfo{at: time.UnixMilli(s.TimestampMs)}
		if s.Summary != nil {
			_, info.offsets = s.Summary.Properties[lake.SummaryOffsets]
		}
		chain = append(chain, info)
		if s.ParentSnapshotID == nil {
			break
		}
		s = md.SnapshotByID(*s.ParentSnapshotID)
	}
	return retainN(chain, now, keep, retainLast)
}

// snapInfo is what expiry needs to know of one snapshot.
type snapInfo struct {
	at      time.Time // commit time
	offsets bool      // carries lake.SummaryOffsets
}

// retainN applies retainCount's rules to a main-branch chain, newest
// first.
func retainN(chain []snapInfo, now time.Time, keep time.Duration, retainLast int) int {
	n, offsetsAt := 0, -1
	supersededAt := now // when the snapshot at hand stopped being current
	for i, s := range chain {
		if now.Sub(supersededAt) < keep || i < retainLast {
			n = i + 1
		}
		if offsetsAt < 0 && s.offsets {
			offsetsAt = i
		}
		supersededAt = s.at
	}
	return max(n, offsetsAt+1, 1)
}

// expire removes snapshots that no reader may still be using and deletes
// the files only they referenced. See retainCount for what is kept; a
// conflict with a concurrent commit (ingest) is retried on the fresh
// table.
func (c *Compactor) expire(ctx context.Context, t Table, dry bool) (*TaskReport, error) {
	return c.expireKeeping(ctx, t.Name, dry, func(tbl *table.Table) int {
		return retainCount(tbl, c.deps.Now(), c.cfg.keepAge(), c.cfg.SnapshotRetainLast)
	})
}

// expiry is a planned snapshot expiry of one table.
type expiry struct {
	expired []int64  // snapshot ids the expiry removes
	doomed  []string // files only the expired snapshots reference
	before  int      // snapshots before
}

// planExpiry stages, on tx, the expiry of every snapshot of tbl (tx's
// table) but the newest keep(tbl) of the main branch (and unreferenced
// snapshots older than the reader contract), and lists what it removes.
func (c *Compactor) planExpiry(ctx context.Context, tbl *table.Table, tx *table.Transaction, keep func(*table.Table) int) (*expiry, error) {
	e := &expiry{before: len(tbl.Metadata().Snapshots())}
	if err := tx.ExpireSnapshots(table.WithRetainLast(keep(tbl)), table.WithOlderThan(c.cfg.SnapshotMinAge), table.WithPostCommit(false)); err != nil {
		return nil, fmt.Errorf("plan snapshot expiry: %w", err)
	}
	staged, err := tx.StagedTable()
	if err != nil {
		return nil, fmt.Errorf("plan snapshot expiry: %w", err)
	}
	for _, s := range tbl.Metadata().Snapshots() {
		if staged.Metadata().SnapshotByID(s.SnapshotID) == nil {
			e.expired = append(e.expired, s.SnapshotID)
		}
	}
	if len(e.expired) == 0 {
		return e, nil
	}
	if e.doomed, err = unreferencedFiles(ctx, tbl, staged.Table); err != nil {
		return nil, err
	}
	return e, nil
}

// expireKeeping expires every snapshot but the newest keep(tbl) of the
// main branch (and unreferenced snapshots older than the reader
// contract) through the lake's commit protocol, then deletes the files no
// retained snapshot references. A crash between the commit and the
// deletes leaves orphans, which orphan cleanup removes.
func (c *Compactor) expireKeeping(ctx context.Context, name string, dry bool, keep func(*table.Table) int) (*TaskReport, error) {
	r := &TaskReport{}
	if dry {
		tbl, err := c.deps.Catalog.LoadTable(ctx, name)
		if err != nil {
			return nil, err
		}
		e, err := c.planExpiry(ctx, tbl, tbl.NewTransaction(), keep)
		if err != nil {
			return nil, err
		}
		r.SnapshotsExpired, r.FilesDeleted = len(e.expired), len(e.doomed)
		return r, nil
	}
	var e *expiry
	newTbl, err := c.com.Commit(ctx, lake.Change{
		Table: name, Task: TaskExpire, MaxConflicts: maxConflicts,
		Stage: func(ctx context.Context, tx *table.Transaction, _ iceberg.Properties) error {
			base, err := tx.StagedTable()
			if err != nil {
				return err
			}
			if e, err = c.planExpiry(ctx, base.Table, tx, keep); err != nil {
				return err
			}
			c.m.snapshots.WithLabelValues(name).Set(float64(e.before))
			if len(e.expired) == 0 {
				return lake.ErrNothingToCommit
			}
			return nil
		},
		// Expiry makes no snapshot: it is applied when the snapshots it
		// removes are gone.
		Applied: func(fresh *table.Table) bool {
			if e == nil {
				return false
			}
			for _, id := range e.expired {
				if fresh.Metadata().SnapshotByID(id) != nil {
					return false
				}
			}
			return true
		},
	})
	if err != nil {
		return nil, fmt.Errorf("expire snapshots of %s: %w", name, err)
	}
	if e == nil || len(e.expired) == 0 {
		return r, nil
	}
	r.SnapshotsExpired = len(e.expired)
	c.m.expired.WithLabelValues(name).Add(float64(r.SnapshotsExpired))
	c.m.snapshots.WithLabelValues(name).Set(float64(len(newTbl.Metadata().Snapshots())))
	// The files are computed against the table the expiry was built on;
	// a snapshot committed since only adds files, never references one
	// the expired snapshots alone held (ingest writes new files, and
	// every other change removes files of the current snapshot).
	fs, err := newTbl.FS(ctx)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, p := range e.doomed {
		if err := removeObject(fs, p); err != nil {
			errs = append(errs, err)
			continue
		}
		r.FilesDeleted++
	}
	c.m.deleted.WithLabelValues(name, "expired").Add(float64(r.FilesDeleted))
	if cur := newTbl.CurrentSnapshot(); cur != nil {
		r.SnapshotID = cur.SnapshotID
	}
	if len(errs) > 0 {
		c.log.Warn("could not delete every expired file; orphan cleanup will", logkey.Table, name, logkey.Err, errors.Join(errs...))
	}
	return r, nil
}

// unreferencedFiles lists the files (manifest lists, manifests, data
// files) referenced by snapshots of before that after no longer has, and
// that no snapshot of after references.
func unreferencedFiles(ctx context.Context, before, after *table.Table) ([]string, error) {
	fs, err := before.FS(ctx)
	if err != nil {
		return nil, err
	}
	kept := map[int64]bool{}
	for _, s := range after.Metadata().Snapshots() {
		kept[s.SnapshotID] = true
	}
	live, err := reachable(ctx, fs, after.Metadata().Snapshots(), nil)
	if err != nil {
		return nil, err
	}
	var gone []table.Snapshot
	for _, s := range before.Metadata().Snapshots() {
		if !kept[s.SnapshotID] {
			gone = append(gone, s)
		}
	}
	dead, err := reachable(ctx, fs, gone, live)
	if err != nil {
		return nil, err
	}
	var out []string
	for p := range dead {
		if !live[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

// reachable collects the manifest lists, manifests and live data files of
// snaps; manifests already in skip are not opened again (their data files
// are in skip too).
func reachable(ctx context.Context, fs iceio.IO, snaps []table.Snapshot, skip map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	opened := map[string]bool{}
	for _, s := range snaps {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out[s.ManifestList] = true
		mans, err := s.Manifests(fs)
		if err != nil {
			return nil, fmt.Errorf("read manifest list of snapshot %d: %w", s.SnapshotID, err)
		}
		for _, m := range mans {
			p := m.FilePath()
			out[p] = true
			if opened[p] || skip[p] {
				continue
			}
			opened[p] = true
			for e, err := range m.Entries(fs, true) {
				if err != nil {
					return nil, fmt.Errorf("read manifest %s: %w", p, err)
				}
				out[e.DataFile().FilePath()] = true
			}
		}
	}
	return out, nil
}

// orphans deletes files under the table's location (and its cold
// directory) that no metadata references and that are older than
// orphan_min_age: data, manifest and metadata files of commits that
// failed or were abandoned. The age margin keeps files of commits in
// flight.
func (c *Compactor) orphans(ctx context.Context, t Table, dry bool) (*TaskReport, error) {
	tbl, err := c.deps.Catalog.LoadTable(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	r := &TaskReport{}
	locs := []string{""}
	if c.cfg.ColdLocation != "" {
		cold := strings.TrimSuffix(c.coldPrefix(t.Name), "/data/")
		if p, ok := lake.LocalPath(cold); !ok || exists(p) {
			locs = append(locs, cold)
		}
	}
	var errs []error
	for _, loc := range locs {
		opts := []table.OrphanCleanupOption{table.WithFilesOlderThan(c.cfg.OrphanMinAge), table.WithDryRun(dry),
			table.WithCleanupMaxConcurrency(2)}
		if loc != "" {
			opts = append(opts, table.WithLocation(loc))
		}
		res, err := tbl.DeleteOrphanFiles(ctx, opts...)
		if err != nil {
			errs = append(errs, fmt.Errorf("orphan cleanup of %s under %q: %w", t.Name, loc, err))
			continue
		}
		n := len(res.DeletedFiles)
		if dry {
			n = len(res.OrphanFileLocations)
		}
		r.FilesDeleted += n
		r.BytesRead += res.TotalSizeBytes
		for _, p := range res.OrphanFileLocations {
			c.log.Debug("orphan file", logkey.Table, t.Name, logkey.Path, p, logDryRun, dry)
		}
	}
	if !dry {
		c.m.deleted.WithLabelValues(t.Name, "orphan").Add(float64(r.FilesDeleted))
	}
	return r, errors.Join(errs...)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var _ = iceberg.ParquetFile
