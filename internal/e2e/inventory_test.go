package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	th "github.com/eventlake/eventlake/internal/testharness"
	"github.com/eventlake/eventlake/lake"
)

// invUpdate is one inventory.updated event the test produces.
type invUpdate struct {
	id, product, warehouse string // warehouse "" is null
	stock                  int64
	delta                  *int64
	ts                     time.Time
}

// invUpdates are n updates of 3 products in 2 warehouses (and none),
// spread over two days, at distinct microseconds.
func invUpdates(seed uint64, n int, start time.Time, span time.Duration) []invUpdate {
	r := rand.New(rand.NewPCG(seed, 1))
	seen := map[int64]bool{}
	out := make([]invUpdate, 0, n)
	for len(out) < n {
		ts := start.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Microsecond)
		if seen[ts.UnixMicro()] {
			continue
		}
		seen[ts.UnixMicro()] = true
		u := invUpdate{id: fmt.Sprintf("inv-%d-%d", seed, len(out)), product: fmt.Sprintf("p-%d", r.IntN(3)),
			warehouse: []string{"w-1", "w-2", ""}[r.IntN(3)], stock: r.Int64N(500), ts: ts}
		if r.IntN(3) > 0 {
			d := r.Int64N(41) - 20
			u.delta = &d
		}
		out = append(out, u)
	}
	return out
}

func produceInventory(t *testing.T, dir, broker string, us []invUpdate) {
	t.Helper()
	var b strings.Builder
	for _, u := range us {
		wh := "null"
		if u.warehouse != "" {
			wh = strconv.Quote(u.warehouse)
		}
		delta := ""
		if u.delta != nil {
			delta = fmt.Sprintf(`,"delta":%d`, *u.delta)
		}
		fmt.Fprintf(&b, `{"event_id":%q,"source":"inv-test","type":"inventory.updated","timestamp":%q,"payload":{"product_id":%q,"warehouse":%s,"stock":%d%s}}`+"\n",
			u.id, u.ts.Format(time.RFC3339Nano), u.product, wh, u.stock, delta)
	}
	file := filepath.Join(dir, us[0].id+".ndjson")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runBinary(t, "produce", "--brokers", broker, "--rate", "0", "--file", file); err != nil {
		t.Fatalf("produce inventory updates: %v\n%s", err, out)
	}
}

// inventoryTruth is inventory_health computed from the updates: per day
// (every=="" ) or over the whole range (every=="all"), product and
// warehouse, the column values as GET /v1/models answers them.
func inventoryTruth(us []invUpdate, all bool, from time.Time) map[string]map[string]string {
	type agg struct {
		last, first invUpdate
		n           int64
		delta       *int64
	}
	per := map[string]*agg{}
	for _, u := range us {
		bucket := u.ts.UTC().Truncate(24 * time.Hour)
		if all {
			bucket = from
		}
		k := bucket.Format(time.RFC3339Nano) + "|" + u.product + "|" + u.warehouse
		g := per[k]
		if g == nil {
			g = &agg{last: u, first: u}
			per[k] = g
		}
		g.n++
		if u.ts.After(g.last.ts) {
			g.last = u
		}
		if u.ts.Before(g.first.ts) {
			g.first = u
		}
		if u.delta != nil {
			d := *u.delta
			if g.delta != nil {
				d += *g.delta
			}
			g.delta = &d
		}
	}
	out := map[string]map[string]string{}
	for k, g := range per {
		delta := "<nil>"
		if g.delta != nil {
			delta = strconv.FormatInt(*g.delta, 10)
		}
		out[k] = map[string]string{"stock": strconv.FormatInt(g.last.stock, 10), "first_stock": strconv.FormatInt(g.first.stock, 10),
			"updates": strconv.FormatInt(g.n, 10), "net_delta": delta, "last_update": g.last.ts.UTC().Format(time.RFC3339Nano)}
	}
	return out
}

