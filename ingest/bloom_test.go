package ingest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	// The compactor is a later stage; only this test, which follows the
	// same files through both, imports it.
	"github.com/eventlake/eventlake/compactor"
	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// TestBloomFiltersOnIdentifierColumns follows orders from Kafka through
// ingest and compaction: every row group of every file each stage wrote
// carries a bloom filter for the identifier columns (read from the
// footers) that holds the file's ids and not others, DuckDB skips row
// groups by them, and a lookup by event_id or user_id through DuckDB
// returns the same rows as a full scan.
func TestBloomFiltersOnIdentifierColumns(t *testing.T) {
	ctx := context.Background()
	brokers := startBroker(t, "orders.created", "inventory.updated")
	dir := t.TempDir()
	cat := openCatalog(t, dir)
	// Two closed hours, long ago: the compactor takes them.
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	const n = 600
	for b := 0; b < 3; b++ { // three produce rounds, several ingest files per hour
		var recs []*kgo.Record
		for i := b * n / 3; i < (b+1)*n/3; i++ {
			recs = append(recs, &kgo.Record{Topic: "orders.created", Value: orderEvent(i, base.Add(time.Duration(i)*12*time.Second))})
		}
		produce(t, brokers, recs...)
		runIngest(t, cat, brokers, (b+1)*n/3)
	}
	want := []string{lake.ColEventID, "order_id", "user_id", "product_id"} // schema order

	tbl, err := cat.LoadTable(ctx, "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	if got := lake.BloomFilterColumns(tbl.Schema(), tbl.Properties()); !slices.Equal(got, want) {
		t.Fatalf("bloom filter columns %v, want %v", got, want)
	}
	ingested := dataFiles(t, cat)
	if len(ingested) < 4 {
		t.Fatalf("ingest wrote %d files, want several per hour", len(ingested))
	}
	for _, p := range ingested {
		checkBloomFilters(t, p, want)
	}
	checkLookups(t, ingested, n)

	c, err := compactor.New(compactor.Config{TempDir: filepath.Join(dir, "tmp"), SnapshotMinAge: time.Millisecond, UnsafeShortAges: true},
		compactor.Deps{Catalog: cat, Tables: []compactor.Table{{Name: "orders_raw", Role: compactor.RoleRaw}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunOnce(ctx, compactor.Options{Tasks: []string{"compact"}}); err != nil {
		t.Fatal(errors.Join(err, c.Close()))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	compacted := dataFiles(t, cat)
	if len(compacted) != 2 || slices.ContainsFunc(compacted, func(p string) bool { return slices.Contains(ingested, p) }) {
		t.Fatalf("after compaction the files are %v, want two new ones (one per hour) instead of %d", compacted, len(ingested))
	}
	for _, p := range compacted {
		checkBloomFilters(t, p, want)
	}
	checkLookups(t, compacted, n)
}

// runIngest runs ingest until orders_raw holds rows rows.
func runIngest(t *testing.T, cat *lake.Catalog, brokers []string, rows int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ing, err := New(Config{FlushInterval: 100 * time.Millisecond}, Deps{Catalog: cat, Codecs: schema.Fixed{S: schema.NewSet(schema.ShippedVersions(), nil)},
		KafkaOpts: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ing.Run(ctx) }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got, _ := scanCount(t, cat, "orders_raw"); got >= rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d rows", rows)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// dataFiles are the local paths of orders_raw's current data files.
func dataFiles(t *testing.T, cat *lake.Catalog) []string {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		p, ok := lake.LocalPath(task.File.FilePath())
		if !ok {
			t.Fatalf("data file %s is not local", task.File.FilePath())
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// checkBloomFilters reads the footer of the Parquet file at path: every
// row group has a bloom filter for each of cols, and the filter holds
// each value of its column chunk (read back from the file) and not
// values the file does not have.
func checkBloomFilters(t *testing.T, path string, cols []string) {
	t.Helper()
	r, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.MetaData()
	bfr := r.GetBloomFilterReader()
	for rg := 0; rg < md.NumRowGroups(); rg++ {
		rgr, err := bfr.RowGroup(rg)
		if err != nil {
			t.Fatal(err)
		}
		for _, col := range cols {
			ci := md.Schema.ColumnIndexByName(col)
			if ci < 0 {
				t.Fatalf("%s: no column %s", path, col)
			}
			cc, err := md.RowGroup(rg).ColumnChunk(ci)
			if err != nil {
				t.Fatal(err)
			}
			if cc.BloomFilterOffset() <= 0 {
				t.Fatalf("%s row group %d: no bloom filter for %s in the footer", filepath.Base(path), rg, col)
			}
			bf, err := rgr.GetColumnBloomFilter(ci)
			if err != nil || bf == nil {
				t.Fatalf("%s row group %d: bloom filter of %s unreadable: %v", filepath.Base(path), rg, col, err)
			}
			typed := metadata.TypedBloomFilter[parquet.ByteArray]{BloomFilter: bf}
			values := columnValues(t, r, rg, ci)
			if len(values) == 0 {
				t.Fatalf("%s row group %d: column %s is empty", filepath.Base(path), rg, col)
			}
			for _, v := range values {
				if !typed.Check(parquet.ByteArray(v)) {
					t.Fatalf("%s row group %d: bloom filter of %s lacks %q", filepath.Base(path), rg, col, v)
				}
			}
			// Ids no event has: a filter that holds them all is useless (a
			// 1% false-positive rate lets a few through, not 20).
			falsePos := 0
			for i := range 20 {
				if typed.Check(parquet.ByteArray(fmt.Sprintf("absent-%s-%d", col, i))) {
					falsePos++
				}
			}
			if falsePos > 3 {
				t.Fatalf("%s row group %d: bloom filter of %s holds %d of 20 absent ids", filepath.Base(path), rg, col, falsePos)
			}
		}
	}
}

// columnValues reads a string column chunk.
func columnValues(t *testing.T, r *file.Reader, rg, col int) []string {
	t.Helper()
	cr, err := r.RowGroup(rg).Column(col)
	if err != nil {
		t.Fatal(err)
	}
	br := cr.(*file.ByteArrayColumnChunkReader)
	var out []string
	buf := make([]parquet.ByteArray, 1024)
	def := make([]int16, 1024)
	for br.HasNext() {
		_, n, err := br.ReadBatch(int64(len(buf)), buf, def, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range buf[:n] {
			out = append(out, string(v))
		}
	}
	return out
}

// checkLookups looks ids up through DuckDB over files, as the query
// service reads them: the rows equal those of a full scan (a filter
// DuckDB cannot push into the Parquet reader), DuckDB's bloom probe
// excludes every row group for an id no event has, and keeps a row
// group for an id the files hold.
func checkLookups(t *testing.T, files []string, n int) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := "read_parquet(" + duck.QuoteList(files) + ", hive_partitioning = false)"
	rowsOf := func(q string) []string {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, ev string
			var off int64
			if err := rows.Scan(&id, &ev, &off); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s/%s/%d", id, ev, off))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct{ col, value string }{
		{lake.ColEventID, "ev-17"}, {lake.ColEventID, fmt.Sprintf("ev-%d", n-1)}, {lake.ColEventID, "ev-absent"},
		{"user_id", "u-3"}, {"user_id", "u-absent"}, {"order_id", "o-42"},
	} {
		sel := fmt.Sprintf("SELECT %s, event_id, kafka_offset FROM %s WHERE ", duck.QuoteIdent(c.col), src)
		lookup := rowsOf(sel + duck.QuoteIdent(c.col) + " = " + duck.QuoteString(c.value))
		// Concatenation hides the column from filter pushdown: the
		// reader reads every row and compares afterwards.
		scan := rowsOf(sel + duck.QuoteIdent(c.col) + " || '' = " + duck.QuoteString(c.value))
		if !slices.Equal(lookup, scan) {
			t.Fatalf("lookup %s = %s: %d rows %v, full scan %d rows %v", c.col, c.value, len(lookup), lookup, len(scan), scan)
		}
		if absent := strings.Contains(c.value, "absent"); absent != (len(scan) == 0) {
			t.Fatalf("lookup %s = %s: %d rows", c.col, c.value, len(scan))
		}
		// DuckDB reads our filters: every row group excluded for an
		// absent id, not every one for an id some rows hold.
		var excluded, groups int
		for _, f := range files {
			rows, err := db.Query("SELECT bloom_filter_excludes FROM parquet_bloom_probe(?, ?, ?)", f, c.col, c.value)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var ex bool
				if err := rows.Scan(&ex); err != nil {
					t.Fatal(err)
				}
				groups++
				if ex {
					excluded++
				}
			}
			rows.Close()
		}
		if strings.Contains(c.value, "absent") && excluded != groups {
			t.Fatalf("parquet_bloom_probe(%s = %s) excluded %d of %d row groups, want all", c.col, c.value, excluded, groups)
		}
		if !strings.Contains(c.value, "absent") && excluded == groups {
			t.Fatalf("parquet_bloom_probe(%s = %s) excluded every row group, but %d rows hold it", c.col, c.value, len(scan))
		}
	}
}
