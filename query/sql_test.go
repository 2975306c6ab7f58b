package query

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/eventlake/eventlake/internal/duck"
	"github.com/eventlake/eventlake/lake"
)

func TestReadOnlyRefusals(t *testing.T) {
	l := newLake(t)
	l.orders()
	h := start(t, l, nil)
	cases := []struct {
		name, sql  string
		status     int
		code, want string
	}{
		{"insert", "INSERT INTO orders_raw SELECT * FROM orders_raw", 403, codeReadOnly, "read-only"},
		{"insert into a new table", "insert into t values (1)", 403, codeReadOnly, "read-only"},
		{"create table", "CREATE TABLE t AS SELECT 1 AS a", 403, codeReadOnly, "read-only"},
		{"create temp table", "CREATE TEMP TABLE t (a INT)", 403, codeReadOnly, "read-only"},
		{"create view", "CREATE OR REPLACE TEMP VIEW orders AS SELECT 1", 403, codeReadOnly, "read-only"},
		{"drop", "DROP VIEW orders", 403, codeReadOnly, "read-only"},
		{"update", "UPDATE orders SET amount = 0", 403, codeReadOnly, "read-only"},
		{"delete", "DELETE FROM orders", 403, codeReadOnly, "read-only"},
		{"attach", "ATTACH '/tmp/x.duckdb' AS x", 403, codeReadOnly, "read-only"},
		{"detach", "DETACH x", 403, codeReadOnly, "read-only"},
		{"install", "INSTALL httpfs", 403, codeReadOnly, "read-only"},
		{"force install", "FORCE INSTALL httpfs", 403, codeReadOnly, "read-only"},
		{"load", "LOAD httpfs", 403, codeReadOnly, "read-only"},
		{"set", "SET threads = 1", 403, codeReadOnly, "read-only"},
		{"set search_path", "SET search_path = 'main'", 403, codeReadOnly, "read-only"},
		{"reset", "RESET memory_limit", 403, codeReadOnly, "read-only"},
		{"use", "USE memory", 403, codeReadOnly, "read-only"},
		{"pragma", "PRAGMA enable_profiling", 403, codeReadOnly, "read-only"},
		{"pragma that reads", "PRAGMA table_info('orders')", 403, codeReadOnly, "read-only"},
		{"copy to", "COPY (SELECT * FROM orders) TO '/tmp/out.csv'", 403, codeReadOnly, "read-only"},
		{"copy from", "COPY orders_raw FROM '/etc/passwd'", 403, codeReadOnly, "read-only"},
		{"export", "EXPORT DATABASE '/tmp/x'", 403, codeReadOnly, "read-only"},
		{"call", "CALL pragma_version()", 403, codeReadOnly, "read-only"},
		{"checkpoint", "CHECKPOINT", 403, codeReadOnly, "read-only"},
		{"transaction", "BEGIN TRANSACTION", 403, codeReadOnly, "read-only"},
		{"prepare", "PREPARE p AS SELECT 1", 403, codeReadOnly, "read-only"},
		{"comment first", "/* hi */ -- there\n insert INTO t VALUES (1)", 403, codeReadOnly, "read-only"},
		{"parenthesized", "((INSERT INTO t VALUES (1)))", 403, codeReadOnly, "read-only"},
		{"explain analyze of a write", "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1", 403, codeReadOnly, "EXPLAIN CREATE"},
		{"explain with options of a write", "EXPLAIN (FORMAT json) INSERT INTO t VALUES (1)", 403, codeReadOnly, "EXPLAIN INSERT"},
		{"with then insert", "WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x", 403, codeReadOnly, "read-only"},
		{"read_csv outside the lake", "SELECT * FROM read_csv('/etc/passwd')", 403, codeForbidden, "/etc/passwd"},
		{"read_text outside the lake", "SELECT * FROM read_text('/etc/hostname')", 403, codeForbidden, "/etc/hostname"},
		{"glob outside the lake", "SELECT * FROM glob('/etc/*')", 403, codeForbidden, "/etc"},
		{"parquet outside the lake", "SELECT * FROM read_parquet('/tmp/../etc/x.parquet')", 403, codeForbidden, "x.parquet"},
		{"multiple statements", "SELECT 1; SELECT 2", 400, codeMultiple, "one statement"},
		{"write after a read", "SELECT 1; DROP VIEW orders", 400, codeMultiple, "one statement"},
		{"write after a comment", "SELECT 1 -- x\n; CREATE TABLE t (a INT)", 400, codeMultiple, "one statement"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.sql(c.sql)
			if r.status != c.status || r.code() != c.code || !strings.Contains(r.body["error"].(string), c.want) {
				t.Fatalf("%d %s, want %d %s containing %q", r.status, r.raw, c.status, c.code, c.want)
			}
		})
	}
	// Nothing was changed: the views still read the lake, no table was
	// created, the sandbox still holds.
	if r := h.mustSQL("SELECT count(*) FROM orders"); r.rows()[0][0] != json.Number("0") {
		t.Fatalf("orders changed: %s", r.raw)
	}
	if r := h.sql("SELECT * FROM t"); r.status != 400 || r.code() != codeBadSQL {
		t.Fatalf("table t exists: %s", r.raw)
	}
	if r := h.mustSQL("SELECT current_setting('threads') = current_setting('threads'), current_setting('TimeZone'), current_setting('validate_external_file_cache')"); r.rows()[0][1] != "UTC" || r.rows()[0][2] != "VALIDATE_REMOTE" {
		t.Fatalf("settings: %s", r.raw)
	}
	if got := metricValue(h.svc.m.rejected.WithLabelValues(rejectReadOnly)); got < 30 {
		t.Fatalf("rejected{read_only} = %v", got)
	}
}

