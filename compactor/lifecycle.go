package compactor

import (
	"context"
	"errors"
	"strings"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake/objstore"
)

// retention drops every partition of the table that ended longer ago than
// the table's retention, in one commit. The files stay on storage until
// expiry removes the snapshots that still reference them (snapshot_min_age
// later), then they are deleted.
func (c *Compactor) retention(ctx context.Context, t Table, dry bool) (*TaskReport, error) {
	keep := c.policy(t.Name).Retention
	if keep <= 0 {
		return nil, nil
	}
	_, parts, r, err := c.loadLive(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	now := c.deps.Now()
	var drop []iceberg.DataFile
	for _, p := range parts {
		if p.end.IsZero() || !p.end.Add(keep).Before(now) {
			continue
		}
		r.Partitions++
		for _, f := range p.files {
			drop = append(drop, f)
			r.BytesRead += f.FileSizeBytes()
			r.Rows += f.Count()
		}
		c.log.Info("partition past retention", logkey.Table, t.Name, logPartition, p.dir, logPartitionEnd, p.end, logDryRun, dry)
	}
	if len(drop) == 0 {
		return r, nil
	}
	r.FilesRemoved = len(drop)
	r.FilesAfter = r.FilesBefore - len(drop)
	if dry {
		return r, nil
	}
	// In chunks of at most maxBatchFiles, so that each commit stages fast
	// enough to win against ingest.
	for len(drop) > 0 {
		chunk := drop[:min(len(drop), maxBatchFiles)]
		drop = drop[len(chunk):]
		newTbl, err := c.replace(ctx, t.Name, TaskRetention, chunk, nil, false, nil)
		if errors.Is(err, ErrStale) {
			c.log.Info("partitions changed while applying retention; planned again next cycle", logkey.Table, t.Name)
			return r, nil
		}
		if err != nil {
			return r, err
		}
		r.SnapshotID = newTbl.CurrentSnapshot().SnapshotID
	}
	c.m.dropped.WithLabelValues(t.Name).Add(float64(r.Partitions))
	c.count(t.Name, TaskRetention, r.FilesRemoved, 0, r.BytesRead, 0, 0)
	c.m.dataFiles.WithLabelValues(t.Name).Set(float64(r.FilesAfter))
	return r, nil
}

// coldPrefix is the directory of a table's tiered data files, ending in /.
func (c *Compactor) coldPrefix(name string) string {
	return strings.TrimSuffix(c.cfg.ColdLocation, "/") + "/" + c.deps.Catalog.Config().Namespace + "/" + name + "/data/"
}

// dueForTier reports whether partition p of table name belongs in the
// cold location.
func (c *Compactor) dueForTier(name string, p *partition) bool {
	after := c.policy(name).TierAfter
	return after > 0 && c.cfg.ColdLocation != "" && !p.end.IsZero() && p.end.Add(after).Before(c.deps.Now())
}

// tier moves the files of partitions older than tier_after to the cold
// location: each is copied byte for byte and swapped in by a rewrite
// commit, one per partition. The table stays one table: readers get the
// new paths with the next snapshot, and the warm copies are deleted by
// expiry once no retained snapshot references them.
func (c *Compactor) tier(ctx context.Context, t Table, dry bool) (*TaskReport, error) {
	if c.policy(t.Name).TierAfter <= 0 || c.cfg.ColdLocation == "" {
		return nil, nil
	}
	tbl, parts, r, err := c.loadLive(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	if err := c.checkCold(tbl); err != nil {
		return nil, err
	}
	prefix := c.coldPrefix(t.Name)
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	var (
		move, add []iceberg.DataFile
		in        int64
		parts0    int
	)
	flush := func() error {
		if len(move) == 0 {
			return nil
		}
		defer func() { move, add, in, parts0 = nil, nil, 0, 0 }()
		newTbl, err := c.replace(ctx, t.Name, TaskTier, move, add, true, nil)
		if err != nil {
			if !errors.Is(err, ErrCommitUnknown) {
				c.discard(ctx, tbl, add)
			}
			if errors.Is(err, ErrStale) {
				return nil
			}
			return err
		}
		tbl = newTbl
		r.Partitions += parts0
		r.FilesRemoved += len(move)
		r.FilesAdded += len(add)
		r.BytesRead += in
		r.BytesWritten += in
		r.SnapshotID = tbl.CurrentSnapshot().SnapshotID
		c.count(t.Name, TaskTier, len(move), len(add), in, in, 0)
		return nil
	}
	for _, p := range parts {
		if !c.dueForTier(t.Name, p) {
			continue
		}
		var pmove []iceberg.DataFile
		for _, f := range p.files {
			if !strings.HasPrefix(f.FilePath(), prefix) {
				pmove = append(pmove, f)
			}
		}
		if len(pmove) == 0 {
			continue
		}
		if dry {
			r.Partitions++
			for _, f := range pmove {
				r.BytesRead += f.FileSizeBytes()
			}
			r.FilesRemoved += len(pmove)
			r.FilesAdded += len(pmove)
			continue
		}
		for _, f := range pmove {
			id, err := uuid.NewV7()
			if err != nil {
				c.discard(ctx, tbl, add)
				return r, err
			}
			to := prefix + p.dir + "/" + id.String() + ".parquet"
			if err := c.copyToCold(ctx, fs, f.FilePath(), to, f.FileSizeBytes()); err != nil {
				c.discard(ctx, tbl, add)
				return r, err
			}
			nf, err := describeCopy(f, to, tbl.Spec())
			if err != nil {
				c.discard(ctx, tbl, add)
				_ = removeObject(fs, to)
				return r, err
			}
			add = append(add, nf)
			move = append(move, f)
			in += f.FileSizeBytes()
		}
		parts0++
		if in >= 4*c.cfg.TargetFileSize || parts0 >= maxBatchPartitions || len(move) >= maxBatchFiles {
			if err := flush(); err != nil {
				return r, err
			}
		}
	}
	if err := flush(); err != nil {
		return r, err
	}
	return r, nil
}

// copyToCold copies a data file to the cold location: on S3 a copy on the
// server with the cold storage class (no bytes through this process),
// elsewhere byte for byte through this process.
func (c *Compactor) copyToCold(ctx context.Context, fs iceio.IO, from, to string, size int64) error {
	if st := c.deps.Catalog.Store(); st != nil && objstore.IsS3(from) && objstore.IsS3(to) {
		if size <= objstore.MaxSingleCopy {
			return st.Copy(ctx, from, to, c.cfg.ColdStorageClass)
		}
		c.log.Warn("file too large for one server-side copy; copied through this process without the cold storage class",
			logkey.Path, from, logkey.Bytes, size)
	}
	return copyObject(fs, from, to)
}

// describeCopy is f's Iceberg description at a new path: the bytes are
// identical, so are the statistics.
func describeCopy(f iceberg.DataFile, to string, spec iceberg.PartitionSpec) (iceberg.DataFile, error) {
	b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, to, f.FileFormat(), f.Partition(), nil, nil, f.Count(), f.FileSizeBytes())
	if err != nil {
		return nil, err
	}
	b.ColumnSizes(f.ColumnSizes()).ValueCounts(f.ValueCounts()).NullValueCounts(f.NullValueCounts()).
		NaNValueCounts(f.NaNValueCounts()).LowerBoundValues(f.LowerBoundValues()).UpperBoundValues(f.UpperBoundValues()).
		SplitOffsets(f.SplitOffsets())
	if id := f.SortOrderID(); id != nil {
		b.SortOrderID(*id)
	}
	return b.Build(), nil
}
