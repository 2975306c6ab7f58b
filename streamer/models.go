package streamer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/eventlake/eventlake/internal/logkey"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/readmodel"
	"github.com/eventlake/eventlake/schema"
)

// TaskModelBuild is the commit task of a declared model's first build
// from the lake's history.
const TaskModelBuild = "read-model-build"

// model is one declared read model in the hot tier: the committed table's
// rows (cold), the events read after its offsets (entries, and hot, their
// merged rows). Answers are cold merged with hot: exactly the committed
// snapshot plus every event after its offsets.
//
// mu guards everything below it but binds and vals (the consuming
// goroutine's). cold is changed only by followModel, on the maintaining
// goroutine (or bootstrap) with mu held: that goroutine reads it without
// mu.
type model struct {
	m   *readmodel.Model
	idx int // in Streamer.models
	mu  sync.RWMutex
	coldTable
	cold, hot *readmodel.State
	// entries are the contributions of events at or after the table's
	// offsets, per topic and partition, in offset order.
	entries map[string]map[int32][]modelEntry
	n       int // len of every entries list
	// fileKeys are the row keys of each data file of cold, to follow
	// commits file by file; dups is set when the table holds a key in
	// several rows (a table of deltas written before declared models),
	// which the next commit rewrites as one row per key.
	fileKeys map[string][]string
	dups     bool
	binds    map[*schema.TypeVersion]*readmodel.EventBinding
	vals     []readmodel.Value // scratch of consume
	ready    bool              // loaded (and built, on the committer)
	// maxTs is the latest event time counted (microseconds): buckets
	// ending before it minus the allowed lateness are closed.
	maxTs int64
	// read is the next offset of every partition read of the topics it
	// counts (of its table's numbering, for a model over a derived
	// table): hot holds exactly the events after offsets and below read.
	read lake.Offsets
}

type modelEntry struct {
	off int64
	c   readmodel.Contribution
}

func newModel(m *readmodel.Model) *model {
	return &model{m: m, coldTable: coldTable{name: m.Name}, cold: m.NewState(), hot: m.NewState(),
		entries: map[string]map[int32][]modelEntry{}, fileKeys: map[string][]string{}, read: lake.Offsets{},
		binds: map[*schema.TypeVersion]*readmodel.EventBinding{}, vals: make([]readmodel.Value, len(m.Inputs))}
}

// bind returns the model's binding to version v, made once. Called with
// mu held.
func (s *Streamer) bind(md *model, v *schema.TypeVersion) *readmodel.EventBinding {
	b, ok := md.binds[v]
	if !ok {
		b = md.m.BindEvent(v)
		if b.Err != nil {
			s.log.Warn("events of this schema version are not counted by the read model", logkey.Err, b.Err)
		}
		md.binds[v] = b
	}
	return b
}

// add counts one accepted event; it returns the row it changed (nil: the
// event does not count). Called with mu held.
func (s *Streamer) contribution(md *model, ev *schema.Event) (readmodel.Contribution, bool) {
	if !s.bind(md, ev.Version).Fill(ev, md.vals) {
		s.m.notCounted.WithLabelValues(md.name).Inc()
		return readmodel.Contribution{}, false
	}
	return md.m.Contribute(md.vals)
}

// bootstrapModel creates the model's table if needed, checks that an
// existing one holds this declaration, builds a new one from the lake's
// history (on the committer) and loads it.
func (s *Streamer) bootstrapModel(ctx context.Context, md *model) error {
	def := md.m.TableDef()
	tbl, err := s.deps.Catalog.LoadTable(ctx, md.name)
	switch {
	case errors.Is(err, icecat.ErrNoSuchTable):
		if tbl, err = s.deps.Catalog.EnsureTable(ctx, def); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := md.m.Compatible(tbl.Properties(), tbl.Schema()); err != nil {
			if !legacyInventory(md.name, tbl) {
				return err
			}
			if !s.cfg.Commit {
				// followModel waits for the committer to replace it.
				s.log.Warn("read model table is the inventory_health of an earlier version; waiting for the read-model committer to replace it",
					logkey.Table, md.name)
				return s.followModel(ctx, md, true)
			}
			if tbl, err = s.replaceLegacy(ctx, md, tbl); err != nil {
				return err
			}
		}
	}
	if tbl.CurrentSnapshot() == nil && s.cfg.Commit {
		if err := s.buildModel(ctx, md, tbl); err != nil {
			return err
		}
	}
	if err := s.followModel(ctx, md, true); err != nil {
		return err
	}
	return s.floorUncounted(ctx, md)
}