func TestReadsThatAreAllowed(t *testing.T) {
	l := newLake(t)
	l.orders()
	sid := l.appendRows("orders_raw", []row{order("a", t0, "1.00", 0)}, nil)
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", sid)
	var path string
	for _, f := range h.svc.gen.Load().tables[0].files {
		path = f.path
	}
	for _, q := range []string{
		"SELECT 1;",
		"  select 1 ;  -- trailing comment",
		"(SELECT 1)",
		"WITH x AS (SELECT 1 AS a) SELECT * FROM x",
		"FROM orders",
		"VALUES (1), (2)",
		"TABLE orders",
		"DESCRIBE orders",
		"SHOW TABLES",
		"SUMMARIZE orders",
		"PIVOT orders ON user_id USING sum(amount)", // DuckDB makes two statements of it
		"PIVOT orders ON user_id USING sum(amount)", // again: its enum type was dropped
		"EXPLAIN SELECT * FROM orders",
		"EXPLAIN ANALYZE SELECT count(*) FROM orders",
		"SELECT 'INSERT INTO t; DROP x' AS s, \"select\" FROM (SELECT 1 AS \"select\")",
		"SELECT $$;$$ AS s",
		"SELECT E'\\';' AS s",
		"/* a ; comment */ SELECT 1",
		"SELECT count(*) FROM read_parquet(" + duck.QuoteString(path) + ")",
	} {
		if r := h.sql(q); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", q, r.status, r.raw)
		}
	}
}

