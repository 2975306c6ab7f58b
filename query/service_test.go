package query

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventlake/eventlake/lake"
)

func TestEmptyLake(t *testing.T) {
	l := newLake(t) // no table exists yet
	h := start(t, l, nil)

	code, body := h.get("/readyz")
	if code != http.StatusOK {
		t.Fatalf("readyz %d %s", code, body)
	}
	hr := h.svc.Lake()
	want := map[string]*int64{"orders_raw": nil, "inventory_raw": nil, "dlq": nil, "audit_log": nil}
	if !reflect.DeepEqual(hr.Tables, want) {
		t.Fatalf("lake tables %v, want all null", hr.Tables)
	}

	for _, q := range []string{"events", "orders", "inventory", "dlq", "orders_raw", "inventory_raw"} {
		r := h.mustSQL("SELECT count(*) AS n FROM " + q)
		if got := r.rows()[0][0]; got != json.Number("0") {
			t.Errorf("%s: count %v, want 0", q, got)
		}
	}
	r := h.mustSQL("SELECT * FROM orders")
	wantCols := []any{"event_id", "ts", "order_id", "user_id", "product_id", "quantity", "amount", "source",
		"kafka_topic", "kafka_partition", "kafka_offset", "ingested_at", "replay_id"}
	wantTypes := []any{"VARCHAR", "TIMESTAMPTZ", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "DECIMAL(18,2)", "VARCHAR",
		"VARCHAR", "INTEGER", "BIGINT", "TIMESTAMPTZ", "VARCHAR"}
	if !reflect.DeepEqual(r.body["columns"], wantCols) || !reflect.DeepEqual(r.body["types"], wantTypes) {
		t.Fatalf("orders columns %v types %v", r.body["columns"], r.body["types"])
	}
	if sid := r.body["snapshot_id"].(map[string]any); sid["orders_raw"] != nil {
		t.Fatalf("snapshot_id %v, want null for a missing table", sid)
	}
	r = h.mustSQL("SELECT * FROM dlq")
	if got := r.body["types"].([]any)[0]; got != "BLOB" {
		t.Fatalf("dlq.raw type %v, want BLOB", got)
	}

	code, body = h.get("/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T11:00:00Z")
	if code != http.StatusOK {
		t.Fatalf("revenue %d %s", code, body)
	}
	var rr RevenueResponse
	if err := json.Unmarshal(body, &rr); err != nil {
		t.Fatal(err)
	}
	if rr.SnapshotID != nil || len(rr.Rows) != 0 || rr.Table != "orders_raw" {
		t.Fatalf("revenue over an empty lake: %s", body)
	}
}

func TestOrderRevenueMinute(t *testing.T) {
	l := newLake(t)
	l.orders()
	rows := []row{
		order("a", t0.Add(5*time.Second), "0.10", 0),
		order("b", t0.Add(59*time.Second+999999*time.Microsecond), "0.20", 1), // last microsecond of 10:00
		order("c", t0.Add(time.Minute), "12.30", 2),                           // first microsecond of 10:01
		order("d", t0.Add(time.Minute+30*time.Second), "1000000000000000.01", 3),
		order("e", t0.Add(3*time.Minute), "-5.00", 4),
		order("f", t0.Add(-time.Second), "7.77", 5), // 09:59:59, the hour before
		order("g", t0.Add(2*time.Hour), "3.00", 6),
	}
	notOrder := order("h", t0.Add(10*time.Second), "99.99", 7)
	notOrder[lake.ColType] = "order.cancelled"
	rows = append(rows, notOrder)
	sid := l.appendRows("orders_raw", rows[:4], offsets("orders.created", 0, 4))
	sid = l.appendRows("orders_raw", rows[4:], offsets("orders.created", 0, 8))
	h := start(t, l, nil)
	h.waitSnapshot("orders_raw", sid)

	cases := []struct {
		name, from, to string
		want           []RevenueRow
	}{
		{"whole hour", "2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z", []RevenueRow{
			{"2026-11-26T10:00:00Z", "0.30", 2},
			{"2026-11-26T10:01:00Z", "1000000000000012.31", 2},
			{"2026-11-26T10:03:00Z", "-5.00", 1},
		}},
		{"to is exclusive", "2026-11-26T10:00:00Z", "2026-11-26T10:01:00Z", []RevenueRow{
			{"2026-11-26T10:00:00Z", "0.30", 2},
		}},
		{"from inside a minute", "2026-11-26T10:00:06Z", "2026-11-26T10:01:00.000001Z", []RevenueRow{
			{"2026-11-26T10:00:00Z", "0.20", 1},
			{"2026-11-26T10:01:00Z", "12.30", 1},
		}},
		{"across hours", "2026-11-26T09:59:00Z", "2026-11-26T12:00:01Z", []RevenueRow{
			{"2026-11-26T09:59:00Z", "7.77", 1},
			{"2026-11-26T10:00:00Z", "0.30", 2},
			{"2026-11-26T10:01:00Z", "1000000000000012.31", 2},
			{"2026-11-26T10:03:00Z", "-5.00", 1},
			{"2026-11-26T12:00:00Z", "3.00", 1},
		}},
		{"offset time zone", "2026-11-26T11:00:00+01:00", "2026-11-26T11:01:00+01:00", []RevenueRow{
			{"2026-11-26T10:00:00Z", "0.30", 2},
		}},
		{"nothing in range", "2026-11-26T10:04:00Z", "2026-11-26T11:00:00Z", []RevenueRow{}},
		{"no file in range", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", []RevenueRow{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.get("/v1/metrics/order_revenue_minute?from=" + escape(c.from) + "&to=" + escape(c.to))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var rr RevenueResponse
			if err := json.Unmarshal(body, &rr); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rr.Rows, c.want) {
				t.Fatalf("rows\n got %+v\nwant %+v", rr.Rows, c.want)
			}
			if rr.SnapshotID == nil || *rr.SnapshotID != sid {
				t.Fatalf("snapshot_id %v, want %d", rr.SnapshotID, sid)
			}
			if off, _ := rr.Offsets.Get("orders.created", 0); off != 8 {
				t.Fatalf("offsets %v, want orders.created/0 = 8", rr.Offsets)
			}
		})
	}
}

