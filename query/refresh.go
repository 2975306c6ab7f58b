package query

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
)

// logGeneration is the log key of a view generation number (internal/logkey
// has no such key yet).
const logGeneration = "generation"

// generation is one consistent picture of the lake: one snapshot per
// table (or none), the files each snapshot holds, and the views over them.
// It is immutable once published.
type generation struct {
	id      uint64
	tables  []*tableState // in the order of Service.specs
	views   []view
	byName  map[string]*view // lower-cased name -> view (DuckDB's names are case-insensitive)
	builtAt time.Time
	// hotVersion is the hot tables' columns version the views were built
	// with: a hot table created or widened since makes a new generation.
	// hotCols are the hot tables' columns then (raw table -> columns).
	hotVersion uint64
	hotCols    map[string][]column
}

// snapshotIDs names the snapshot of every table; null for a table that
// does not exist or has no snapshot yet.
func (g *generation) snapshotIDs() map[string]*int64 {
	out := make(map[string]*int64, len(g.tables))
	for _, st := range g.tables {
		out[st.spec.name] = st.snapshotPtr()
	}
	return out
}

// offsets are the Kafka offsets every table's snapshot covers.
func (g *generation) offsets() map[string]lake.Offsets {
	out := make(map[string]lake.Offsets, len(g.tables))
	for _, st := range g.tables {
		out[st.spec.name] = st.offsets
	}
	return out
}

func (g *generation) table(spec *tableSpec) *tableState {
	for _, st := range g.tables {
		if st.spec == spec {
			return st
		}
	}
	return nil
}

// tableState is one table as of one snapshot.
type tableState struct {
	spec      *tableSpec
	exists    bool
	schemaID  int
	hasSnap   bool
	snapshot  int64
	committed time.Time
	columns   []column
	offsets   lake.Offsets
	files     []dataFile
	// types are the event types a raw table holds typed columns for
	// (lake.TypesOf its properties).
	types []string
	// props are the table's properties (nil while it does not exist):
	// the lineage reads its sources from them.
	props iceberg.Properties
	// refused says why the table cannot be served correctly; its view
	// then fails when read.
	refused string
}

func (st *tableState) snapshotPtr() *int64 {
	if !st.hasSnap {
		return nil
	}
	id := st.snapshot
	return &id
}

// dataFile is one Parquet file of a snapshot.
type dataFile struct {
	path string
	rows int64
	// Event time bounds (micros) from the manifest, for pruning.
	tsLo, tsHi int64
	hasTs      bool
	// keys are the manifest's bounds of the table's identifier columns
	// (lake.BloomFilterColumns), for lookups (prune.go).
	keys []keyBounds
}

// refresh polls the catalog once and publishes a new generation if any
// table changed. A failure keeps the previous generation in service.
func (s *Service) refresh(ctx context.Context) {
	start := time.Now()
	err := s.refreshOnce(ctx)
	s.m.refreshDuration.Observe(time.Since(start).Seconds())
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		s.m.refreshErrors.Inc()
		// Logged when polling starts failing, not on every tick.
		if s.lastErr.Load() == nil {
			s.log.Warn("refresh views; serving the previous generation until a refresh succeeds", logkey.Err, err)
		}
		msg := err.Error()
		s.lastErr.Store(&msg)
		return
	}
	if s.lastErr.Swap(nil) != nil {
		s.log.Info("refresh recovered")
	}
	now := s.deps.Now()
	s.lastOK.Store(now.UnixNano())
	s.m.lastRefresh.Set(float64(now.UnixNano()) / 1e9)
}

