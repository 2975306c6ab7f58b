package compactor

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/lake"
)

// orderRow is one row of TestCompactionWriteOrder's tables.
type orderRow struct {
	user    string
	ts      time.Time
	eventID string
}

// TestCompactionWriteOrder: compacted files hold their rows in the table's
// Iceberg sort order: the one a table policy sets (which the compactor
// then records in the table's metadata), or one another engine set; and
// in event-time order when the table has none or one the compactor
// cannot follow. Each file claims the sort order its rows follow, and
// only then. No row is lost or doubled.
func TestCompactionWriteOrder(t *testing.T) {
	ctx := context.Background()
	dir, cat := testLake(t)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	byUserTsDesc := func(a, b orderRow) int {
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		return b.ts.Compare(a.ts)
	}
	byTs := func(a, b orderRow) int { return a.ts.Compare(b.ts) }
	for _, tc := range []struct {
		name string
		// policy is the table policy's sort_order; external is set on the
		// table as another engine would (nil: neither).
		policy   []string
		external func(*iceberg.Schema) table.SortOrder
		want     func(a, b orderRow) int
		// wantKeys is the table's write order afterwards (nil: none).
		wantKeys []lake.SortKey
		claims   bool
	}{
		{name: "no sort order", want: byTs},
		{
			name: "a table policy's order", policy: []string{"user_id", "ts DESC"}, want: byUserTsDesc,
			wantKeys: []lake.SortKey{{Column: "user_id"}, {Column: "ts", Desc: true, NullsLast: true}}, claims: true,
		},
		{
			name: "an order another engine set", want: byUserTsDesc, claims: true,
			external: func(sc *iceberg.Schema) table.SortOrder {
				return mustOrder(t, sc, "user_id", table.SortASC, "ts", table.SortDESC, iceberg.IdentityTransform{})
			},
			wantKeys: []lake.SortKey{{Column: "user_id"}, {Column: "ts", Desc: true, NullsLast: true}},
		},
		{
			name: "an order it cannot follow", want: byTs,
			external: func(sc *iceberg.Schema) table.SortOrder {
				return mustOrder(t, sc, "user_id", table.SortASC, "ts", table.SortDESC, iceberg.BucketTransform{NumBuckets: 4})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.NewReplacer(" ", "_", "'", "").Replace(tc.name) + "_raw"
			def := lake.RawTableDef(name, "orders", []iceberg.NestedField{{Name: "user_id", Type: iceberg.PrimitiveTypes.String}}, nil)
			tbl, err := cat.EnsureTable(ctx, def)
			if err != nil {
				t.Fatal(err)
			}
			if tc.external != nil {
				tx := tbl.NewTransaction()
				if err := tx.ReplaceSortOrder(tc.external(tbl.Schema())); err != nil {
					t.Fatal(err)
				}
				if tbl, err = tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Four files of one closed hour, their rows in event-time order.
			rng := rand.New(rand.NewPCG(1, 2))
			hour := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
			var rows []orderRow
			var files []iceberg.DataFile
			for f := range 4 {
				var part []orderRow
				for i := range 50 {
					n := f*50 + i
					part = append(part, orderRow{user: fmt.Sprintf("u-%d", rng.IntN(7)),
						ts: hour.Add(time.Duration(n) * time.Second), eventID: fmt.Sprintf("e-%d", n)})
				}
				rows = append(rows, part...)
				files = append(files, writeOrderRows(t, ctx, tbl, part, f))
			}
			tx := tbl.NewTransaction()
			if err := tx.AddDataFiles(ctx, files, nil, table.WithoutDuplicateCheck()); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}

			ccfg := Config{TempDir: filepath.Join(dir, "tmp"), SnapshotMinAge: time.Millisecond, UnsafeShortAges: true}
			if tc.policy != nil {
				var keys []lake.SortKey
				for _, s := range tc.policy {
					k, err := lake.ParseSortKey(s)
					if err != nil {
						t.Fatal(err)
					}
					keys = append(keys, k)
				}
				ccfg.Tables = map[string]TablePolicy{name: {SortOrder: keys}}
			}
			ccfg.Defaults()
			if err := ccfg.Validate(); err != nil {
				t.Fatal(err)
			}
			c, err := New(ccfg, Deps{Catalog: cat, Tables: []Table{{Name: name, Role: RoleRaw}}})
			if err != nil {
				t.Fatal(err)
			}
			reps, err := c.RunOnce(ctx, Options{Tasks: []string{TaskCompact}, Tables: []string{name}})
			if cerr := c.Close(); cerr != nil {
				t.Fatal(cerr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 || reps[0].FilesRemoved != 4 || reps[0].FilesAdded != 1 {
				t.Fatalf("reports %+v, want 4 files rewritten into 1", reps)
			}

			tbl, err = cat.LoadTable(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			keys, id, err := lake.WriteOrder(tbl)
			if tc.wantKeys != nil && (err != nil || !slices.Equal(keys, tc.wantKeys) || id < 1) {
				t.Fatalf("the table's write order is %v (id %d, %v), want %v", keys, id, err, tc.wantKeys)
			}
			if tc.wantKeys == nil && tc.external == nil && (len(keys) != 0 || id != 0) {
				t.Fatalf("the table has write order %v (id %d), want none", keys, id)
			}
			tasks, err := tbl.Scan().PlanFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(tasks) != 1 {
				t.Fatalf("%d files after compaction, want 1", len(tasks))
			}
			df := tasks[0].File
			claimed := 0
			if p := df.SortOrderID(); p != nil {
				claimed = *p
			}
			if tc.claims && claimed != tbl.SortOrder().OrderID() || !tc.claims && claimed != 0 {
				t.Fatalf("the file claims sort order %d; the table's is %d (want it claimed: %v)", claimed, tbl.SortOrder().OrderID(), tc.claims)
			}

			path, _ := lake.LocalPath(df.FilePath())
			got := readOrderRows(t, db, path)
			want := slices.Clone(rows)
			slices.SortStableFunc(want, tc.want)
			if len(got) != len(want) {
				t.Fatalf("%d rows after compaction, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("row %d is %+v, want %+v (file order %v)", i, got[i], want[i], got[:min(len(got), 8)])
				}
			}
		})
	}
}

// mustOrder is the sort order (a asc|desc, b asc|desc) of sc's columns,
// a through tr.
func mustOrder(t *testing.T, sc *iceberg.Schema, a string, da table.SortDirection, b string, db table.SortDirection, tr iceberg.Transform) table.SortOrder {
	t.Helper()
	fa, _ := sc.FindFieldByName(a)
	fb, _ := sc.FindFieldByName(b)
	so, err := table.NewSortOrder(table.InitialSortOrderID, []table.SortField{
		{SourceIDs: []int{fa.ID}, Transform: tr, Direction: da, NullOrder: table.NullsFirst},
		{SourceIDs: []int{fb.ID}, Transform: iceberg.IdentityTransform{}, Direction: db, NullOrder: table.NullsLast},
	})
	if err != nil {
		t.Fatal(err)
	}
	return so
}

// testLake opens a lake (SQLite catalog, local warehouse) in a directory
// of the test's, closed when the test ends.
func testLake(t *testing.T) (string, *lake.Catalog) {
	t.Helper()
	dir := t.TempDir()
	cfg := lake.Config{Type: lake.TypeSQLite, URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")}
	cfg.Defaults("")
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return dir, cat
}

// writeOrderRows writes rows as one data file of tbl's hour partition.
func writeOrderRows(t *testing.T, ctx context.Context, tbl *table.Table, rows []orderRow, n int) iceberg.DataFile {
	t.Helper()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var js strings.Builder
	js.WriteString("[")
	for i, r := range rows {
		if i > 0 {
			js.WriteString(",")
		}
		ts := r.ts.Format(time.RFC3339)
		fmt.Fprintf(&js, `{"event_id":%q,"source":"t","type":"order.created","ts":%q,"payload":"{}","kafka_topic":"orders","kafka_partition":0,"kafka_offset":%d,"ingested_at":%q,"user_id":%q}`,
			r.eventID, ts, i, ts, r.user)
	}
	js.WriteString("]")
	rec, _, err := array.RecordFromJSON(memory.DefaultAllocator, sc, strings.NewReader(js.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	lp, err := tbl.LocationProvider()
	if err != nil {
		t.Fatal(err)
	}
	hour := int32(rows[0].ts.Unix() / 3600)
	loc := lp.NewDataLocation(fmt.Sprintf("ts_hour=%s/f-%d.parquet", iceberg.HourTransform{}.ToHumanStr(hour), n))
	spec := tbl.Spec()
	w, err := lake.CreateFile(ctx, tbl, loc, sc, map[int]any{spec.Field(0).FieldID: hour}, lake.EventFileOptions(1024), memory.DefaultAllocator)
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

// readOrderRows reads a file's rows in the order they are stored.
func readOrderRows(t *testing.T, db *sql.DB, path string) []orderRow {
	t.Helper()
	rs, err := db.Query(fmt.Sprintf("SELECT user_id, ts, event_id FROM read_parquet('%s', file_row_number = true) ORDER BY file_row_number", path))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []orderRow
	for rs.Next() {
		var r orderRow
		if err := rs.Scan(&r.user, &r.ts, &r.eventID); err != nil {
			t.Fatal(err)
		}
		r.ts = r.ts.UTC()
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