func TestBadRequests(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) { c.MaxRows = 100 })
	cases := []struct {
		name, body string
		status     int
		code, want string
	}{
		{"syntax error", `{"sql": "SELEC 1"}`, 400, codeBadSQL, "syntax error"},
		{"unknown table", `{"sql": "SELECT * FROM nope"}`, 400, codeBadSQL, "nope"},
		{"unknown column", `{"sql": "SELECT nope FROM orders"}`, 400, codeBadSQL, "nope"},
		{"runtime conversion", `{"sql": "SELECT 'x'::INTEGER"}`, 400, codeBadSQL, "Conversion"},
		{"empty", `{"sql": "  -- nothing\n"}`, 400, codeBadSQL, "empty"},
		{"parameters", `{"sql": "SELECT $1"}`, 400, codeBadSQL, "parameters"},
		{"missing sql", `{}`, 400, codeBadRequest, `"sql" is required`},
		{"not json", `SELECT 1`, 400, codeBadRequest, "JSON object"},
		{"array", `["SELECT 1"]`, 400, codeBadRequest, "JSON object"},
		{"unknown field", `{"sql": "SELECT 1", "maxrows": 5}`, 400, codeBadRequest, "maxrows"},
		{"trailing data", `{"sql": "SELECT 1"} {}`, 400, codeBadRequest, "nothing after it"},
		{"max_rows too large", `{"sql": "SELECT 1", "max_rows": 101}`, 400, codeBadRequest, "between 1 and 100"},
		{"max_rows negative", `{"sql": "SELECT 1", "max_rows": -1}`, 400, codeBadRequest, "between 1 and 100"},
		{"too large", `{"sql": "SELECT '` + strings.Repeat("x", maxBodyBytes) + `'"}`, 400, codeBadRequest, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.post(c.body)
			if r.status != c.status || r.code() != c.code || !strings.Contains(r.body["error"].(string), c.want) {
				t.Fatalf("%d %.300s, want %d %s containing %q", r.status, r.raw, c.status, c.code, c.want)
			}
		})
	}
	// Only JSON bodies: what a cross-site form or text/plain fetch sends
	// is refused, whatever it holds.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"} {
		r := h.postAs(ct, `{"sql": "SELECT 1"}`)
		if r.status != http.StatusUnsupportedMediaType || r.code() != codeMediaType || !strings.Contains(r.body["error"].(string), "application/json") {
			t.Fatalf("Content-Type %q: %d %s, want 415 %s", ct, r.status, r.raw, codeMediaType)
		}
	}
	if r := h.postAs("application/json; charset=utf-8", `{"sql": "SELECT 1"}`); r.status != http.StatusOK {
		t.Fatalf("Content-Type with charset: %d %s", r.status, r.raw)
	}
	resp, err := http.Get(h.srv.URL + "/v1/sql")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/sql: %d", resp.StatusCode)
	}
}

// slowSQL runs for minutes unless interrupted.
const slowSQL = "SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000000) b"

func TestTimeout(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) { c.QueryTimeout = 200 * time.Millisecond })
	// Without the timeout this query would run for hours.
	r := h.sql(slowSQL)
	if r.status != http.StatusGatewayTimeout || r.code() != codeTimeout {
		t.Fatalf("%d %s, want 504 timeout", r.status, r.raw)
	}
	// The connection is usable afterwards.
	h.mustSQL("SELECT 1")
}

func TestMaxRows(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) { c.MaxRows = 50 })
	cases := []struct {
		sql       string
		maxRows   int
		wantRows  int
		truncated bool
	}{
		{"SELECT range AS i FROM range(100) ORDER BY i DESC", 0, 50, true},
		{"SELECT range AS i FROM range(100) ORDER BY i DESC", 10, 10, true},
		{"SELECT range AS i FROM range(10) ORDER BY i DESC", 10, 10, false},
		{"SELECT range AS i FROM range(9) ORDER BY i DESC;", 10, 9, false},
		{"SELECT range AS i FROM range(100) ORDER BY i DESC LIMIT 3", 0, 3, false},
		{"EXPLAIN SELECT 1", 0, 1, false},
	}
	for _, c := range cases {
		b, _ := json.Marshal(SQLRequest{SQL: c.sql, MaxRows: c.maxRows})
		r := h.post(string(b))
		if r.status != 200 {
			t.Fatalf("%s: %d %s", c.sql, r.status, r.raw)
		}
		rows := r.rows()
		if len(rows) != c.wantRows || r.body["row_count"] != json.Number(fmt.Sprint(c.wantRows)) || r.body["truncated"] != c.truncated {
			t.Errorf("%s max_rows=%d: %d rows, row_count %v, truncated %v; want %d, %v", c.sql, c.maxRows, len(rows), r.body["row_count"], r.body["truncated"], c.wantRows, c.truncated)
		}
		if strings.Contains(c.sql, "DESC") && len(rows) > 0 {
			first := rows[0][0].(json.Number)
			if want := map[bool]string{true: "99", false: fmt.Sprint(c.wantRows - 1)}; !strings.Contains(c.sql, "range(100)") && first.String() != want[false] || strings.Contains(c.sql, "range(100)") && first.String() != "99" {
				t.Errorf("%s: first row %v; the order was lost", c.sql, first)
			}
		}
	}
	// Duplicate column names survive the row limit.
	r := h.mustSQL("SELECT 1 AS a, 2 AS a")
	if !reflect.DeepEqual(r.body["columns"], []any{"a", "a"}) {
		t.Fatalf("columns %v", r.body["columns"])
	}
}