// floorUncounted starts a model that has never committed, and whose type
// no raw table has held (lake.PropTypePrefix), at the offsets the raw
// tables cover: nothing of its
// type lies below them, and its table stores no offsets until an event of
// its type arrives (a commit of no rows makes no snapshot). Without it
// every start of the hot tier would read every topic from its start.
func (s *Streamer) floorUncounted(ctx context.Context, md *model) error {
	md.mu.RLock()
	has := md.hasSnap
	md.mu.RUnlock()
	if has || md.m.Table != "" {
		return nil
	}
	raws, err := readmodel.RawTables(ctx, s.deps.Catalog)
	if err != nil {
		return err
	}
	for _, t := range raws {
		if t.Properties()[lake.PropTypePrefix+md.m.Type] != "" {
			return nil // its type is in the lake: the build (or the committer's) counts it
		}
	}
	covered, err := lake.CoveredOffsets(raws)
	if err != nil {
		return err
	}
	md.mu.Lock()
	if !md.hasSnap {
		md.offsets = covered
	}
	md.mu.Unlock()
	return nil
}

// legacyInventoryTable is the name of the one read model eventlake once
// maintained in Go code, before it was shipped as a declaration.
const legacyInventoryTable = "inventory_health"

// legacyInventory reports whether tbl is the inventory_health table of a
// version before the declared one: a read-model table without a
// declaration in its properties, holding the columns product_id, stock,
// updated_at and warehouse (the latest stock per product, appended at
// every commit). No other table is ever replaced.
func legacyInventory(name string, tbl *table.Table) bool {
	props := tbl.Properties()
	if name != legacyInventoryTable || props[lake.PropKind] != lake.KindReadModel || props[readmodel.PropModelCanonical] != "" {
		return false
	}
	var cols []string
	for _, f := range tbl.Schema().Fields() {
		cols = append(cols, f.Name)
	}
	slices.Sort(cols)
	return slices.Equal(cols, []string{"product_id", "stock", "updated_at", "warehouse"})
}

// replaceLegacy drops the inventory_health table of an earlier version
// and creates the declared model's in its place (empty: the caller builds
// it from the lake's raw history). The old table's data files stay under
// its location.
func (s *Streamer) replaceLegacy(ctx context.Context, md *model, old *table.Table) (*table.Table, error) {
	s.log.Warn("read model table inventory_health is in the layout of an earlier version (latest stock per product, appended); "+
		"dropping it and building the declared model from the lake's raw history",
		logkey.Table, md.name, "old_location", old.Location())
	cat := s.deps.Catalog
	if err := cat.Iceberg().DropTable(ctx, cat.Ident(md.name)); err != nil && !errors.Is(err, icecat.ErrNoSuchTable) {
		return nil, fmt.Errorf("drop the earlier %s table to replace it with the declared model: %w", md.name, err)
	}
	tbl, err := cat.EnsureTable(ctx, md.m.TableDef())
	if err != nil {
		return nil, fmt.Errorf("create read model %s in place of the earlier table: %w", md.name, err)
	}
	return tbl, nil
}

// buildModel computes a new model from every event the raw tables hold
// and commits it with the offsets they cover: from there on the hot tier
// counts what follows.
func (s *Streamer) buildModel(ctx context.Context, md *model, tbl *table.Table) error {
	start := time.Now()
	raws, err := readmodel.SourceTables(ctx, s.deps.Catalog, md.m)
	if err != nil {
		return err
	}
	st := md.m.NewState()
	events := 0
	covered, err := md.m.Scan(ctx, raws, readmodel.Range{}, nil, func(c readmodel.Contribution) {
		st.Apply(c)
		events++
	})
	if err != nil {
		return err
	}
	if len(covered) == 0 {
		return nil // an empty lake: the hot tier reads the topics from their start
	}
	var rows []*readmodel.Row
	st.Each(func(r *readmodel.Row) { rows = append(rows, r) })
	_, err = s.committer.Commit(ctx, lake.Change{Table: md.name, Task: TaskModelBuild, Base: tbl,
		Offsets: covered, Fence: lake.Offsets{}, Stage: md.m.ReplaceStage(rows, nil)})
	if errors.Is(err, lake.ErrFenced) {
		return nil // another committer built it: load theirs
	}
	if err != nil {
		return fmt.Errorf("build read model %s: %w", md.name, err)
	}
	s.log.Info("read model built from the lake", logkey.Table, md.name, "events", events, logkey.Rows, len(rows),
		logkey.Duration, time.Since(start))
	return nil
}

