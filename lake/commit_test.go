package lake

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
)

func TestFence(t *testing.T) {
	off := func(kv ...int64) Offsets {
		o := Offsets{}
		for i := 0; i < len(kv); i += 2 {
			o.Set("t", int32(kv[i]), kv[i+1])
		}
		return o
	}
	for _, tc := range []struct {
		name                  string
		offsets, base, stored Offsets
		fenced                bool
	}{
		{"first commit of a partition", off(0, 10), off(), off(), false},
		{"the table stores what the writer expects", off(0, 20), off(0, 10), off(0, 10), false},
		{"another writer moved the partition", off(0, 20), off(0, 10), off(0, 15), true},
		{"another writer took a partition this writer thought new", off(0, 10), off(), off(0, 5), true},
		{"the table lost a partition this writer expects (a restore)", off(0, 20), off(0, 10), off(), true},
		{"only the partitions advanced are fenced", off(1, 20), off(1, 10, 0, 3), off(1, 10, 0, 99), false},
		{"nothing advanced: never fenced", nil, nil, off(0, 99), false},
	} {
		err := fence("tbl", tc.offsets, tc.base, tc.stored)
		if got := errors.Is(err, ErrFenced); got != tc.fenced {
			t.Errorf("%s: fence = %v, want fenced=%v", tc.name, err, tc.fenced)
		}
	}
}

// testCatalog opens a SQLite catalog with a local warehouse and a raw
// table in it.
func testCatalog(t *testing.T, dir string) *Catalog {
	t.Helper()
	cfg := Config{Type: TypeSQLite, URI: dir + "/catalog.db", Warehouse: dir + "/warehouse"}
	cfg.Defaults("")
	cat, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	def := RawTableDef("events_raw", "events", nil, nil)
	if _, err := cat.EnsureTable(context.Background(), def); err != nil {
		t.Fatal(err)
	}
	return cat
}