// TestMaxAnswerBytes: an answer stops before the row that would take it
// past query.max_answer_bytes, and says which limit cut it.
func TestMaxAnswerBytes(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) { c.MaxRows = 100; c.MaxAnswerBytes = 10_000 })
	for _, c := range []struct {
		sql       string
		rows      int
		truncated bool
		by        any
	}{
		{"SELECT repeat('x', 3000) AS s FROM range(10)", 3, true, "bytes"},
		{"SELECT repeat('x', 20000) AS s FROM range(2)", 0, true, "bytes"},
		{"SELECT repeat('x', 3000) AS s FROM range(3)", 3, false, nil},
		{"SELECT range AS i FROM range(200)", 100, true, "rows"},
		// 100 rows of 100 bytes fit the cap exactly; the 101st only shows
		// that there are more rows, it is not what cut the answer.
		{"SELECT repeat('x', 97) AS s FROM range(101)", 100, true, "rows"},
	} {
		r := h.mustSQL(c.sql)
		if got := len(r.rows()); got != c.rows || r.body["truncated"] != c.truncated || r.body["truncated_by"] != c.by {
			t.Errorf("%s: %d rows, truncated %v by %v; want %d, %v by %v", c.sql, got, r.body["truncated"], r.body["truncated_by"], c.rows, c.truncated, c.by)
		}
		if len(r.raw) > 10_000+2_000 {
			t.Errorf("%s: answer of %d bytes with a cap of 10000 on its rows", c.sql, len(r.raw))
		}
	}
}