// followModel brings the model up to its table's current snapshot: the
// rows of files removed since go, those of added files come in (every
// file on the first load, or when the table held several rows of a key);
// then the events the snapshot covers leave the hot tier.
func (s *Streamer) followModel(ctx context.Context, md *model, first bool) error {
	md.mu.RLock()
	known, hasSnap, files, dups, ready := md.snapshot, md.hasSnap, md.files, md.dups, md.ready
	md.mu.RUnlock()
	v, err := loadView(ctx, s.deps.Catalog, md.name)
	if err != nil {
		return err
	}
	if v.tbl != nil && legacyInventory(md.name, v.tbl) {
		return nil // not ready until the committer replaces it (bootstrapModel)
	}
	if !first && ready && v.hasSnap == hasSnap && v.snapshot == known {
		return nil
	}
	full := first || dups || files == nil
	present := map[string]bool{}
	var read []string
	for _, f := range v.files {
		present[f.FilePath()] = true
		if full || !files[f.FilePath()] {
			read = append(read, f.FilePath())
		}
	}
	var removed []string
	for p := range files {
		if !present[p] {
			removed = append(removed, p)
		}
	}
	var rows []*readmodel.Row
	if v.tbl != nil {
		if err := md.m.ReadTable(ctx, v.tbl, read, func(r *readmodel.Row) { rows = append(rows, r) }); err != nil {
			return err
		}
	}
	kind := "incremental"
	if full {
		kind = "full"
	}
	s.m.reloads.WithLabelValues(md.name, kind).Inc()
	if snap := v.tbl.CurrentSnapshot(); !first && snap != nil && snap.Summary != nil {
		if task := snap.Summary.Properties[lake.SummaryTask]; task != TaskReadModel && task != TaskModelBuild {
			s.m.rewrites.WithLabelValues(md.name, task).Inc()
		}
	}

	md.mu.Lock()
	var before map[string]*readmodel.Row
	if !first {
		before = map[string]*readmodel.Row{}
	}
	note := func(key string) {
		if before != nil {
			if _, ok := before[key]; !ok {
				before[key] = readmodel.Total(key, md.cold, md.hot)
			}
		}
	}
	if full {
		if before != nil {
			md.cold.Each(func(r *readmodel.Row) { note(r.Key) })
		}
		md.cold, md.fileKeys, md.dups = md.m.NewState(), map[string][]string{}, false
		for _, r := range rows {
			note(r.Key)
			if md.cold.Get(r.Key) != nil {
				md.dups = true
				md.cold.Merge(r)
			} else {
				md.cold.Set(r)
			}
			md.fileKeys[r.File] = append(md.fileKeys[r.File], r.Key)
		}
	} else {
		for _, f := range removed {
			for _, k := range md.fileKeys[f] {
				if r := md.cold.Get(k); r != nil && r.File == f {
					note(k)
					md.cold.Delete(k)
				}
			}
			delete(md.fileKeys, f)
		}
		for _, r := range rows {
			note(r.Key)
			md.cold.Set(r)
			md.fileKeys[r.File] = append(md.fileKeys[r.File], r.Key)
		}
	}
	if md.dups {
		s.log.Warn("read model table holds several rows of a bucket and key (written before declared models); the next commit rewrites it",
			logkey.Table, md.name)
	}
	md.tbl, md.snapshot, md.hasSnap, md.offsets, md.files = v.tbl, v.snapshot, v.hasSnap, v.offsets, present
	s.rebuildHot(md)
	md.ready = true
	if before != nil {
		var changed []string
		for k, b := range before {
			if !readmodel.EqualRows(b, readmodel.Total(k, md.cold, md.hot)) {
				changed = append(changed, k)
			}
		}
		s.push.add(s.updates(md, changed)) // under md.mu: see Streamer.push
	}
	md.mu.Unlock()
	s.setStateSizes()
	return nil
}