// dataFile writes a data file of n rows into tbl (uncommitted).
func dataFile(t *testing.T, tbl *table.Table, n int) iceberg.DataFile {
	t.Helper()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for range n {
		for i, f := range sc.Fields() {
			switch fb := b.Field(i).(type) {
			case *array.StringBuilder:
				fb.Append(f.Name)
			case *array.Int32Builder:
				fb.Append(0)
			case *array.Int64Builder:
				fb.Append(1)
			case *array.TimestampBuilder:
				fb.Append(0)
			default:
				fb.AppendNull()
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	lp, err := tbl.LocationProvider()
	if err != nil {
		t.Fatal(err)
	}
	spec := tbl.Spec()
	w, err := CreateFile(context.Background(), tbl, lp.NewDataLocation("ts_hour=1970-01-01-00/"+uuid.NewString()+".parquet"),
		sc, map[int]any{spec.Field(0).FieldID: int32(0)}, FileOptions{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	df, err := w.Close(tbl)
	if err != nil {
		t.Fatal(err)
	}
	return df
}

func offsets(p int32, next int64) Offsets {
	o := Offsets{}
	o.Set("events", p, next)
	return o
}

func snapshotsWith(tbl *table.Table, key, value string) int {
	n := 0
	for _, s := range tbl.Metadata().Snapshots() {
		if s.Summary != nil && s.Summary.Properties[key] == value {
			n++
		}
	}
	return n
}

// TestCommitConflictStagesAgain: a writer with a stale handle loses the
// race to another writer; the protocol reloads the table, stages the same
// files again and merges its offsets with the other writer's.
func TestCommitConflictStagesAgain(t *testing.T) {
	dir := t.TempDir()
	cat := testCatalog(t, dir)
	ctx := context.Background()
	var conflicts atomic.Int32
	a := NewCommitter(cat, CommitConfig{Writer: "a"}, CommitHooks{Conflict: func(string) { conflicts.Add(1) }}, nil, nil)
	b := NewCommitter(cat, CommitConfig{Writer: "b"}, CommitHooks{}, nil, nil)

	stale, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, Change{Table: "events_raw", Task: "test", Offsets: offsets(1, 7), Fence: Offsets{},
		Stage: Append([]iceberg.DataFile{dataFile(t, stale, 7)})}); err != nil {
		t.Fatal(err)
	}
	staged := 0
	files := []iceberg.DataFile{dataFile(t, stale, 5)}
	got, err := a.Commit(ctx, Change{Table: "events_raw", Task: "test", Base: stale, Offsets: offsets(0, 5), Fence: Offsets{},
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			staged++
			return Append(files)(ctx, tx, props)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if staged != 2 || conflicts.Load() != 1 {
		t.Fatalf("staged %d times with %d conflicts, want 2 and 1", staged, conflicts.Load())
	}
	stored, err := StoredOffsets(got)
	if err != nil {
		t.Fatal(err)
	}
	if o0, _ := stored.Get("events", 0); o0 != 5 {
		t.Fatalf("partition 0 at %d, want 5 (%v)", o0, stored)
	}
	if o1, _ := stored.Get("events", 1); o1 != 7 {
		t.Fatalf("partition 1 at %d, want 7: the re-commit lost the other writer's offsets (%v)", o1, stored)
	}
	if n := snapshotsWith(got, SummaryTask, "test"); n != 2 {
		t.Fatalf("%d snapshots by task test, want 2", n)
	}
}

// TestCommitFenced: a writer whose partition another writer advanced
// commits nothing.
func TestCommitFenced(t *testing.T) {
	cat := testCatalog(t, t.TempDir())
	ctx := context.Background()
	var fenced atomic.Int32
	w := NewCommitter(cat, CommitConfig{Writer: "w"}, CommitHooks{Fenced: func(string) { fenced.Add(1) }}, nil, nil)
	tbl, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, Change{Table: "events_raw", Task: "test", Offsets: offsets(0, 10), Fence: Offsets{},
		Stage: Append([]iceberg.DataFile{dataFile(t, tbl, 10)})}); err != nil {
		t.Fatal(err)
	}
	// A zombie that still believes the table is empty.
	_, err = w.Commit(ctx, Change{Table: "events_raw", Task: "zombie", Offsets: offsets(0, 20), Fence: Offsets{},
		Stage: Append([]iceberg.DataFile{dataFile(t, tbl, 10)})})
	if !errors.Is(err, ErrFenced) || fenced.Load() != 1 {
		t.Fatalf("zombie commit: %v (fenced hook %d), want ErrFenced", err, fenced.Load())
	}
	now, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if n := snapshotsWith(now, SummaryTask, "zombie"); n != 0 {
		t.Fatalf("the fenced change made %d snapshots", n)
	}
}

// lostAnswer commits for real but reports a failure the first time, as a
// catalog whose answer is lost after it applied the commit would.
type lostAnswer struct {
	table.CatalogIO
	lost atomic.Int32
}

func (l *lostAnswer) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, upd []table.Update) (table.Metadata, string, error) {
	md, loc, err := l.CatalogIO.CommitTable(ctx, ident, reqs, upd)
	if err == nil && l.lost.Add(1) == 1 {
		return nil, "", errors.New("connection reset by peer")
	}
	return md, loc, err
}

// TestCommitUnknownOutcomeLookedUp: a commit applied by the catalog whose
// answer was lost is found by its commit id, not applied twice.
func TestCommitUnknownOutcomeLookedUp(t *testing.T) {
	cat := testCatalog(t, t.TempDir())
	ctx := context.Background()
	var failed atomic.Int32
	w := NewCommitter(cat, CommitConfig{Writer: "w"}, CommitHooks{Error: func(string, error) { failed.Add(1) }}, nil, nil)
	tbl, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	la := &lostAnswer{CatalogIO: cat.cat.(table.CatalogIO)}
	base := table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, la)
	got, err := w.Commit(ctx, Change{Table: "events_raw", Task: "test", Base: base, Offsets: offsets(0, 3), Fence: Offsets{},
		Stage: Append([]iceberg.DataFile{dataFile(t, tbl, 3)})})
	if err != nil {
		t.Fatal(err)
	}
	if la.lost.Load() != 1 {
		t.Fatalf("the lost answer was not exercised (%d commits)", la.lost.Load())
	}
	if n := snapshotsWith(got, SummaryTask, "test"); n != 1 {
		t.Fatalf("%d snapshots of the change, want exactly 1", n)
	}
	if failed.Load() != 0 {
		t.Fatalf("the lookup should have found the commit without a retry; %d failures", failed.Load())
	}
}

// TestCommitBusy: a change that loses every race gives up after
// MaxConflicts attempts without committing.
func TestCommitBusy(t *testing.T) {
	cat := testCatalog(t, t.TempDir())
	ctx := context.Background()
	w := NewCommitter(cat, CommitConfig{Writer: "w"}, CommitHooks{}, nil, nil)
	other := NewCommitter(cat, CommitConfig{Writer: "other"}, CommitHooks{}, nil, nil)
	tbl, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	_, err = w.Commit(ctx, Change{Table: "events_raw", Task: "loser", MaxConflicts: 3,
		Stage: func(ctx context.Context, tx *table.Transaction, props iceberg.Properties) error {
			attempts++
			// Someone always commits between staging and committing.
			if _, err := other.Commit(ctx, Change{Table: "events_raw", Task: "winner",
				Stage: Append([]iceberg.DataFile{dataFile(t, tbl, 1)})}); err != nil {
				return err
			}
			return Append([]iceberg.DataFile{dataFile(t, tbl, 1)})(ctx, tx, props)
		}})
	if !errors.Is(err, ErrBusy) || attempts != 3 {
		t.Fatalf("Commit = %v after %d attempts, want ErrBusy after 3", err, attempts)
	}
	now, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	if n := snapshotsWith(now, SummaryTask, "loser"); n != 0 {
		t.Fatalf("the busy change made %d snapshots", n)
	}
}

// TestEvolveConverges: several processes adding the same columns at once
// end with each column once; a decimal is widened, never narrowed.
func TestEvolveConverges(t *testing.T) {
	dir := t.TempDir()
	testCatalog(t, dir)
	ctx := context.Background()
	want := []iceberg.NestedField{
		{ID: 1, Name: "amount", Type: iceberg.DecimalTypeOf(18, 2)},
		{ID: 2, Name: "note", Type: iceberg.PrimitiveTypes.String},
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cat := testCatalog(t, dir)
			tbl, err := cat.LoadTable(ctx, "events_raw")
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = cat.Evolve(ctx, tbl, want, iceberg.Properties{PropTypePrefix + "t" + string(rune('a'+i)): "1"})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cat := testCatalog(t, dir)
	tbl, err := cat.LoadTable(ctx, "events_raw")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range tbl.Schema().Fields() {
		seen[f.Name]++
	}
	if seen["amount"] != 1 || seen["note"] != 1 {
		t.Fatalf("columns after racing evolutions: %v", seen)
	}
	if types := TypesOf(tbl.Properties()); len(types) != 4 {
		t.Fatalf("list property after racing evolutions: %v, want each process's value once", types)
	}
	// Widening 18 -> 38 digits is allowed; narrowing back is not.
	wide := []iceberg.NestedField{{ID: 1, Name: "amount", Type: iceberg.DecimalTypeOf(38, 2)}}
	if tbl, err = cat.Evolve(ctx, tbl, wide, nil); err != nil {
		t.Fatal(err)
	}
	if f, _ := tbl.Schema().FindFieldByName("amount"); !f.Type.Equals(iceberg.DecimalTypeOf(38, 2)) {
		t.Fatalf("amount is %s after widening", f.Type)
	}
	if _, err := cat.Evolve(ctx, tbl, want[:1], nil); err != nil {
		t.Fatalf("a narrower layout must keep the wider column, got %v", err)
	}
	if _, err := cat.Evolve(ctx, tbl, []iceberg.NestedField{{ID: 1, Name: "amount", Type: iceberg.PrimitiveTypes.String}}, nil); err == nil ||
		!strings.Contains(err.Error(), "column amount") {
		t.Fatalf("a type change must be refused with the column named, got %v", err)
	}
}