// inventoryDiff compares an answer of inventory_health with the truth
// ("" when equal).
func inventoryDiff(a modelAnswer, want map[string]map[string]string) string {
	if a.Error != "" {
		return a.Error
	}
	if len(a.Rows) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(a.Rows), len(want))
	}
	for _, row := range a.Rows {
		wh := ""
		if row["warehouse"] != nil {
			wh = fmt.Sprint(row["warehouse"])
		}
		k := fmt.Sprint(row["day"]) + "|" + fmt.Sprint(row["product_id"]) + "|" + wh
		w, ok := want[k]
		if !ok {
			return "row " + k + " is not in the truth"
		}
		for col, v := range w {
			if got := fmt.Sprint(row[col]); got != v {
				return fmt.Sprintf("%s: %s = %s, want %s", k, col, got, v)
			}
		}
	}
	return ""
}

// TestInventoryHealth: a lake that an earlier version left with its
// Go-coded inventory_health table (the latest stock per product,
// appended) starts with the shipped declaration: the old table is
// replaced by the model built from the raw history, with a log line
// saying so. Then updates flow and GET /v1/models/inventory_health
// answers, per day, product and warehouse, the last and first stock, the
// number of updates, their net delta and the last update, exactly; merged
// over the range (every=all) it answers the latest stock of each; and
// DuckDB's own arg_max over the raw events, the analysts' SQL path,
// agrees with the committed table.
func TestInventoryHealth(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"EVENTLAKE_INGEST_FLUSH_INTERVAL=1s", "EVENTLAKE_STREAMER_COMMIT_INTERVAL=1s"}
	start := func(cfg string) *th.Proc {
		file := filepath.Join(dir, fmt.Sprintf("eventlake-%d.yaml", len(cfg)))
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return th.Start(t, "dev", env, "dev", "--no-demo", "--config", file, "--data-dir", data,
			"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	}
	day0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

	// History in the lake, written without inventory_health declared.
	dev := start("read_models:\n  models:\n    - name: order_revenue_minute\n")
	history := invUpdates(1, 300, day0, 36*time.Hour)
	produceInventory(t, dir, dev.Ready["kafka"], history)
	cat := openLake(t, data)
	th.Eventually(t, 60*time.Second, "the history committed to the lake", func() (bool, string) {
		n := tableRowCount(t, cat, "inventory_raw")
		return n == int64(len(history)), fmt.Sprintf("%d rows", n)
	})
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, dev.Log())
	}

	// The table an earlier version kept: one stale row per product.
	createLegacyInventory(t, data)

	// The shipped declarations: the old table is replaced and the model
	// built from the raw history.
	dev = start("")
	api, broker := "http://"+dev.Ready["http"], dev.Ready["kafka"]
	th.Eventually(t, 30*time.Second, "inventory_health replaced and built", func() (bool, string) {
		log := dev.Log()
		return strings.Contains(log, "read model table inventory_health is in the layout of an earlier version") &&
			strings.Contains(log, `msg="read model built from the lake" component=streamer table=inventory_health`), "not logged yet"
	})
	rng := "from=2026-11-25T00:00:00Z&to=2026-11-28T00:00:00Z"
	check := func(what string, us []invUpdate) {
		t.Helper()
		for _, all := range []bool{false, true} {
			q, want := rng, inventoryTruth(us, all, day0)
			if all {
				q += "&every=all"
			}
			th.Eventually(t, 30*time.Second, what+" ("+q+")", func() (bool, string) {
				var a modelAnswer
				st := askJSON(t, http.MethodGet, api+"/v1/models/inventory_health?"+q, nil, &a)
				if st.status != http.StatusOK {
					return false, fmt.Sprintf("HTTP %d %s", st.status, a.Error)
				}
				d := inventoryDiff(a, want)
				return d == "", d
			})
		}
	}
	check("the model of the history", history)

	// Updates flow: the hot tier answers them at once, then commits them.
	live := invUpdates(2, 200, day0.Add(24*time.Hour), 48*time.Hour)
	produceInventory(t, dir, broker, live)
	all := append(slices.Clone(history), live...)
	check("the model of every update", all)

	// The committed table, read by SQL, against DuckDB's own arg_max over
	// the raw events: the analysts' path.
	byDuckDB := `SELECT time_bucket(INTERVAL '1 day', ts) AS day, product_id, warehouse,
		arg_max(stock, ts) AS stock, arg_min(stock, ts) AS first_stock, count(*) AS updates,
		sum(delta) AS net_delta, max(ts) AS last_update FROM inventory GROUP BY ALL`
	dump := func(from string) string {
		r := th.SQL(t, api, "SELECT day::VARCHAR, product_id, coalesce(warehouse, '-'), stock, first_stock, updates, net_delta::VARCHAR, last_update::VARCHAR FROM ("+
			from+") ORDER BY ALL")
		return fmt.Sprint(r.Rows)
	}
	th.Eventually(t, 30*time.Second, "every update committed to inventory_health", func() (bool, string) {
		r, status := th.TrySQL(t, api, "SELECT sum(updates) FROM inventory_health")
		if status != http.StatusOK || len(r.Rows) == 0 {
			return false, fmt.Sprintf("HTTP %d %s", status, r.Error)
		}
		return fmt.Sprint(r.Rows[0][0]) == strconv.Itoa(len(all)), fmt.Sprintf("%v of %d", r.Rows[0][0], len(all))
	})
	if got, want := dump("SELECT * FROM inventory_health"), dump(byDuckDB); got != want {
		t.Fatalf("the committed inventory_health differs from DuckDB's answer over the raw events:\n got %s\nwant %s", got, want)
	}

	// A restart loads the committed table (no second replacement).
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, dev.Log())
	}
	dev = start("")
	api = "http://" + dev.Ready["http"]
	check("the model after a restart", all)
	if strings.Contains(dev.Log(), "earlier version") || strings.Contains(dev.Log(), "table=inventory_health events=") {
		t.Fatalf("inventory_health was replaced or built again at a restart:\n%s", dev.Log())
	}

	// Another declaration under the name finds the table incompatible:
	// that stops the start, as for any model (only the earlier Go-coded
	// table is replaced).
	if err := dev.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, dev.Log())
	}
	changed := filepath.Join(dir, "changed.yaml")
	if err := os.WriteFile(changed, []byte(`read_models:
  models:
    - name: inventory_health
      sql: SELECT time_bucket(INTERVAL '1 hour', ts) AS hour, product_id, count(*) AS updates FROM inventory GROUP BY ALL
`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := th.StartNoWait(t, "dev", env, "dev", "--no-demo", "--config", changed, "--data-dir", data,
		"--kafka-listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--pg-listen", "off")
	th.Eventually(t, 60*time.Second, "the start stopped by the changed declaration", func() (bool, string) {
		done, err := bad.Exited()
		return done && err != nil && strings.Contains(bad.Log(), "its declaration changed since its table was built"), fmt.Sprintf("exited %v: %v", done, err)
	})
	if strings.Contains(bad.Log(), "earlier version") {
		t.Fatalf("a declared model's table was replaced:\n%s", bad.Log())
	}
}

// createLegacyInventory creates the inventory_health table as versions
// before its declaration did (lake.InventoryHealthDef then), with a row
// per product committed.
func createLegacyInventory(t *testing.T, data string) {
	t.Helper()
	ctx := context.Background()
	cfg := lake.Config{}
	cfg.Defaults(data)
	cat, err := lake.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	tbl, err := cat.EnsureTable(ctx, lake.TableDef{
		Name: "inventory_health",
		Schema: iceberg.NewSchema(0,
			iceberg.NestedField{ID: 1, Name: "product_id", Type: iceberg.PrimitiveTypes.String, Required: true},
			iceberg.NestedField{ID: 2, Name: "stock", Type: iceberg.PrimitiveTypes.Int64, Required: true},
			iceberg.NestedField{ID: 3, Name: "updated_at", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true, Doc: "event time of the update"},
			iceberg.NestedField{ID: 4, Name: "warehouse", Type: iceberg.PrimitiveTypes.String},
		),
		Spec:       *iceberg.UnpartitionedSpec,
		Properties: lake.ReadModelProperties("inventory_health"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for i := range 3 {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("p-%d", i))
		b.Field(1).(*array.Int64Builder).Append(9999)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
		b.Field(3).(*array.StringBuilder).Append("w-old")
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	at := array.NewTableFromRecords(sc, []arrow.RecordBatch{rec})
	defer at.Release()
	if _, err := tbl.AppendTable(ctx, at, 1000, nil); err != nil {
		t.Fatalf("commit the legacy inventory_health: %v", err)
	}
}
