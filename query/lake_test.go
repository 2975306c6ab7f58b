package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventlake/eventlake/lake"
	"github.com/eventlake/eventlake/schema"
)

// lake is a real Iceberg lake in a temporary directory: an embedded
// SQLite catalog and a local warehouse, written with iceberg-go the way
// ingest writes it.
type testLake struct {
	t   testing.TB
	dir string
	cat *lake.Catalog
}

func newLake(t testing.TB) *testLake {
	t.Helper()
	dir := t.TempDir()
	cfg := lake.Config{}
	cfg.Defaults(dir)
	cat, err := lake.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return &testLake{t: t, dir: dir, cat: cat}
}

// rawTable creates a raw table holding the event type typ (a shipped
// schema's subject; "" for envelope columns only), as ingest creates it.
func (l *testLake) rawTable(name, topic, typ string) *table.Table {
	l.t.Helper()
	var typed []iceberg.NestedField
	props := iceberg.Properties{}
	if typ != "" {
		sub := testCodecs.Set().Subject(typ)
		if sub == nil {
			l.t.Fatalf("no shipped schema for %s", typ)
		}
		for _, c := range sub.Columns {
			typed = append(typed, c.NestedField())
		}
		props[lake.PropTypePrefix+typ] = "1"
	}
	tbl, err := l.cat.EnsureTable(context.Background(), lake.RawTableDef(name, topic, typed, props))
	if err != nil {
		l.t.Fatal(err)
	}
	return tbl
}

// testCodecs are the shipped schemas.
var testCodecs = schema.Fixed{S: schema.NewSet(schema.ShippedVersions(), nil)}

func (l *testLake) orders() *table.Table {
	return l.rawTable("orders_raw", "orders.created", "order.created")
}
func (l *testLake) inventory() *table.Table {
	return l.rawTable("inventory_raw", "inventory.updated", "inventory.updated")
}
func (l *testLake) dlq() *table.Table {
	l.t.Helper()
	tbl, err := l.cat.EnsureTable(context.Background(), lake.DLQTableDef("dlq"))
	if err != nil {
		l.t.Fatal(err)
	}
	return tbl
}

// row is one table row by column name; absent columns are null.
type row map[string]any

// appendRows commits rows to the table in one append snapshot recording
// offsets, and returns the new snapshot id.
func (l *testLake) appendRows(name string, rows []row, offsets lake.Offsets) int64 {
	l.t.Helper()
	ctx := context.Background()
	tbl, err := l.cat.LoadTable(ctx, name)
	if err != nil {
		l.t.Fatal(err)
	}
	rec := buildRecord(l.t, tbl, rows)
	defer rec.Release()
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		l.t.Fatal(err)
	}
	defer rdr.Release()
	props := iceberg.Properties{}
	if offsets != nil {
		b, err := json.Marshal(offsets)
		if err != nil {
			l.t.Fatal(err)
		}
		props[lake.SummaryOffsets] = string(b)
	}
	tx := tbl.NewTransaction()
	if err := tx.Append(ctx, rdr, props); err != nil {
		l.t.Fatalf("append to %s: %v", name, err)
	}
	nt, err := tx.Commit(ctx)
	if err != nil {
		l.t.Fatalf("commit to %s: %v", name, err)
	}
	return nt.CurrentSnapshot().SnapshotID
}

func buildRecord(t testing.TB, tbl *table.Table, rows []row) arrow.RecordBatch {
	t.Helper()
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, r := range rows {
		for i, f := range sc.Fields() {
			appendValue(t, b.Field(i), f.Name, r[f.Name])
		}
	}
	return b.NewRecordBatch()
}

func appendValue(t testing.TB, fb array.Builder, name string, v any) {
	t.Helper()
	if v == nil {
		fb.AppendNull()
		return
	}
	switch fb := fb.(type) {
	case *array.StringBuilder:
		fb.Append(v.(string))
	case *array.Int32Builder:
		fb.Append(int32(v.(int)))
	case *array.Int64Builder:
		switch x := v.(type) {
		case int:
			fb.Append(int64(x))
		case int64:
			fb.Append(x)
		}
	case *array.TimestampBuilder:
		fb.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
	case *array.Decimal128Builder:
		n, err := decimal128.FromString(v.(string), 18, 2)
		if err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		fb.Append(n)
	case *array.BinaryBuilder:
		fb.Append(v.([]byte))
	default:
		t.Fatalf("column %s: no test writer for %T", name, fb)
	}
}