func TestValueEncoding(t *testing.T) {
	h := start(t, newLake(t), nil)
	r := h.mustSQL(`SELECT
		12.3::DECIMAL(18,2) AS dec,
		-0.05::DECIMAL(18,2) AS neg,
		0.10::DECIMAL(18,2) + 0.20::DECIMAL(18,2) AS added,
		TIMESTAMPTZ '2026-11-26 10:00:00.123456+00' AS tstz,
		TIMESTAMP '2026-11-26 10:00:00' AS ts,
		DATE '2026-11-26' AS d,
		TIME '10:11:12.5' AS tm,
		'\x01\xffhi'::BLOB AS blob,
		NULL AS nothing,
		NULL::DECIMAL(18,2) AS null_dec,
		9223372036854775807::BIGINT AS big,
		170141183460469231731687303715884105727::HUGEINT AS huge,
		18446744073709551615::UBIGINT AS ubig,
		'nan'::DOUBLE AS nan,
		1.5::DOUBLE AS dbl,
		true AS b,
		'héllo "q"' AS s,
		[1, 2, NULL] AS list,
		[1.50::DECIMAL(4,2)] AS dec_list,
		{'a': 1, 'b': 'x'} AS st,
		MAP {'k1': 1, 'k2': 2} AS m,
		'550e8400-e29b-41d4-a716-446655440000'::UUID AS u,
		INTERVAL 90 MINUTE AS iv`)
	want := map[string]string{
		"dec": `"12.30"`, "neg": `"-0.05"`, "added": `"0.30"`,
		"tstz": `"2026-11-26T10:00:00.123456Z"`, "ts": `"2026-11-26T10:00:00.000000Z"`,
		"d": `"2026-11-26"`, "tm": `"10:11:12.500000"`,
		"blob": `"Af9oaQ=="`, "nothing": `null`, "null_dec": `null`,
		"big": `9223372036854775807`, "huge": `170141183460469231731687303715884105727`, "ubig": `18446744073709551615`,
		"nan": `"NaN"`, "dbl": `1.5`, "b": `true`, "s": `"héllo \"q\""`,
		"list": `[1,2,null]`, "dec_list": `["1.50"]`, "st": `{"a":1,"b":"x"}`, "m": `{"k1":1,"k2":2}`,
		"u": `"550e8400-e29b-41d4-a716-446655440000"`, "iv": `{"days":0,"micros":5400000000,"months":0}`,
	}
	var raw struct {
		Columns []string            `json:"columns"`
		Types   []string            `json:"types"`
		Rows    [][]json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(r.raw, &raw); err != nil {
		t.Fatal(err)
	}
	for i, c := range raw.Columns {
		if got := string(raw.Rows[0][i]); got != want[c] {
			t.Errorf("%s (%s): %s, want %s", c, raw.Types[i], got, want[c])
		}
	}
	if raw.Types[0] != "DECIMAL(18,2)" || raw.Types[3] != "TIMESTAMPTZ" || raw.Types[7] != "BLOB" {
		t.Errorf("types %v", raw.Types)
	}
}

func TestViews(t *testing.T) {
	l := newLake(t)
	l.orders()
	l.inventory()
	l.dlq()
	cancelled := order("x", t0, "9.99", 1)
	cancelled[lake.ColType] = "order.cancelled"
	so := l.appendRows("orders_raw", []row{order("a", t0.Add(123456*time.Microsecond), "12.30", 0), cancelled}, offsets("orders.created", 0, 2))
	si := l.appendRows("inventory_raw", []row{inventoryRow("i", t0, 7, 5)}, offsets("inventory.updated", 1, 6))
	sd := l.appendRows("dlq", []row{
		{lake.ColRaw: []byte{0xff, 0xfe, 'x'}, lake.ColReason: "bad_json", lake.ColDetail: "invalid character",
			lake.ColKafkaTopic: "orders.created", lake.ColKafkaPartition: 2, lake.ColKafkaOffset: int64(9),
			lake.ColKey: []byte("k"), lake.ColSize: int64(3), lake.ColIngestedAt: t0},
		{lake.ColRaw: nil, lake.ColReason: "tombstone", lake.ColDetail: "null value",
			lake.ColKafkaTopic: "orders.created", lake.ColKafkaPartition: 2, lake.ColKafkaOffset: int64(10),
			lake.ColSize: int64(0), lake.ColIngestedAt: t0},
	}, offsets("orders.created", 2, 11))
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", so)
	h.waitSnapshot("inventory_raw", si)
	h.waitSnapshot("dlq", sd)

	r := h.mustSQL("SELECT type, kafka_topic, count(*) FROM events GROUP BY ALL ORDER BY ALL")
	wantEvents := [][]any{{"inventory.updated", "inventory.updated", json.Number("1")}, {"order.cancelled", "orders.created", json.Number("1")}, {"order.created", "orders.created", json.Number("1")}}
	if !reflect.DeepEqual(r.rows(), wantEvents) {
		t.Errorf("events %v", r.rows())
	}
	r = h.mustSQL("SELECT order_id, amount, ts, kafka_partition, kafka_offset FROM orders")
	if want := [][]any{{"a", "12.30", "2026-11-26T10:00:00.123456Z", json.Number("0"), json.Number("0")}}; !reflect.DeepEqual(r.rows(), want) {
		t.Errorf("orders %v", r.rows())
	}
	r = h.mustSQL("SELECT product_id, warehouse, stock, delta FROM inventory")
	if want := [][]any{{"p-i", "w-1", json.Number("7"), nil}}; !reflect.DeepEqual(r.rows(), want) {
		t.Errorf("inventory %v", r.rows())
	}
	r = h.mustSQL("SELECT raw, reason, kafka_key, size FROM dlq ORDER BY kafka_offset")
	if want := [][]any{{"//54", "bad_json", "aw==", json.Number("3")}, {nil, "tombstone", nil, json.Number("0")}}; !reflect.DeepEqual(r.rows(), want) {
		t.Errorf("dlq %v", r.rows())
	}
	if types := r.body["types"].([]any); types[0] != "BLOB" || types[2] != "BLOB" {
		t.Errorf("dlq types %v", types)
	}
	// Each raw table under its own name, with every column.
	r = h.mustSQL("SELECT count(*), count(order_id), count(trace_id) FROM orders_raw")
	if want := [][]any{{json.Number("2"), json.Number("2"), json.Number("0")}}; !reflect.DeepEqual(r.rows(), want) {
		t.Errorf("orders_raw %v", r.rows())
	}
	r = h.mustSQL("SELECT count(*) FROM inventory_raw")
	if r.rows()[0][0] != json.Number("1") {
		t.Errorf("inventory_raw %v", r.rows())
	}
	// The response names every table's snapshot and offsets.
	sids := r.body["snapshot_id"].(map[string]any)
	for name, want := range map[string]int64{"orders_raw": so, "inventory_raw": si, "dlq": sd} {
		if sids[name] != json.Number(fmt.Sprint(want)) {
			t.Errorf("snapshot_id[%s] = %v, want %d", name, sids[name], want)
		}
	}
	offs := r.body["offsets"].(map[string]any)
	if got := offs["dlq"]; !reflect.DeepEqual(got, map[string]any{"orders.created": map[string]any{"2": json.Number("11")}}) {
		t.Errorf("offsets[dlq] = %v", got)
	}
	// No hive partition column leaks in from the data paths.
	r = h.mustSQL("SELECT * FROM orders_raw LIMIT 0")
	for _, c := range r.body["columns"].([]any) {
		if strings.Contains(c.(string), "hour") {
			t.Errorf("orders_raw has column %v", c)
		}
	}
}

func TestSchemaEvolution(t *testing.T) {
	l := newLake(t)
	l.orders()
	l.appendRows("orders_raw", []row{order("old", t0, "1.00", 0)}, nil)
	// A column added later: files written before it read as NULL.
	tbl, err := l.cat.LoadTable(context.Background(), "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.NewTransaction()
	if err := tx.UpdateSchema(true, false).AddColumn([]string{"coupon"}, iceberg.PrimitiveTypes.String, "", false, nil).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	newRow := order("new", t0, "2.00", 1)
	newRow["coupon"] = "XMAS"
	sid := l.appendRows("orders_raw", []row{newRow}, nil)
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", sid)
	r := h.mustSQL("SELECT order_id, coupon FROM orders_raw ORDER BY order_id")
	if want := [][]any{{"new", "XMAS"}, {"old", nil}}; !reflect.DeepEqual(r.rows(), want) {
		t.Fatalf("rows %v", r.rows())
	}
	if r := h.mustSQL("SELECT sum(amount) FROM orders"); r.rows()[0][0] != "3.00" {
		t.Fatalf("sum %v", r.rows()[0][0])
	}
}

func TestConcurrencyLimit(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) {
		c.MaxConcurrentQueries = 1
		c.QueueTimeout = 50 * time.Millisecond
		c.QueryTimeout = time.Second
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.sql(slowSQL) // holds the only slot until its timeout
	}()
	h.waitFor("the slow query to start", func() bool { return metricValue(h.svc.m.inflight) == 1 })
	r := h.sql("SELECT 1")
	if r.status != http.StatusServiceUnavailable || r.code() != codeBusy || r.header.Get("Retry-After") != "1" ||
		!strings.Contains(r.body["error"].(string), "max_concurrent_queries") {
		t.Fatalf("%d %v %s, want 503 busy with Retry-After", r.status, r.header, r.raw)
	}
	code, body := h.get("/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z")
	if code != http.StatusOK { // no file to read: no slot needed
		t.Fatalf("revenue %d %s", code, body)
	}
	if got := metricValue(h.svc.m.rejected.WithLabelValues(rejectBusy)); got != 1 {
		t.Fatalf("rejected{concurrency_limit} = %v, want 1", got)
	}
	wg.Wait()
	h.mustSQL("SELECT 1")
}

// TestSnapshotConsistency commits while querying: every answer must hold
// exactly the rows of the snapshot it names.
func TestSnapshotConsistency(t *testing.T) {
	l := newLake(t)
	l.orders()
	h := start(t, l, func(c *Config) { c.RefreshInterval = 10 * time.Millisecond })
	var (
		mu   sync.Mutex
		want = map[int64]int{}
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := range 30 {
			var rows []row
			for j := range 10 {
				rows = append(rows, order(fmt.Sprintf("%d-%d", i, j), t0.Add(time.Duration(i)*time.Minute), "1.00", int64(i*10+j)))
			}
			sid := l.appendRows("orders_raw", rows, offsets("orders.created", 0, int64(i*10+10)))
			mu.Lock()
			want[sid] = (i + 1) * 10
			mu.Unlock()
		}
	}()
	type answer struct {
		sid, count, events, revenue, offset string
	}
	var (
		amu     sync.Mutex
		answers []answer
		qwg     sync.WaitGroup
	)
	for range 4 {
		qwg.Add(1)
		go func() {
			defer qwg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				r := h.sql("SELECT (SELECT count(*) FROM orders_raw), (SELECT count(*) FROM events), (SELECT sum(amount) FROM orders)")
				if r.status != http.StatusOK {
					t.Errorf("status %d: %s", r.status, r.raw)
					return
				}
				sid := r.body["snapshot_id"].(map[string]any)["orders_raw"]
				if sid == nil {
					continue
				}
				row := r.rows()[0]
				off := r.body["offsets"].(map[string]any)["orders_raw"].(map[string]any)["orders.created"].(map[string]any)["0"]
				amu.Lock()
				answers = append(answers, answer{sid: sid.(json.Number).String(), count: row[0].(json.Number).String(),
					events: row[1].(json.Number).String(), revenue: row[2].(string), offset: off.(json.Number).String()})
				amu.Unlock()
			}
		}()
	}
	qwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, a := range answers {
		var sid int64
		fmt.Sscan(a.sid, &sid)
		n, ok := want[sid]
		if !ok {
			t.Fatalf("answer names unknown snapshot %s", a.sid)
		}
		if a.count != fmt.Sprint(n) || a.events != fmt.Sprint(n) || a.revenue != fmt.Sprintf("%d.00", n) || a.offset != fmt.Sprint(n) {
			t.Fatalf("snapshot %s holds %d rows, answer read count=%s events=%s revenue=%s offset=%s", a.sid, n, a.count, a.events, a.revenue, a.offset)
		}
		seen[a.sid] = true
	}
	t.Logf("%d answers over %d snapshots", len(answers), len(seen))
}

