//go:build duckdb_arrow

package query_test

// BenchmarkS3Read measures the two ways DuckDB (which has no httpfs here)
// can read S3-resident data files, on the same lake and the same
// aggregate (revenue per minute over a day of orders):
//
//   - cache: download every data file into the bounded local cache
//     (objstore.Cache), then read_parquet on the copies (cold: with the
//     download; warm: files already cached);
//   - arrow: stream the table through iceberg-go's Arrow scan
//     (ToArrowRecords, reading S3 on every query) into DuckDB as a
//     registered Arrow view.
//
// Run: go test -tags duckdb_arrow -run '^$' -bench S3Read -benchtime 3x ./query/
// (docs/S3_READS.md has the figures and the choice.)

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/lake/objstore"
)

const benchEvents = 1_000_000

func BenchmarkS3Read(b *testing.B) {
	s3 := th.StartS3(b)
	dir := b.TempDir()
	brk := th.Start(b, "broker", nil, "broker", "--data-dir", filepath.Join(dir, "broker"), "--listen", "127.0.0.1:0")
	addr := brk.Ready["kafka"]
	prod := th.StartNoWait(b, "produce", nil, "produce", "--brokers", addr, "--rate", "0", "--count", strconv.Itoa(benchEvents),
		"--seed", "3", "--start", "2026-11-25T00:00:00Z", "--step", (24 * time.Hour / benchEvents).String(), "--inventory-fraction", "0")
	th.Eventually(b, 5*time.Minute, "produce", func() (bool, string) { done, _ := prod.Exited(); return done, "" })
	env := append(s3.Env("bench"), "EVENTLAKE_INGEST_FLUSH_INTERVAL=1s")
	ing := th.Start(b, "ingest", env, "ingest", "--brokers", addr, "--data-dir", filepath.Join(dir, "lake"), "--http", "off")

	cfg := lake.Config{}
	cfg.Defaults(filepath.Join(dir, "lake"))
	cfg.Warehouse = s3.Warehouse("bench")
	cfg.S3.Endpoint, cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey = s3.Endpoint, s3.AccessKey, s3.SecretKey
	ctx := context.Background()
	var cat *lake.Catalog
	th.Eventually(b, 5*time.Minute, "ingest", func() (bool, string) {
		if cat == nil {
			c, err := lake.Open(ctx, cfg)
			if err != nil {
				return false, err.Error()
			}
			cat = c
		}
		tbl, err := cat.LoadTable(ctx, "orders_raw")
		if err != nil {
			return false, err.Error()
		}
		off, _ := lake.StoredOffsets(tbl)
		return off.Total() >= benchEvents, fmt.Sprint(off.Total())
	})
	ing.Stop(time.Minute)
	sctx := ctx
	tbl, err := cat.LoadTable(sctx, "orders_raw")
	if err != nil {
		b.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(sctx)
	if err != nil {
		b.Fatal(err)
	}
	var wants []objstore.Want
	var bytes int64
	for _, t := range tasks {
		wants = append(wants, objstore.Want{Location: t.File.FilePath(), Size: t.File.FileSizeBytes()})
		bytes += t.File.FileSizeBytes()
	}
	b.Logf("%d data files, %.1f MiB", len(wants), float64(bytes)/(1<<20))

	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		b.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	const agg = `SELECT epoch_us(ts) // 60000000 AS m, sum(amount), count(*) FROM %s WHERE type = 'order.created' GROUP BY m`
	count := func(q string) {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if n < 1440 { // late events add a minute or two before the day
			b.Fatalf("%d minutes", n)
		}
	}
	readParquet := func(paths map[string]string) string {
		var ps []string
		for _, p := range paths {
			ps = append(ps, "'"+p+"'")
		}
		return "read_parquet([" + strings.Join(ps, ",") + "])"
	}

	b.Run("cache-cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c, err := objstore.NewCache(objstore.CacheConfig{Dir: b.TempDir()}, cat.Store(), fmt.Sprintf("b%d_%d", b.N, i), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			paths, err := c.Retain(ctx, "orders", wants)
			if err != nil {
				b.Fatal(err)
			}
			count(fmt.Sprintf(agg, readParquet(paths)))
		}
	})
	c, err := objstore.NewCache(objstore.CacheConfig{Dir: b.TempDir()}, cat.Store(), "warm", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	paths, err := c.Retain(ctx, "orders", wants)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cache-warm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			count(fmt.Sprintf(agg, readParquet(paths)))
		}
	})
	b.Run("arrow", func(b *testing.B) {
		conn, err := db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		for i := 0; i < b.N; i++ {
			sc, it, err := tbl.Scan(table.WithSelectedFields("ts", "type", "amount")).ToArrowRecords(sctx)
			if err != nil {
				b.Fatal(err)
			}
			var recs []arrow.RecordBatch
			for rec, err := range it {
				if err != nil {
					b.Fatal(err)
				}
				rec.Retain()
				recs = append(recs, rec)
			}
			rdr, err := array.NewRecordReader(sc, recs)
			if err != nil {
				b.Fatal(err)
			}
			err = conn.Raw(func(dc any) error {
				ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
				if err != nil {
					return err
				}
				release, err := ar.RegisterView(rdr, "orders_arrow")
				if err != nil {
					return err
				}
				defer release()
				rr, err := ar.QueryContext(ctx, fmt.Sprintf(agg, "orders_arrow"))
				if err != nil {
					return err
				}
				defer rr.Release()
				n := 0
				for rr.Next() {
					n += int(rr.RecordBatch().NumRows())
				}
				if n < 1440 {
					return fmt.Errorf("%d minutes", n)
				}
				return rr.Err()
			})
			for _, r := range recs {
				r.Release()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
