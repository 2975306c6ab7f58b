package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/internal/failpoint"
	"github.com/eventlake/eventlake/lake"
)

// testLake opens the SQLite catalog and local warehouse under dir (the
// same ones every time for one dir) and a committer with fp armed.
func testLake(t testing.TB, dir string, fp *failpoint.Set) (*lake.Catalog, *lake.Committer) {
	t.Helper()
	cfg := lake.Config{Type: lake.TypeSQLite, URI: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")}
	cfg.Defaults("")
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	com := lake.NewCommitter(cat, lake.CommitConfig{Writer: lake.WriterName("audit-test"), MaxFailures: 3}, lake.CommitHooks{}, nil, fp)
	return cat, com
}

// testShipper opens a shipper of l into the lake under dir.
func testShipper(t testing.TB, l *Log, dir string, cfg ShipperConfig) *Shipper {
	t.Helper()
	cat, com := testLake(t, dir, nil)
	s, err := NewShipper(l, cfg, ShipperDeps{Catalog: cat, Committer: com})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// queryTable runs query over the audit table's current snapshot with
// DuckDB, the table standing in as "audit_log": its live data files read
// with read_parquet and columns mapped by Iceberg field id, the way the
// query service reads lake tables. Each row is a slice of values.
func queryTable(t testing.TB, dir, query string) [][]any {
	t.Helper()
	cat, _ := testLake(t, dir, nil)
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	if tbl.CurrentSnapshot() != nil {
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			p, _ := lake.LocalPath(task.File.FilePath())
			paths = append(paths, duck.QuoteString(p))
		}
	}
	var cols, names []string
	for _, f := range tbl.Schema().Fields() {
		typ, err := duck.Type(f.Type)
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, fmt.Sprintf("%d: {name: %s, type: %s, default_value: NULL}", f.ID, duck.QuoteString(f.Name), duck.QuoteString(typ)))
		names = append(names, fmt.Sprintf("CAST(NULL AS %s) AS %s", typ, duck.QuoteIdent(f.Name)))
	}
	src := "SELECT " + strings.Join(names, ", ") + " WHERE false"
	if len(paths) > 0 {
		src = "SELECT * FROM read_parquet([" + strings.Join(paths, ", ") + "], hive_partitioning = false, schema = MAP {" + strings.Join(cols, ", ") + "})"
	}
	conn, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE VIEW audit_log AS " + src); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	ct, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(ct))
		ptrs := make([]any, len(ct))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// counts returns the table's rows, distinct ids, and distinct (node, seq).
func counts(t testing.TB, dir string) (rows, ids, seqs int64) {
	t.Helper()
	r := queryTable(t, dir, "SELECT count(*), count(DISTINCT id), count(DISTINCT (log_node, log_seq)) FROM audit_log")
	return r[0][0].(int64), r[0][1].(int64), r[0][2].(int64)
}

// TestShipRoundTrip: every field of a record reaches its column, readable
// by DuckDB the way the query service reads lake tables; the table's
// offsets say how far it holds the log.
func TestShipRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "audit"), Options{})
	at := time.Date(2026, 11, 26, 23, 59, 59, 123456789, time.FixedZone("CET", 3600))
	recs := []Record{
		{
			ID: "req-1", Time: at, Principal: "grafana", Role: "dashboard", Client: "10.0.0.7:51234",
			Protocol: ProtocolHTTP, Kind: KindSQL, Statement: "SELECT count(*) FROM orders",
			Objects: []string{"orders"}, SnapshotIDs: map[string]int64{"orders_raw": 7781234567890},
			Rows: 1, Bytes: 42, Duration: 1500 * time.Microsecond, Outcome: OutcomeOK, RequestID: "r-1",
		},
		{
			Time: at.Add(2 * time.Hour), Client: "10.0.0.8:40000", Protocol: ProtocolPostgres, Kind: KindSQL,
			Statement: "SELECT * FROM audit_log", Outcome: OutcomeDenied, Error: "role analyst may not read audit_log",
		},
	}
	for _, r := range recs {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	s := testShipper(t, l, dir, ShipperConfig{})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := queryTable(t, dir, `SELECT id, strftime(ts, '%Y-%m-%dT%H:%M:%S.%f'), principal, role, client, protocol, kind, statement,
		objects, snapshot_ids, rows_returned, bytes_returned, duration_us, outcome, error, request_id, log_node, log_seq
		FROM audit_log ORDER BY log_seq`)
	want := [][]any{
		{"req-1", "2026-11-26T22:59:59.123456", "grafana", "dashboard", "10.0.0.7:51234", "http", "sql", "SELECT count(*) FROM orders",
			`["orders"]`, `{"orders_raw":7781234567890}`, int64(1), int64(42), int64(1500), "ok", nil, "r-1", l.Node(), int64(0)},
		{l.Node() + "-1", "2026-11-27T00:59:59.123456", nil, nil, "10.0.0.8:40000", "postgres", "sql", "SELECT * FROM audit_log",
			nil, nil, int64(0), int64(0), int64(0), "denied", "role analyst may not read audit_log", nil, l.Node(), int64(1)},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("table rows:\n%v\nwant\n%v", got, want)
	}
	// One file per day; the partition is the record's UTC day.
	days := queryTable(t, dir, "SELECT DISTINCT CAST(ts AS DATE) FROM audit_log ORDER BY 1")
	if len(days) != 2 {
		t.Fatalf("days %v, want two", days)
	}
	cat, _ := testLake(t, dir, nil)
	tbl, err := cat.LoadTable(context.Background(), lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Properties()[lake.PropKind] != lake.KindAuditLog {
		t.Fatalf("table kind %q", tbl.Properties()[lake.PropKind])
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, task := range tasks {
		dirs = append(dirs, filepath.Base(filepath.Dir(task.File.FilePath())))
	}
	slices.Sort(dirs)
	if fmt.Sprint(dirs) != "[ts_day=2026-11-26 ts_day=2026-11-27]" {
		t.Fatalf("data files under %v", dirs)
	}
	stored, err := lake.StoredOffsets(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := stored.Get(TopicPrefix+l.Node(), 0); !ok || off != 2 {
		t.Fatalf("stored offset of the log = %d, %v; want 2", off, ok)
	}
	if task := tbl.CurrentSnapshot().Summary.Properties[lake.SummaryTask]; task != TaskAudit {
		t.Fatalf("snapshot task %q", task)
	}
}

// TestShipInBatchesAndDeleteSegments: a backlog goes in bounded commits;
// the segments the table holds are deleted, the last one kept.
func TestShipInBatchesAndDeleteSegments(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "audit")
	l := openLog(t, logDir, Options{SegmentBytes: 4 << 10})
	const n = 200
	for i := range n {
		if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	before, err := listSegments(logDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) < 3 {
		t.Fatalf("%d segments; the test needs several", len(before))
	}
	s := testShipper(t, l, dir, ShipperConfig{MaxBatchRecords: 7})
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows, ids, seqs := counts(t, dir); rows != n || ids != n || seqs != n {
		t.Fatalf("rows %d, distinct ids %d, distinct seqs %d; want %d each", rows, ids, seqs, n)
	}
	after, err := listSegments(logDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0] != before[len(before)-1] {
		t.Fatalf("segments after shipping %v; want only the last of %v", after, before)
	}
	cat, _ := testLake(t, dir, nil)
	tbl, err := cat.LoadTable(context.Background(), lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(tbl.Metadata().Snapshots()), (n+6)/7; got != want {
		t.Fatalf("%d snapshots, want %d commits of at most 7 records", got, want)
	}
	// Nothing new: a flush commits nothing.
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tbl2, _ := cat.LoadTable(context.Background(), lake.TableAuditLog); len(tbl2.Metadata().Snapshots()) != len(tbl.Metadata().Snapshots()) {
		t.Fatal("an empty flush committed a snapshot")
	}
}

// TestShipperResumesFromTheTable: a new shipper (a restart) starts where
// the table's offsets say, not at the log's oldest record.
func TestShipperResumesFromTheTable(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "audit")
	l, err := Open(logDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := testShipper(t, l, dir, ShipperConfig{}).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The same segment still holds the 50 committed records.
	l = openLog(t, logDir, Options{})
	for i := range 30 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := testShipper(t, l, dir, ShipperConfig{}).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows, ids, _ := counts(t, dir); rows != 80 || ids != 80 {
		t.Fatalf("rows %d, distinct ids %d; want 80", rows, ids)
	}
}

// TestTwoLogsOneTable: two processes' logs commit to one table, each
// under its own offsets.
func TestTwoLogsOneTable(t *testing.T) {
	dir := t.TempDir()
	a := openLog(t, filepath.Join(dir, "a"), Options{})
	b := openLog(t, filepath.Join(dir, "b"), Options{})
	sa := testShipper(t, a, dir, ShipperConfig{})
	sb := testShipper(t, b, dir, ShipperConfig{})
	for i := range 20 {
		if err := a.Append(context.Background(), rec(fmt.Sprint("a", i))); err != nil {
			t.Fatal(err)
		}
		if err := b.Append(context.Background(), rec(fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			errs := make(chan error, 2)
			go func() { errs <- sa.Flush(context.Background()) }()
			go func() { errs <- sb.Flush(context.Background()) }()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	r := queryTable(t, dir, "SELECT log_node, count(*), count(DISTINCT log_seq), max(log_seq) FROM audit_log GROUP BY 1 ORDER BY 1")
	if len(r) != 2 {
		t.Fatalf("nodes %v", r)
	}
	for _, row := range r {
		if row[1] != int64(20) || row[2] != int64(20) || row[3] != int64(19) {
			t.Fatalf("node %v: %v rows; want 20, seqs 0..19", row[0], row[1:])
		}
	}
}

// TestRunShipsAndFlushesOnStop: Run ships a full batch without waiting
// for the interval, and what is left when its context ends.
func TestRunShipsAndFlushesOnStop(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, filepath.Join(dir, "audit"), Options{})
	s := testShipper(t, l, dir, ShipperConfig{Interval: time.Hour, MaxBatchRecords: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i := range 10 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.committed.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("a full batch was not shipped before the interval (committed %d)", s.committed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("late", i))); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rows, ids, _ := counts(t, dir); rows != 13 || ids != 13 {
		t.Fatalf("rows %d, distinct ids %d; want 13 (the final flush ships what is left)", rows, ids)
	}
}

// TestShipperRefusesALogBehindTheTable: a log directory that lost records
// the table holds (its segments replaced, its node id kept) must not
// reuse their sequence numbers: the shipper stops with ErrCorrupt.
func TestShipperRefusesALogBehindTheTable(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := l.Append(context.Background(), rec(fmt.Sprint("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := testShipper(t, l, dir, ShipperConfig{}).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	node, err := os.ReadFile(filepath.Join(dir, "a", nodeFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "b"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b", nodeFile), node, 0o600); err != nil {
		t.Fatal(err)
	}
	b := openLog(t, filepath.Join(dir, "b"), Options{})
	if err := b.Append(context.Background(), rec("x")); err != nil {
		t.Fatal(err)
	}
	err = testShipper(t, b, dir, ShipperConfig{}).Flush(context.Background())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "lost or replaced") {
		t.Fatalf("flush of a log behind the table: %v, want ErrCorrupt", err)
	}
	if rows, _, _ := counts(t, dir); rows != 5 {
		t.Fatalf("rows %d, want the 5 shipped before", rows)
	}
}

// TestShipperRefusesAnotherTable: a table of the audit log's name that is
// something else (a raw table ingest made for a topic audit.log) is left
// alone: no audit column is added to it, nothing is committed.
func TestShipperRefusesAnotherTable(t *testing.T) {
	dir := t.TempDir()
	cat, _ := testLake(t, dir, nil)
	if _, err := cat.EnsureTable(context.Background(), lake.RawTableDef(lake.TableAuditLog, "audit.log", nil, nil)); err != nil {
		t.Fatal(err)
	}
	l := openLog(t, filepath.Join(dir, "audit"), Options{})
	if err := l.Append(context.Background(), rec("x")); err != nil {
		t.Fatal(err)
	}
	err := testShipper(t, l, dir, ShipperConfig{}).Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not the audit log") {
		t.Fatalf("shipping into a raw table: %v", err)
	}
	tbl, err := cat.LoadTable(context.Background(), lake.TableAuditLog)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.Schema().FindFieldByName(lake.ColAuditLogSeq); ok || tbl.CurrentSnapshot() != nil {
		t.Fatal("the shipper changed a table that is not the audit log")
	}
}