func TestDeleteFilesRefused(t *testing.T) {
	l := newLake(t)
	l.orders()
	l.inventory()
	l.appendRows("orders_raw", []row{order("a", t0, "1.00", 0), order("b", t0, "2.00", 1)}, nil)
	si := l.appendRows("inventory_raw", []row{inventoryRow("i", t0, 7, 0)}, nil)
	ctx := context.Background()
	tbl, err := l.cat.LoadTable(ctx, "orders_raw")
	if err != nil {
		t.Fatal(err)
	}
	tx := tbl.NewTransaction()
	if err := tx.SetProperties(iceberg.Properties{"write.delete.mode": "merge-on-read"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(ctx, iceberg.EqualTo(iceberg.Reference("order_id"), "a"), nil); err != nil {
		t.Fatal(err)
	}
	nt, err := tx.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", nt.CurrentSnapshot().SnapshotID)
	h.waitSnapshot("inventory_raw", si)

	if un := h.svc.Lake().Unavailable["orders_raw"]; !strings.Contains(un, "delete files") {
		t.Fatalf("the lake status does not report the refused table: %q", un)
	}
	for _, q := range []string{
		"SELECT count(*) FROM orders_raw",
		"SELECT count(*) FROM orders",
		"SELECT * FROM orders WHERE amount > 1",
		"SELECT count(*) FROM events",
		"SELECT count(*) FROM events WHERE kafka_topic = 'inventory.updated'",
		"SELECT order_id FROM orders_raw WHERE type = 'order.created' AND ts > now()",
		"SELECT * FROM query_table('orders')",
	} {
		r := h.sql(q)
		if r.status != http.StatusServiceUnavailable || r.code() != codeUnavailable || !strings.Contains(r.body["error"].(string), "delete files") {
			t.Errorf("%s: %d %s, want 503 table_unavailable", q, r.status, r.raw)
		}
	}
	if r := h.mustSQL("SELECT count(*) FROM inventory"); r.rows()[0][0] != json.Number("1") {
		t.Errorf("inventory %s", r.raw)
	}
	code, body := h.get("/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "delete files") {
		t.Errorf("revenue %d %s", code, body)
	}
}

func TestNotReadyAndMetrics(t *testing.T) {
	l := newLake(t)
	reg := newRegistry()
	svc, err := New(Config{}, Deps{Catalog: l.cat, Layout: testLayout(t), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, l: l, svc: svc, srv: newServer(t, svc)}
	if code, body := h.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "has not read the lake yet") {
		t.Fatalf("readyz before the first refresh: %d %s", code, body)
	}
	if code, body := h.get("/healthz"); code != http.StatusOK {
		t.Fatalf("healthz (liveness) before the first refresh: %d %s", code, body)
	}
	if r := h.sql("SELECT 1"); r.status != http.StatusServiceUnavailable || r.code() != codeNotReady || r.header.Get("Retry-After") == "" {
		t.Fatalf("sql before the first refresh: %d %s", r.status, r.raw)
	}
	if code, _ := h.get("/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics without a gatherer: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if r := h.sql("SELECT 1"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("sql after Run returned: %d %s", r.status, r.raw)
	}

	h2 := start(t, newLake(t), nil)
	h2.mustSQL("SELECT 1")
	if r := h2.sql("SELEC 1"); r.status/100 != 4 {
		t.Fatalf("a syntax error: %d %s, want a 4xx", r.status, r.raw)
	}
	code, body := h2.get("/metrics")
	for _, m := range []string{
		`eventlake_query_requests_total{code="200",endpoint="sql"}`,
		`eventlake_query_duration_seconds_count{endpoint="sql",outcome="ok"} 1`,
		`eventlake_query_duration_seconds_count{endpoint="sql",outcome="client_error"} 1`,
		`eventlake_query_rejected_total{reason="concurrency_limit"} 0`,
		`eventlake_query_refresh_duration_seconds_count`,
		`eventlake_query_last_refresh_timestamp_seconds`,
	} {
		if code != 200 || !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

func TestOutOfMemory(t *testing.T) {
	h := start(t, newLake(t), func(c *Config) { c.MemoryLimit = "64MB"; c.Threads = 1 })
	r := h.sql("SELECT count(*) FROM (SELECT md5(range::VARCHAR) AS h FROM range(10000000) ORDER BY h)")
	if r.status != http.StatusUnprocessableEntity || r.code() != codeOutOfMemory || !strings.Contains(r.body["error"].(string), "64MB") {
		t.Fatalf("%d %.300s, want 422 out_of_memory", r.status, r.raw)
	}
	h.mustSQL("SELECT 1")
}

// TestCatalogOutage: while the catalog cannot be read, the last
// generation stays in service and /readyz says why it is not refreshed.
func TestCatalogOutage(t *testing.T) {
	l := newLake(t)
	l.orders()
	sid := l.appendRows("orders_raw", []row{order("a", t0, "1.00", 0)}, nil)
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", sid)
	if err := l.cat.Close(); err != nil {
		t.Fatal(err)
	}
	var body []byte
	h.waitFor("a refresh error", func() bool {
		var code int
		code, body = h.get("/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(string(body), `"component":"query"`) || !strings.Contains(string(body), "polling the catalog fails") {
		t.Fatalf("readyz during the outage names no query component failing its catalog polls: %s", body)
	}
	if hr := h.svc.Lake(); hr.Status != "ok" || hr.RefreshError == "" || hr.Tables["orders_raw"] == nil || *hr.Tables["orders_raw"] != sid {
		t.Fatalf("lake status during the outage: %+v", hr)
	}
	if r := h.mustSQL("SELECT count(*) FROM orders"); r.rows()[0][0] != json.Number("1") {
		t.Fatalf("orders during the outage: %s", r.raw)
	}
}
