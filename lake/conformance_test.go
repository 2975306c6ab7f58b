package lake_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// backend is one catalog + warehouse combination the machine can start.
type backend struct {
	name string
	cfg  func(t *testing.T) lake.Config
}

// Backends are every catalog this machine can start: SQLite (embedded),
// PostgreSQL (a throwaway cluster), each with a local and an S3
// (versitygw) warehouse, and a REST catalog when EVENTLAKE_TEST_REST_URI
// names one (`make test-rest` starts SeaweedFS's).
func backends(t *testing.T) []backend {
	var (
		pgOnce sync.Once
		pg     *th.Postgres
		s3Once sync.Once
		s3     *th.S3Server
	)
	// Servers belong to the parent test, shared by its subtests.
	parent := t
	getPG := func(*testing.T) *th.Postgres { pgOnce.Do(func() { pg = th.StartPostgres(parent) }); return pg }
	getS3 := func(*testing.T) *th.S3Server { s3Once.Do(func() { s3 = th.StartS3(parent) }); return s3 }
	withS3 := func(t *testing.T, c lake.Config) lake.Config {
		s := getS3(t)
		c.Warehouse = s.Warehouse(strings.ReplaceAll(t.Name(), "/", "-"))
		c.S3.Endpoint, c.S3.AccessKeyID, c.S3.SecretAccessKey = s.Endpoint, s.AccessKey, s.SecretKey
		return c
	}
	bs := []backend{
		{"sqlite-local", func(t *testing.T) lake.Config {
			return lake.Config{Type: lake.TypeSQLite, URI: t.TempDir() + "/catalog.db", Warehouse: t.TempDir()}
		}},
		{"sqlite-s3", func(t *testing.T) lake.Config {
			return withS3(t, lake.Config{Type: lake.TypeSQLite, URI: t.TempDir() + "/catalog.db"})
		}},
		{"postgres-local", func(t *testing.T) lake.Config {
			db := "c" + strings.ToLower(th.RandomID())
			return lake.Config{Type: lake.TypePostgres, URI: getPG(t).URIWithDB(db), Warehouse: t.TempDir()}
		}},
		{"postgres-s3", func(t *testing.T) lake.Config {
			db := "c" + strings.ToLower(th.RandomID())
			return withS3(t, lake.Config{Type: lake.TypePostgres, URI: getPG(t).URIWithDB(db)})
		}},
	}
	if uri := os.Getenv("EVENTLAKE_TEST_REST_URI"); uri != "" {
		bs = append(bs, backend{"rest", func(t *testing.T) lake.Config {
			c := lake.Config{Type: lake.TypeREST, URI: uri, Warehouse: os.Getenv("EVENTLAKE_TEST_REST_WAREHOUSE"),
				Namespace: "l" + strings.ToLower(th.RandomID()), SigV4: os.Getenv("EVENTLAKE_TEST_REST_SIGV4") == "1"}
			if ep := os.Getenv("EVENTLAKE_TEST_REST_S3_ENDPOINT"); ep != "" {
				c.S3.Endpoint = ep
				c.S3.AccessKeyID = os.Getenv("EVENTLAKE_TEST_REST_S3_ACCESS_KEY")
				c.S3.SecretAccessKey = os.Getenv("EVENTLAKE_TEST_REST_S3_SECRET_KEY")
			}
			return c
		}})
	}
	return bs
}

func open(t *testing.T, cfg lake.Config) *lake.Catalog {
	t.Helper()
	cfg.Defaults("")
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cat.Close(); err != nil {
			t.Error(err)
		}
	})
	return cat
}