func (s *Service) refreshOnce(ctx context.Context) error {
	if err := s.discoverTables(ctx); err != nil {
		return err
	}
	prev := s.gen.Load()
	states := make([]*tableState, len(s.specs))
	changed := prev == nil || len(prev.tables) != len(s.specs) || prev.hotVersion != s.hot.version()
	for i, spec := range s.specs {
		var old *tableState
		if prev != nil && i < len(prev.tables) {
			old = prev.tables[i]
		}
		st, err := s.loadTable(ctx, spec, old)
		if err != nil {
			return err
		}
		states[i] = st
		changed = changed || st != old
	}
	if changed {
		var id uint64 = 1
		if prev != nil {
			id = prev.id + 1
		}
		gen := &generation{id: id, tables: states, builtAt: s.deps.Now(), hotVersion: s.hot.version(), hotCols: map[string][]column{}}
		for _, st := range states {
			if st.spec.hasHot() {
				if cols := s.hot.columns(st.spec.name); cols != nil {
					gen.hotCols[st.spec.name] = cols
				}
			}
		}
		gen.views = buildViews(gen.tables, gen.hotCols, s.cfg.TypeViews, s.deps.Codecs)
		gen.byName = make(map[string]*view, len(gen.views))
		for i := range gen.views {
			gen.byName[strings.ToLower(gen.views[i].name)] = &gen.views[i]
		}
		if err := s.validate(ctx, gen); err != nil {
			return err
		}
		s.gen.Store(gen)
		s.m.generation.Set(float64(gen.id))
		// Queries of older generations keep their transaction snapshot, so
		// rows they may read stay visible to them after this delete.
		if err := s.trimHot(ctx, gen); err != nil {
			s.log.Warn("trim hot rows", logkey.Err, err)
		}
		for i, st := range states {
			if prev == nil || i >= len(prev.tables) || st != prev.tables[i] {
				s.log.Debug("table snapshot in service", logkey.Table, st.spec.name, logkey.SnapshotID, st.snapshot,
					logkey.Files, len(st.files), logGeneration, gen.id)
				if st.refused != "" {
					s.log.Warn("table refused", logkey.Table, st.spec.name, logkey.SnapshotID, st.snapshot, logkey.Reason, st.refused)
				}
			}
		}
	}
	now := s.deps.Now()
	for _, st := range states {
		if st.hasSnap {
			s.m.snapshotAge.WithLabelValues(st.spec.name).Set(now.Sub(st.committed).Seconds())
		} else {
			s.m.snapshotAge.DeleteLabelValues(st.spec.name)
		}
	}
	return nil
}

// discoverTables adds raw tables that appeared in the catalog (ingest
// creates the table of a topic taken by pattern on its first event).
// Called by the refresher only.
func (s *Service) discoverTables(ctx context.Context) error {
	ns := table.Identifier{s.deps.Catalog.Config().Namespace}
	for ident, err := range s.deps.Catalog.Iceberg().ListTables(ctx, ns) {
		if err != nil {
			return fmt.Errorf("list tables: %w", err)
		}
		name := ident[len(ident)-1]
		if s.known[name] {
			continue
		}
		tbl, err := s.deps.Catalog.LoadTable(ctx, name)
		if errors.Is(err, icecat.ErrNoSuchTable) {
			continue // dropped between listing and loading
		}
		if err != nil {
			return err
		}
		s.known[name] = true
		spec := foundSpec(name, tbl)
		if spec == nil {
			continue // not eventlake's: not served
		}
		s.specs = append(s.specs, spec)
		if !spec.readModel {
			s.log.Info("raw table found in the catalog", logkey.Table, name, logkey.Topic, spec.topic)
		} else {
			s.log.Info("table found in the catalog", logkey.Table, name, "kind", tbl.Properties()[lake.PropKind])
		}
	}
	return nil
}

// validate creates the generation's views on the refresher's connection,
// which binds them (and reads the first Parquet footer of each table), so
// that a generation that DuckDB cannot read is never published.
func (s *Service) validate(ctx context.Context, gen *generation) error {
	if s.adminViews == nil {
		s.adminViews = map[string]string{}
	}
	return createChanged(gen, s.adminViews, func(stmt string) error {
		_, err := s.admin.ExecContext(ctx, stmt)
		return err
	})
}

// loadTable returns the state of one table: old when nothing changed, a
// newly planned state otherwise.
func (s *Service) loadTable(ctx context.Context, spec *tableSpec, old *tableState) (*tableState, error) {
	tbl, err := s.deps.Catalog.LoadTable(ctx, spec.name)
	if errors.Is(err, icecat.ErrNoSuchTable) {
		if old != nil && !old.exists {
			return old, nil
		}
		// Not created yet (ingest has not started): an empty view with the
		// columns ingest will create.
		cols, err := schemaColumns(spec.def.Schema)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", spec.name, err)
		}
		return &tableState{spec: spec, columns: cols, offsets: lake.Offsets{}}, nil
	}
	if err != nil {
		return nil, err
	}
	snap := tbl.CurrentSnapshot()
	schemaID := tbl.Schema().ID
	if old != nil && old.exists && old.schemaID == schemaID && slices.Equal(old.types, lake.TypesOf(tbl.Properties())) &&
		(snap == nil && !old.hasSnap || snap != nil && old.hasSnap && snap.SnapshotID == old.snapshot) {
		return old, nil
	}
	return s.plan(ctx, spec, tbl)
}

