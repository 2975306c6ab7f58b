package main

// The compaction benchmark: a day of order events laid out as 1-second
// commits leave it (one small Parquet file per second of event time),
// the 24 h revenue query before and after `eventlake compact rewrite`, the
// rewrite throughput, and DuckDB reading the same rows from one file as
// the floor to compare with.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/google/uuid"

	"github.com/eventlake/eventlake/demo"
	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

const benchDay = "2026-11-25T00:00:00Z"

var revenueSQL = `SELECT epoch_us(ts) // 60000000 AS minute, sum(amount) AS revenue, count(*) AS orders FROM %s WHERE %sts >= TIMESTAMPTZ '2026-11-25 00:00:00+00' AND ts < TIMESTAMPTZ '2026-11-26 00:00:00+00' GROUP BY 1 ORDER BY 1`

func benchCompaction(bin, dir string, n, runs int) ([]result, error) {
	lakeDir := filepath.Join(dir, "lake")
	fmt.Fprintf(os.Stderr, "compaction: writing a day of %d order events as 1-second commits...\n", n)
	t0 := time.Now()
	files, bytesBefore, err := writeSecondFiles(lakeDir, n)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "compaction: %d files, %.0f MiB in %.1f s\n", files, float64(bytesBefore)/(1<<20), time.Since(t0).Seconds())

	// Over tens of thousands of files a query can take longer than the
	// timeout: one run.
	before, err := queryLatency(bin, lakeDir, 1)
	if err != nil {
		return nil, fmt.Errorf("query before compaction: %w", err)
	}

	fmt.Fprintf(os.Stderr, "compaction: eventlake compact rewrite...\n")
	rep, wall, err := compactRewrite(bin, lakeDir)
	if err != nil {
		return nil, err
	}
	mbs := float64(rep.BytesRead) / (1 << 20) / rep.Seconds

	// After compaction, the service and DuckDB on one file run in turns,
	// so that load from anything else on the machine hits both alike.
	one, err := oneFile(lakeDir, dir)
	if err != nil {
		return nil, fmt.Errorf("one-file baseline: %w", err)
	}
	defer one.Close()
	after, err := queryLatencyWith(bin, lakeDir, runs, one)
	if err != nil {
		return nil, fmt.Errorf("query after compaction: %w", err)
	}
	floor := after.floor
	ratio := float64(after.sql) / float64(floor)

	// The same day as 10-second commits leave it, and DuckDB rewriting
	// the day's rows from one file into one: the ceiling of a rewrite on
	// this machine, with no per-file cost.
	fmt.Fprintf(os.Stderr, "compaction: the same day as 10-second commits...\n")
	day, _ := time.Parse(time.RFC3339, benchDay)
	files10, _, err := writeFiles(filepath.Join(dir, "lake10s"), n, fileLayout{start: day, span: 24 * time.Hour, per: 10 * time.Second, seed: 7})
	if err != nil {
		return nil, err
	}
	rep10, _, err := compactRewrite(bin, filepath.Join(dir, "lake10s"))
	if err != nil {
		return nil, err
	}
	peerRows, peerSecs, err := rewriteOneFile(one, filepath.Join(dir, "one-again.parquet"))
	if err != nil {
		return nil, err
	}
	rowsPerSec := float64(rep.Rows) / rep.Seconds
	rows10 := float64(rep10.Rows) / rep10.Seconds
	how := fmt.Sprintf("%d order.created events over one day, written the way 1-second ingest commits leave them: one Parquet file per second of event time (%d files, %.0f MiB, ingest's Parquet settings; written directly, then committed to orders_raw in hourly commits to keep the setup fast — the file count, not the snapshot count, is what queries and compaction pay for)",
		n, files, float64(bytesBefore)/(1<<20))
	return []result{
		{"compaction rewrite throughput, 1-second commits", fmt.Sprintf("%.0f rows/s, %.0f files/s (%d rows, %.0f MiB in %d files -> %.0f MiB in %d files, %.2f s, %.0f MB/s; %.1f s wall with process start)",
			rowsPerSec, float64(rep.FilesRemoved)/rep.Seconds, rep.Rows, float64(rep.BytesRead)/(1<<20), rep.FilesBefore, float64(rep.BytesWritten)/(1<<20), rep.FilesAfter, rep.Seconds, mbs, wall.Seconds()),
			">= 1M rows/s", verdict(rowsPerSec >= 1e6), how + "; `eventlake compact rewrite`: DuckDB reads each hour's files, sorts by ts and writes one zstd file, which is written again with the lake's layout and bloom filters (lake.Transcode); batches of hours commit in the background while the next is rewritten; rows/s and files/s per second of the task (planning included, process start not)"},
		{"compaction rewrite throughput, 10-second commits", fmt.Sprintf("%.0f rows/s, %.0f files/s (%d files -> %d, %.2f s)", rows10, float64(rep10.FilesRemoved)/rep10.Seconds, files10, rep10.FilesAfter, rep10.Seconds),
			">= 1M rows/s", verdict(rows10 >= 1e6), "the same events, one file per 10 seconds of event time"},
		{"compaction peak RSS, 1-second / 10-second commits", fmt.Sprintf("%.0f MiB / %.0f MiB", float64(rep.maxRSS)/(1<<20), float64(rep10.maxRSS)/(1<<20)), "", "",
			"the peak resident set (VmHWM, sampled every 100 ms) of each `eventlake compact rewrite` process above, default settings (DuckDB memory_limit 2GB)"},
		{"DuckDB rewriting the same rows from one file into one (peer)", fmt.Sprintf("%.0f rows/s (%d rows in %.2f s)", float64(peerRows)/peerSecs.Seconds(), peerRows, peerSecs.Seconds()), "", "",
			"`COPY (SELECT * FROM read_parquet(one file) ORDER BY ts) TO ... (zstd 1, 256K-row groups)` through the linked DuckDB in the benchmark's process, on the compacted day's rows in one file: the rewrite with no per-file cost and no second pass, i.e. the ceiling of compaction on this machine"},
		{"24 h revenue via POST /v1/sql, before compaction", msOrTimeout(before.sql), "", "", fmt.Sprintf("`eventlake query` over the %d small files; one run (first query after start)", files)},
		{"24 h order_revenue_minute API, before compaction", msOrTimeout(before.api), "", "", ""},
		{"24 h revenue via POST /v1/sql, p50, after compaction", ms(after.sql), "", "", fmt.Sprintf("the same query over the compacted table (%d files); %d timed runs after 3 warm-up", rep.FilesAfter, runs)},
		{"24 h order_revenue_minute API, p50, after compaction", ms(after.api), "", "", ""},
		{"24 h revenue, DuckDB on the same rows in one file, p50", ms(floor), "", "", "the same SQL run by DuckDB (go driver, in the bench process) on one Parquet file holding the compacted rows, in turns with the runs above"},
		{"after compaction vs one file", fmt.Sprintf("%.2fx", ratio), "<= 1.2x", verdict(ratio <= 1.2), "POST /v1/sql p50 after compaction divided by the one-file p50 (HTTP and JSON included in the former)"},
	}, nil
}