// TestCatalogConformance runs the catalog behaviour eventlake relies on
// against every backend: concurrent creation by several processes,
// commits carrying Kafka offsets, the conflict a stale table handle
// must report (what ingest's refresh + re-commit keys on), lookup of a
// commit by id, and data files written through the warehouse's FileIO.
func TestCatalogConformance(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg(t)
			ctx := context.Background()
			def := lake.RawTableDef("events_raw", "events", nil, nil)

			// Three "processes" open the catalog and ensure the table at once.
			cats := make([]*lake.Catalog, 3)
			errs := make([]error, 3)
			var wg sync.WaitGroup
			for i := range cats {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := cfg
					c.Defaults("")
					cat, err := lake.Open(ctx, c)
					if err != nil {
						errs[i] = err
						return
					}
					cats[i] = cat
					_, errs[i] = cat.EnsureTable(ctx, def)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("process %d: %v", i, err)
				}
				t.Cleanup(func() { cats[i].Close() })
			}
			a, b2 := cats[0], cats[1]

			t1, err := a.LoadTable(ctx, "events_raw")
			if err != nil {
				t.Fatal(err)
			}
			stale, err := b2.LoadTable(ctx, "events_raw")
			if err != nil {
				t.Fatal(err)
			}
			f1 := writeFile(t, ctx, t1, 0, 10)
			off := lake.Offsets{}
			off.Set("events", 0, 10)
			t2 := commit(t, ctx, t1, []iceberg.DataFile{f1}, off, "commit-1")
			if got, err := lake.StoredOffsets(t2); err != nil || got.Total() != 10 {
				t.Fatalf("stored offsets %v %v", got, err)
			}

			// A commit built on a stale handle must fail as a conflict,
			// never silently overwrite the other commit.
			f2 := writeFile(t, ctx, stale, 10, 20)
			off2 := lake.Offsets{}
			off2.Set("events", 0, 20)
			_, err = tryCommit(ctx, stale, []iceberg.DataFile{f2}, off2, "commit-2")
			if err == nil {
				t.Fatal("commit on a stale table handle succeeded")
			}
			if !errors.Is(err, table.ErrCommitFailed) && !strings.Contains(err.Error(), "requirement failed") && !strings.Contains(err.Error(), "has changed") {
				t.Fatalf("stale commit failed with %v, which ingest would not treat as a conflict", err)
			}
			// Refresh and re-commit the same file, as ingest does.
			fresh, err := a.LoadTable(ctx, "events_raw")
			if err != nil {
				t.Fatal(err)
			}
			t3 := commit(t, ctx, fresh, []iceberg.DataFile{f2}, lake.Offsets(off).Merge(off2), "commit-2")
			if sid, ok := lake.FindCommit(t3, "commit-1"); !ok || sid == 0 {
				t.Fatal("commit-1 not found among the ancestors")
			}
			if _, ok := lake.FindCommit(t3, "commit-2"); !ok {
				t.Fatal("commit-2 not found")
			}
			// Every row once, read back through the FileIO by another process.
			rd, err := cats[2].LoadTable(ctx, "events_raw")
			if err != nil {
				t.Fatal(err)
			}
			at, err := rd.Scan(table.WithSelectedFields(lake.ColKafkaOffset)).ToArrowTable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer at.Release()
			if at.NumRows() != 20 {
				t.Fatalf("table holds %d rows, want 20", at.NumRows())
			}
			if got, _ := lake.StoredOffsets(rd); got.Total() != 20 {
				t.Fatalf("stored offsets %v, want 20", got)
			}
		})
	}
}

func tryCommit(ctx context.Context, tbl *table.Table, files []iceberg.DataFile, off lake.Offsets, id string) (*table.Table, error) {
	enc, err := off.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tx := tbl.NewTransaction()
	if err := tx.AddDataFiles(ctx, files, iceberg.Properties{lake.SummaryOffsets: string(enc), lake.SummaryCommitID: id},
		table.WithoutDuplicateCheck()); err != nil {
		return nil, err
	}
	return tx.Commit(ctx)
}

func commit(t *testing.T, ctx context.Context, tbl *table.Table, files []iceberg.DataFile, off lake.Offsets, id string) *table.Table {
	t.Helper()
	nt, err := tryCommit(ctx, tbl, files, off, id)
	if err != nil {
		t.Fatalf("commit %s: %v", id, err)
	}
	return nt
}

// writeFile writes rows with offsets [from, to) of partition 0 as one
// data file of tbl, through lakefile (the writer every stage uses).
func writeFile(t *testing.T, ctx context.Context, tbl *table.Table, from, to int) iceberg.DataFile {
	t.Helper()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var js strings.Builder
	js.WriteString("[")
	for i := from; i < to; i++ {
		if i > from {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"event_id":"e-%d","source":"t","type":"x","ts":"2026-11-26T10:00:00Z","payload":"{}","kafka_topic":"events","kafka_partition":0,"kafka_offset":%d,"ingested_at":"2026-11-26T10:00:00Z"}`, i, i)
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
	hour := int32(498802) // 2026-11-26T10 in hours since the epoch
	loc := lp.NewDataLocation(fmt.Sprintf("ts_hour=%s/f-%d.parquet", iceberg.HourTransform{}.ToHumanStr(hour), from))
	w, err := lake.CreateFile(ctx, tbl, loc, sc, map[int]any{1000: hour}, lake.FileOptions{}, memory.DefaultAllocator)
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