// order is an order.created row of orders_raw.
func order(id string, ts time.Time, amount string, offset int64) row {
	return row{
		lake.ColEventID: "ev-" + id, lake.ColSource: "test", lake.ColType: "order.created", lake.ColTs: ts,
		lake.ColPayload: fmt.Sprintf(`{"order_id":%q,"amount":%s}`, id, amount), lake.ColMetadata: `{}`,
		lake.ColKafkaTopic: "orders.created", lake.ColKafkaPartition: 0, lake.ColKafkaOffset: offset,
		lake.ColIngestedAt: ts.Add(time.Second), "order_id": id, "user_id": "u-1", "product_id": "p-1",
		"quantity": 1, "amount": amount,
	}
}

// inventoryRow is an inventory.updated row of inventory_raw.
func inventoryRow(id string, ts time.Time, stock int64, offset int64) row {
	return row{
		lake.ColEventID: "ev-" + id, lake.ColSource: "test", lake.ColType: "inventory.updated", lake.ColTs: ts,
		lake.ColPayload: `{}`, lake.ColKafkaTopic: "inventory.updated", lake.ColKafkaPartition: 1,
		lake.ColKafkaOffset: offset, lake.ColIngestedAt: ts, "product_id": "p-" + id,
		"warehouse": "w-1", "stock": stock, "delta": nil,
	}
}

func offsets(topic string, partition int32, next int64) lake.Offsets {
	o := lake.Offsets{}
	o.Set(topic, partition, next)
	return o
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// testLayout is ingest's default layout: orders_raw, inventory_raw, dlq.
func testLayout(t testing.TB) *lake.Layout {
	t.Helper()
	l, err := lake.NewLayout(lake.LayoutConfig{Topics: []lake.TopicTable{
		{Topic: "orders.created", Table: "orders_raw"}, {Topic: "inventory.updated", Table: "inventory_raw"},
	}, DLQ: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// harness is a running service over a lake, served by httptest.
type harness struct {
	t   testing.TB
	l   *testLake
	svc *Service
	srv *httptest.Server
	reg *prometheus.Registry
	// token, if set, is sent with every /v1/sql request.
	token string
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// start runs the service until the test ends and waits for its first
// refresh.
func start(t testing.TB, l *testLake, mut func(*Config)) *harness {
	t.Helper()
	return startWith(t, l, mut, nil)
}

// startWith is start with the service's handler wrapped (wrap may be nil)
// and Deps changed by deps.
func startWith(t testing.TB, l *testLake, mut func(*Config), deps func(*Deps) func(http.Handler) http.Handler) *harness {
	t.Helper()
	cfg := Config{RefreshInterval: 20 * time.Millisecond}
	if mut != nil {
		mut(&cfg)
	}
	reg := prometheus.NewRegistry()
	d := Deps{Catalog: l.cat, Layout: testLayout(t), Codecs: testCodecs, Logger: testLogger(), Registry: reg, Gatherer: reg}
	wrap := func(h http.Handler) http.Handler { return h }
	if deps != nil {
		wrap = deps(&d)
	}
	svc, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	srv := httptest.NewServer(wrap(svc.Handler()))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h := &harness{t: t, l: l, svc: svc, srv: srv, reg: reg}
	h.waitFor("first refresh", func() bool {
		code, _ := h.get("/readyz")
		return code == http.StatusOK
	})
	return h
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSnapshot waits until the service reads snapshot id of table.
func (h *harness) waitSnapshot(name string, id int64) {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("snapshot %d of %s", id, name), func() bool {
		got := h.svc.Lake().Tables[name]
		return got != nil && *got == id
	})
}

func (h *harness) get(path string) (int, []byte) {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// sqlResult is a /v1/sql answer decoded with exact numbers.
type sqlResult struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r sqlResult) rows() [][]any {
	var out [][]any
	rows, _ := r.body["rows"].([]any)
	for _, rw := range rows {
		out = append(out, rw.([]any))
	}
	return out
}

func (r sqlResult) code() string { s, _ := r.body["code"].(string); return s }

func (h *harness) post(body string) sqlResult {
	h.t.Helper()
	return h.postAs("application/json", body)
}

// postAs posts body to /v1/sql with the given Content-Type.
func (h *harness) postAs(contentType, body string) sqlResult {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/sql", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	res := sqlResult{status: resp.StatusCode, header: resp.Header, raw: b}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&res.body); err != nil {
		h.t.Fatalf("decode %q: %v", b, err)
	}
	return res
}

func (h *harness) sql(query string) sqlResult {
	h.t.Helper()
	b, err := json.Marshal(SQLRequest{SQL: query})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.post(string(b))
}

// mustSQL runs a query that must succeed.
func (h *harness) mustSQL(query string) sqlResult {
	h.t.Helper()
	r := h.sql(query)
	if r.status != http.StatusOK {
		h.t.Fatalf("%s: status %d: %s", query, r.status, r.raw)
	}
	return r
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func newServer(t testing.TB, svc *Service) *httptest.Server {
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