func escape(s string) string { return strings.ReplaceAll(s, "+", "%2B") }

func TestOrderRevenueMinuteBadRange(t *testing.T) {
	h := start(t, newLake(t), nil)
	cases := []struct{ query, want string }{
		{"", "from and to are required"},
		{"from=2026-11-26T10:00:00Z", "from and to are required"},
		{"from=yesterday&to=2026-11-26T10:00:00Z", "not an RFC 3339 timestamp"},
		{"from=2026-11-26T10:00:00Z&to=2026-11-26", "not an RFC 3339 timestamp"},
		{"from=2026-11-26T10:00:00Z&to=2026-11-26T10:00:00Z", "must be after from"},
		{"from=2026-11-26T10:00:00Z&to=2026-11-26T09:00:00Z", "must be after from"},
		{"from=2026-10-01T00:00:00Z&to=2026-11-26T00:00:00Z", "at most"},
	}
	for _, c := range cases {
		code, body := h.get("/v1/metrics/order_revenue_minute?" + c.query)
		if code != http.StatusBadRequest || !strings.Contains(string(body), c.want) {
			t.Errorf("%q: %d %s, want 400 with %q", c.query, code, body, c.want)
		}
	}
	// Exactly 31 days is allowed.
	if code, body := h.get("/v1/metrics/order_revenue_minute?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"); code != http.StatusOK {
		t.Errorf("31 days: %d %s", code, body)
	}
}

func TestCommitBecomesVisible(t *testing.T) {
	l := newLake(t)
	h := start(t, l, nil) // the table does not exist yet
	if r := h.mustSQL("SELECT count(*) FROM orders"); r.rows()[0][0] != json.Number("0") {
		t.Fatalf("count %v before any commit", r.rows()[0][0])
	}
	l.orders()
	sid1 := l.appendRows("orders_raw", []row{order("a", t0, "1.00", 0)}, offsets("orders.created", 0, 1))
	h.waitSnapshot("orders_raw", sid1)
	r := h.mustSQL("SELECT count(*) FROM orders")
	if r.rows()[0][0] != json.Number("1") {
		t.Fatalf("count %v after the first commit", r.rows()[0][0])
	}
	if got := r.body["snapshot_id"].(map[string]any)["orders_raw"]; got != json.Number(fmt.Sprint(sid1)) {
		t.Fatalf("snapshot_id %v, want %d", got, sid1)
	}
	if got := r.body["offsets"].(map[string]any)["orders_raw"]; !reflect.DeepEqual(got, map[string]any{"orders.created": map[string]any{"0": json.Number("1")}}) {
		t.Fatalf("offsets %v", got)
	}

	sid2 := l.appendRows("orders_raw", []row{order("b", t0, "2.00", 1), order("c", t0, "3.00", 2)}, offsets("orders.created", 0, 3))
	h.waitSnapshot("orders_raw", sid2)
	r = h.mustSQL("SELECT count(*), sum(amount) FROM orders")
	if got := r.rows()[0]; got[0] != json.Number("3") || got[1] != "6.00" {
		t.Fatalf("count, sum = %v after the second commit", got)
	}
	code, body := h.get("/v1/metrics/order_revenue_minute?from=2026-11-26T10:00:00Z&to=2026-11-26T10:01:00Z")
	if code != http.StatusOK || !strings.Contains(string(body), `"revenue":"6.00","order_count":3`) {
		t.Fatalf("revenue %d %s", code, body)
	}
}