// compactReport is `eventlake compact rewrite --json`'s report of one
// table.
type compactReport struct {
	FilesBefore  int     `json:"files_before"`
	FilesAfter   int     `json:"files_after"`
	FilesRemoved int     `json:"files_removed"`
	BytesRead    int64   `json:"bytes_rewritten"`
	BytesWritten int64   `json:"bytes_written"`
	Rows         int64   `json:"rows"`
	Seconds      float64 `json:"duration_seconds"`
	// maxRSS is the process's peak resident set (bytes).
	maxRSS int64
}

// compactRewrite runs `eventlake compact rewrite` on orders_raw of the lake
// and returns its report and the process's wall time.
func compactRewrite(bin, lakeDir string, env ...string) (compactReport, time.Duration, error) {
	began := time.Now()
	cmd := exec.Command(bin, "compact", "rewrite", "--data-dir", lakeDir, "--json", "--tables", "orders_raw")
	cmd.Env = append(os.Environ(), env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	peak, err := runPeak(cmd)
	if err != nil {
		return compactReport{}, 0, fmt.Errorf("compact: %v: %s", err, stderr.String())
	}
	var reports []compactReport
	if err := json.Unmarshal(out.Bytes(), &reports); err != nil || len(reports) != 1 {
		return compactReport{}, 0, fmt.Errorf("compact report %q: %v", out.String(), err)
	}
	reports[0].maxRSS = peak
	return reports[0], time.Since(began), nil
}

// writeSecondFiles creates the orders_raw table under lake and fills it
// with one file per second of event time.
func writeSecondFiles(dataDir string, n int) (int, int64, error) {
	day, _ := time.Parse(time.RFC3339, benchDay)
	return writeFiles(dataDir, n, fileLayout{start: day, span: 24 * time.Hour, per: time.Second, seed: 7})
}

// fileLayout is how writeFiles cuts n events into files: event times
// spread evenly over [start, start+span), one file per `per` of event
// time (what ingest commits every `per` leave), committed hourly.
type fileLayout struct {
	start     time.Time
	span, per time.Duration
	seed      uint64
}

// writeFiles creates the orders_raw table under lake if needed and adds
// n order events to it, laid out as l says.
func writeFiles(dataDir string, n int, l fileLayout) (int, int64, error) {
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(dataDir)
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer cat.Close()
	// Rows as ingest writes them: the shipped order schema's columns, the
	// codec's decoder and appender.
	set := schema.NewSet(schema.ShippedVersions(), nil)
	sub := set.Subject(demo.TypeOrderCreated)
	if sub == nil {
		return 0, 0, fmt.Errorf("no shipped schema for %s", demo.TypeOrderCreated)
	}
	var typed []iceberg.NestedField
	for _, c := range sub.Columns {
		typed = append(typed, c.NestedField())
	}
	def := lake.RawTableDef("orders_raw", demo.TopicOrders, typed, iceberg.Properties{lake.PropTypePrefix + demo.TypeOrderCreated: "1"})
	tbl, err := cat.EnsureTable(ctx, def)
	if err != nil {
		return 0, 0, err
	}
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		return 0, 0, err
	}
	lp, err := tbl.LocationProvider()
	if err != nil {
		return 0, 0, err
	}
	g := demo.New(demo.Config{Seed: l.seed, Start: l.start, Step: l.span / time.Duration(n), InventoryFraction: 0, LateFraction: 0})
	per := l.per.Microseconds()
	contract := schema.Contract{}
	contract.Defaults()
	dec := schema.NewDecoder(contract, schema.Fixed{S: set})
	app, err := schema.NewAppender(sc)
	if err != nil {
		return 0, 0, err
	}
	var (
		ev      schema.Event
		pending []iceberg.DataFile
		files   int
		size    int64
		offset  int64
	)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	// Files are encoded by two workers (as ingest's two encoders would);
	// the catalog commit takes them hourly, in order.
	type job struct {
		rec  arrow.RecordBatch
		loc  string
		hour int32
		done chan jobResult
	}
	jobs := make(chan job, 64)
	base := tbl // schema, spec and properties for the workers
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				df, sz, err := writeParquet(base, sc, j.rec, j.loc, j.hour)
				j.rec.Release()
				j.done <- jobResult{df, sz, err}
			}
		}()
	}
	defer func() { close(jobs); wg.Wait() }()
	var inflight []chan jobResult
	collect := func(all bool) error {
		for len(inflight) > 0 && (all || len(inflight) > 128) {
			r := <-inflight[0]
			inflight = inflight[1:]
			if r.err != nil {
				return r.err
			}
			pending = append(pending, r.df)
			files++
			size += r.size
		}
		return nil
	}
	commit := func() error {
		if err := collect(true); err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		tx := tbl.NewTransaction()
		if err := tx.AddDataFiles(ctx, pending, nil, table.WithoutDuplicateCheck()); err != nil {
			return err
		}
		nt, err := tx.Commit(ctx)
		if err != nil {
			return err
		}
		tbl, pending = nt, nil
		return nil
	}
	slot := int64(-1) // event time / per
	lastHour := int32(-1)
	flush := func() error {
		rec := b.NewRecordBatch()
		if rec.NumRows() == 0 {
			rec.Release()
			return nil
		}
		hour := int32(slot * per / 3_600_000_000)
		if hour != lastHour && lastHour >= 0 {
			if err := commit(); err != nil {
				rec.Release()
				return err
			}
		}
		lastHour = hour
		loc := lp.NewDataLocation("ts_hour=" + iceberg.HourTransform{}.ToHumanStr(hour) + "/" + uuid.NewString() + ".parquet")
		done := make(chan jobResult, 1)
		jobs <- job{rec: rec, loc: loc, hour: hour, done: done}
		inflight = append(inflight, done)
		return collect(false)
	}
	for range n {
		m := g.Next()
		if derr := dec.Decode(m.Value, m.TsMicros+1000, &ev); derr != nil {
			return 0, 0, fmt.Errorf("generated event does not decode: %v", derr)
		}
		sl := ev.TsMicros / per
		if sl != slot && slot >= 0 {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
		slot = sl
		app.Append(b, &ev, schema.Coords{Topic: demo.TopicOrders, Partition: int32(offset % 6), Offset: offset / 6,
			KafkaTs: ev.TsMicros + 1000, Ingested: ev.TsMicros + 500_000})
		offset++
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	return files, size, commit()
}

type jobResult struct {
	df   iceberg.DataFile
	size int64
	err  error
}

// writeParquet writes one file with ingest's Parquet settings (zstd 1,
// no dictionary for ids and JSON, delta encoding for time and offsets),
// without ingest's per-file fsync, and describes it for Iceberg.
func writeParquet(tbl *table.Table, sc *arrow.Schema, rec arrow.RecordBatch, loc string, hour int32) (iceberg.DataFile, int64, error) {
	path, _ := lake.LocalPath(loc)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, 0, err
	}
	props := []parquet.WriterProperty{
		parquet.WithCompression(compress.Codecs.Zstd), parquet.WithCompressionLevel(1),
		parquet.WithMaxRowGroupLength(256 * 1024), parquet.WithStoreDecimalAsInteger(true),
	}
	for _, c := range []string{lake.ColEventID, lake.ColPayload, lake.ColMetadata, lake.ColTraceID, lake.ColSpanID} {
		props = append(props, parquet.WithDictionaryFor(c, false))
	}
	for _, c := range []string{lake.ColPayload, lake.ColMetadata} {
		props = append(props, parquet.WithStatsFor(c, false))
	}
	for _, c := range []string{lake.ColTs, lake.ColKafkaOffset, lake.ColKafkaTimestamp, lake.ColIngestedAt} {
		props = append(props, parquet.WithDictionaryFor(c, false), parquet.WithEncodingFor(c, parquet.Encodings.DeltaBinaryPacked))
	}
	w, err := pqarrow.NewFileWriter(sc, f, parquet.NewWriterProperties(props...), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, 0, err
	}
	if err := w.Close(); err != nil {
		return nil, 0, err
	}
	md, err := w.FileMetadata()
	if err != nil {
		return nil, 0, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	spec := tbl.Spec()
	df, err := table.DataFileFromMetadata(table.DataFileArgs{
		Schema: tbl.Schema(), Spec: tbl.Spec(), Format: iceberg.ParquetFile, Metadata: md, FilePath: loc,
		FileSize: st.Size(), Content: iceberg.EntryContentData, PartitionValues: map[int]any{spec.Field(0).FieldID: hour},
		Properties: tbl.Properties(), FormatVersion: tbl.Metadata().Version(),
	})
	return df, st.Size(), err
}

type latency struct{ sql, api, floor time.Duration }

// timedOut stands for a query the service canceled at its 30 s timeout.
const timedOut = time.Duration(1<<63 - 1)

func msOrTimeout(d time.Duration) string {
	if d == timedOut {
		return "timed out (> 30 s query_timeout)"
	}
	return ms(d)
}

// queryLatency starts `eventlake query` on the lake and times the 24 h
// revenue SQL and API (p50 of runs after warm-up; warm-up is skipped for
// a single run).
func queryLatency(bin, lake string, runs int) (latency, error) {
	return queryLatencyWith(bin, lake, runs, nil)
}

// queryLatencyWith is queryLatency; with a one-file database, each SQL run
// is followed by the same query on the one file (latency.floor).
func queryLatencyWith(bin, lake string, runs int, one *sql.DB) (latency, error) {
	q, err := start(bin, nil, "query", "--data-dir", lake, "--http", "127.0.0.1:0", "--no-hot")
	if err != nil {
		return latency{}, err
	}
	defer q.stop()
	base := "http://" + q.ready["http"]
	if err := waitReady(base, 10*time.Minute); err != nil {
		return latency{}, err
	}
	body, _ := json.Marshal(map[string]any{"sql": fmt.Sprintf(revenueSQL, "orders", ""), "max_rows": 10000})
	timeSQL := func() (time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Post(base+"/v1/sql", "application/json", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusGatewayTimeout {
			return timedOut, nil
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("sql: HTTP %d: %s", resp.StatusCode, b)
		}
		return time.Since(t0), nil
	}
	timeAPI := func() (time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Get(base + "/v1/metrics/order_revenue_minute?from=2026-11-25T00:00:00Z&to=2026-11-26T00:00:00Z")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusGatewayTimeout {
			return timedOut, nil
		}
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("revenue: HTTP %d: %s", resp.StatusCode, b)
		}
		return time.Since(t0), nil
	}
	p50 := func(f func() (time.Duration, error), warm int) (time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < runs+warm; i++ {
			d, err := f()
			if err != nil {
				return 0, err
			}
			if i >= warm {
				ds = append(ds, d)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2], nil
	}
	warm := 3
	if runs == 1 {
		warm = 0
	}
	var l latency
	if one != nil {
		var floors []time.Duration
		both := func() (time.Duration, error) {
			d, err := timeSQL()
			if err != nil {
				return 0, err
			}
			f, err := timeOneFile(one)
			floors = append(floors, f)
			return d, err
		}
		if l.sql, err = p50(both, warm); err != nil {
			return l, err
		}
		floors = floors[warm:]
		slices.Sort(floors)
		l.floor = floors[len(floors)/2]
	} else if l.sql, err = p50(timeSQL, warm); err != nil {
		return l, err
	}
	if l.api, err = p50(timeAPI, warm); err != nil {
		return l, err
	}
	return l, nil
}

// oneFile copies the table's current rows into one Parquet file, sorted
// by ts like the compacted files, and returns a DuckDB to query it.
func oneFile(dataDir, dir string) (*sql.DB, error) {
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	fail := func(err error) (*sql.DB, error) { return nil, errors.Join(err, db.Close()) }
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(dataDir)
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	defer cat.Close()
	tbl, err := cat.LoadTable(ctx, "orders_raw")
	if err != nil {
		return fail(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return fail(err)
	}
	var paths []string
	for _, t := range tasks {
		p, _ := lake.LocalPath(t.File.FilePath())
		paths = append(paths, "'"+p+"'")
	}
	one := filepath.Join(dir, "one.parquet")
	if _, err := db.Exec(fmt.Sprintf("COPY (SELECT * FROM read_parquet([%s]) ORDER BY ts) TO '%s' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)",
		strings.Join(paths, ","), one)); err != nil {
		return fail(err)
	}
	if _, err := db.Exec("CREATE VIEW one AS SELECT * FROM read_parquet('" + one + "')"); err != nil {
		return fail(err)
	}
	return db, nil
}

// rewriteOneFile times DuckDB rewriting the one-file view's rows into
// another file, sorted by ts, with the compactor's COPY settings.
func rewriteOneFile(db *sql.DB, out string) (int64, time.Duration, error) {
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM one").Scan(&n); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if _, err := db.Exec(fmt.Sprintf("COPY (SELECT * FROM one ORDER BY ts) TO '%s' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 262144)", out)); err != nil {
		return 0, 0, err
	}
	return n, time.Since(t0), os.Remove(out)
}

// timeOneFile runs the revenue SQL on the one-file view.
func timeOneFile(db *sql.DB) (time.Duration, error) {
	t0 := time.Now()
	rows, err := db.Query(fmt.Sprintf(revenueSQL, "one", "type = 'order.created' AND "))
	if err != nil {
		return 0, err
	}
	var (
		minute, count int64
		revenue       any
	)
	for rows.Next() {
		if err := rows.Scan(&minute, &revenue, &count); err != nil {
			rows.Close()
			return 0, err
		}
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
