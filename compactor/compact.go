package compactor

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

// partition is the live data files of one table partition.
type partition struct {
	key   string
	dir   string      // directory name of its files, e.g. ts_hour=2026-11-26-10
	value map[int]any // partition values, as data files carry them
	// end is when the partition's time range ends (zero if the spec is
	// not a single time transform).
	end   time.Time
	files []iceberg.DataFile
}

// livePartitions lists the data files of the table's current snapshot by
// partition, oldest partition first.
func livePartitions(ctx context.Context, tbl *table.Table) ([]*partition, int, error) {
	if tbl.CurrentSnapshot() == nil {
		return nil, 0, nil
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("plan files: %w", err)
	}
	spec := tbl.Spec()
	byKey := map[string]*partition{}
	seen := map[string]bool{}
	n := 0
	for _, t := range tasks {
		if len(t.DeleteFiles) > 0 || len(t.EqualityDeleteFiles) > 0 || len(t.DeletionVectorFiles) > 0 {
			return nil, 0, errors.New("the table has row-level delete files, which the compactor does not rewrite")
		}
		df := t.File
		if seen[df.FilePath()] {
			continue
		}
		seen[df.FilePath()] = true
		n++
		key := fmt.Sprint(df.SpecID(), df.Partition())
		p := byKey[key]
		if p == nil {
			p = &partition{key: key, dir: path.Base(path.Dir(df.FilePath())), value: df.Partition()}
			if int(df.SpecID()) == spec.ID() {
				p.end = partitionEnd(spec, df.Partition())
			}
			byKey[key] = p
		}
		p.files = append(p.files, df)
	}
	out := make([]*partition, 0, len(byKey))
	for _, p := range byKey {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *partition) int {
		if c := a.end.Compare(b.end); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	return out, n, nil
}

// loadLive loads table name and its live files by partition, and starts
// a task report counting them.
func (c *Compactor) loadLive(ctx context.Context, name string) (*table.Table, []*partition, *TaskReport, error) {
	tbl, err := c.deps.Catalog.LoadTable(ctx, name)
	if err != nil {
		return nil, nil, nil, err
	}
	parts, total, err := livePartitions(ctx, tbl)
	if err != nil {
		return nil, nil, nil, err
	}
	return tbl, parts, &TaskReport{FilesBefore: total, FilesAfter: total}, nil
}

// partitionEnd is the end of a partition of a single hour/day/month/year
// transform, zero otherwise.
func partitionEnd(spec iceberg.PartitionSpec, values map[int]any) time.Time {
	if spec.NumFields() != 1 {
		return time.Time{}
	}
	f := spec.Field(0)
	v, ok := toInt64(values[f.FieldID])
	if !ok {
		return time.Time{}
	}
	switch f.Transform.(type) {
	case iceberg.HourTransform:
		return time.Unix((v+1)*3600, 0).UTC()
	case iceberg.DayTransform:
		return time.Unix((v+1)*86400, 0).UTC()
	case iceberg.MonthTransform:
		return time.Date(1970, time.Month(1+v+1), 1, 0, 0, 0, 0, time.UTC)
	case iceberg.YearTransform:
		return time.Date(1970+int(v)+1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

func toInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case int:
		return int64(v), true
	case iceberg.Date:
		return int64(v), true
	}
	return 0, false
}

// sortColumn is the column compacted files are sorted by: event time (the
// minute of a read model, ingest time for dead letters).
func sortColumn(tbl *table.Table, role string) string {
	if tbl.Properties()[lake.PropKind] == lake.KindReadModel && len(tbl.Schema().Fields()) > 0 {
		// A declared model's first column is its event-time bucket.
		if f := tbl.Schema().Fields()[0]; f.Type.Equals(iceberg.PrimitiveTypes.TimestampTz) {
			return f.Name
		}
	}
	cands := []string{lake.ColTs, lake.ColMinute, lake.ColIngestedAt}
	if role == RoleDLQ {
		cands = []string{lake.ColIngestedAt}
	}
	for _, name := range cands {
		if _, ok := tbl.Schema().FindFieldByName(name); ok {
			return name
		}
	}
	return ""
}

// writeOrder is the order rows are written in by a rewrite, and the
// Iceberg sort order id its files claim (0: none).
type writeOrder struct {
	keys []lake.SortKey
	id   int
}

// sql is the order as DuckDB ORDER BY terms.
func (o writeOrder) sql() string {
	terms := make([]string, len(o.keys))
	for i, k := range o.keys {
		dir, nulls := " ASC", " NULLS FIRST"
		if k.Desc {
			dir = " DESC"
		}
		if k.NullsLast {
			nulls = " NULLS LAST"
		}
		terms[i] = duck.QuoteIdent(k.Column) + dir + nulls
	}
	return strings.Join(terms, ", ")
}

// orderOf is the order compaction writes tbl's rows in: the table's
// Iceberg sort order when it declares one eventlake can follow (set by the
// table policy's sort_order or by another engine), its event-time column
// timeCol otherwise (the files then claim no sort order).
func (c *Compactor) orderOf(tbl *table.Table, name, timeCol string) writeOrder {
	keys, id, err := lake.WriteOrder(tbl)
	switch {
	case err != nil:
		c.log.Warn("the table's sort order cannot be followed; compacted files are sorted by event time", logkey.Table, name, logkey.Err, err)
	case len(keys) > 0:
		return writeOrder{keys: keys, id: id}
	}
	if timeCol != "" {
		return writeOrder{keys: []lake.SortKey{{Column: timeCol}}}
	}
	return writeOrder{}
}

// plan groups the small files of a partition into rewrite groups of at
// most target bytes, in event-time order, dropping groups of one file.
func plan(p *partition, target int64, sortID int) [][]iceberg.DataFile {
	var small []iceberg.DataFile
	for _, f := range p.files {
		if f.FileSizeBytes() < target*3/4 {
			small = append(small, f)
		}
	}
	lower := func(f iceberg.DataFile) int64 {
		if b := f.LowerBoundValues()[sortID]; len(b) == 8 {
			return int64(binary.LittleEndian.Uint64(b))
		}
		return 0
	}
	slices.SortStableFunc(small, func(a, b iceberg.DataFile) int {
		if c := cmp.Compare(lower(a), lower(b)); c != 0 {
			return c
		}
		return strings.Compare(a.FilePath(), b.FilePath())
	})
	var (
		groups [][]iceberg.DataFile
		cur    []iceberg.DataFile
		size   int64
	)
	for _, f := range small {
		if len(cur) > 0 && size+f.FileSizeBytes() > target {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += f.FileSizeBytes()
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return slices.DeleteFunc(groups, func(g []iceberg.DataFile) bool { return len(g) < 2 })
}

// openTierBase is the upper size of the first tier of an open
// partition's files, divided by the tier ratio (open_merge_files). Small:
// a minute of 1-second files merged must leave the first tier, or it is
// merged again with every minute's new files until it does (at 64 KiB,
// 4.75 rewrites per row over an hour of 100k events; at 4 KiB, 3).
const openTierBase = 4 << 10

// sizeTier is the tier of a file of size bytes in an open partition with
// tiers ratio times apart: 0 below openTierBase*ratio (4 KiB * 8 = 32 KiB
// by default), then one more per factor of ratio.
func sizeTier(size int64, ratio int) int {
	t := 0
	for lim := int64(openTierBase) * int64(ratio); size >= lim; lim *= int64(ratio) {
		t++
	}
	return t
}

// planOpen plans the merges of a partition that is still open (ingest
// keeps adding files to it): its small files are grouped in tiers of
// similar size, and a tier that holds mergeFiles files is merged. A merge
// of mergeFiles files of one tier lands in the next, so a row is
// rewritten about once per tier (a handful of times over an hour), and
// the partition holds at most mergeFiles-1 files per tier plus what
// arrived since the last cycle. Merging all of its small files each cycle
// instead would rewrite the partition's growing bulk every time.
func planOpen(p *partition, target int64, mergeFiles, sortID int) [][]iceberg.DataFile {
	tiers := map[int][]iceberg.DataFile{}
	for _, f := range p.files {
		if f.FileSizeBytes() < target*3/4 {
			t := sizeTier(f.FileSizeBytes(), mergeFiles)
			tiers[t] = append(tiers[t], f)
		}
	}
	var groups [][]iceberg.DataFile
	for _, t := range slices.Sorted(maps.Keys(tiers)) {
		if len(tiers[t]) >= mergeFiles {
			groups = append(groups, plan(&partition{files: tiers[t]}, target, sortID)...)
		}
	}
	return groups
}

// Bounds of one compaction commit: staging a commit reads the table's
// manifests and rewrites those holding replaced files, and it must finish
// well within ingest's flush interval or every attempt loses the race
// (ingest always wins).
const (
	maxBatchPartitions = 256
	maxBatchFiles      = 8192
)

// compact bin-packs the small files of every partition that is closed
// (its end plus allowed lateness is past) or that holds too many files
// into target-size files sorted by event time, and merges the small files
// of open partitions by size tier (planOpen); partitions are committed in
// batches.
func (c *Compactor) compact(ctx context.Context, t Table, dry bool) (*TaskReport, error) {
	if c.policy(t.Name).NoCompaction {
		return nil, nil
	}
	began := c.deps.Now()
	tbl, parts, r, err := c.loadLive(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	total := r.FilesBefore
	c.log.Debug("compaction planned", logkey.Table, t.Name, logkey.Files, total, logPartitions, len(parts), logkey.Duration, c.deps.Now().Sub(began))
	c.m.dataFiles.WithLabelValues(t.Name).Set(float64(total))
	if keys := c.policy(t.Name).SortOrder; len(keys) > 0 && !dry {
		if tbl, err = c.deps.Catalog.SetWriteOrder(ctx, tbl, keys); err != nil {
			return nil, err
		}
	}
	timeCol := sortColumn(tbl, t.Role)
	order := c.orderOf(tbl, t.Name, timeCol)
	// Files are grouped for rewriting in event-time order whatever order
	// their rows are written in.
	sortID := -1
	if f, ok := tbl.Schema().FindFieldByName(timeCol); ok {
		sortID = f.ID
	}
	now := c.deps.Now()
	// Partitions are rewritten one by one and committed in batches: one
	// snapshot per batch keeps commits (and the manifests each rewrites)
	// few, and bounds the work a conflict can throw away. A batch commits
	// in the background while the next one is rewritten (staging a commit
	// reads and writes manifests, seconds over thousands of small files);
	// at most one commit is in flight.
	type batchState struct {
		parts       int
		remove, add []iceberg.DataFile
		in, rows    int64
		idx, delta  []int // per partition: its index in parts, files added minus removed
		openRemoved int   // files of open partitions among remove
	}
	// files is each partition's data file count once its batch commits
	// (eventlake_compactor_partition_data_files_max).
	files := make([]int, len(parts))
	for i, p := range parts {
		files[i] = len(p.files)
	}
	var (
		cur      batchState
		inflight chan error
	)
	// wait joins the commit in flight, if any.
	wait := func() error {
		if inflight == nil {
			return nil
		}
		err := <-inflight
		inflight = nil
		return err
	}
	// abort discards what was written and not committed.
	abort := func(err error) (*TaskReport, error) {
		werr := wait()
		c.discard(ctx, tbl, cur.add)
		return r, errors.Join(err, werr)
	}
	flush := func() error {
		if err := wait(); err != nil {
			return err
		}
		if cur.parts == 0 {
			return nil
		}
		b := cur
		cur = batchState{}
		done := make(chan error, 1)
		inflight = done
		go func() {
			began := c.deps.Now()
			newTbl, err := c.replace(ctx, t.Name, TaskCompact, b.remove, b.add, true, nil)
			c.log.Debug("compaction batch committed", logkey.Table, t.Name, logPartitions, b.parts, logkey.Files, len(b.remove), logkey.Duration, c.deps.Now().Sub(began), logkey.Err, err)
			if err != nil {
				if !errors.Is(err, ErrCommitUnknown) {
					c.discard(ctx, tbl, b.add)
				}
				if errors.Is(err, ErrStale) {
					c.log.Info("files changed while compacting; the partitions are planned again next cycle", logkey.Table, t.Name, logPartitions, b.parts)
					err = nil
				}
				done <- err
				return
			}
			var out int64
			for _, f := range b.add {
				out += f.FileSizeBytes()
			}
			// Only this goroutine writes r until wait returns.
			r.Partitions += b.parts
			r.FilesRemoved += len(b.remove)
			r.FilesAdded += len(b.add)
			r.FilesAfter += len(b.add) - len(b.remove)
			r.BytesRead += b.in
			r.BytesWritten += out
			r.Rows += b.rows
			r.SnapshotID = newTbl.CurrentSnapshot().SnapshotID
			for k, i := range b.idx {
				files[i] += b.delta[k]
			}
			c.count(t.Name, TaskCompact, len(b.remove), len(b.add), b.in, out, b.rows)
			c.m.openMerged.WithLabelValues(t.Name).Add(float64(b.openRemoved))
			done <- nil
		}()
		return nil
	}
	for pi, p := range parts {
		if ctx.Err() != nil {
			return abort(ctx.Err())
		}
		// A commit that failed stops the run before more is rewritten.
		if inflight != nil {
			select {
			case err := <-inflight:
				inflight = nil
				if err != nil {
					return abort(err)
				}
			default:
			}
		}
		closed := !p.end.IsZero() && !p.end.Add(c.cfg.AllowedLateness).After(now)
		small := 0
		for _, f := range p.files {
			if f.FileSizeBytes() < c.cfg.TargetFileSize*3/4 {
				small++
			}
		}
		if small < c.cfg.MinInputFiles {
			continue
		}
		var groups [][]iceberg.DataFile
		if closed || small >= c.cfg.MaxFilesPerPartition {
			groups = plan(p, c.cfg.TargetFileSize, sortID)
		} else {
			groups = planOpen(p, c.cfg.TargetFileSize, c.cfg.OpenMergeFiles, sortID)
		}
		if len(groups) == 0 {
			continue
		}
		var pin int64
		var premove []iceberg.DataFile
		for _, g := range groups {
			for _, f := range g {
				premove = append(premove, f)
				pin += f.FileSizeBytes()
			}
		}
		if dry {
			r.Partitions++
			r.FilesRemoved += len(premove)
			r.FilesAdded += len(groups)
			r.BytesRead += pin
			r.FilesAfter += len(groups) - len(premove)
			continue
		}
		began := c.deps.Now()
		padd, prows, err := c.rewriteGroups(ctx, tbl, t, p, groups, order)
		if err != nil {
			return abort(err)
		}
		c.log.Debug("partition rewritten", logkey.Table, t.Name, logPartition, p.dir, logFilesBefore, len(premove),
			logFilesAfter, len(padd), logkey.Bytes, pin, logkey.Duration, c.deps.Now().Sub(began))
		cur.parts++
		cur.idx, cur.delta = append(cur.idx, pi), append(cur.delta, len(padd)-len(premove))
		if !closed {
			cur.openRemoved += len(premove)
		}
		cur.remove = append(cur.remove, premove...)
		cur.add = append(cur.add, padd...)
		cur.in += pin
		cur.rows += prows
		if cur.in >= 4*c.cfg.TargetFileSize || cur.parts >= maxBatchPartitions || len(cur.remove) >= maxBatchFiles {
			if err := flush(); err != nil {
				return abort(err)
			}
		}
	}
	if err := flush(); err != nil {
		return abort(err)
	}
	if err := wait(); err != nil {
		return r, err
	}
	if !dry {
		c.m.dataFiles.WithLabelValues(t.Name).Set(float64(r.FilesAfter))
		c.m.partFilesMax.WithLabelValues(t.Name).Set(float64(slices.Max(append(files, 0))))
	}
	return r, nil
}

// rewriteGroups writes one file per group, its rows in order; on error it removes
// what it wrote.
func (c *Compactor) rewriteGroups(ctx context.Context, tbl *table.Table, t Table, p *partition, groups [][]iceberg.DataFile, order writeOrder) ([]iceberg.DataFile, int64, error) {
	var (
		add  []iceberg.DataFile
		rows int64
	)
	for _, g := range groups {
		loc, err := c.newLocation(tbl, t.Name, p)
		if err != nil {
			c.discard(ctx, tbl, add)
			return nil, 0, err
		}
		df, err := c.eng.rewrite(ctx, rewriteSpec{tbl: tbl, inputs: g, location: loc, partition: p.value, order: order, storageClass: c.storageClass(loc)})
		if err != nil {
			c.discard(ctx, tbl, add)
			return nil, 0, err
		}
		if df != nil {
			add = append(add, df)
			rows += df.Count()
		}
	}
	return add, rows, nil
}

// newLocation is where a rewritten file of partition p goes: the cold
// location when the partition is due for tiering, the table's data
// directory otherwise.
func (c *Compactor) newLocation(tbl *table.Table, name string, p *partition) (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	file := p.dir + "/" + id.String() + ".parquet"
	if c.dueForTier(name, p) {
		if err := c.checkCold(tbl); err != nil {
			return "", err
		}
		return c.coldPrefix(name) + file, nil
	}
	lp, err := tbl.LocationProvider()
	if err != nil {
		return "", fmt.Errorf("location provider of %s: %w", name, err)
	}
	return lp.NewDataLocation(file), nil
}

// checkCold refuses an S3 cold location outside the bucket of tbl:
// iceberg-go's S3 FileIO serves one bucket per table, so files elsewhere
// could be read by the query service but not rewritten, erased or
// expired.
func (c *Compactor) checkCold(tbl *table.Table) error {
	if !objstore.IsS3(c.cfg.ColdLocation) {
		return nil
	}
	cold, _, err := objstore.SplitURI(c.cfg.ColdLocation + "/")
	if err != nil {
		return fmt.Errorf("compactor.cold_location: %w", err)
	}
	if !objstore.IsS3(tbl.Location()) {
		return fmt.Errorf("compactor.cold_location %s is on S3 but table %s lives at %s: tiering stays on one storage", c.cfg.ColdLocation, tbl.Identifier(), tbl.Location())
	}
	own, _, err := objstore.SplitURI(tbl.Location())
	if err != nil {
		return err
	}
	if own != cold {
		return fmt.Errorf("compactor.cold_location %s is in bucket %q, table %s in bucket %q: use a prefix of the table's bucket (iceberg-go's S3 FileIO serves one bucket per table)", c.cfg.ColdLocation, cold, tbl.Identifier(), own)
	}
	return nil
}

// storageClass is the S3 storage class a new file at location gets: the
// cold one under the cold location, the bucket's default elsewhere.
func (c *Compactor) storageClass(location string) string {
	if c.cfg.ColdStorageClass != "" && strings.HasPrefix(location, strings.TrimSuffix(c.cfg.ColdLocation, "/")+"/") {
		return c.cfg.ColdStorageClass
	}
	return ""
}

// discard removes files written for a change that was not committed.
func (c *Compactor) discard(ctx context.Context, tbl *table.Table, files []iceberg.DataFile) {
	if len(files) == 0 {
		return
	}
	// Cleanup runs also when ctx ended (a canceled run).
	fs, err := tbl.FS(context.WithoutCancel(ctx))
	if err != nil {
		c.log.Warn("could not remove uncommitted files; orphan cleanup will", logkey.Err, err)
		return
	}
	for _, f := range files {
		if err := removeObject(fs, f.FilePath()); err != nil {
			c.log.Warn("could not remove uncommitted file; orphan cleanup will", logkey.Path, f.FilePath(), logkey.Err, err)
		}
	}
}

func (c *Compactor) count(name, task string, removed, added int, in, out, rows int64) {
	c.m.filesBefore.WithLabelValues(name, task).Add(float64(removed))
	c.m.filesAfter.WithLabelValues(name, task).Add(float64(added))
	c.m.bytesRead.WithLabelValues(name, task).Add(float64(in))
	c.m.bytesWritten.WithLabelValues(name, task).Add(float64(out))
	c.m.rows.WithLabelValues(name, task).Add(float64(rows))
}