// rebuildHot drops the entries the table's offsets cover and merges the
// rest into hot. Called with md.mu held.
func (s *Streamer) rebuildHot(md *model) {
	md.hot = md.m.NewState()
	for topic, parts := range md.entries {
		for p, es := range parts {
			o, _ := md.offsets.Get(topic, p)
			i, _ := slices.BinarySearchFunc(es, o, func(e modelEntry, o int64) int {
				switch {
				case e.off < o:
					return -1
				case e.off > o:
					return 1
				}
				return 0
			})
			if i > 0 {
				md.n -= i
				s.hot.Add(-int64(i))
				es = slices.Clone(es[i:])
				parts[p] = es
			}
			for _, e := range es {
				md.hot.Apply(e.c)
			}
		}
	}
	s.resumeIfDrained()
}

// errModelMoved means a model's table changed since the hot tier loaded
// it (a backfill, the compactor): its rows are followed before the next
// commit, which the hot tier would otherwise compute from stale rows.
var errModelMoved = errors.New("the table changed since it was loaded; following it first")

// commitModel commits the events of md read so far: the rows of every
// bucket they touched, merged with the committed rows, replace those
// buckets' rows, with the offsets advanced to what was read. Only the
// entries to commit are taken under md.mu; the rows are worked out
// without it (entries are appended, never changed, and cold is changed
// only on this goroutine).
func (s *Streamer) commitModel(ctx context.Context, md *model) (bool, error) {
	md.mu.RLock()
	if !md.ready || md.tbl == nil {
		md.mu.RUnlock()
		return false, nil
	}
	base, tbl, snap, hasSnap, dups := md.offsets.Clone(), md.tbl, md.snapshot, md.hasSnap, md.dups
	offsets := lake.Offsets{}
	var runs [][]modelEntry
	for topic, parts := range md.read {
		for p, h := range parts {
			if o, _ := md.offsets.Get(topic, p); h > o {
				offsets.Set(topic, p, h)
			}
			es := md.entries[topic][p]
			n, _ := slices.BinarySearchFunc(es, h, func(e modelEntry, h int64) int { return cmp.Compare(e.off, h) })
			runs = append(runs, es[:n:n])
		}
	}
	md.mu.RUnlock()
	delta := md.m.NewState()
	for _, es := range runs {
		for _, e := range es {
			delta.Apply(e.c)
		}
	}
	if delta.Len() == 0 && !dups {
		return false, nil
	}
	// Every row of every touched bucket: the rows replaced and what
	// replaces them.
	var (
		rows    []*readmodel.Row
		touched []int64
		del     iceberg.BooleanExpression
	)
	if dups {
		del = iceberg.AlwaysTrue{}
		keys := map[string]bool{}
		md.cold.Each(func(r *readmodel.Row) { keys[r.Key] = true })
		delta.Each(func(r *readmodel.Row) { keys[r.Key] = true })
		for k := range keys {
			rows = append(rows, readmodel.Total(k, md.cold, delta))
		}
	} else {
		touched = delta.Buckets()
		for _, b := range touched {
			keys := map[string]bool{}
			md.cold.InBucket(b, func(r *readmodel.Row) { keys[r.Key] = true })
			delta.InBucket(b, func(r *readmodel.Row) { keys[r.Key] = true })
			for k := range keys {
				rows = append(rows, readmodel.Total(k, md.cold, delta))
			}
		}
		del = md.m.BucketFilter(touched)
	}

	stage := md.m.ReplaceStage(rows, del)
	start := time.Now()
	_, err := s.committer.Commit(ctx, lake.Change{Table: md.name, Task: TaskReadModel, Base: tbl, Offsets: offsets, Fence: base,
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			staged, err := tx.StagedTable()
			if err != nil {
				return err
			}
			cur := staged.CurrentSnapshot()
			if cur == nil && hasSnap || cur != nil && (!hasSnap || cur.SnapshotID != snap) {
				return errModelMoved
			}
			return stage(ctx, tx, props)
		}})
	if err != nil {
		if errors.Is(err, errModelMoved) || errors.Is(err, lake.ErrFenced) {
			return false, s.followModel(ctx, md, false)
		}
		return false, fmt.Errorf("commit %s: %w", md.name, err)
	}
	s.m.commitDuration.WithLabelValues(md.name).Observe(time.Since(start).Seconds())
	s.m.lastCommit.WithLabelValues(md.name).Set(float64(s.deps.Now().UnixNano()) / 1e9)
	return true, s.followModel(ctx, md, false)
}