// plan lists the data files of the table's current snapshot.
func (s *Service) plan(ctx context.Context, spec *tableSpec, tbl *table.Table) (*tableState, error) {
	st := &tableState{spec: spec, exists: true, schemaID: tbl.Schema().ID, offsets: lake.Offsets{},
		types: lake.TypesOf(tbl.Properties()), props: tbl.Properties()}
	cols, err := schemaColumns(tbl.Schema())
	if err != nil {
		// Serve the registered layout, refusing reads, rather than
		// stopping every other table.
		st.refused = fmt.Sprintf("table %s cannot be read: %v", spec.name, err)
		if cols, err = schemaColumns(spec.def.Schema); err != nil {
			return nil, fmt.Errorf("table %s: %w", spec.name, err)
		}
	}
	st.columns = cols
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return st, nil
	}
	st.hasSnap, st.snapshot, st.committed = true, snap.SnapshotID, time.UnixMilli(snap.TimestampMs)
	if off, err := lake.StoredOffsets(tbl); err != nil {
		// Offsets are reported, never used to read: a bad summary written
		// by another tool must not take the table offline.
		s.log.Warn("read stored offsets", logkey.Table, spec.name, logkey.SnapshotID, snap.SnapshotID, logkey.Err, err)
	} else {
		st.offsets = off
	}
	if st.refused != "" {
		return st, nil
	}
	tasks, err := tbl.Scan(table.WithSnapshotID(snap.SnapshotID)).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan scan of %s at snapshot %d: %w", spec.name, snap.SnapshotID, err)
	}
	tsID := -1
	if f, ok := tbl.Schema().FindFieldByName(lake.ColTs); ok && spec.hasHot() {
		if _, isTz := f.Type.(iceberg.TimestampTzType); isTz {
			tsID = f.ID
		}
	}
	var keyIDs []int
	for _, name := range lake.BloomFilterColumns(tbl.Schema(), tbl.Properties()) {
		if f, ok := tbl.Schema().FindFieldByName(name); ok {
			keyIDs = append(keyIDs, f.ID)
		}
	}
	if err := s.fetchRemote(ctx, spec.name, tasks); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(tasks))
	for _, task := range tasks {
		if reason := s.unreadable(task); reason != "" {
			st.refused = fmt.Sprintf("table %s at snapshot %d cannot be served: %s", spec.name, snap.SnapshotID, reason)
			st.files = nil
			return st, nil
		}
		path, _ := s.localPath(task.File.FilePath())
		if seen[path] {
			continue // a file split into several tasks
		}
		seen[path] = true
		df := dataFile{path: path, rows: task.File.Count()}
		if tsID >= 0 {
			lo, okLo := decodeMicros(task.File.LowerBoundValues()[tsID])
			hi, okHi := decodeMicros(task.File.UpperBoundValues()[tsID])
			df.tsLo, df.tsHi, df.hasTs = lo, hi, okLo && okHi
		}
		df.keys = fileKeyBounds(task.File, keyIDs)
		st.files = append(st.files, df)
	}
	return st, nil
}

// unreadable says why a scan task cannot be read as plain Parquet.
func (s *Service) unreadable(task table.FileScanTask) string {
	f := task.File
	switch {
	case len(task.DeleteFiles) > 0 || len(task.EqualityDeleteFiles) > 0 || len(task.DeletionVectorFiles) > 0:
		return "it has row-level delete files, which the query service does not apply yet; it refuses the table rather than return deleted rows"
	case f.FileFormat() != iceberg.ParquetFile:
		return fmt.Sprintf("data file %s is %s, not Parquet", f.FilePath(), f.FileFormat())
	}
	path, ok := s.localPath(f.FilePath())
	if !ok {
		return fmt.Sprintf("data file %s is not on a local file system, and this DuckDB reads local files only", f.FilePath())
	}
	if !s.inLake(path) {
		return fmt.Sprintf("data file %s is outside the lake directories %v; add its directory to query.lake_dirs", path, s.lakeDirs)
	}
	return ""
}

// decodeMicros decodes an Iceberg single-value timestamp bound: 8 bytes,
// little-endian microseconds since the epoch.
func decodeMicros(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint64(b)), true
}