// updates are the live updates of md's rows of keys (SSE). Called with
// md.mu held.
func (s *Streamer) updates(md *model, keys []string) []Update {
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	cols := md.m.OutColumns()
	closed := md.maxTs - s.cfg.AllowedLateness.Microseconds()
	wm, hasWm := s.watermark()
	rev, cnt := md.m.AggIndex(lake.ColRevenue), md.m.AggIndex(lake.ColOrderCount)
	out := make([]Update, 0, len(keys))
	for _, k := range keys {
		r := readmodel.Total(k, md.cold, md.hot)
		if r == nil {
			r = md.m.EmptyRow(k)
		}
		vals := md.m.Output(r)
		row := make(map[string]any, len(cols))
		for i, c := range cols {
			row[c.Name] = vals[i]
		}
		end := r.Bucket + md.m.Bucket.Width.Microseconds()
		u := Update{Model: md.name, Key: k, Row: row, Final: md.maxTs > 0 && end <= closed}
		if md == s.live {
			// order_revenue_minute's minutes are final when the windows'
			// watermark passes them, as its own stream always said.
			u.Final = hasWm && end <= wm
			u.Minute = time.UnixMicro(r.Bucket).UTC().Format(time.RFC3339)
			if rev >= 0 {
				u.Revenue, _ = vals[1+len(md.m.Keys)+rev].(string)
				if u.Revenue == "" {
					u.Revenue = zeroDecimal(md.m.Aggs[rev].Type)
				}
			}
			if cnt >= 0 {
				u.OrderCount, _ = vals[1+len(md.m.Keys)+cnt].(int64)
			}
		}
		out = append(out, u)
	}
	return out
}

// zeroDecimal is 0 with the scale of a sum of t ("0.00").
func zeroDecimal(t iceberg.Type) string {
	if d, ok := readmodel.SumType(t).(iceberg.DecimalType); ok && d.Scale() > 0 {
		b := []byte("0.")
		for range d.Scale() {
			b = append(b, '0')
		}
		return string(b)
	}
	return "0"
}

// ModelAnswer answers q over the declared model name: its committed rows
// merged with the events read after them (the query service serves it as
// GET /v1/models/{name}).
func (s *Streamer) ModelAnswer(name string, q readmodel.Query) (readmodel.Answer, error) {
	var md *model
	for _, m := range s.models {
		if m.name == name {
			md = m
		}
	}
	if md == nil {
		return readmodel.Answer{}, readmodel.ErrNotMaintained
	}
	md.mu.RLock()
	defer md.mu.RUnlock()
	if !s.ready.Load() || !md.ready {
		return readmodel.Answer{}, readmodel.ErrLoading
	}
	a := readmodel.Answer{Rows: md.m.Answer(q, md.cold, md.hot), SnapshotID: md.snapshot, HasSnapshot: md.hasSnap,
		Offsets: md.offsets.Clone(), Read: md.read.Clone()}
	// The answer is read after md.mu is released: a row of the hot state
	// (the only rows changed in place, by consume) is copied now, so that
	// it holds exactly the events below Read. Committed rows are replaced,
	// never changed, and are shared.
	for i, r := range a.Rows {
		if md.hot.Get(r.Key) == r {
			a.Rows[i] = r.Clone()
		}
	}
	if md.tbl != nil {
		if snap := md.tbl.CurrentSnapshot(); snap != nil {
			a.SnapshotTime = time.UnixMilli(snap.TimestampMs).UTC()
		}
	}
	for topic, parts := range md.offsets { // not read yet: the snapshot's offsets
		for p, o := range parts {
			if cur, ok := a.Read.Get(topic, p); !ok || cur < o {
				a.Read.Set(topic, p, o)
			}
		}
	}
	if md.maxTs > 0 {
		a.Closed = md.m.Bucket.Of(md.maxTs - s.cfg.AllowedLateness.Microseconds())
	}
	return a, nil
}
